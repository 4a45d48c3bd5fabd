//! rqmail-smtpd with real clients (Python's smtplib, raw sockets, swaks): plain, STARTTLS
//! and AUTH sessions, relay control, recipient checks, smuggling and injection probes,
//! limits, and many connections at once. Messages are checked in the Maildir byte for byte.

use rqmail_e2e::{Instance, python_command, wait_for};
use std::time::Duration;

/// A fake checkpassword for AUTH tests: accepts joe/secret (the real one is tested with
/// system accounts in checkpassword.rs).
const FAKE_CHECKPASSWORD: &str = "#!/usr/bin/env python3\n\
import os, sys\n\
data = os.read(3, 600).split(b'\\0')\n\
sys.exit(0 if data[:2] == [b'joe', b'secret'] else 1)\n";

fn setup(name: &str) -> (Instance, Vec<std::path::PathBuf>) {
    let mut inst = Instance::new(name);
    let homes = inst.add_users(&["bob", "carol"]);
    inst.make_certificate();
    let fake = inst.home.join("bin/fake-checkpassword");
    std::fs::write(&fake, FAKE_CHECKPASSWORD).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    inst.start();
    (inst, homes)
}

fn read(path: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

#[test]
fn smtplib_plain_session_delivers_byte_exact() {
    let (inst, homes) = setup("smtp-plain");
    let l = inst.listen("rqmail-smtpd", &[], &[]);
    inst.python(l.port, r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
code, caps = s.ehlo("client.example")
assert code == 250 and b"PIPELINING" in caps and b"8BITMIME" in caps and b"ENHANCEDSTATUSCODES" in caps, caps
assert b"STARTTLS" in caps
assert b"AUTH" not in caps, "no AUTH without TLS or checkpassword"
body = b"Subject: plain\r\n\r\nline one\r\n.leading dot\r\n\r\n\xc3\xa9 8bit\r\n"
s.sendmail("alice@remote.example", ["bob@example.com", "carol@example.com"], body)
s.quit()
"#);
    for home in &homes {
        let files = inst.wait_for_mail(&home.join("Maildir"), 1);
        let text = read(&files[0]);
        assert!(text.contains("\nReceived: from unknown (HELO client.example) (127.0.0.1)\n  by mail.example.com with ESMTP; "), "{text}");
        assert!(
            text.ends_with("Subject: plain\n\nline one\n.leading dot\n\n\u{e9} 8bit\n"),
            "{text:?}"
        );
    }
}

#[test]
fn starttls_and_auth_allow_relaying_and_are_recorded() {
    let (inst, homes) = setup("smtp-tls");
    let fake = inst.bin("fake-checkpassword");
    let l = inst.listen(
        "rqmail-smtpd",
        &["mail.example.com", fake.to_str().unwrap(), "/bin/true"],
        &[],
    );
    let out = inst.python(l.port, r#"
import os, smtplib, ssl
from rqtest import tls_context; ctx = tls_context()
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
s.ehlo("c")
# Relaying is refused before authentication.
code, msg = s.docmd("MAIL FROM:<joe@example.com>"); assert code == 250, msg
code, msg = s.docmd("RCPT TO:<far@elsewhere.example>"); assert code == 553 and msg.startswith(b"5.7.1"), (code, msg)
s.rset()
# AUTH is only offered inside TLS.
code, msg = s.docmd("AUTH PLAIN AGpvZQBzZWNyZXQ="); assert code == 538, (code, msg)
s.starttls(context=ctx)
code, caps = s.ehlo("c")
assert b"AUTH PLAIN LOGIN" in caps and b"STARTTLS" not in caps, caps
try:
    s.login("joe", "wrong")
    raise SystemExit("wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.login("joe", "secret")
refused = s.sendmail("joe@example.com", ["bob@example.com", "far@elsewhere.example"], b"Subject: tls\r\n\r\nsecret stuff\r\n")
assert refused == {}, refused
s.quit()
print("ok")
"#);
    assert!(out.contains("ok"));
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let text = read(&files[0]);
    assert!(
        text.contains("(joe@127.0.0.1)\n  by mail.example.com with ESMTPSA (TLSv1.3 TLS13_"),
        "{text}"
    );
    assert!(
        !text.contains("secret\n") && !text.contains("c2VjcmV0"),
        "the password must never be recorded"
    );
    // The relayed copy waits in the queue for remote delivery.
    assert!(
        wait_for(Duration::from_secs(10), || inst
            .log_text()
            .contains("to remote far@elsewhere.example")),
        "{}",
        inst.log_text()
    );
}

#[test]
fn relayclient_may_relay_and_unknown_recipients_get_550() {
    let (inst, _homes) = setup("smtp-relay");
    let open = inst.listen("rqmail-smtpd", &[], &[("RELAYCLIENT", "")]);
    let closed = inst.listen("rqmail-smtpd", &[], &[]);
    inst.python(open.port, r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"])); s.ehlo("c")
s.mail("a@b.example")
code, msg = s.rcpt("far@elsewhere.example"); assert code == 250, (code, msg)
code, msg = s.rcpt("nosuch@example.com"); assert code == 550 and msg.startswith(b"5.1.1"), (code, msg)
s.quit()
"#);
    inst.python(closed.port, r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"])); s.ehlo("c")
s.mail("a@b.example")
code, msg = s.rcpt("far@elsewhere.example"); assert code == 553, (code, msg)
code, msg = s.rcpt("nosuch@example.com"); assert code == 550, (code, msg)
code, msg = s.rcpt("bob-ext@example.com"); assert code == 550, "an extension without a .qmail file has no mailbox"
code, msg = s.rcpt("bob@EXAMPLE.com"); assert code == 250, (code, msg)
s.quit()
"#);
}

/// Each probe tries to end DATA with something other than CRLF.CRLF and smuggle a second
/// message after it. None may queue anything, and the smuggled message must never appear.
#[test]
fn smuggling_probes_never_produce_a_second_message() {
    let (inst, homes) = setup("smtp-smuggle");
    let l = inst.listen("rqmail-smtpd", &[], &[]);
    let out = inst.python(l.port, r#"
import os, socket
probes = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r"]
results = []
for probe in probes:
    s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
    f = s.makefile("rb")
    f.readline()
    smuggled = b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
    s.sendall(b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    for _ in range(4): f.readline()
    s.sendall(b"Subject: first\r\n\r\nfirst" + probe + smuggled + b"QUIT\r\n")
    rest = f.read()
    results.append(rest)
    s.close()
for r in results:
    assert r.startswith(b"451 4.5.0") or r.startswith(b"250"), r
print("\n".join(repr(r) for r in results))
"#);
    std::thread::sleep(Duration::from_millis(500));
    // Nothing smuggled was delivered anywhere, and carol got nothing at all.
    assert!(
        Instance::maildir_new(&homes[1].join("Maildir")).is_empty(),
        "{out}"
    );
    for f in Instance::maildir_new(&homes[0].join("Maildir")) {
        assert!(!read(&f).contains("smuggled"), "{}", read(&f));
    }
    assert!(out.matches("451 4.5.0").count() == 6, "{out}");
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let (inst, _homes) = setup("smtp-inject");
    let l = inst.listen("rqmail-smtpd", &[], &[]);
    let out = inst.python(
        l.port,
        r#"
import os, socket, ssl
s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
f = s.makefile("rb"); f.readline()
s.sendall(b"EHLO c\r\n")
while not f.readline().startswith(b"250 "): pass
# The classic injection: a command in the same packet as STARTTLS.
s.sendall(b"STARTTLS\r\nRSET\r\n")
line = f.readline(); assert line.startswith(b"220"), line
from rqtest import tls_context; ctx = tls_context()
t = ctx.wrap_socket(s, server_hostname="mail.example.com")
t.sendall(b"NOOP\r\n")
reply = t.recv(1000)
# The first reply inside TLS answers NOOP; an injected RSET would have answered first
# with "2.0.0 ok" as well, so NOOP's reply must be the only one.
assert reply == b"250 2.0.0 ok\r\n", reply
t.sendall(b"QUIT\r\n"); t.recv(1000)
print("clean")
"#,
    );
    assert!(out.contains("clean"));
}

#[test]
fn limits_give_clear_errors() {
    let (inst, homes) = setup("smtp-limits");
    inst.control("databytes", "1000\n");
    inst.control("badmailfrom", "spammer@bad.example\n@worse.example\n");
    inst.control("maxrcpt", "3\n");
    let l = inst.listen("rqmail-smtpd", &[], &[]);
    inst.python(
        l.port,
        include_str!("../python/smtp/limits_give_clear_errors.py"),
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        Instance::maildir_new(&homes[0].join("Maildir")).len(),
        1,
        "only the small message arrives"
    );
    assert!(read(&files[0]).ends_with("Subject: small\n\nfits\n"));
}

/// A raw SMTP session that announces no SIZE and streams a DATA of `LINES` lines of 998
/// `x` (999 bytes each as stored) in 1 MB writes, so Python never holds the message.
/// Prints the EHLO SIZE line, the reply to `MAIL FROM SIZE=$OVER` and the reply to the
/// final dot, then sends a small message in the same session.
const STREAM_BIG_DATA: &str = include_str!("../python/smtp/stream_big_data.py");

/// Issue 12, item 7: a fresh instance has no control/databytes, and rqmail-smtpd used to
/// take any size. It now advertises and enforces 35 MiB; an explicit `0` still lifts it.
#[test]
fn a_fresh_instance_refuses_a_message_over_the_default_databytes_and_0_lifts_it() {
    let (inst, homes) = setup("smtp-default-databytes");
    let bob = homes[0].join("Maildir");
    assert!(!inst.home.join("control/databytes").exists());
    let l = inst.listen("rqmail-smtpd", &[], &[]);
    // 36740 lines of 999 bytes: 36703274 bytes as stored, with the header, just over 36700160.
    let run = |lines: &str, over: &str| {
        let out = python_command(STREAM_BIG_DATA)
            .env("PORT", l.port.to_string())
            .env("LINES", lines)
            .env("OVER", over)
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        text
    };
    let out = run("36740", "36700161");
    assert!(out.contains("ehlo: 250-SIZE 36700160\n"), "{out}");
    assert!(out.contains("mail over: 552 5.3.4 "), "{out}");
    assert!(out.contains("data: 552 5.3.4 "), "{out}");
    assert!(out.contains("small: 250 "), "{out}");
    let files = inst.wait_for_mail(&bob, 1);
    assert!(read(&files[0]).ends_with("Subject: small\n\nfits\n"));

    // An admin who wants no limit says so; the file is read for every connection.
    inst.control("databytes", "0\n");
    let out = run("36740", "36700161");
    assert!(out.contains("ehlo: 250-SIZE\n"), "{out}");
    assert!(out.contains("mail over: 250 "), "{out}");
    assert!(out.contains("data: 250 "), "{out}");
    let files = inst.wait_for_mail(&bob, 3);
    let big: Vec<_> = files
        .iter()
        .filter(|f| std::fs::metadata(f).unwrap().len() > 36_700_160)
        .collect();
    assert_eq!(
        big.len(),
        1,
        "only the message sent under databytes 0 is big"
    );
}

#[test]
fn swaks_sends_plain_starttls_and_auth() {
    if std::process::Command::new("swaks")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: swaks not installed (Debian package swaks)");
        return;
    }
    let (inst, homes) = setup("smtp-swaks");
    let fake = inst.bin("fake-checkpassword");
    let l = inst.listen(
        "rqmail-smtpd",
        &["mail.example.com", fake.to_str().unwrap(), "/bin/true"],
        &[],
    );
    let port = l.port.to_string();
    for extra in [
        &[][..],
        &["--tls"][..],
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "joe",
            "--auth-password",
            "secret",
        ][..],
        &[
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "joe",
            "--auth-password",
            "secret",
        ][..],
    ] {
        let out = std::process::Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port,
                "--from",
                "joe@example.com",
                "--to",
                "bob@example.com",
                "--helo",
                "swaks.example",
                "--body",
                "via swaks",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "swaks {extra:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 4);
    let all: String = files.iter().map(|f| read(f)).collect();
    assert_eq!(all.matches("with ESMTPSA (TLSv1.3").count(), 2, "{all}");
    assert_eq!(all.matches("with ESMTPS (TLSv1.3").count(), 1, "{all}");
    assert_eq!(all.matches("with ESMTP;").count(), 1, "{all}");
}

#[test]
fn two_hundred_concurrent_connections_each_deliver_and_garbage_disturbs_no_one() {
    let (inst, homes) = setup("smtp-load");
    let l = inst.listen("rqmail-smtpd", &[], &[]);
    let out = inst.python(l.port, include_str!("../python/smtp/two_hundred_concurrent_connections_each_deliver_and_garbage_disturbs_no_one.py"));
    assert!(out.contains("all sent"));
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 200);
    let mut seen: Vec<u32> = files
        .iter()
        .map(|f| {
            let t = read(f);
            t.rsplit("message ").next().unwrap().trim().parse().unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
}

#[test]
fn submission_requires_auth_and_smtps_speaks_tls_from_the_first_byte() {
    let (inst, homes) = setup("smtp-submission");
    let fake = inst.bin("fake-checkpassword");
    let args = ["mail.example.com", fake.to_str().unwrap(), "/bin/true"];
    let submission = inst.listen("rqmail-smtpd", &args, &[("SMTPAUTH", "!")]);
    let smtps = inst.listen("rqmail-smtpd", &args, &[("SMTPAUTH", "!"), ("SMTPS", "1")]);
    inst.python(submission.port, r#"
import os, smtplib, ssl
from rqtest import tls_context; ctx = tls_context()
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"])); s.ehlo("c")
s.starttls(context=ctx); s.ehlo("c")
code, msg = s.docmd("MAIL FROM:<joe@example.com>"); assert code == 530 and msg.startswith(b"5.7.0"), (code, msg)
s.login("joe", "secret")
s.sendmail("joe@example.com", ["bob@example.com"], b"Subject: via 587\r\n\r\nsubmitted\r\n")
s.quit()
"#);
    let script = r#"
import os, smtplib, ssl
from rqtest import tls_context; ctx = tls_context()
s = smtplib.SMTP_SSL("127.0.0.1", int(os.environ["PORT"]), context=ctx); s.ehlo("c")
s.login("joe", "secret")
s.sendmail("joe@example.com", ["bob@example.com"], b"Subject: via 465\r\n\r\nsubmitted\r\n")
s.quit()
"#;
    inst.python(smtps.port, script);
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 2);
    let all: String = files.iter().map(|f| read(f)).collect();
    assert_eq!(all.matches("with ESMTPSA (TLSv1.3").count(), 2, "{all}");
}

#[test]
fn qmailqueue_puts_a_filter_in_front_of_the_queue() {
    let (inst, homes) = setup("smtp-qmailqueue");
    // A filter that adds a header, then hands the message and envelope to rqmail-queue.
    let filter = inst.home.join("bin/add-header-filter");
    let queue = inst.bin("rqmail-queue");
    std::fs::write(
        &filter,
        format!(
            "#!/bin/sh\n{{ echo 'X-Filtered: yes'; cat; }} | exec {} \n",
            queue.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&filter, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refuse = inst.home.join("bin/refuse-filter");
    std::fs::write(&refuse, "#!/bin/sh\ncat >/dev/null; exit 31\n").unwrap();
    std::fs::set_permissions(&refuse, std::fs::Permissions::from_mode(0o755)).unwrap();
    let l = inst.listen(
        "rqmail-smtpd",
        &[],
        &[("QMAILQUEUE", filter.to_str().unwrap())],
    );
    let r = inst.listen(
        "rqmail-smtpd",
        &[],
        &[("QMAILQUEUE", refuse.to_str().unwrap())],
    );
    inst.python(
        l.port,
        r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"])); s.ehlo("c")
s.sendmail("a@b.example", ["bob@example.com"], b"Subject: filtered\r\n\r\nbody\r\n")
s.quit()
"#,
    );
    inst.python(
        r.port,
        r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"])); s.ehlo("c")
try:
    s.sendmail("a@b.example", ["bob@example.com"], b"Subject: refused\r\n\r\nbody\r\n")
    raise SystemExit("accepted")
except smtplib.SMTPDataError as e:
    assert e.smtp_code == 554, e
"#,
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    assert!(
        read(&files[0]).contains("\nX-Filtered: yes\nReceived: from unknown"),
        "{}",
        read(&files[0])
    );
}

#[test]
/// Issue 12, item 2: a set-gid shadow rqmail-checkpassword serves rqmaild alone (the
/// installed system's SMTP AUTH through it is tested in install.rs). An smtpd running as
/// any other unprivileged user (here the instance's) cannot have it check a system
/// password, right or wrong, so no local user can use it as a password oracle.
fn a_setgid_checkpassword_checks_no_password_for_an_smtpd_that_is_not_rqmaild() {
    if !rqmail_e2e::as_root() {
        eprintln!(
            "SKIPPED: a_setgid_checkpassword_checks_no_password_for_an_smtpd_that_is_not_rqmaild needs root (a real account)"
        );
        return;
    }
    let (inst, _homes) = setup("smtp-realauth");
    let user = "rqsmtpauth1";
    let _ = std::process::Command::new("userdel")
        .args(["-r", user])
        .output();
    assert!(
        std::process::Command::new("useradd")
            .args(["-m", user])
            .status()
            .unwrap()
            .success()
    );
    struct Remove(&'static str);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::process::Command::new("userdel")
                .args(["-r", self.0])
                .output();
        }
    }
    let _remove = Remove(user);
    let mut chpasswd = std::process::Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{user}:correct horse\n").as_bytes())
        .unwrap();
    assert!(chpasswd.wait().unwrap().success());
    // Installed as in a real system: setgid shadow, run by the unprivileged smtpd.
    let cp = inst.bin("rqmail-checkpassword");
    // A copy of its own, not the hard link to the build: its owner and mode change.
    std::fs::remove_file(&cp).unwrap();
    std::fs::copy(rqmail_e2e::target_dir().join("rqmail-checkpassword"), &cp).unwrap();
    std::process::Command::new("chown")
        .arg("root:shadow")
        .arg(&cp)
        .status()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cp, std::fs::Permissions::from_mode(0o2755)).unwrap();
    inst.control("checkpassworddelay", "100\n");
    let l = inst.listen(
        "rqmail-smtpd",
        &["mail.example.com", cp.to_str().unwrap(), "/bin/true"],
        &[("SMTPAUTH", "!")],
    );
    let out = inst.python(l.port, &format!(r#"
import os, smtplib, ssl
from rqtest import tls_context; ctx = tls_context()
for password in ["wrong horse", "correct horse"]:
    s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"])); s.ehlo("c"); s.starttls(context=ctx); s.ehlo("c")
    code, reply = s.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(("\0{user}\0" + password).encode()).decode())
    assert code == 535, (password, code, reply)
    s.quit()
print("refused both")
"#));
    assert!(out.contains("refused both"), "{out}");
}
