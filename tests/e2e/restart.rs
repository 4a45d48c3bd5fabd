//! Issue 21: after a crash, deliveries that were cut off are retried at once. 500 messages
//! to a local user (or to a real Postfix on loopback, through smtproutes); rqmail-send,
//! rqmail-lspawn or rqmail-rspawn is killed with SIGKILL in the middle of delivering them
//! and started again as a supervisor would; every message must arrive within 30 s of the
//! restart without any signal, none lost; duplicates are counted and reported.

use rqmail_e2e::{Instance, wait_for};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const N: u32 = 500;

fn message(seq: u32) -> Vec<u8> {
    format!("X-Seq: {seq}\nSubject: restart test\n\nmessage {seq}\nend of message\n").into_bytes()
}

fn delivered(maildir: &Path) -> HashMap<u32, u32> {
    let mut seen = HashMap::new();
    for file in Instance::maildir_new(maildir) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(seq) = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Seq: "))
            .and_then(|v| v.parse::<u32>().ok())
        {
            *seen.entry(seq).or_insert(0) += 1;
        }
    }
    seen
}

/// The pids of the instance's running `program`.
fn pids_of(inst: &Instance, program: &str) -> Vec<i32> {
    let exe = inst.bin(program);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|x| x == exe))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// An instance whose bob@example.com takes a fifth of a second per delivery, so that many
/// deliveries are in flight when a crash comes; and bob's Maildir.
fn slow_local(name: &str) -> (Instance, PathBuf) {
    let inst = Instance::new(name);
    let homes = inst.add_users(&["bob"]);
    std::fs::write(homes[0].join(".qmail"), "|sleep 0.2\n./Maildir/\n").unwrap();
    (inst, homes[0].join("Maildir"))
}

/// Queues the messages for `to`, waits until some have reached `maildir`, kills with
/// `crash`, restarts, and checks that everything arrives within 30 s.
fn crash_mid_delivery(
    name: &str,
    inst: &mut Instance,
    to: &str,
    maildir: &Path,
    crash: impl Fn(&mut Instance),
) {
    for seq in 0..N {
        assert_eq!(inst.queue_raw("alice@example.com", &[to], &message(seq)), 0);
    }
    inst.start();
    assert!(
        wait_for(Duration::from_secs(60), || delivered(maildir).len() >= 50),
        "nothing delivered:\n{}",
        inst.log_text()
    );
    crash(inst);
    inst.crash();
    // Whatever of the old instance survives (deliveries in flight) finishes on its own.
    let restarted = Instant::now();
    inst.start();
    let all = wait_for(Duration::from_secs(30), || {
        delivered(maildir).len() == N as usize
    });
    let seen = delivered(maildir);
    let duplicates: u32 = seen.values().map(|c| c - 1).sum();
    assert!(
        all,
        "{name}: {} of {N} delivered 30 s after the restart\n{}",
        seen.len(),
        inst.log_text()
    );
    eprintln!(
        "{name}: {N} messages, all delivered {:.1} s after the restart, 0 lost, {duplicates} delivered twice",
        restarted.elapsed().as_secs_f64()
    );
    inst.stop();
}

/// Kills every `program` of the instance (a spawn); rqmail-send notices the lost spawn and
/// exits, and the test then starts it again as a supervisor would.
fn kill_spawn(inst: &mut Instance, program: &str) {
    for pid in pids_of(inst, program) {
        kill(pid);
    }
    wait_for(Duration::from_secs(30), || {
        pids_of(inst, "rqmail-send").is_empty()
    });
}

#[test]
fn deliveries_cut_off_by_killing_rqmail_send_are_retried_at_once() {
    let (mut inst, maildir) = slow_local("restart-send");
    crash_mid_delivery(
        "restart-send",
        &mut inst,
        "bob@example.com",
        &maildir,
        |inst| inst.crash(),
    );
}

