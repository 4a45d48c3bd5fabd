//! Arbitrary bytes as an IMAP client's input to rqmail-login's front before login
//! (`rqmail_login_front::imap::authorize`: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN with
//! atoms, quoted strings and `{n}`/`{n+}` literals, AUTHENTICATE PLAIN with an initial
//! response or a continuation, ID, errors). The first byte's bit 0 allows plaintext
//! logins, bits 1 and 2 choose how the root half answers (refuses; a temporary failure,
//! then refusals; accepts; is gone), written ahead so that nothing waits; failed logins
//! are not delayed.
//!
//! No input may panic. The responses must be IMAP: CRLF lines, each untagged (`* ` OK,
//! BAD, BYE, CAPABILITY or ID), a continuation (`+ `) or tagged with a valid tag taken
//! from the input and OK, NO or BAD; the greeting and CAPABILITY say LOGINDISABLED or
//! AUTH=PLAIN as plaintext logins are refused or allowed; after `* BYE` at most one tagged
//! response. Credentials go to the root half only where plaintext logins are allowed,
//! well-formed (`user\0password\0tag\0`) and within its limits, at most three times; the
//! sentinel password never appears in the output; and a login hands over the post-login
//! program's output, the user sent, and read-ahead input from a line start.
#![no_main]

mod common;
mod login_front;

use rqmail_login_front::Protocol;
use rqmail_login_front::handoff::valid_tag;

fn check_capabilities(run: &login_front::Run, caps: &[u8]) {
    assert!(
        caps.starts_with(b"IMAP4rev1 "),
        "capabilities {:?}",
        common::show(caps)
    );
    let (want, refuse): (&[u8], &[u8]) = if run.plaintext {
        (b" AUTH=PLAIN", b" LOGINDISABLED")
    } else {
        (b" LOGINDISABLED", b" AUTH=PLAIN")
    };
    assert!(common::contains(caps, want) && !common::contains(caps, refuse));
}

fn check_output(run: &login_front::Run) {
    let lines = common::crlf_lines(&run.output);
    let Some((greeting, rest)) = lines.split_first() else {
        panic!("no greeting");
    };
    let caps = greeting
        .strip_prefix(b"* OK [CAPABILITY ")
        .and_then(|g| g.strip_suffix(b"] rqmail ready"))
        .unwrap_or_else(|| panic!("greeting {:?}", common::show(greeting)));
    check_capabilities(run, caps);
    let mut bye_at = None;
    for (i, line) in rest.iter().enumerate() {
        assert_ne!(*line, b"* BYE idle timeout", "the front waited");
        if let Some(untagged) = line.strip_prefix(b"* ") {
            if let Some(caps) = untagged.strip_prefix(b"CAPABILITY ") {
                check_capabilities(run, caps);
            } else if untagged.starts_with(b"BYE ") {
                bye_at.get_or_insert(i);
            } else {
                assert!(
                    untagged.starts_with(b"BAD ") || untagged == b"ID NIL",
                    "untagged response {:?}",
                    common::show(line)
                );
            }
            continue;
        }
        if *line == b"+ " || line.starts_with(b"+ ready") {
            continue;
        }
        let mut words = line.splitn(3, |&b| b == b' ');
        let tag = words.next().unwrap_or_default();
        let status = words.next().unwrap_or_default();
        assert!(
            valid_tag(tag),
            "tag {:?} in {:?}",
            common::show(tag),
            common::show(line)
        );
        assert!(
            common::contains(&run.input, tag),
            "a tag not from the input"
        );
        assert!(
            matches!(status, b"OK" | b"NO" | b"BAD"),
            "tagged status in {:?}",
            common::show(line)
        );
    }
    if let Some(bye) = bye_at {
        assert!(rest.len() - bye <= 2, "responses after * BYE");
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(run) = login_front::run(Protocol::Imap, data) else {
        return;
    };
    check_output(&run);
    login_front::check_common(&run, 3);
});
