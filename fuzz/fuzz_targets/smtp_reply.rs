//! Arbitrary bytes as what an SMTP server sends rqmail-remote: replies read one after the
//! other with `rqmail_smtpclient::reply::parse`, and each read as an EHLO reply by
//! `Extensions::from_ehlo`.
//!
//! No input may panic. A complete reply must take at most `MAX_REPLY` bytes, end at an
//! LF, hold one line per LF, every line but the last with `-` after its three digits; its
//! code is the first line's digits; its text at most `MAX_TEXT` bytes of printable ASCII,
//! tab and LF; its lines printable without CR or LF. The same bytes cut right after the
//! reply give the same reply, cut before its last LF nothing complete yet, and an
//! incomplete reply stays so until an LF or `MAX_REPLY` bytes.
#![no_main]

use rqmail_smtpclient::reply::{Extensions, MAX_REPLY, MAX_TEXT, Parsed, parse};

fn printable(b: u8) -> bool {
    b == b'\t' || (32..127).contains(&b)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match parse(rest) {
            Parsed::Complete(reply, used) => {
                assert!(used > 0 && used <= rest.len() && used <= MAX_REPLY);
                let raw = &rest[..used];
                assert_eq!(raw.last(), Some(&b'\n'));
                let raw_lines: Vec<&[u8]> = raw[..used - 1].split(|&b| b == b'\n').collect();
                assert_eq!(reply.lines.len(), raw_lines.len(), "one line per LF");
                for (i, raw_line) in raw_lines.iter().enumerate() {
                    let line: Vec<u8> = raw_line.iter().copied().filter(|&b| b != b'\r').collect();
                    assert!(line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit));
                    let last = i + 1 == raw_lines.len();
                    assert_eq!(line.get(3) == Some(&b'-'), !last, "continuation marks");
                }
                let first: Vec<u8> = raw
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\r')
                    .take(3)
                    .collect();
                let code = std::str::from_utf8(&first).unwrap().parse::<u16>().unwrap();
                assert_eq!(reply.code, code);
                assert!(
                    reply.text.len() <= MAX_TEXT,
                    "text of {} bytes",
                    reply.text.len()
                );
                assert!(reply.text.bytes().all(|b| b == b'\n' || printable(b)));
                for line in &reply.lines {
                    assert!(line.bytes().all(printable), "line {line:?}");
                }
                assert_eq!(
                    parse(raw),
                    Parsed::Complete(reply.clone(), used),
                    "cut after"
                );
                assert_eq!(
                    parse(&raw[..used - 1]),
                    Parsed::Incomplete,
                    "cut before the LF"
                );
                let ext = Extensions::from_ehlo(&reply);
                if ext.size.is_some() {
                    assert!(reply.lines.iter().skip(1).any(|l| {
                        l.split_ascii_whitespace()
                            .next()
                            .is_some_and(|k| k.eq_ignore_ascii_case("SIZE"))
                    }));
                }
                rest = &rest[used..];
            }
            Parsed::Incomplete => {
                assert!(rest.len() <= MAX_REPLY);
                let start = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                assert!(rest[start..].len() <= MAX_REPLY);
                break;
            }
            Parsed::Malformed => break,
        }
    }
});
