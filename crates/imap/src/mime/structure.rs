//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2): the part tree written as the parenthesised
//! IMAP list, with sizes, line counts, parameters and the extension fields.

use super::envelope::write_envelope;
use super::headers::header_value;
use super::params::{ContentType, MimeToken, Param, content_type, disposition, mime_tokens};
use super::tree::{Entity, Kind, parse_tree};
use super::{nstring, string};

/// BODYSTRUCTURE (extensible = true) or BODY (false) of the message, as the parenthesised
/// IMAP list.
pub fn body_structure(msg: &[u8], extensible: bool) -> Vec<u8> {
    let root = parse_tree(msg);
    let mut out = Vec::new();
    write_body(&mut out, &root, extensible);
    out
}

/// What RFC 3501 §7.4.2 says a multipart without parts cannot be: written as Dovecot does,
/// with one empty text/plain part.
const EMPTY_BODY: &[u8] = b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0)";
const EMPTY_BODYSTRUCTURE: &[u8] =
    b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)";

/// `body` of RFC 3501 §9, parenthesised.
fn write_body(out: &mut Vec<u8>, entity: &Entity<'_>, extensible: bool) {
    let declared = content_type(entity.header);
    out.push(b'(');
    if let Kind::Multipart(children) = &entity.kind {
        // body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        if children.is_empty() {
            out.extend_from_slice(if extensible {
                EMPTY_BODYSTRUCTURE
            } else {
                EMPTY_BODY
            });
        }
        for child in children {
            write_body(out, child, extensible);
        }
        out.push(b' ');
        let subtype = declared.as_ref().map_or("MIXED", |c| c.subtype.as_str());
        string(out, subtype.as_bytes());
        if extensible {
            // body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang
            //                  [SP body-fld-loc *(SP body-extension)]]]
            out.push(b' ');
            write_params(out, declared.as_ref().map_or(&[][..], |c| &c.params), false);
            write_ext_common(out, entity.header);
        }
    } else {
        write_single(out, entity, declared.as_ref(), extensible);
    }
    out.push(b')');
}

/// body-type-1part: basic, text or message/rfc822, with body-ext-1part when extensible.
fn write_single(
    out: &mut Vec<u8>,
    entity: &Entity<'_>,
    declared: Option<&ContentType>,
    extensible: bool,
) {
    let params = declared.map_or(&[][..], |c| &c.params);
    let (ty, subtype): (&str, &str) = match (&entity.kind, declared) {
        (Kind::Message(_), _) => ("MESSAGE", "RFC822"),
        (Kind::Opaque, _) => ("APPLICATION", "OCTET-STREAM"),
        // A message/rfc822 not looked into (encoded, which RFC 2046 §5.2.1 forbids, or
        // empty): body-type-msg would promise an envelope and a body.
        (_, Some(c)) if c.ty == "MESSAGE" && c.subtype == "RFC822" => {
            ("APPLICATION", "OCTET-STREAM")
        }
        (_, Some(c)) => (&c.ty, &c.subtype),
        (_, None) if entity.in_digest => ("APPLICATION", "OCTET-STREAM"),
        (_, None) => ("TEXT", "PLAIN"),
    };
    let text = ty == "TEXT";
    // body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP body-fld-enc SP
    //               body-fld-octets
    string(out, ty.as_bytes());
    out.push(b' ');
    string(out, subtype.as_bytes());
    out.push(b' ');
    write_params(out, params, text);
    out.push(b' ');
    nstring(out, header_value(entity.header, "Content-ID").as_deref());
    out.push(b' ');
    nstring(
        out,
        header_value(entity.header, "Content-Description").as_deref(),
    );
    out.push(b' ');
    string(out, transfer_encoding(entity.header).as_bytes());
    out.extend_from_slice(format!(" {}", entity.body.len()).as_bytes());
    match &entity.kind {
        // body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
        Kind::Message(inner) => {
            out.push(b' ');
            write_envelope(out, inner.header);
            out.push(b' ');
            write_body(out, inner, extensible);
            out.extend_from_slice(format!(" {}", lines(entity.body)).as_bytes());
        }
        // body-type-text = media-text SP body-fields SP body-fld-lines
        _ if text => out.extend_from_slice(format!(" {}", lines(entity.body)).as_bytes()),
        _ => {}
    }
    if extensible {
        // body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang
        //                  [SP body-fld-loc *(SP body-extension)]]]
        out.push(b' ');
        nstring(out, header_value(entity.header, "Content-MD5").as_deref());
        write_ext_common(out, entity.header);
    }
}

