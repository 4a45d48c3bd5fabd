//! Every IMAP4rev1 command (and the extensions rqmail-imapd announces) through the whole
//! chain: rqmail-tcpserver running `rqmail-login imap`, a checkpassword, then
//! rqmail-imapd, driven by Python's imaplib, with each reply checked against the files the
//! command leaves in the Maildir. Then IDLE hearing of mail sent through rqmail-smtpd, and
//! UIDs that stay put while imapd sessions are killed during a delivery burst.
//!
//! As in imap_clients.rs, the instance is a single-user one, so a fake checkpassword
//! stands in for the real one: it accepts joe/secret, enters joe's home and runs
//! `rqmail-imapd Maildir`. The front has IMAP_PLAINTEXT (a loopback rule would set it), so
//! imaplib logs in without TLS: TLS is tested in login_imap.rs and imap_clients.rs.

use rqmail_e2e::{Instance, LoginServer, python_command, wait_for};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Accepts joe/secret; enters HOME (substituted) and runs argv[1:].
/// Passwords in the clear on loopback, as the shipped rules allow.
const PLAINTEXT: &[(&str, &str)] = &[("IMAP_PLAINTEXT", "")];
/// Python helpers every client script starts with.
const PRELUDE: &str = include_str!("../python/imap_commands/prelude.py");

/// An instance with joe's Maildir (messages delivered through the queue) and the login
/// front serving it.
struct Setup {
    inst: Instance,
    maildir: PathBuf,
    front: LoginServer,
}

/// Makes the instance, delivers `messages` one by one (each has its own Message-ID), and
/// starts the front.
fn setup(name: &str, messages: &[Vec<u8>]) -> Setup {
    let mut inst = Instance::new(name);
    let homes = inst.add_users(&["joe"]);
    inst.install_fake_checkpassword(&homes[0]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    for message in messages {
        let before = Instance::maildir_new(&maildir).len();
        assert_eq!(
            inst.queue_raw("alice@remote.example", &["joe@example.com"], message),
            0
        );
        inst.wait_for_mail(&maildir, before + 1);
    }
    let front = inst.login_server("imap", false, "rqmail-imapd", "Maildir", PLAINTEXT);
    Setup {
        inst,
        maildir,
        front,
    }
}

/// A delivered message `n`: `Message-ID: <n@test>`, a subject and a body.
fn delivered(n: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@remote.example>\nTo: joe@example.com\nMessage-ID: <{n}@test>\n\
         Subject: {subject}\n\nbody of {n}\nsecond line\n"
    )
    .into_bytes()
}

impl Setup {
    /// A client script (after PRELUDE) as a Command, with PORT and MAILDIR set.
    fn script(&self, body: &str) -> Command {
        let mut cmd = python_command(&format!("{PRELUDE}\n{body}"));
        cmd.env("PORT", self.front.port.to_string())
            .env("MAILDIR", &self.maildir);
        cmd
    }

    /// Runs a client script; returns its output, asserting that it printed "ok" last.
    fn python(&self, body: &str) -> String {
        let out = self.script(body).output().expect("python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.trim_end().ends_with("ok"),
            "python failed:\n{text}\nfront log:\n{}\nsend log:\n{}",
            self.front.log_text(),
            self.inst.log_text()
        );
        text
    }
}

#[test]
fn capability_noop_check_id_enable_namespace_and_logout_answer_as_the_rfcs_say() {
    let s = setup("imapcmd-any", &[delivered("m1", "one")]);
    s.python(
        include_str!("../python/imap_commands/capability_noop_check_id_enable_namespace_and_logout_answer_as_the_rfcs_say.py"),
    );
}

#[test]
fn create_delete_rename_subscribe_list_and_status_keep_the_folder_tree_consistent() {
    let s = setup(
        "imapcmd-folders",
        &[delivered("i1", "inbox one"), delivered("i2", "inbox two")],
    );
    let out = s.python(
        include_str!("../python/imap_commands/create_delete_rename_subscribe_list_and_status_keep_the_folder_tree_consistent.py"),
    );
    eprintln!("{out}");
}

