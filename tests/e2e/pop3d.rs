//! rqmail-pop3d on a Maildir filled by a real instance, served per connection by the real
//! rqmail-tcpserver and read with Python's poplib and raw sockets: listings, byte-exact
//! RETR and TOP, UIDL stability, DELE/RSET/QUIT, dropped sessions, the lock, limits.

use rqmail_e2e::{Instance, Listener, command, python_command};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// Helpers every script starts with. `connect()` retries while the previous session's
/// process, which the client has just left, still holds the lock.
const PRELUDE: &str = include_str!("../python/pop3d/prelude.py");

const ONE: &[u8] = b"Subject: one\n\nline one\n.leading dot\n..two dots\n\n.\nlast line\n";
const TWO: &[u8] = b"Subject: two\n\nno newline at the end";
const THREE: &[u8] = b"Subject: three\n\n\xc3\xa9t\xc3\xa9 8bit\nbare\rcr\n";

/// An instance with user bob and a listener serving his Maildir with rqmail-pop3d.
fn setup(name: &str, messages: &[&[u8]]) -> (Instance, PathBuf, Listener) {
    let mut inst = Instance::new(name);
    let homes = inst.add_users(&["bob"]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    deliver(&inst, &maildir, messages);
    let listener = inst.listen("rqmail-pop3d", &[maildir.to_str().unwrap()], &[]);
    (inst, maildir, listener)
}

/// Delivers each message through the instance, one after the other so that their mtimes
/// give their order.
fn deliver(inst: &Instance, maildir: &Path, messages: &[&[u8]]) {
    for message in messages {
        let before = Instance::maildir_new(maildir).len();
        assert_eq!(
            inst.queue_raw("alice@remote.example", &["bob@example.com"], message),
            0
        );
        inst.wait_for_mail(maildir, before + 1);
    }
}

fn script(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn poplib_lists_and_retrieves_byte_exact() {
    let (inst, maildir, l) = setup("pop3-retr", &[ONE, TWO, THREE]);
    let out = inst.python(
        l.port,
        &script(include_str!(
            "../python/pop3d/poplib_lists_and_retrieves_byte_exact.py"
        )),
    );
    assert!(out.contains("ok"), "{out}");
    assert!(names(&maildir.join("new")).is_empty());
    let cur = names(&maildir.join("cur"));
    assert_eq!(cur.len(), 3);
    assert!(cur.iter().all(|n| n.ends_with(":2,")), "{cur:?}");
}

#[test]
fn dele_takes_effect_at_quit_only_and_a_dropped_session_changes_nothing() {
    let (inst, maildir, l) = setup("pop3-dele", &[ONE, TWO, THREE]);
    let out = inst.python(
        l.port,
        &script(
            include_str!("../python/pop3d/dele_takes_effect_at_quit_only_and_a_dropped_session_changes_nothing.py"),
        ),
    );
    assert!(out.contains("ok"), "{out}");
    assert_eq!(names(&maildir.join("cur")).len(), 2);
}

#[test]
fn a_second_session_gets_in_use_until_the_first_quits() {
    let (inst, _maildir, l) = setup("pop3-lock", &[ONE]);
    let out = inst.python(
        l.port,
        &script(
            r#"
first = connect()
try:
    poplib.POP3("127.0.0.1", PORT, timeout=30)
    raise SystemExit("second session allowed")
except poplib.error_proto as e:
    assert e.args[0] == b"-ERR [IN-USE] mailbox in use", e
assert first.quit() == b"+OK bye"
# The lock is released before QUIT's reply: reconnecting at once works.
second = poplib.POP3("127.0.0.1", PORT, timeout=30)
assert second.stat()[0] == 1
second.quit()
print("ok")
"#,
        ),
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn a_message_delivered_during_a_session_waits_for_the_next() {
    let (inst, maildir, l) = setup("pop3-snapshot", &[ONE, TWO]);
    let mut child = python_command(&script(
        r#"
import sys
p = connect()
assert p.stat()[0] == 2
print("ready", flush=True)
sys.stdin.readline()
assert p.stat()[0] == 2, p.stat()
resp, uids, _ = p.uidl()
assert len(uids) == 2, uids
try:
    p.list(3)
    raise SystemExit("new message listed")
except poplib.error_proto as e:
    assert e.args[0] == b"-ERR no such message", e
p.quit()
p = connect()
assert p.stat()[0] == 3, p.stat()
p.quit()
print("ok", flush=True)
"#,
    ))
    .env("PORT", l.port.to_string())
    .env("HOME_DIR", &inst.home)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    deliver(&inst, &maildir, &[THREE]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success() && rest.contains("ok"), "{rest}");
    // The first session moved only the two it had seen; the second moved the third.
    assert_eq!(names(&maildir.join("cur")).len(), 3);
}

/// Runs rqmail-pop3d directly in the instance's home, as checkpassword would in a user's.
fn run_pop3d(inst: &Instance, args: &[&str], env: &[(&str, &str)]) -> (String, String, i32) {
    let out = inst.run_env("rqmail-pop3d", args, b"STAT\r\nQUIT\r\n", env);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn the_maildir_comes_from_the_argument_then_maildir_then_dot_maildir() {
    let mut inst = Instance::new("pop3-args");
    let homes = inst.add_users(&["bob"]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    deliver(&inst, &maildir, &[ONE]);
    let path = maildir.to_str().unwrap();

    // The instance's home has no Maildir.
    let (out, err, code) = run_pop3d(&inst, &[], &[]);
    assert_eq!(
        (out.as_str(), code),
        ("-ERR [SYS/PERM] this user has no mailbox\r\n", 1),
        "{err}"
    );
    let (out, err, code) = run_pop3d(&inst, &[], &[("MAILDIR", path)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("+OK maildrop has 1 message\r\n+OK 1 "),
        "{out}"
    );
    assert!(
        err.contains(": quit: 1 messages, retrieved 0 (0 bytes), deleted 0"),
        "{err}"
    );
    let (out, err, code) = run_pop3d(&inst, &[path], &[("MAILDIR", "/nonexistent")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("+OK maildrop has 1 message\r\n"), "{out}");
    let (out, _, code) = run_pop3d(&inst, &[path, "extra"], &[]);
    assert_eq!(
        (out.as_str(), code),
        ("-ERR [SYS/TEMP] server misconfigured\r\n", 111)
    );
}

#[test]
fn stale_tmp_files_are_removed_at_start() {
    let mut inst = Instance::new("pop3-tmp");
    let homes = inst.add_users(&["bob"]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    let stale = maildir.join("tmp/stale");
    let fresh = maildir.join("tmp/fresh");
    for path in [&stale, &fresh] {
        std::fs::write(path, b"partial").unwrap();
    }
    let old = SystemTime::now() - Duration::from_secs(37 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_times(
            std::fs::FileTimes::new()
                .set_accessed(old)
                .set_modified(old),
        )
        .unwrap();
    let (out, err, code) = run_pop3d(&inst, &[maildir.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!stale.exists());
    assert!(fresh.exists());
}

#[test]
fn refuses_to_run_as_root() {
    if !rqmail_e2e::as_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let inst = Instance::new("pop3-root");
    let out = Command::new(inst.bin("rqmail-pop3d"))
        .arg(&inst.home)
        .uid(0)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("uid 0"));
    // The same program as anyone else serves the directory.
    let out = command(inst.bin("rqmail-pop3d"))
        .arg(inst.home.join("nonexistent"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
