//! Real IMAP clients against the whole chain: rqmail-tcpserver running `rqmail-login imap`,
//! which runs a checkpassword and rqmail-imapd, on a Maildir filled by a real instance
//! (through rqmail-queue, rqmail-send and rqmail-local). Python's imaplib logs in over
//! STARTTLS and over implicit TLS (IMAPS), fetches every message byte for byte and sets
//! \Seen; curl's imap URLs retrieve a message and list the folders; IDLE reports a
//! message delivered through the queue meanwhile.
//!
//! The instance is a single-user one (as a developer's, or nobody's when the suite runs as
//! root), so a fake checkpassword stands in for the real one: it accepts joe/secret,
//! enters joe's home (as rqmail-checkpassword does) and runs its arguments, here
//! `rqmail-imapd Maildir`. The servers give no IMAP_PLAINTEXT: passwords are taken only
//! inside TLS.

use rqmail_e2e::{Instance, LoginServer, python_command};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Dots at the start of lines, an empty line, a lone dot.
const DOTS: &[u8] = b"Subject: dots\n\nline one\n.leading dot\n..two dots\n\n.\nlast line\n";
/// 8-bit text.
const EIGHT_BIT: &[u8] = "Subject: =?utf-8?q?=C3=A9t=C3=A9?=\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nÉté, garçon, naïve: 8-bit text.\n"
    .as_bytes();

/// A message of about 300 KB.
fn big_message() -> Vec<u8> {
    let mut m = b"Subject: big\n\n".to_vec();
    for i in 0..6000 {
        m.extend_from_slice(
            format!("{i:05} the quick brown fox jumps over the lazy dog, again\n").as_bytes(),
        );
    }
    m
}

/// A line of 900 characters.
fn long_line_message() -> Vec<u8> {
    let mut m = b"Subject: long line\n\n".to_vec();
    m.extend(std::iter::repeat_n(b'x', 900));
    m.extend_from_slice(b"\nend\n");
    m
}

