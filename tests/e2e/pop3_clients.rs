//! Real POP3 clients against the whole chain: rqmail-tcpserver running rqmail-login, which
//! runs a checkpassword and rqmail-pop3d, on a Maildir filled by a real instance (through
//! rqmail-queue, rqmail-send and rqmail-local). Python's poplib, fetchmail and curl list
//! and retrieve every message byte for byte, over STLS and over implicit TLS (POP3S).
//!
//! The instance is a single-user one (as a developer's, or nobody's when the suite runs as
//! root), so a fake checkpassword stands in for the real one: it accepts joe/secret, sets
//! nothing, and runs rqmail-pop3d on joe's Maildir (an absolute path in its arguments).
//! The servers give no POP3_PLAINTEXT: passwords are taken only inside TLS.

use rqmail_e2e::{Instance, LoginServer, python_command};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Accepts joe/secret; sets nothing (no uid, no HOME, no directory) and runs argv[1:].
const FAKE_CHECKPASSWORD: &str = r#"#!/usr/bin/env python3
import os, sys
data = b""
while len(data) <= 512:
    chunk = os.read(3, 513)
    if not chunk:
        break
    data += chunk
os.close(3)
if data.split(b"\0")[:2] != [b"joe", b"secret"]:
    sys.exit(1)
os.execv(sys.argv[1], sys.argv[1:])
"#;

/// Dots at the start of lines (stuffed on the wire), an empty line, a lone dot.
const DOTS: &[u8] = b"Subject: dots\n\nline one\n.leading dot\n..two dots\n\n.\nlast line\n";
/// 8-bit text.
const EIGHT_BIT: &[u8] = "Subject: =?utf-8?q?=C3=A9t=C3=A9?=\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nÉté, garçon, naïve: 8-bit text.\n"
    .as_bytes();
/// No newline at the end: the server adds CR LF before the terminator.
const NO_NEWLINE: &[u8] = b"Subject: unterminated\n\nno newline at the end";

/// A message of about 300 KB, with a line starting with a dot every 100 lines.
fn big_message() -> Vec<u8> {
    let mut m = b"Subject: big\n\n".to_vec();
    for i in 0..6000 {
        if i % 100 == 0 {
            m.extend_from_slice(format!(".{i:05} a line that starts with a dot\n").as_bytes());
        } else {
            m.extend_from_slice(
                format!("{i:05} the quick brown fox jumps over the lazy dog, again\n").as_bytes(),
            );
        }
    }
    m
}

/// A line of 900 characters, far beyond what a command line may be.
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
        NO_NEWLINE.to_vec(),
        long_line_message(),
        big_message(),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A message as RETR carries it once the client has undone the dot-stuffing: CR LF line
/// ends, and a final CR LF even where the file has no final newline.
fn wire(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + file.len() / 32);
    for &b in file {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    if !file.is_empty() && !file.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The messages in a Maildir (new/ and cur/), by unique name (the part before ':').
fn maildir_messages(maildir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(maildir.join(sub)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let unique = name.split(':').next().unwrap().to_string();
            found.push((unique, std::fs::read(entry.path()).unwrap()));
        }
    }
    found.sort();
    found
}

