//! Arbitrary bytes as an SMTP command line: split into verb and argument, then the argument
//! (and the whole line) parsed as a MAIL FROM and a RCPT TO path. No input may panic, and
//! whatever is accepted must be something the queue can hold.
#![no_main]

use rqmail_smtp::command::{PATH_MAX, parse_path, split};

libfuzzer_sys::fuzz_target!(|line: &[u8]| {
    let (verb, arg) = split(line);
    assert!(!verb.contains(' '), "verb {verb:?} holds a space");
    assert!(!arg.starts_with(b" "), "argument starts with a space");
    assert!(arg.len() <= line.len());
    for input in [arg, line] {
        for keyword in ["FROM", "TO"] {
            let Ok(path) = parse_path(input, keyword) else {
                continue;
            };
            // Unquoting only removes bytes, and a path is at most PATH_MAX long.
            assert!(path.address.len() <= PATH_MAX, "address longer than PATH_MAX");
            // No NUL, CR, LF or other control character may reach the envelope.
            assert!(
                !path.address.iter().any(|&b| b < 32 || b == 127),
                "control character in address {:?}",
                path.address
            );
            for (key, value) in &path.params {
                assert!(!key.is_empty());
                assert!(key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'));
                if let Some(v) = value {
                    assert!(v.bytes().all(|b| (33..=126).contains(&b)), "parameter value {v:?}");
                }
            }
            let _ = path.param("SIZE");
            let _ = rqmail_smtp::command::domain(&path.address);
        }
    }
});