fn messages() -> Vec<Vec<u8>> {
    vec![
        DOTS.to_vec(),
        EIGHT_BIT.to_vec(),
        long_line_message(),
        big_message(),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A message file as IMAP carries it: CR LF line ends.
fn wire(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + file.len() / 32);
    for &b in file {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The messages in a Maildir (new/ and cur/): (file name, contents), by name.
fn maildir_files(maildir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(maildir.join(sub)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                found.push((name, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// An instance with joe's Maildir holding `messages`, delivered one by one through the
/// queue, a certificate, the fake checkpassword and a short delay after failures.
fn setup(name: &str, messages: &[Vec<u8>]) -> (Instance, PathBuf) {
    let mut inst = Instance::new(name);
    inst.make_certificate();
    inst.control("logindelay", "50\n");
    let homes = inst.add_users(&["joe"]);
    inst.install_fake_checkpassword(&homes[0]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    deliver(&inst, &maildir, messages);
    (inst, maildir)
}

/// Delivers each message through the instance and waits for it in the Maildir.
fn deliver(inst: &Instance, maildir: &Path, messages: &[Vec<u8>]) {
    for message in messages {
        let before = Instance::maildir_new(maildir).len();
        assert_eq!(
            inst.queue_raw("alice@remote.example", &["joe@example.com"], message),
            0
        );
        inst.wait_for_mail(maildir, before + 1);
    }
}

/// Asserts that a client run succeeded, showing its output and the servers' logs if not.
fn check(what: &str, out: &Output, servers: &[&LoginServer]) {
    if out.status.success() {
        return;
    }
    let logs: Vec<String> = servers.iter().map(|s| s.log_text()).collect();
    panic!(
        "{what} failed ({}):\n{}{}\nserver logs:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        logs.join("\n---\n")
    );
}

/// Python helpers every client script starts with.
const PRELUDE: &str = include_str!("../python/imap_clients/prelude.py");

/// Runs a Python 3 script (after PRELUDE) with the ports and `MAILDIR` set.
fn python(starttls: &LoginServer, imaps: &LoginServer, maildir: &Path, script: &str) -> String {
    let out = python_command(&format!("{PRELUDE}\n{script}"))
        .env("STARTTLS_PORT", starttls.port.to_string())
        .env("IMAPS_PORT", imaps.port.to_string())
        .env("MAILDIR", maildir)
        .output()
        .expect("python3");
    check("python", &out, &[starttls, imaps]);
    text(&out.stdout)
}

#[test]
fn imaplib_over_starttls_and_imaps_fetches_byte_exact_and_sets_seen() {
    let (inst, maildir) = setup("imapc-imaplib", &messages());
    let starttls = inst.login_server("imap", false, "rqmail-imapd", "Maildir", &[]);
    let imaps = inst.login_server("imap", true, "rqmail-imapd", "Maildir", &[]);
    let script = include_str!(
        "../python/imap_clients/imaplib_over_starttls_and_imaps_fetches_byte_exact_and_sets_seen.py"
    );
    let out = python(&starttls, &imaps, &maildir, script);
    assert!(
        out.contains("ok starttls") && out.contains("ok imaps"),
        "{out}"
    );
    let log = starttls.log_text() + &imaps.log_text();
    assert!(log.contains("login for joe (TLS"), "{log}");
    assert!(!log.contains("secret"), "password logged:\n{log}");
}

/// Runs curl with `args`; returns its output (asserting success when `ok`).
fn curl(args: &[&str], servers: &[&LoginServer], ok: bool) -> Output {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("curl");
    if ok {
        check(&format!("curl {args:?}"), &out, servers);
    }
    out
}

#[test]
fn curl_retrieves_by_uid_and_lists_folders_over_imaps_and_starttls() {
    let (inst, maildir) = setup("imapc-curl", &messages());
    let starttls = inst.login_server("imap", false, "rqmail-imapd", "Maildir", &[]);
    let imaps = inst.login_server("imap", true, "rqmail-imapd", "Maildir", &[]);
    let servers = [&starttls, &imaps];
    let files = maildir_files(&maildir);
    let dots = wire(
        &files
            .iter()
            .find(|(_, m)| text(m).contains("Subject: dots"))
            .unwrap()
            .1,
    );
    let base = format!("imaps://joe:secret@127.0.0.1:{}/", imaps.port);

    // UID 1 is the first message delivered, byte for byte.
    let out = curl(&["-k", &format!("{base}INBOX;UID=1")], &servers, true);
    assert!(
        out.stdout == dots,
        "UID 1: got\n{}\nwant\n{}",
        text(&out.stdout),
        text(&dots)
    );
    // Every UID is one file of the Maildir.
    for uid in 2..=4 {
        let out = curl(&["-k", &format!("{base}INBOX;UID={uid}")], &servers, true);
        assert!(
            files.iter().any(|(_, m)| wire(m) == out.stdout),
            "UID {uid} is no file of the Maildir:\n{}",
            text(&out.stdout[..out.stdout.len().min(300)])
        );
    }
    // The folder list: INBOX and the special folders the Maildir++ layout gives.
    let out = curl(&["-k", &base], &servers, true);
    let listing = text(&out.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("* LIST ") && l.trim_end().ends_with("\"INBOX\"")),
        "{listing}"
    );

    // imap:// with --ssl-reqd: STARTTLS first, then the login inside TLS.
    let plain = format!("imap://joe:secret@127.0.0.1:{}/", starttls.port);
    let out = curl(
        &["-k", "--ssl-reqd", &format!("{plain}INBOX;UID=1")],
        &servers,
        true,
    );
    assert!(out.stdout == dots, "{}", text(&out.stdout));
    // Without TLS the password is never sent: the server says LOGINDISABLED.
    starttls.wait_idle();
    let out = curl(&[&format!("{plain}INBOX;UID=1")], &servers, false);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        starttls.log_text().contains("login for joe (TLS"),
        "{}",
        starttls.log_text()
    );
    assert!(!starttls.log_text().contains("login for joe (no TLS"));
    // curl's FETCH BODY[] may set \Seen (a new name), but no file's contents changed.
    let mut after: Vec<Vec<u8>> = maildir_files(&maildir)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    let mut before: Vec<Vec<u8>> = files.into_iter().map(|(_, m)| m).collect();
    after.sort();
    before.sort();
    assert_eq!(after, before);
}

#[test]
fn idle_reports_a_message_delivered_through_the_queue_within_a_second() {
    let (inst, maildir) = setup("imapc-idle", &[DOTS.to_vec()]);
    let starttls = inst.login_server("imap", false, "rqmail-imapd", "Maildir", &[]);
    let imaps = inst.login_server("imap", true, "rqmail-imapd", "Maildir", &[]);
    let script = r#"
m = login(True)
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
m.send(b"a IDLE\r\n")
line = m.readline()
assert line.startswith(b"+ "), line
print("idling", flush=True)
sys.stdin.readline()  # the message is queued
while True:
    line = m.readline()
    assert line, "connection closed"
    if line.rstrip(b"\r\n").endswith(b" EXISTS"):
        break
print("got " + line.decode().strip(), flush=True)
m.send(b"DONE\r\n")
line = m.readline()
while line.startswith(b"* "):  # e.g. * 2 RECENT
    line = m.readline()
assert line.startswith(b"a OK"), line
typ, data = m.fetch("2", "(BODY[])")
assert typ == "OK" and b"idle test" in data[0][1], (typ, data)
m.logout()
print("done", flush=True)
"#;
    let mut child = python_command(&format!("{PRELUDE}\n{script}"))
        .env("STARTTLS_PORT", starttls.port.to_string())
        .env("IMAPS_PORT", imaps.port.to_string())
        .env("MAILDIR", &maildir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    if line.trim() != "idling" {
        let out = child.wait_with_output().unwrap();
        panic!(
            "not idling: {line:?}\n{}\n{}",
            text(&out.stderr),
            imaps.log_text()
        );
    }
    assert_eq!(
        inst.queue_raw(
            "alice@remote.example",
            &["joe@example.com"],
            b"Subject: idle test\n\nidle test\n"
        ),
        0
    );
    let queued = Instant::now();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let elapsed = queued.elapsed();
    assert_eq!(line.trim(), "got * 2 EXISTS", "{}", imaps.log_text());
    assert!(
        elapsed < Duration::from_secs(1),
        "EXISTS came {elapsed:?} after the message was queued"
    );
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).unwrap();
    }
    assert!(
        status.success() && rest.contains("done"),
        "{rest}\n{err}\n{}",
        imaps.log_text()
    );
}