/// An instance with joe's Maildir holding `messages`, delivered one by one through the
/// queue, and a certificate, the fake checkpassword and a short delay after failures.
fn setup(name: &str, messages: &[Vec<u8>]) -> (Instance, PathBuf) {
    let mut inst = Instance::new(name);
    inst.make_certificate();
    inst.control("logindelay", "50\n");
    let path = inst.bin("fake-checkpassword");
    std::fs::write(&path, FAKE_CHECKPASSWORD).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let homes = inst.add_users(&["joe"]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    deliver(&inst, &maildir, messages);
    (inst, maildir)
}

/// Delivers each message through the instance, one after the other.
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

static COUNTER: AtomicU32 = AtomicU32::new(0);

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

/// Runs a Python 3 script with `STLS_PORT`, `POP3S_PORT` and `MAILDIR` set.
fn python(stls: &LoginServer, pop3s: &LoginServer, maildir: &Path, script: &str) -> String {
    let out = python_command(script)
        .env("STLS_PORT", stls.port.to_string())
        .env("POP3S_PORT", pop3s.port.to_string())
        .env("MAILDIR", maildir)
        .output()
        .expect("python3");
    check("python", &out, &[stls, pop3s]);
    text(&out.stdout)
}

#[test]
fn poplib_over_stls_and_pop3s_lists_and_retrieves_byte_exact() {
    let (inst, maildir) = setup("pop3c-poplib", &messages());
    let stls = inst.login_server(
        "pop3",
        false,
        "rqmail-pop3d",
        maildir.to_str().unwrap(),
        &[],
    );
    let pop3s = inst.login_server("pop3", true, "rqmail-pop3d", maildir.to_str().unwrap(), &[]);
    let script = include_str!(
        "../python/pop3_clients/poplib_over_stls_and_pop3s_lists_and_retrieves_byte_exact.py"
    );
    let out = python(&stls, &pop3s, &maildir, script);
    assert!(out.contains("ok stls") && out.contains("ok pop3s"), "{out}");
    let log = stls.log_text() + &pop3s.log_text();
    assert!(log.contains("login for joe (TLS"), "{log}");
    assert!(!log.contains("secret"), "password logged:\n{log}");
}

/// The fetchmail binary, or None (and a SKIPPED line) when it is not installed.
fn fetchmail() -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join("fetchmail");
        if path.exists() {
            return Some(path);
        }
    }
    eprintln!("SKIPPED: fetchmail not installed");
    None
}