#[test]
fn a_folder_deleted_and_created_again_never_reuses_uidvalidity_and_uid() {
    let s = setup("imapcmd-validity", &[]);
    s.python(
        r#"
m = connect()
ok(m.create("Reborn"))
ok(m.append("Reborn", None, None, message("first-life", b"old")))
st1 = status(m, "Reborn")
ok(m.select("Reborn"))
old = uid_map(m)
ok(m.close())
ok(m.delete("Reborn"))
ok(m.create("Reborn"))
ok(m.append("Reborn", None, None, message("second-life", b"new")))
st2 = status(m, "Reborn")
ok(m.select("Reborn"))
new = uid_map(m)
# RFC 3501 §2.3.1.1: a client that cached (Reborn, UIDVALIDITY, UID) must not be handed
# another message under the same three.
same = [u for u in new if u in old and old[u] != new[u]]
assert st1["UIDVALIDITY"] != st2["UIDVALIDITY"] or not same, (
    "UIDVALIDITY %d kept, UID %s now names %s instead of %s"
    % (st1["UIDVALIDITY"], same, [new[u] for u in same], [old[u] for u in same]))
m.logout()
print("ok")
"#,
    );
}

#[test]
fn examine_is_read_only_close_expunges_unselect_does_not_and_uid_expunge_takes_only_its_uids() {
    let messages: Vec<Vec<u8>> = (1..=8)
        .map(|i| delivered(&format!("m{i}"), &format!("message {i}")))
        .collect();
    let s = setup("imapcmd-select", &messages);
    s.python(
        include_str!("../python/imap_commands/examine_is_read_only_close_expunges_unselect_does_not_and_uid_expunge_takes_only_its_uids.py"),
    );
}

#[test]
fn copy_move_and_their_uid_forms_report_the_destinations_real_uids_and_append_keeps_flags_and_date()
{
    let messages: Vec<Vec<u8>> = (1..=6)
        .map(|i| delivered(&format!("c{i}"), &format!("copy {i}")))
        .collect();
    let s = setup("imapcmd-copy", &messages);
    s.python(
        include_str!("../python/imap_commands/copy_move_and_their_uid_forms_report_the_destinations_real_uids_and_append_keeps_flags_and_date.py"),
    );
}

/// APPENDs the SEARCH test's messages to INBOX, after a first one that is expunged so that
/// UIDs (2 to 6) differ from sequence numbers (1 to 5); prints nothing.
const SEARCH_MESSAGES: &str = include_str!("../python/imap_commands/search_messages.py");

#[test]
fn search_by_internal_date_size_or_not_sequence_sets_uids_and_utf8_text() {
    let s = setup("imapcmd-search", &[]);
    s.python(&format!(
        "{SEARCH_MESSAGES}\n{}",
        include_str!("../python/imap_commands/search_by_internal_date_size_or_not_sequence_sets_uids_and_utf8_text.py")
    ));
}

#[test]
fn search_sent_dates_compare_the_date_header() {
    let s = setup("imapcmd-sent", &[]);
    s.python(&format!(
        "{SEARCH_MESSAGES}\n{}",
        r#"
# Date headers: 2019-06-15, 2022-01-01, 2018-03-05, 2022-07-10, 2023-12-20;
# internal dates: 2020-02-01, 2021-03-15, 2021-03-15, 2022-07-10, 2023-12-20.
got = {
    "SENTSINCE 1-Jan-2022": search("SENTSINCE", "1-Jan-2022"),
    "SENTBEFORE 1-Jan-2020": search("SENTBEFORE", "1-Jan-2020"),
    "SENTON 1-Jan-2022": search("SENTON", "1-Jan-2022"),
    "SENTON 15-Mar-2021": search("SENTON", "15-Mar-2021"),
}
want = {
    "SENTSINCE 1-Jan-2022": [2, 4, 5],
    "SENTBEFORE 1-Jan-2020": [1, 3],
    "SENTON 1-Jan-2022": [2],
    "SENTON 15-Mar-2021": [],
}
assert got == want, "got %r, want %r" % (got, want)
m.logout()
print("ok")
"#
    ));
}

