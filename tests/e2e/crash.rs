//! Crash safety: rqmail-queue killed at any point queues nothing partial; rqmail-send and
//! the deliveries killed mid-run lose nothing; a full disk is a temporary failure.

use rqmail_e2e::{Instance, as_root, command, wait_for};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn list(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            for inner in std::fs::read_dir(entry.path()).unwrap().flatten() {
                out.push(inner.path().display().to_string());
            }
        } else {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

/// Counts each `X-Seq:` marker among the delivered messages, checking every message is whole.
fn delivered_sequence(maildir: &Path) -> HashMap<u32, u32> {
    let mut seen = HashMap::new();
    for file in Instance::maildir_new(maildir) {
        let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
        assert!(
            text.ends_with("end of message\n"),
            "partial message delivered: {text:?}"
        );
        let seq = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Seq: "))
            .and_then(|v| v.parse().ok())
            .expect("X-Seq header");
        *seen.entry(seq).or_insert(0) += 1;
    }
    seen
}

fn message(seq: u32, filler: usize) -> Vec<u8> {
    let mut m = format!("X-Seq: {seq}\nSubject: crash test\n\n").into_bytes();
    m.extend(std::iter::repeat_n(b'x', filler));
    m.extend_from_slice(b"\nend of message\n");
    m
}

#[test]
fn killing_rqmail_queue_at_any_point_never_delivers_a_partial_message() {
    let mut inst = Instance::new("killqueue");
    let homes = inst.add_users(&["bob"]);
    let mut accepted = 0u32;
    for round in 0..40u32 {
        let (env_read, env_write) = nix::unistd::pipe().unwrap();
        let mut child = command(inst.bin("rqmail-queue"))
            .current_dir(&inst.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_read))
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut env = std::fs::File::from(env_write);
        let body = message(round, 20_000);
        let envelope = b"Falice@example.com\0Tbob@example.com\0\0";
        // Stop at a different point each round: before the body, inside it, after it,
        // inside the envelope, or just before the envelope's final NUL.
        match round % 5 {
            0 => {}
            1 => {
                let _ = stdin.write_all(&body[..body.len() / 2]);
            }
            2 => {
                let _ = stdin.write_all(&body);
                drop(stdin);
                std::thread::sleep(Duration::from_millis(5));
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            3 => {
                let _ = stdin.write_all(&body);
                drop(stdin);
                let _ = env.write_all(&envelope[..10]);
                std::thread::sleep(Duration::from_millis(5));
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            _ => {
                let _ = stdin.write_all(&body);
                drop(stdin);
                let _ = env.write_all(&envelope[..envelope.len() - 1]);
                std::thread::sleep(Duration::from_millis(5));
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
        let _ = child.kill();
        let _ = child.wait();
        drop(env);
        // And a writer that closes the envelope early without being killed.
        if round % 10 == 0 {
            assert_ne!(inst.queue_raw("alice@example.com", &[], b"x"), -1);
            accepted += 1;
        }
    }
    // Partial messages are on disk now; a good one follows.
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com"],
            &message(1000, 100)
        ),
        0
    );
    accepted += 1;
    assert!(
        inst.queued() > accepted as usize,
        "the kills should have left files behind"
    );
    inst.start();
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    // Everything left by the killed writers is removed at start-up; only the good message
    // arrives, and the queue ends empty.
    assert!(
        wait_for(Duration::from_secs(20), || inst.queued() == 0),
        "queue not clean: {:?}\n{}",
        list(&inst.home.join("queue/mess")),
        inst.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        Instance::maildir_new(&homes[0].join("Maildir")).len(),
        1,
        "{files:?}"
    );
    let seen = delivered_sequence(&homes[0].join("Maildir"));
    assert_eq!(seen.get(&1000), Some(&1));
    for dir in ["intd", "todo", "info", "local", "remote", "bounce"] {
        assert!(
            list(&inst.home.join("queue").join(dir)).is_empty(),
            "{dir} not empty"
        );
    }
}

/// Kills every process of the instance at once (the scheduler and any delivery running).
fn kill_everything(inst: &mut Instance) {
    inst.crash();
    let bin = inst.home.join("bin");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        if exe.starts_with(&bin) {
            let pid: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn killing_send_and_deliveries_mid_run_loses_nothing() {
    const N: u32 = 1000;
    let mut inst = Instance::new("killsend");
    let homes = inst.add_users(&["bob"]);
    let maildir = homes[0].join("Maildir");
    inst.start();
    let mut crashes = 0;
    for seq in 0..N {
        assert_eq!(
            inst.queue_raw(
                "alice@example.com",
                &["bob@example.com"],
                &message(seq, 2000)
            ),
            0
        );
        if seq % 250 == 125 {
            kill_everything(&mut inst);
            crashes += 1;
            inst.start();
        }
    }
    // One more crash while the backlog is being delivered.
    std::thread::sleep(Duration::from_millis(100));
    kill_everything(&mut inst);
    crashes += 1;
    inst.start();
    let ok = wait_for(Duration::from_secs(120), || {
        delivered_sequence(&maildir).len() == N as usize
    });
    let seen = delivered_sequence(&maildir);
    assert!(
        ok,
        "only {} of {N} messages delivered\n{}",
        seen.len(),
        inst.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(30), || inst.queued() == 0),
        "queue not empty"
    );
    let duplicates: u32 = seen.values().map(|c| c - 1).sum();
    eprintln!("killsend: {N} messages, {crashes} crashes, 0 lost, {duplicates} delivered twice");
}

#[test]
fn a_full_disk_is_a_temporary_failure_and_loses_nothing() {
    if !as_root() {
        eprintln!(
            "SKIPPED: a_full_disk_is_a_temporary_failure_and_loses_nothing needs root to mount a small tmpfs"
        );
        return;
    }
    let mut inst = Instance::new("fulldisk");
    let homes = inst.add_users(&["bob"]);
    let queue = inst.home.join("queue");
    std::fs::remove_dir_all(&queue).unwrap();
    std::fs::create_dir(&queue).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs"])
        .arg(&queue)
        .status()
        .unwrap();
    if !status.success() {
        eprintln!(
            "SKIPPED: a_full_disk_is_a_temporary_failure_and_loses_nothing: cannot mount tmpfs here"
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(queue.clone());
    rqmail_qfiles::Queue::new(&inst.home).create().unwrap();
    std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&queue)
        .status()
        .unwrap();
    let mut accepted = Vec::new();
    let mut failure = None;
    for seq in 0..200u32 {
        let code = inst.queue_raw(
            "alice@example.com",
            &["bob@example.com"],
            &message(seq, 50_000),
        );
        if code == 0 {
            accepted.push(seq);
        } else {
            failure = Some(code);
            break;
        }
    }
    let code = failure.expect("the 2 MiB queue never filled");
    assert!(
        !(11..=40).contains(&code),
        "a full disk must be a temporary failure, got {code}"
    );
    assert!(!accepted.is_empty());
    // sendmail reports it as a temporary failure too (exit 111 is EX_TEMPFAIL's qmail twin).
    let out = inst.run(
        "sendmail",
        &["-f", "alice@example.com", "bob@example.com"],
        &message(999, 50_000),
    );
    assert!(!out.status.success());
    assert_eq!(
        out.status.code(),
        Some(111),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    inst.start();
    let ok = wait_for(Duration::from_secs(60), || {
        delivered_sequence(&homes[0].join("Maildir")).len() == accepted.len()
    });
    let seen = delivered_sequence(&homes[0].join("Maildir"));
    assert!(
        ok,
        "{} of {} accepted messages delivered\n{}",
        seen.len(),
        accepted.len(),
        inst.log_text()
    );
    for seq in &accepted {
        assert!(seen.contains_key(seq), "accepted message {seq} lost");
    }
    assert!(wait_for(Duration::from_secs(20), || inst.queued() == 0));
    inst.stop();
}
