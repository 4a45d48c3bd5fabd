//! The foundation end to end: sendmail and rqmail-inject -> rqmail-queue -> rqmail-send ->
//! rqmail-lspawn -> dot-qmail -> Maildir, mbox, programs and forwards, with real files.

use rqmail_e2e::{Instance, strip_delivery_lines, wait_for};
use std::time::Duration;

#[test]
fn sendmail_delivers_to_a_maildir_byte_exact() {
    let mut inst = Instance::new("basic");
    let homes = inst.add_users(&["bob"]);
    inst.start();
    let body = b"Subject: hello\n\nhi there\nline two with trailing spaces   \n\n.\n..dots\n";
    // -oi: a line holding only "." is message text, not the end of input.
    let out = inst.run("sendmail", &["-oi", "-f", "alice@example.com", "bob"], body);
    assert!(
        out.status.success(),
        "sendmail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without -i, sendmail stops reading at a lone "." line, as sendmail does.
    let out = inst.run(
        "sendmail",
        &["-f", "alice@example.com", "bob"],
        b"Subject: dot\n\nbefore\n.\nafter\n",
    );
    assert!(out.status.success());
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 2);
    let texts: Vec<String> = files
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect();
    let dot = texts.iter().find(|t| t.contains("Subject: dot")).unwrap();
    assert!(dot.ends_with("\n\nbefore\n"), "{dot}");
    let text = texts.iter().find(|t| t.contains("Subject: hello")).unwrap();
    let got = text.as_bytes();
    assert!(
        text.starts_with(
            "Return-Path: <alice@example.com>\nDelivered-To: bob@example.com\nReceived: (rqmail "
        ),
        "{text}"
    );
    assert!(
        got.ends_with(b"\n\nhi there\nline two with trailing spaces   \n\n.\n..dots\n"),
        "{text}"
    );
    // The queue empties once the message is delivered.
    assert!(
        wait_for(Duration::from_secs(10), || inst.queued() == 0),
        "queue not empty:\n{}",
        inst.log_text()
    );
    let log = inst.log_text();
    for expected in [
        "new msg ",
        "info msg ",
        "starting delivery 1: msg ",
        "delivery 1: success: did 1+0+0",
        "end msg ",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }
}

#[test]
fn inject_preserves_the_body_exactly() {
    let mut inst = Instance::new("inject");
    let homes = inst.add_users(&["carol"]);
    inst.start();
    let mut body = b"From: x@y.org\nTo: carol@example.com\nSubject: binary\n\n".to_vec();
    for i in 0..2000u32 {
        body.extend_from_slice(format!("line {i} \x01\x7f\u{e9} tab\there\n").as_bytes());
    }
    body.extend_from_slice(b"no final newline");
    let out = inst.run("rqmail-inject", &["carol@example.com"], &body);
    assert!(
        out.status.success(),
        "inject failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let got = std::fs::read(&files[0]).unwrap();
    let delivered = strip_delivery_lines(&got);
    // The body arrives byte for byte; inject ends the last line, as qmail-inject does.
    let mut expected = body[body.iter().position(|&b| b == b'\n').unwrap()..].to_vec();
    expected.push(b'\n');
    let body_at = delivered.windows(2).position(|w| w == b"\n\n").unwrap() + 1;
    assert_eq!(
        &delivered[body_at..],
        &expected[expected.windows(2).position(|w| w == b"\n\n").unwrap() + 1..]
    );
}