#[test]
fn deliveries_cut_off_by_killing_rqmail_lspawn_are_retried_at_once() {
    let (mut inst, maildir) = slow_local("restart-lspawn");
    crash_mid_delivery(
        "restart-lspawn",
        &mut inst,
        "bob@example.com",
        &maildir,
        |inst| kill_spawn(inst, "rqmail-lspawn"),
    );
}

#[test]
fn remote_deliveries_cut_off_by_killing_rqmail_rspawn_are_retried_at_once() {
    let Some(daemons) = rqmail_e2e::postfix::postfix_daemons(
        "remote_deliveries_cut_off_by_killing_rqmail_rspawn_are_retried_at_once",
    ) else {
        return;
    };
    let mut pf = rqmail_e2e::postfix::Postfix::new("restart", daemons, &["bob"], None);
    pf.start();
    let mut inst = Instance::new("restart-rspawn");
    inst.add_users(&["alice"]);
    inst.control("smtproutes", &format!("peer.test:127.0.0.1:{}\n", pf.port));
    crash_mid_delivery(
        "restart-rspawn",
        &mut inst,
        "bob@peer.test",
        &pf.maildir("bob"),
        |inst| kill_spawn(inst, "rqmail-rspawn"),
    );
}

/// For two seconds, kills whatever `victims` names every 100 ms; returns how many.
fn keep_killing(victims: impl Fn() -> Vec<i32>) -> usize {
    let mut killed = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for pid in victims() {
            kill(pid);
            killed += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    killed
}

fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn deliveries_whose_own_process_is_killed_are_tried_again_soon_not_on_the_schedule() {
    // The forked children of rqmail-lspawn that run single deliveries are killed, over and
    // over for two seconds, while rqmail-send and lspawn go on: each killed delivery is
    // reported as interrupted, and tried again within seconds, not 100 s after the
    // message's birth as a deferral would be.
    let (mut inst, maildir) = slow_local("restart-children");
    for seq in 0..200 {
        assert_eq!(
            inst.queue_raw("alice@example.com", &["bob@example.com"], &message(seq)),
            0
        );
    }
    inst.start();
    let send = inst.send_pid().unwrap();
    assert!(wait_for(Duration::from_secs(60), || delivered(&maildir)
        .len()
        >= 20));
    // lspawn's forked children: every rqmail-lspawn but the one rqmail-send started.
    let killed = keep_killing(|| {
        pids_of(&inst, "rqmail-lspawn")
            .into_iter()
            .filter(|&pid| parent_of(pid).is_some_and(|p| p != send))
            .collect()
    });
    assert!(killed > 0, "no delivery was running to be killed");
    let all = wait_for(Duration::from_secs(40), || delivered(&maildir).len() == 200);
    assert!(
        all,
        "{} of 200 delivered after {killed} deliveries were killed\n{}",
        delivered(&maildir).len(),
        inst.log_text()
    );
    assert!(
        inst.log_text()
            .contains("local delivery was killed; trying again soon")
    );

    // The same for a `|program` of the user's .qmail killed while it runs (here the sleep:
    // the shell that ran it then exits 137).
    for seq in 200..300 {
        assert_eq!(
            inst.queue_raw("alice@example.com", &["bob@example.com"], &message(seq)),
            0
        );
    }
    assert!(wait_for(Duration::from_secs(60), || delivered(&maildir)
        .len()
        >= 220));
    // The sleeps whose shell a forked rqmail-lspawn started.
    let killed = keep_killing(|| {
        let spawns = pids_of(&inst, "rqmail-lspawn");
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| {
                let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let child = parent_of(parent_of(pid)? as i32)? as i32;
                (cmdline == b"sleep\x000.2\x00" && spawns.contains(&child)).then_some(pid)
            })
            .collect()
    });
    assert!(killed > 0, "no program was running to be killed");
    let all = wait_for(Duration::from_secs(40), || delivered(&maildir).len() == 300);
    assert!(
        all,
        "{} of 300 delivered after {killed} programs were killed\n{}",
        delivered(&maildir).len(),
        inst.log_text()
    );
    assert!(
        inst.log_text()
            .contains("program was killed; trying again soon")
    );
    inst.stop();
}
