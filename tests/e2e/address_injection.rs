//! Issue 12, item 4: ESMTP parameter injection through quoted domains. A domain never holds
//! a quote, space, `<`, `>` or control byte: rqmail-smtpd, rqmail-inject and sendmail
//! refuse such an address, and rqmail-remote fails one found in the queue rather than
//! write `RCPT TO:<a@x> NOTIFY=SUCCESS>`.

use rqmail_e2e::{Instance, python_command, wait_for};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Serves rqmail-smtpd with its log (stderr) kept in `smtpd.log`; the client may relay.
fn listen_logged(inst: &Instance) -> rqmail_e2e::Listener {
    let wrapper = inst.bin("smtpd-logged");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nexec \"${0%/*}/rqmail-smtpd\" \"$@\" 2>>\"${0%/*}/../smtpd.log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    inst.listen("smtpd-logged", &[], &[("RELAYCLIENT", "")])
}

fn smtpd_log(inst: &Instance) -> String {
    String::from_utf8_lossy(&std::fs::read(inst.home.join("smtpd.log")).unwrap_or_default())
        .into_owned()
}

#[test]
fn smtpd_refuses_a_quoted_domain_from_a_relay_client_and_queues_nothing() {
    let inst = Instance::new("inject-smtpd");
    inst.add_users(&["bob"]);
    let l = listen_logged(&inst);
    inst.python(
        l.port,
        r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]), timeout=20)
s.ehlo("client.test")
code, text = s.docmd('MAIL FROM:<a@"x> RET=FULL">')
assert (code, text[:5]) == (501, b"5.1.7"), (code, text)
assert s.docmd("MAIL FROM:<alice@remote.example>")[0] == 250
for rcpt in ['<a@"x> NOTIFY=SUCCESS">', '<"a@x> NOTIFY=SUCCESS">', '<a@"x"y>',
             '<a@[1.2.3.4> NOTIFY=SUCCESS]>']:
    code, text = s.docmd("RCPT TO:" + rcpt)
    assert (code, text[:5]) == (501, b"5.1.3"), (rcpt, code, text)
code, text = s.docmd("DATA")
assert code == 503, (code, text)
s.quit()
"#,
    );
    assert_eq!(inst.queued(), 0, "something was queued");
    // The log escapes the space as `_`.
    assert!(
        wait_for(Duration::from_secs(5), || smtpd_log(&inst).contains(
            "refused an address whose domain is not a host name: a@x>_NOTIFY=SUCCESS"
        )),
        "no log line:\n{}",
        smtpd_log(&inst)
    );

    // The legitimate use: a quoted local part (even one that looks like parameters), an
    // address literal and a plain address are accepted and queued.
    inst.python(
        l.port,
        r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]), timeout=20)
s.ehlo("client.test")
assert s.docmd("MAIL FROM:<alice@remote.example>")[0] == 250
for rcpt in ['<"a> NOTIFY=SUCCESS"@remote.example>', "<c@[192.0.2.1]>", "<bob@example.com>"]:
    code, text = s.docmd("RCPT TO:" + rcpt)
    assert code == 250, (rcpt, code, text)
code, text = s.data(b"Subject: ok\r\n\r\nhi\r\n")
assert code == 250, (code, text)
s.quit()
"#,
    );
    assert_eq!(inst.queued(), 1);
}

#[test]
fn inject_and_sendmail_refuse_a_recipient_whose_domain_is_not_a_host_name() {
    let inst = Instance::new("inject-cli");
    inst.add_users(&["bob"]);
    let message = b"Subject: x\n\nhi\n";
    for (program, args, input) in [
        ("rqmail-inject", &["a@x> NOTIFY=SUCCESS"][..], &message[..]),
        (
            "sendmail",
            &["bob", "a@x> NOTIFY=SUCCESS"][..],
            &message[..],
        ),
        (
            "rqmail-inject",
            &[][..],
            &b"To: bob, a@\"x> NOTIFY=SUCCESS\"\nSubject: x\n\nhi\n"[..],
        ),
        (
            "sendmail",
            &["-t"][..],
            &b"To: a@\"x> NOTIFY=SUCCESS\"\nSubject: x\n\nhi\n"[..],
        ),
        (
            "sendmail",
            &["-f", "a@x> RET=FULL", "bob"][..],
            &message[..],
        ),
    ] {
        let out = inst.run(program, args, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{program} {args:?}: {stderr}");
        assert!(
            stderr.contains("is not a host name or an address literal: a@x>"),
            "{program} {args:?}: {stderr}"
        );
        assert_eq!(inst.queued(), 0, "{program} {args:?} queued something");
    }

    // The legitimate use: ordinary recipients, and a quoted local part in the header.
    let out = inst.run("rqmail-inject", &["bob@example.com"], message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = inst.run(
        "sendmail",
        &["-t"],
        b"To: \"a> NOTIFY=SUCCESS\"@remote.example, bob\nSubject: x\n\nhi\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inst.queued(), 2);
}

/// An SMTP sink on loopback that takes every connection and appends every line it
/// receives to the file in argv[1]; prints its port first.
const SINK: &str = include_str!("../python/address_injection/sink.py");

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn remote_fails_a_queued_recipient_with_an_unsafe_domain_and_delivers_the_other() {
    let mut inst = Instance::new("inject-remote");
    let homes = inst.add_users(&["alice"]);
    let transcript = inst.home.join("sink.txt");
    let mut child = python_command(SINK)
        .arg(&transcript)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _sink = Sink(child);
    inst.control("smtproutes", &format!(":127.0.0.1:{}\n", line.trim()));
    inst.start();
    // Straight into the queue, as an older smtpd or any other injector might have put it.
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["a@x> NOTIFY=SUCCESS", "bob@remote.example"],
            b"Subject: two\n\nhello\n",
        ),
        0
    );
    // The bad recipient bounces to alice, permanently.
    let bounces = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let bounce = String::from_utf8_lossy(&std::fs::read(&bounces[0]).unwrap()).into_owned();
    assert!(bounce.contains("<a@x> NOTIFY=SUCCESS>:"), "{bounce}");
    assert!(
        bounce.contains("not a host name or an address literal"),
        "{bounce}"
    );
    assert!(!bounce.contains("bob@remote.example>:"), "{bounce}");
    // The good one reached the sink; the bad RCPT line never did.
    assert!(
        wait_for(Duration::from_secs(20), || inst.queued() == 0),
        "queue not empty:\n{}",
        inst.log_text()
    );
    let sent = String::from_utf8_lossy(&std::fs::read(&transcript).unwrap()).into_owned();
    assert!(sent.contains("RCPT TO:<bob@remote.example>\r\n"), "{sent}");
    assert!(sent.contains("\r\nhello\r\n.\r\n"), "{sent}");
    assert!(!sent.contains("NOTIFY"), "{sent}");
    let log = inst.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(": failure: ")
                && l.contains("not a host name or an address literal")),
        "{log}"
    );
}
