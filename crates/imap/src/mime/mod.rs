//! The MIME views of one message that IMAP FETCH gives (RFC 3501 §7.4.2, §6.4.5): ENVELOPE,
//! BODY and BODYSTRUCTURE, and the bytes of a `BODY[section]`; pure functions over wire bytes.

// Every function takes the whole message in wire form (CRLF line ends, see
// `store::to_wire`), so sizes are octets of the wire form and line counts count LFs.
// mail-parser finds the parts and their offsets; header values are read from the raw bytes,
// because IMAP wants them as written (encoded-words left encoded, `<>` kept on Content-ID,
// parameter values not decoded).

mod address;
mod envelope;
mod headers;
mod params;
mod section;
mod structure;
#[cfg(test)]
mod testing;
mod tree;

pub use envelope::envelope;
pub use section::{SectionSpec, SectionText, parse_section, section};
pub use structure::body_structure;
pub use tree::{decode_words, decoded_texts};

// IMAP strings, written by both ENVELOPE and BODY/BODYSTRUCTURE.

/// Longer strings go out as literals, so that no response line grows without bound.
const QUOTED_MAX: usize = 1024;

/// An IMAP string: quoted, or a literal when quoting cannot carry it (CR, LF, NUL, 8-bit)
/// or it is long (RFC 3501 §4.3).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= QUOTED_MAX
        && s.iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && b.is_ascii());
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// An IMAP nstring: NIL for None.
fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::testing::{SIMPLE, section_text, spec, text, wire};
    use crate::mime::tree::split_message;

    #[test]
    fn simple_text_message_has_one_text_part() {
        let msg = wire(SIMPLE);
        assert_eq!(
            text(&body_structure(&msg, true)),
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)"#
        );
        assert_eq!(
            text(&body_structure(&msg, false)),
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 2)"#
        );
        assert_eq!(
            text(&envelope(&msg)),
            concat!(
                r#"("Mon, 7 Feb 1994 21:52:25 -0800" "Hello  again" "#,
                r#"(("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) "#,
                r#"(("Alice" NIL "alice" "example.org")) ((NIL NIL "bob" "example.net")) "#,
                r#"NIL NIL NIL "<1@example.org>")"#
            )
        );
        let body = "Hi Bob,\r\nbye\r\n";
        assert_eq!(section_text(&msg, "1").as_deref(), Some(body));
        assert_eq!(section_text(&msg, "TEXT").as_deref(), Some(body));
        assert_eq!(
            section_text(&msg, "").map(|s| s.into_bytes()),
            Some(msg.clone())
        );
        let header = text(split_message(&msg).0);
        assert!(header.ends_with("<1@example.org>\r\n\r\n"));
        assert_eq!(section_text(&msg, "HEADER"), Some(header.clone()));
        // The body of a non-multipart message is part 1, and its MIME header the message's.
        assert_eq!(section_text(&msg, "1.MIME"), Some(header));
        assert_eq!(section_text(&msg, "2"), None);
        assert_eq!(section_text(&msg, "1.1"), None);
        assert_eq!(section_text(&msg, "1.TEXT"), None);
        assert_eq!(section_text(&msg, "1.HEADER"), None);
    }

    #[test]
    fn message_without_headers_is_all_body() {
        let msg = wire("\nJust a body\n");
        assert_eq!(
            text(&envelope(&msg)),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
        assert_eq!(
            text(&body_structure(&msg, true)),
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 13 1 NIL NIL NIL NIL)"#
        );
        assert_eq!(section_text(&msg, "HEADER").as_deref(), Some("\r\n"));
        assert_eq!(
            section_text(&msg, "TEXT").as_deref(),
            Some("Just a body\r\n")
        );
        assert_eq!(section_text(&msg, "1").as_deref(), Some("Just a body\r\n"));
        assert_eq!(
            text(&body_structure(b"", false)),
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)"#
        );
        assert_eq!(section_text(b"", "1").as_deref(), Some(""));
    }

    #[test]
    fn strings_that_cannot_be_quoted_go_out_as_literals() {
        let mut msg = wire("Subject: caf");
        msg.extend_from_slice("é\r\nFrom: \"Zoë\" <z@x.y>\r\n\r\n".as_bytes());
        assert_eq!(
            text(&envelope(&msg)),
            "(NIL {5}\r\ncafé (({4}\r\nZoë NIL \"z\" \"x.y\")) (({4}\r\nZoë NIL \"z\" \"x.y\")) \
             (({4}\r\nZoë NIL \"z\" \"x.y\")) NIL NIL NIL NIL NIL)"
        );
        let long = "x".repeat(QUOTED_MAX + 1);
        let msg = wire(&format!("Subject: {long}\n\n"));
        assert!(text(&envelope(&msg)).starts_with(&format!("(NIL {{{}}}\r\nxx", QUOTED_MAX + 1)));
    }

    /// A small deterministic generator, so the garbage test needs no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn garbage_never_panics() {
        let fragments: &[&[u8]] = &[
            b"Content-Type: multipart/mixed; boundary=b\r\n",
            b"Content-Type: multipart/digest; boundary=b\r\n",
            b"Content-Type: message/rfc822\r\n",
            b"Content-Type: multipart/alternative; boundary=\"\"\r\n",
            b"Content-Type: text/plain; charset=\"unterminated\r\n",
            b"Content-Transfer-Encoding: base64\r\n",
            b"Content-Disposition: (((\r\n",
            b"From: \"a <b@c>, (x\r\n",
            b"To: g:;;;::<<>>@@,,\r\n",
            b"\r\n",
            b"--b\r\n",
            b"--b--\r\n",
            b"--b",
            b" folded\r\n",
            b"\x00\xff\xfe\r",
            b"\n",
            b"body text\r\n",
            b"=?utf-8?q?x?=",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let specs: Vec<SectionSpec> = [
            "",
            "HEADER",
            "TEXT",
            "1",
            "1.MIME",
            "1.1",
            "2.HEADER",
            "1.1.TEXT",
            "2.1.2",
            "HEADER.FIELDS (From)",
        ]
        .iter()
        .map(|s| spec(s))
        .collect();
        for round in 0..3000 {
            let mut msg = Vec::new();
            let pieces = rng.next() % 40;
            for _ in 0..pieces {
                let r = rng.next();
                if r.is_multiple_of(7) {
                    msg.push((r >> 8) as u8);
                } else if let Some(f) = fragments.get((r >> 8) as usize % fragments.len()) {
                    msg.extend_from_slice(f);
                }
            }
            if round % 2 == 0 {
                msg = crate::store::to_wire(&msg);
            }
            let bs = body_structure(&msg, true);
            assert!(bs.starts_with(b"(") && bs.ends_with(b")"), "{}", text(&msg));
            let _ = body_structure(&msg, false);
            let env = envelope(&msg);
            assert!(env.starts_with(b"(") && env.ends_with(b")"));
            for s in &specs {
                let _ = section(&msg, s);
            }
        }
    }
}