#[test]
fn fetch_flags_internaldate_size_headers_and_partials_match_the_files() {
    let mut first = delivered("f1", "fetch one");
    first.extend_from_slice(b"\xc3\xa9t\xc3\xa9 8bit\n.leading dot\n");
    let s = setup(
        "imapcmd-fetch",
        &[
            first,
            delivered("f2", "fetch two"),
            b"Message-ID: <f3@test>\nSubject: no final newline\n\nlast line".to_vec(),
        ],
    );
    s.python(
        include_str!("../python/imap_commands/fetch_flags_internaldate_size_headers_and_partials_match_the_files.py"),
    );
}

#[test]
fn idle_reports_a_message_sent_through_smtpd_within_a_second() {
    let s = setup("imapcmd-idle", &[delivered("i1", "before idle")]);
    let smtpd = s.inst.listen("rqmail-smtpd", &[], &[]);
    let out = s
        .script(include_str!(
            "../python/imap_commands/idle_reports_a_message_sent_through_smtpd_within_a_second.py"
        ))
        .env("SMTP_PORT", smtpd.port.to_string())
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim_end().ends_with("ok"),
        "{text}\nfront log:\n{}\nsend log:\n{}",
        s.front.log_text(),
        s.inst.log_text()
    );
}

/// How many messages the burst delivers.
const BURST: usize = 200;

/// A watcher: sessions that SELECT INBOX over and over and record, for every message, the
/// UID it was first seen with, until the file STOP exists. A session killed under it is
/// replaced by a new one. Each SELECT's UIDs must be ascending, the messages it shows for
/// the first time must have UIDs above every UID seen before, no UID may name two messages
/// nor a message change its UID, and UIDVALIDITY must not change. Writes what it saw to
/// OUT as JSON.
const WATCHER: &str = include_str!("../python/imap_commands/watcher.py");

/// The pids of this instance's rqmail-imapd processes (found in /proc by their argv[0]).
fn imapd_pids(inst: &Instance) -> Vec<i32> {
    let program = inst.bin("rqmail-imapd");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or(b"");
        if argv0 == program.as_os_str().as_encoded_bytes() {
            pids.push(pid);
        }
    }
    pids
}