/// Runs fetchmail once, as the instance's user with a scratch HOME, against `server`;
/// each message it pulls goes through an MDA into its own file in `out`.
fn run_fetchmail(
    inst: &Instance,
    fetchmail: &Path,
    server: &LoginServer,
    implicit_tls: bool,
    out: &Path,
) -> Output {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let home = inst.home.join(format!("fetchmail-home-{n}"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(out).unwrap();
    // The MDA: one file per message, named by the MDA's pid.
    let mda = home.join("save");
    std::fs::write(
        &mda,
        format!("#!/bin/sh\nexec cat >\"{}/msg.$$\"\n", out.display()),
    )
    .unwrap();
    std::fs::set_permissions(&mda, std::fs::Permissions::from_mode(0o755)).unwrap();
    // STLS: sslproto without ssl makes fetchmail require STARTTLS (since 6.4).
    let tls = if implicit_tls {
        "ssl sslproto 'TLS1.2+'"
    } else {
        "sslproto 'TLS1.2+'"
    };
    let rc = home.join(".fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\nset invisible\n\
             poll 127.0.0.1 with service {port} protocol POP3 auth password\n    \
             user 'joe' there with password 'secret' is 'joe' here\n    \
             options {tls} no sslcertck fetchall no rewrite mda '{mda}'\n",
            port = server.port,
            mda = mda.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    if rqmail_e2e::as_root() {
        let (uid, gid) = inst.ids();
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&home)
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
    }
    rqmail_e2e::command(fetchmail)
        .args(["-v", "--nodetach"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("LC_ALL", "C")
        .current_dir(&home)
        .stdin(Stdio::null())
        .output()
        .expect("fetchmail")
}

/// The files the MDA wrote, sorted.
fn saved(out: &Path) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    found.sort();
    found
}

/// What an MDA gets from fetchmail for a message file: LF line ends, a final newline.
fn as_delivered(file: &[u8]) -> Vec<u8> {
    let mut m = file.to_vec();
    if !m.ends_with(b"\n") {
        m.push(b'\n');
    }
    m
}

#[test]
fn fetchmail_pulls_every_message_over_stls_and_pop3s_and_deletes_them() {
    let Some(fetchmail) = fetchmail() else {
        return;
    };
    let (inst, maildir) = setup("pop3c-fetchmail", &messages());
    let stls = inst.login_server(
        "pop3",
        false,
        "rqmail-pop3d",
        maildir.to_str().unwrap(),
        &[],
    );
    let pop3s = inst.login_server("pop3", true, "rqmail-pop3d", maildir.to_str().unwrap(), &[]);
    for (round, (server, implicit_tls)) in [(&stls, false), (&pop3s, true)].into_iter().enumerate()
    {
        if round > 0 {
            deliver(&inst, &maildir, &messages());
        }
        let mut want: Vec<Vec<u8>> = maildir_messages(&maildir)
            .into_iter()
            .map(|(_, m)| as_delivered(&m))
            .collect();
        want.sort();
        assert_eq!(want.len(), 5);
        let out_dir = inst.home.join(format!("fetched-{round}"));
        let out = run_fetchmail(&inst, &fetchmail, server, implicit_tls, &out_dir);
        check("fetchmail", &out, &[server]);
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(said.contains("5 messages for joe at 127.0.0.1"), "{said}");
        // The session was inside TLS: STLS on the plain port, TLS at once on the other.
        if implicit_tls {
            assert!(!said.contains("STLS"), "{said}");
        } else {
            assert!(said.contains("> STLS"), "{said}");
        }
        let got = saved(&out_dir);
        assert_eq!(got.len(), want.len(), "{said}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g == w,
                "fetched:\n{}\nin the Maildir:\n{}",
                text(g),
                text(w)
            );
        }
        // fetchmail deleted what it pulled, and rqmail-pop3d removed it at QUIT.
        server.wait_idle();
        assert!(
            maildir_messages(&maildir).is_empty(),
            "left in the Maildir: {:?}",
            maildir_messages(&maildir)
                .iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        );
        let log = server.log_text();
        assert!(log.contains("retrieved 5"), "{log}");
        assert!(log.contains("deleted 5"), "{log}");
    }
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
fn curl_lists_and_retrieves_over_pop3s_and_stls() {
    let (inst, maildir) = setup("pop3c-curl", &messages());
    let stls = inst.login_server(
        "pop3",
        false,
        "rqmail-pop3d",
        maildir.to_str().unwrap(),
        &[],
    );
    let pop3s = inst.login_server("pop3", true, "rqmail-pop3d", maildir.to_str().unwrap(), &[]);
    let servers = [&stls, &pop3s];
    let files = maildir_messages(&maildir);
    let base = format!("pop3s://joe:secret@127.0.0.1:{}/", pop3s.port);

    // The list: "N SIZE" per message; the sizes are those of the messages on the wire.
    let out = curl(&["-k", &base], &servers, true);
    let listing = text(&out.stdout);
    let mut sizes: Vec<usize> = listing
        .lines()
        .map(|l| l.trim_end().split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    sizes.sort();
    let mut want: Vec<usize> = files.iter().map(|(_, m)| wire(m).len()).collect();
    want.sort();
    assert_eq!(sizes, want, "{listing}");
    stls.wait_idle();
    pop3s.wait_idle();
    // UIDL (a custom command) numbers them; each RETR is the file, byte for byte.
    let out = curl(&["-k", "-X", "UIDL", &base], &servers, true);
    let uidl = text(&out.stdout);
    let numbers: Vec<(String, String)> = uidl
        .lines()
        .map(|l| {
            let (n, u) = l.trim_end().split_once(' ').unwrap();
            (n.to_string(), u.to_string())
        })
        .collect();
    assert_eq!(numbers.len(), files.len(), "{uidl}");
    for (n, uid) in &numbers {
        pop3s.wait_idle();
        let (_, file) = files
            .iter()
            .find(|(u, _)| u == uid)
            .unwrap_or_else(|| panic!("UIDL {uid} is no message of the Maildir"));
        let out = curl(&["-k", &format!("{base}{n}")], &servers, true);
        assert!(
            out.stdout == wire(file),
            "message {n}: got\n{}\nwant\n{}",
            text(&out.stdout),
            text(&wire(file))
        );
    }

    // pop3:// with --ssl-reqd: STLS first, then the login inside TLS.
    stls.wait_idle();
    pop3s.wait_idle();
    let plain = format!("pop3://joe:secret@127.0.0.1:{}/", stls.port);
    let out = curl(&["-k", "--ssl-reqd", &format!("{plain}1")], &servers, true);
    let first = numbers.iter().find(|(n, _)| n == "1").unwrap();
    let file = &files.iter().find(|(u, _)| *u == first.1).unwrap().1;
    assert!(out.stdout == wire(file), "{}", text(&out.stdout));
    // Without TLS the password is refused (no POP3_PLAINTEXT): curl's "login denied".
    stls.wait_idle();
    let out = curl(&[&format!("{plain}1")], &servers, false);
    assert_eq!(out.status.code(), Some(67), "{}", text(&out.stderr));
    assert!(
        stls.log_text().contains("login for joe (TLS"),
        "{}",
        stls.log_text()
    );
    // Nothing was deleted; what was read moved to cur/.
    assert_eq!(maildir_messages(&maildir), files);
}

/// Sleeps until the start of the next second, so that what follows has most of a second
/// to happen in.
fn start_of_a_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()),
    ));
}

