//! Server replies: a three-digit code, continuation lines marked by `-`, and the text kept
//! for reports the way qmail-remote keeps it (all lines, CR removed, at most 5000 bytes).

/// qmail-remote's HUGESMTPTEXT: how much of a reply's text is kept for the report.
pub const MAX_TEXT: usize = 5000;

/// How many bytes one reply may take on the wire (all its lines); a server that sends more
/// is not speaking SMTP, and reading it would be unbounded.
pub const MAX_REPLY: usize = 64 * 1024;

/// One reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code of the first line.
    pub code: u16,
    /// Every line as received (CR removed, printable), each ending with LF; at most
    /// `MAX_TEXT` bytes. This is what follows `Remote host said: ` in reports.
    pub text: String,
    /// The text after `NNN-` / `NNN ` of each line (for EHLO keywords).
    pub lines: Vec<String>,
}

/// What the buffered input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole reply, and how many bytes it took.
    Complete(Reply, usize),
    /// Not a whole reply yet.
    Incomplete,
    /// Not an SMTP reply (no code, or too long).
    Malformed,
}

/// Printable ASCII and tab stay; every other byte becomes `?`, so a server cannot put NUL
/// (the report separator) or terminal controls into our reports and logs.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b == b'\t' || (32..127).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Parses one reply from the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut pos = 0;
    let mut code = None;
    let mut text = String::new();
    let mut lines = Vec::new();
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_REPLY {
                Parsed::Malformed
            } else {
                Parsed::Incomplete
            };
        };
        let raw = &buf[pos..pos + nl];
        pos += nl + 1;
        if pos > MAX_REPLY {
            return Parsed::Malformed;
        }
        let line: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Parsed::Malformed;
        }
        let this_code = line[..3]
            .iter()
            .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        let first_code = *code.get_or_insert(this_code);
        let shown = printable(&line);
        if text.len() + shown.len() < MAX_TEXT {
            text.push_str(&shown);
            text.push('\n');
        } else if text.len() < MAX_TEXT {
            let room = MAX_TEXT - text.len();
            text.push_str(&shown[..room]);
        }
        lines.push(printable(line.get(4..).unwrap_or_default()));
        if line.get(3) != Some(&b'-') {
            return Parsed::Complete(
                Reply {
                    code: first_code,
                    text,
                    lines,
                },
                pos,
            );
        }
    }
}

/// What an EHLO reply offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// SIZE (RFC 1870): `Some(0)` offered without a limit, `Some(n)` at most n bytes.
    pub size: Option<u64>,
}

impl Extensions {
    /// Reads the keywords of an EHLO reply (every line but the first).
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => ext.starttls = true,
                "PIPELINING" => ext.pipelining = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(bytes: &[u8]) -> (Reply, usize) {
        match parse(bytes) {
            Parsed::Complete(r, n) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_every_line_without_cr_and_reports_the_length() {
        let (r, n) = complete(b"250-mx.example\r\n250-SIZE 1000\r\n250 PIPELINING\r\nMORE");
        assert_eq!(r.code, 250);
        assert_eq!(n, 47);
        assert_eq!(r.text, "250-mx.example\n250-SIZE 1000\n250 PIPELINING\n");
        assert_eq!(r.lines, ["mx.example", "SIZE 1000", "PIPELINING"]);
    }

    #[test]
    fn waits_for_the_last_line_and_refuses_what_is_not_smtp() {
        assert_eq!(parse(b"250-a\r\n250 b"), Parsed::Incomplete);
        assert_eq!(parse(b""), Parsed::Incomplete);
        assert_eq!(parse(b"hello\r\n"), Parsed::Malformed);
        assert_eq!(parse(b"25\r\n"), Parsed::Malformed);
        assert_eq!(parse(&vec![b'2'; MAX_REPLY + 1]), Parsed::Malformed);
        let (r, _) = complete(b"354\n");
        assert_eq!((r.code, r.text.as_str()), (354, "354\n"));
    }

    #[test]
    fn makes_reply_text_printable_and_bounded() {
        let (r, _) = complete(b"550 bad\x00\x1b[31m\xc3\xa9\r\n");
        assert_eq!(r.text, "550 bad??[31m??\n");
        let mut long = Vec::new();
        for _ in 0..200 {
            long.extend_from_slice(b"550-0123456789012345678901234567890123456789\r\n");
        }
        long.extend_from_slice(b"550 end\r\n");
        let (r, _) = complete(&long);
        assert_eq!(r.text.len(), MAX_TEXT);
    }

    #[test]
    fn reads_ehlo_keywords() {
        let (r, _) = complete(
            b"250-mx\r\n250-8bitmime\r\n250-SIZE 35882577\r\n250-STARTTLS\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n",
        );
        let e = Extensions::from_ehlo(&r);
        assert!(e.eight_bit_mime && e.starttls && e.smtputf8 && e.pipelining);
        assert_eq!(e.size, Some(35882577));
        let (r, _) = complete(b"250-mx\r\n250 SIZE\r\n");
        assert_eq!(Extensions::from_ehlo(&r).size, Some(0));
        let (r, _) = complete(b"250 mx STARTTLS\r\n");
        assert!(
            !Extensions::from_ehlo(&r).starttls,
            "the first line is the greeting name"
        );
    }
}
