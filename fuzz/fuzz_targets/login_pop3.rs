//! Arbitrary bytes as a POP3 client's input to rqmail-login's front before login
//! (`rqmail_login_front::pop3::authorize`: CAPA, STLS, USER/PASS, AUTH PLAIN with its
//! base64, NOOP, QUIT, errors). The first byte's bit 0 allows plaintext logins, bits 1
//! and 2 choose how the root half answers (refuses; a temporary failure, then refusals;
//! accepts; is gone), written ahead so that nothing waits; failed logins are not delayed.
//!
//! No input may panic. The replies must be POP3: CRLF lines, each `+OK`, `-ERR` or the
//! AUTH continuation `+ `, with the multi-line CAPA and mechanism lists ended by `.`; a
//! closing reply comes last. Credentials go to the root half only where plaintext logins
//! are allowed, well-formed (`user\0password\0`) and within its limits, at most three
//! times; the sentinel password never appears in the output; and a login hands over the
//! post-login program's output, the user sent, and read-ahead input from a line start.
#![no_main]

mod common;
mod login_front;

use rqmail_login_front::Protocol;

fn check_output(run: &login_front::Run) {
    let lines = common::crlf_lines(&run.output);
    let Some((greeting, rest)) = lines.split_first() else {
        panic!("no greeting");
    };
    assert!(
        greeting.starts_with(b"+OK <") && greeting.ends_with(b"@fuzz.example> ready"),
        "greeting {:?}",
        common::show(greeting)
    );
    let mut i = 0;
    while i < rest.len() {
        let line = rest[i];
        i += 1;
        assert_ne!(
            line, b"-ERR idle timeout, closing connection",
            "the front waited"
        );
        let closing = line == b"+OK bye" || common::contains(line, b"closing connection");
        if closing || line.starts_with(b"-ERR [SYS/TEMP] login unavailable") {
            assert_eq!(i, rest.len(), "a reply after {:?}", common::show(line));
            break;
        }
        if line == b"+OK capability list follows" || line == b"+OK" {
            // CAPA, or AUTH without a mechanism: capability lines up to a lone dot.
            loop {
                let Some(item) = rest.get(i) else {
                    panic!("multi-line reply without its dot");
                };
                i += 1;
                if *item == b"." {
                    break;
                }
                assert!(
                    !item.is_empty()
                        && item.iter().all(|&b| b.is_ascii_uppercase()
                            || b.is_ascii_digit()
                            || b" -".contains(&b)),
                    "capability line {:?}",
                    common::show(item)
                );
                if *item == b"USER" || item.starts_with(b"SASL") {
                    assert!(run.plaintext, "USER or SASL offered without TLS");
                }
            }
            continue;
        }
        assert!(
            line.starts_with(b"+OK ") || line.starts_with(b"-ERR ") || line == b"+ ",
            "not a POP3 reply: {:?}",
            common::show(line)
        );
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(run) = login_front::run(Protocol::Pop3, data) else {
        return;
    };
    check_output(&run);
    login_front::check_common(&run, 2);
});