/// The lines of a body: LFs, as Dovecot counts them (a last line without one is not
/// counted; in a multipart the CRLF before a boundary belongs to the boundary).
fn lines(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count()
}

/// body-fld-param: `("NAME" "value" ...)` or NIL. Text gets charset us-ascii when it names
/// none (RFC 2045 §5.2 default), as Dovecot does.
fn write_params(out: &mut Vec<u8>, params: &[Param], text: bool) {
    let add_charset = text && !params.iter().any(|(n, _)| n == "CHARSET");
    if params.is_empty() && !add_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, name.as_bytes());
        out.push(b' ');
        string(out, value);
    }
    if add_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"CHARSET\" \"US-ASCII\"");
    }
    out.push(b')');
}

/// SP body-fld-dsp SP body-fld-lang SP body-fld-loc, shared by both body-ext kinds.
fn write_ext_common(out: &mut Vec<u8>, header: &[u8]) {
    out.push(b' ');
    // body-fld-dsp = "(" string SP body-fld-param ")" / nil
    match header_value(header, "Content-Disposition").and_then(|v| disposition(&v)) {
        Some(dsp) => {
            out.push(b'(');
            string(out, dsp.ty.as_bytes());
            out.push(b' ');
            write_params(out, &dsp.params, false);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    // body-fld-lang = nstring / "(" string *(SP string) ")"
    let languages: Vec<Vec<u8>> = header_value(header, "Content-Language")
        .map(|v| {
            mime_tokens(&v)
                .into_iter()
                .filter_map(|t| match t {
                    MimeToken::Word(w, _) if !w.is_empty() => Some(w),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if languages.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, language) in languages.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            string(out, language);
        }
        out.push(b')');
    }
    out.push(b' ');
    nstring(out, header_value(header, "Content-Location").as_deref());
}

/// body-fld-enc: the Content-Transfer-Encoding token upper-cased, 7BIT when absent or not a
/// token (RFC 2045 §6.1 default).
fn transfer_encoding(header: &[u8]) -> String {
    let value = header_value(header, "Content-Transfer-Encoding").unwrap_or_default();
    match mime_tokens(&value).as_slice() {
        [MimeToken::Word(w, false)] if !w.is_empty() => {
            String::from_utf8_lossy(w).to_ascii_uppercase()
        }
        _ => "7BIT".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::envelope::envelope;
    use crate::mime::testing::{MIXED, section_text, text, wire};

    #[test]
    fn multipart_alternative_lists_both_parts() {
        let msg = wire(
            "From: a@b.c\n\
             Subject: alt\n\
             MIME-Version: 1.0\n\
             Content-Type: multipart/alternative; boundary=\"XX\"\n\
             \n\
             --XX\n\
             Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: quoted-printable\n\
             \n\
             caf=C3=A9\n\
             --XX\n\
             Content-Type: text/html; charset=utf-8\n\
             \n\
             <p>caf&eacute;</p>\n\
             --XX--\n",
        );
        assert_eq!(
            text(&body_structure(&msg, true)),
            concat!(
                r#"(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 9 0 NIL NIL NIL NIL)"#,
                r#"("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 18 0 NIL NIL NIL NIL)"#,
                r#" "ALTERNATIVE" ("BOUNDARY" "XX") NIL NIL NIL)"#
            )
        );
        assert_eq!(
            text(&body_structure(&msg, false)),
            concat!(
                r#"(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 9 0)"#,
                r#"("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 18 0) "ALTERNATIVE")"#
            )
        );
        assert_eq!(section_text(&msg, "1").as_deref(), Some("caf=C3=A9"));
        assert_eq!(
            section_text(&msg, "2").as_deref(),
            Some("<p>caf&eacute;</p>")
        );
        assert_eq!(section_text(&msg, "3"), None);
    }

    #[test]
    fn base64_attachment_has_its_disposition_and_fields() {
        let msg = wire(MIXED);
        assert_eq!(
            text(&body_structure(&msg, true)),
            concat!(
                r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 0 NIL NIL NIL NIL)"#,
                r#"("APPLICATION" "OCTET-STREAM" ("NAME" "x.bin") "<att1@example.org>" "some bytes" "#,
                r#""BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "x.bin")) NIL NIL)"#,
                r#" "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)"#
            )
        );
        assert_eq!(
            text(&body_structure(&msg, false)),
            concat!(
                r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 0)"#,
                r#"("APPLICATION" "OCTET-STREAM" ("NAME" "x.bin") "<att1@example.org>" "some bytes" "#,
                r#""BASE64" 8) "MIXED")"#
            )
        );
        assert_eq!(
            text(&envelope(&msg)),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
        assert_eq!(section_text(&msg, "1").as_deref(), Some("plain body"));
        assert_eq!(section_text(&msg, "1.MIME").as_deref(), Some("\r\n"));
        assert_eq!(section_text(&msg, "2").as_deref(), Some("AAECAwQF"));
        assert_eq!(
            section_text(&msg, "2.MIME").as_deref(),
            Some(
                "Content-Type: application/octet-stream; name=\"x.bin\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"x.bin\"\r\n\
                 Content-ID: <att1@example.org>\r\n\
                 Content-Description: some bytes\r\n\r\n"
            )
        );
        assert_eq!(section_text(&msg, "2.TEXT"), None);
        assert_eq!(section_text(&msg, "2.1"), None);
        assert_eq!(section_text(&msg, "3"), None);
        assert!(section_text(&msg, "TEXT").is_some_and(|t| t.starts_with("preamble\r\n--b1")));
    }

    #[test]
    fn nested_multiparts_number_their_parts_under_the_parent() {
        let msg = wire(
            "Content-Type: multipart/mixed; boundary=outer\n\
             \n\
             --outer\n\
             Content-Type: multipart/alternative; boundary=inner\n\
             \n\
             --inner\n\
             Content-Type: text/plain\n\
             \n\
             plain\n\
             --inner\n\
             Content-Type: text/html\n\
             \n\
             <b>html</b>\n\
             --inner--\n\
             \n\
             --outer\n\
             Content-Type: image/png\n\
             Content-Transfer-Encoding: base64\n\
             \n\
             iVBORw0K\n\
             --outer--\n",
        );
        assert_eq!(
            text(&body_structure(&msg, true)),
            concat!(
                r#"((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL)"#,
                r#"("TEXT" "HTML" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 0 NIL NIL NIL NIL)"#,
                r#" "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL)"#,
                r#"("IMAGE" "PNG" NIL NIL NIL "BASE64" 8 NIL NIL NIL NIL)"#,
                r#" "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)"#
            )
        );
        assert_eq!(section_text(&msg, "1.1").as_deref(), Some("plain"));
        assert_eq!(section_text(&msg, "1.2").as_deref(), Some("<b>html</b>"));
        assert_eq!(
            section_text(&msg, "1.2.MIME").as_deref(),
            Some("Content-Type: text/html\r\n\r\n")
        );
        assert_eq!(
            section_text(&msg, "1").as_deref(),
            Some(
                "--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
                 --inner\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n--inner--\r\n"
            )
        );
        assert_eq!(
            section_text(&msg, "1.MIME").as_deref(),
            Some("Content-Type: multipart/alternative; boundary=inner\r\n\r\n")
        );
        assert_eq!(section_text(&msg, "2").as_deref(), Some("iVBORw0K"));
        assert_eq!(section_text(&msg, "1.3"), None);
    }

    /// Dovecot 2.3's own test message (src/lib-imap/test-imap-bodystructure.c), whose
    /// sizes and line counts are of the CRLF form: ours must agree.
    #[test]
    fn sizes_and_lines_agree_with_dovecot() {
        let msg = wire(
            "From: user@domain.org\n\
             Date: Sat, 24 Mar 2007 23:00:00 +0200\n\
             Mime-Version: 1.0\n\
             Content-Type: multipart/mixed; boundary=\"foo\n bar\"\n\
             \n\
             Root MIME prologue\n\
             \n\
             --foo bar\n\
             Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\n\
             Content-ID: <foo@example.com>\n\
             Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\
             Content-Disposition: inline; foo=bar\n\
             Content-Description: hellodescription\n\
             Content-Language: en, fi, se\n\
             Content-Location: http://example.com/test.txt\n\
             \n\
             hello\n\
             \n\
             --foo bar\n\
             Content-Type: message/rfc822\n\
             \n\
             From: sub@domain.org\n\
             Date: Sun, 12 Aug 2012 12:34:56 +0300\n\
             Subject: submsg\n\
             Content-Type: multipart/alternative; boundary=\"sub1\"\n\
             \n\
             Sub MIME prologue\n\
             --sub1\n\
             Content-Type: text/html\n\
             Content-Transfer-Encoding: 8bit\n\
             \n\
             <p>Hello world</p>\n\
             \n\
             --sub1\n\
             Content-Type: text/plain\n\
             \n\
             Hello another world\n\
             \n\
             --sub1--\n\
             Sub MIME epilogue\n\
             \n\
             --foo bar--\n\
             Root MIME epilogue\n",
        );
        let sub = r#"((NIL NIL "sub" "domain.org"))"#;
        assert_eq!(
            text(&body_structure(&msg, true)),
            format!(
                concat!(
                    r#"(("TEXT" "X-MYOWN" ("CHARSET" "us-ascii" "FOO" "quoted\"string") "<foo@example.com>" "#,
                    r#""hellodescription" "7BIT" 7 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("INLINE" ("FOO" "bar")) "#,
                    r#"("en" "fi" "se") "http://example.com/test.txt")"#,
                    r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 331 "#,
                    r#"("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" {sub} {sub} {sub} NIL NIL NIL NIL NIL) "#,
                    r#"(("TEXT" "HTML" ("CHARSET" "US-ASCII") NIL NIL "8BIT" 20 1 NIL NIL NIL NIL)"#,
                    r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 21 1 NIL NIL NIL NIL)"#,
                    r#" "ALTERNATIVE" ("BOUNDARY" "sub1") NIL NIL NIL) 19 NIL NIL NIL NIL)"#,
                    r#" "MIXED" ("BOUNDARY" "foo bar") NIL NIL NIL)"#
                ),
                sub = sub
            )
        );
        assert_eq!(section_text(&msg, "1").as_deref(), Some("hello\r\n"));
        assert_eq!(
            section_text(&msg, "2.2").as_deref(),
            Some("Hello another world\r\n")
        );
        assert!(section_text(&msg, "2.TEXT").is_some_and(|t| t.starts_with("Sub MIME prologue")));
    }

    #[test]
    fn message_that_is_message_rfc822_numbers_the_enclosed_parts_under_1() {
        let msg = wire(
            "Subject: outer\n\
             Content-Type: message/rfc822\n\
             \n\
             Subject: inner\n\
             \n\
             text\n",
        );
        assert_eq!(
            text(&body_structure(&msg, false)),
            concat!(
                r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 24 "#,
                r#"(NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) "#,
                r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1) 3)"#
            )
        );
        assert_eq!(
            section_text(&msg, "1").as_deref(),
            Some("Subject: inner\r\n\r\ntext\r\n")
        );
        assert_eq!(
            section_text(&msg, "1.HEADER").as_deref(),
            Some("Subject: inner\r\n\r\n")
        );
        assert_eq!(section_text(&msg, "1.TEXT").as_deref(), Some("text\r\n"));
        assert_eq!(section_text(&msg, "1.1").as_deref(), Some("text\r\n"));
        assert_eq!(
            section_text(&msg, "1.HEADER.FIELDS.NOT (Date)").as_deref(),
            Some("Subject: inner\r\n\r\n")
        );
    }

    #[test]
    fn multipart_digest_parts_default_to_message_rfc822() {
        let msg = wire(
            "Content-Type: multipart/digest; boundary=d\n\
             \n\
             --d\n\
             \n\
             From: x@y\n\
             Subject: one\n\
             \n\
             first\n\
             --d--\n",
        );
        let x = r#"((NIL NIL "x" "y"))"#;
        assert_eq!(
            text(&body_structure(&msg, true)),
            format!(
                concat!(
                    r#"(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 32 (NIL "one" {x} {x} {x} NIL NIL NIL NIL NIL) "#,
                    r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL) 3"#,
                    r#" NIL NIL NIL NIL) "DIGEST" ("BOUNDARY" "d") NIL NIL NIL)"#
                ),
                x = x
            )
        );
        assert_eq!(section_text(&msg, "1.1").as_deref(), Some("first"));
        assert_eq!(
            section_text(&msg, "1.HEADER").as_deref(),
            Some("From: x@y\r\nSubject: one\r\n\r\n")
        );
    }

    #[test]
    fn multipart_without_its_boundary_gets_one_empty_part_as_dovecot_writes() {
        let msg = wire("Content-Type: multipart/mixed; boundary=\"foo\"\n\nno boundary here\n");
        assert_eq!(
            text(&body_structure(&msg, true)),
            concat!(
                r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)"#,
                r#" "MIXED" ("BOUNDARY" "foo") NIL NIL NIL)"#
            )
        );
        assert_eq!(
            text(&body_structure(&msg, false)),
            r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED")"#
        );
        assert_eq!(section_text(&msg, "1"), None);
    }

    #[test]
    fn encoded_message_rfc822_is_opaque() {
        let msg = wire(
            "Content-Type: multipart/mixed; boundary=b\n\
             \n\
             --b\n\
             Content-Type: message/rfc822\n\
             Content-Transfer-Encoding: base64\n\
             \n\
             RnJvbTogYUBiDQoNCmhpDQo=\n\
             --b--\n",
        );
        assert_eq!(
            text(&body_structure(&msg, false)),
            r#"(("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 24) "MIXED")"#
        );
        assert_eq!(section_text(&msg, "1.1"), None);
        assert_eq!(section_text(&msg, "1.HEADER"), None);
    }

    #[test]
    fn deep_nesting_is_capped_and_the_rest_is_opaque() {
        let depth = 200;
        let mut s = String::new();
        for d in 0..depth {
            s.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{d}\"\n\n--b{d}\n"
            ));
        }
        s.push_str("Content-Type: text/plain\n\ndeep\n");
        for d in (0..depth).rev() {
            s.push_str(&format!("--b{d}--\n"));
        }
        let msg = wire(&s);
        let structure = text(&body_structure(&msg, true));
        assert!(structure.contains(r#"("APPLICATION" "OCTET-STREAM" ("BOUNDARY" "b64")"#));
        assert!(!structure.contains("\"b65\""));
        let opens = structure.bytes().filter(|&b| b == b'(').count();
        let closes = structure.bytes().filter(|&b| b == b')').count();
        assert_eq!(opens, closes);
        let path = vec!["1"; 64].join(".");
        assert!(section_text(&msg, &path).is_some());
        let too_deep = vec!["1"; 66].join(".");
        assert_eq!(section_text(&msg, &too_deep), None);
    }

    #[test]
    fn deeply_nested_messages_do_not_overflow_the_stack() {
        // 30000 levels overflowed a test thread's 2 MiB stack in mail-parser's drop.
        let level = b"Content-Type: message/rfc822\r\n\r\n";
        let mut msg = level.repeat(30_000);
        msg.extend_from_slice(b"Subject: deep\r\n\r\nbody\r\n");
        let structure = text(&body_structure(&msg, false));
        assert!(structure.contains(r#""APPLICATION" "OCTET-STREAM""#));
        let path = vec!["1"; 64].join(".");
        assert!(section_text(&msg, &path).is_some());
    }
}
