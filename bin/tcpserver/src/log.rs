//! Log lines on stderr, each written with one write so that lines from the server and its
//! children do not interleave; fields are made safe as tcpserver makes them.

use std::io::Write;

/// Every line starts with this.
pub const NAME: &str = "rqmail-tcpserver: ";

/// A field as tcpserver's safecats writes it: bytes outside `!`..`~` and `%` become `?`,
/// and a field of 100 bytes or more is cut to 100 followed by `...`.
pub fn safe(field: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = field
        .iter()
        .take(100)
        .map(|&b| {
            if !(33..=126).contains(&b) || b == b'%' {
                b'?'
            } else {
                b
            }
        })
        .collect();
    if field.len() >= 100 {
        out.extend_from_slice(b"...");
    }
    out
}

/// Writes `NAME` + `text` + newline to stderr in one write. A failed log write is not worth
/// dropping a connection for, so errors are ignored.
pub fn line(text: &[u8]) {
    let mut buf = Vec::with_capacity(NAME.len() + text.len() + 1);
    buf.extend_from_slice(NAME.as_bytes());
    buf.extend_from_slice(text);
    buf.push(b'\n');
    let _ = std::io::stderr().write_all(&buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprintable_bytes_and_percent_become_question_marks() {
        assert_eq!(safe(b"a b%c\xff\x01~!"), b"a?b?c??~!");
    }

    #[test]
    fn long_fields_are_cut_at_100_with_dots() {
        assert_eq!(safe(&[b'x'; 99]), vec![b'x'; 99]);
        let mut cut = vec![b'x'; 100];
        cut.extend_from_slice(b"...");
        // tcpserver's loop also adds the dots to a field of exactly 100 bytes.
        assert_eq!(safe(&[b'x'; 100]), cut);
        assert_eq!(safe(&[b'x'; 500]), cut);
    }
}