/// Injects a message for joe through rqmail-inject (and so rqmail-queue, rqmail-send and
/// rqmail-local) and waits for it to land in `maildir`.
fn inject(inst: &Instance, maildir: &Path, subject: &str) {
    let before = Instance::maildir_new(maildir).len();
    let message = format!("Subject: {subject}\n\njust delivered\n");
    let out = inst.run("rqmail-inject", &["joe@example.com"], message.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    inst.wait_for_mail(maildir, before + 1);
}

/// Issue 13, item 4: qmail-pop3d hides files whose mtime is the current second, so a
/// client polling right after a delivery saw nothing. rqmail-pop3d lists them, and two
/// sessions number the messages alike.
#[test]
fn a_message_delivered_and_fetched_within_the_same_second_by_pop3_is_there() {
    let (inst, maildir) = setup("pop3c-now", &[]);
    let stls = inst.login_server(
        "pop3",
        false,
        "rqmail-pop3d",
        maildir.to_str().unwrap(),
        &[],
    );
    let pop3s = inst.login_server("pop3", true, "rqmail-pop3d", maildir.to_str().unwrap(), &[]);
    // Three messages in quick succession, and poplib at once: mostly all in one second.
    start_of_a_second();
    for subject in ["first", "second", "third"] {
        inject(&inst, &maildir, subject);
    }
    let script = include_str!(
        "../python/pop3_clients/a_message_delivered_and_fetched_within_the_same_second_by_pop3_is_there.py"
    );
    let out = python(&stls, &pop3s, &maildir, script);
    assert!(out.contains("ok"), "{out}");
    eprintln!(
        "poplib listed the messages in the {}",
        out.lines().next().unwrap_or("")
    );
    pop3s.wait_idle_and_clean();

    // fetchmail, run as soon as the message is there, pulls it.
    let Some(fetchmail) = fetchmail() else {
        return;
    };
    let out_dir = inst.home.join("fetched-now");
    std::fs::remove_dir_all(maildir.join("cur")).unwrap();
    std::fs::create_dir(maildir.join("cur")).unwrap();
    start_of_a_second();
    inject(&inst, &maildir, "for fetchmail");
    let out = run_fetchmail(&inst, &fetchmail, &stls, false, &out_dir);
    check("fetchmail", &out, &[&stls]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("1 message for joe at 127.0.0.1"), "{said}");
    let got = saved(&out_dir);
    assert_eq!(got.len(), 1, "{said}");
    assert!(
        text(&got[0]).contains("Subject: for fetchmail"),
        "{}",
        text(&got[0])
    );
}
