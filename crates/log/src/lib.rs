//! Log lines in qmail-log(5)'s style: one line per event on stderr, no timestamps (the
//! supervisor's logger adds them), and untrusted text made safe to print.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::Write;

/// Makes text safe for a log line as qmail-send does: LF becomes `/`, bytes below 33 or
/// above 126 and `%` become `_`. Spaces are kept where `keep_spaces` (report texts), so
/// logs stay readable; addresses are escaped fully.
pub fn escape(text: &[u8], keep_spaces: bool) -> String {
    text.iter()
        .map(|&b| match b {
            b'\n' => '/',
            b' ' if keep_spaces => ' ',
            b'%' => '_',
            33..=126 => b as char,
            _ => '_',
        })
        .collect()
}

/// Text echoed in a report (qmail's `outsafe`, as qmail-remote writes names and errors
/// into the reports rqmail-send logs): printable ASCII and space stay, every other
/// character becomes one `?`.
pub fn printable_ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Escapes an address for a log line.
pub fn addr(address: &[u8]) -> String {
    escape(address, false)
}

/// Writes one line to stderr in a single write, so lines from concurrent processes do not
/// interleave. Errors are ignored: losing a log line must not stop mail.
pub fn line(text: &str) {
    let mut buf = Vec::with_capacity(text.len() + 1);
    buf.extend_from_slice(text.as_bytes());
    buf.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_bytes_percent_and_newlines() {
        assert_eq!(escape(b"a b\nc%d\x01\xff", true), "a b/c_d__");
        assert_eq!(addr(b"x y@z"), "x_y@z");
    }

    #[test]
    fn printable_ascii_replaces_each_other_character_by_one_question_mark() {
        assert_eq!(printable_ascii("a b\tc\u{e9}\u{1b}[0m"), "a b?c??[0m");
    }
}