/// A small xorshift generator: the kill times need to vary, not to be good randomness.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn uids_stay_stable_while_sessions_are_killed_during_a_delivery_burst() {
    let s = setup("imapcmd-burst", &[]);
    let stop = s.inst.home.join("stop-watchers");
    // Two watchers, so that two sessions also race each other to give the UIDs.
    let mut watchers = Vec::new();
    for n in 0..2 {
        let out = s.inst.home.join(format!("watcher-{n}.json"));
        let mut child = s
            .script(WATCHER)
            .env("STOP", &stop)
            .env("OUT", &out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            let out = child.wait_with_output().unwrap();
            panic!(
                "watcher {n} not ready: {line}{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                s.front.log_text()
            );
        }
        watchers.push((child, stdout, out));
    }

    // The burst, through rqmail-queue, while sessions are killed at random moments.
    let delivering = Arc::new(AtomicBool::new(true));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (delivering, errors) = (delivering.clone(), errors.clone());
        let inst_home = s.inst.home.clone();
        let queue = s.inst.bin("rqmail-queue");
        std::thread::spawn(move || {
            for i in 0..BURST {
                let message =
                    format!("Message-ID: <burst{i}@test>\nSubject: burst {i}\n\nmessage {i}\n");
                let status = queue_one(&queue, &inst_home, message.as_bytes());
                if status != 0 {
                    errors.lock().unwrap().push(format!("queue {i}: {status}"));
                }
            }
            delivering.store(false, Ordering::SeqCst);
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill schedule seed {seed}");
    let mut random = Random(seed);
    let mut kills = 0;
    let count = || {
        ["new", "cur"]
            .iter()
            .map(|d| {
                std::fs::read_dir(s.maildir.join(d))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut delivered_at = None;
    // Keep killing until everything is delivered, and a second more.
    while delivered_at.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(1)) {
        assert!(
            Instant::now() < deadline,
            "burst not delivered: {} of {BURST}\n{}",
            count(),
            s.inst.log_text()
        );
        std::thread::sleep(Duration::from_millis(5 + random.below(60)));
        let pids = imapd_pids(&s.inst);
        if !pids.is_empty() {
            let pid = pids[random.below(pids.len() as u64) as usize];
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
            {
                kills += 1;
            }
        }
        if delivered_at.is_none() && !delivering.load(Ordering::SeqCst) && count() >= BURST {
            delivered_at = Some(Instant::now());
        }
    }
    sender.join().unwrap();
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
    std::fs::write(&stop, "").unwrap();

    let mut seen = Vec::new();
    for (n, (mut child, mut stdout, out)) in watchers.into_iter().enumerate() {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(
            status.success() && rest.trim_end().ends_with("ok"),
            "watcher {n} failed (seed {seed}, {kills} kills):\n{rest}{err}\nfront log:\n{}",
            s.front.log_text()
        );
        seen.push(std::fs::read_to_string(&out).unwrap());
    }
    assert!(kills >= 10, "only {kills} sessions killed");

    // A new session sees every message, each with the UID it was first seen with.
    let report = s
        .script(
            r#"
BURST = int(os.environ["BURST"])
watchers = [json.loads(t) for t in os.environ["SEEN"].split("\n@@\n")]
m = connect()
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"%d" % BURST], (typ, data)
validity = int(m.untagged_responses["UIDVALIDITY"][0])
uids = uid_map(m)
assert sorted(uids.values()) == sorted("<burst%d@test>" % i for i in range(BURST)), uids
first = {mid: uid for uid, mid in uids.items()}
for n, w in enumerate(watchers):
    assert w["validity"] == validity, ("UIDVALIDITY changed", n, w["validity"], validity)
    changed = {mid: (uid, first.get(mid)) for mid, uid in w["uids"].items() if first.get(mid) != uid}
    assert not changed, ("UIDs changed", n, changed)
    print("watcher %d: %d messages found in %d of %d SELECTs, %d sessions lost" % (n, len(w["uids"]), w["rounds"], w["selects"], w["reconnects"]))
# The UIDs were given while mail kept coming, not all at the end.
assert max(w["rounds"] for w in watchers) >= 3, watchers
# No UID names two messages (the map would have fewer entries) and UIDNEXT is past them.
assert len(uids) == BURST
st = status(m, "INBOX")
assert st["UIDVALIDITY"] == validity and st["UIDNEXT"] > max(uids), st
m.logout()
print("ok")
"#,
        )
        .env("SEEN", seen.join("\n@@\n"))
        .env("BURST", BURST.to_string())
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(
        report.status.success() && text.trim_end().ends_with("ok"),
        "final check failed (seed {seed}, {kills} kills):\n{text}\nfront log:\n{}",
        s.front.log_text()
    );
    eprintln!("{kills} imapd sessions killed\n{text}");
    // No session is left behind.
    assert!(wait_for(Duration::from_secs(5), || imapd_pids(&s.inst).is_empty()));
}

/// Queues one message for joe through rqmail-queue (as Instance::queue_raw, which needs
/// the Instance on this thread).
fn queue_one(queue: &Path, home: &Path, message: &[u8]) -> i32 {
    let (env_read, env_write) = nix::unistd::pipe().unwrap();
    let mut child = rqmail_e2e::command(queue)
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(env_read))
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(message);
    drop(stdin);
    let mut env = std::fs::File::from(env_write);
    let _ = env.write_all(b"Falice@remote.example\0Tjoe@example.com\0\0");
    drop(env);
    child.wait().unwrap().code().unwrap_or(-1)
}
