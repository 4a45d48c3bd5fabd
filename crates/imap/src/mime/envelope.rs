//! ENVELOPE (RFC 3501 §7.4.2): a header block's date, subject, address lists and ids
//! written as the parenthesised IMAP list.

use super::address::{AddressItem, addresses};
use super::headers::header_value;
use super::tree::split_message;
use super::{nstring, string};

/// The ENVELOPE of a message (or of a message/rfc822 part's header), as the parenthesised
/// IMAP list.
pub fn envelope(msg: &[u8]) -> Vec<u8> {
    let (header, _) = split_message(msg);
    let mut out = Vec::new();
    write_envelope(&mut out, header);
    out
}

/// `envelope` of RFC 3501 §9 for a header block.
pub(super) fn write_envelope(out: &mut Vec<u8>, header: &[u8]) {
    let from = addresses(header, "From");
    // "If the Sender or Reply-To lines are absent in the [RFC-2822] header, or are present
    // but empty, the server sets the corresponding member of the envelope to be the same
    // value as the from member" (RFC 3501 §7.4.2).
    let or_from = |list: Vec<AddressItem>| if list.is_empty() { from.clone() } else { list };
    let sender = or_from(addresses(header, "Sender"));
    let reply_to = or_from(addresses(header, "Reply-To"));
    out.push(b'(');
    nstring(out, header_value(header, "Date").as_deref());
    out.push(b' ');
    nstring(out, header_value(header, "Subject").as_deref());
    for list in [
        &from,
        &sender,
        &reply_to,
        &addresses(header, "To"),
        &addresses(header, "Cc"),
        &addresses(header, "Bcc"),
    ] {
        out.push(b' ');
        write_addresses(out, list);
    }
    out.push(b' ');
    nstring(out, header_value(header, "In-Reply-To").as_deref());
    out.push(b' ');
    nstring(out, header_value(header, "Message-ID").as_deref());
    out.push(b')');
}

/// `"(" 1*address ")" / nil`.
fn write_addresses(out: &mut Vec<u8>, list: &[AddressItem]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for item in list {
        out.push(b'(');
        match item {
            AddressItem::Mailbox {
                name,
                route,
                mailbox,
                host,
            } => {
                nstring(out, name.as_deref());
                out.push(b' ');
                nstring(out, route.as_deref());
                out.push(b' ');
                string(out, mailbox);
                out.push(b' ');
                string(out, host);
            }
            AddressItem::GroupStart(name) => {
                out.extend_from_slice(b"NIL NIL ");
                string(out, name);
                out.extend_from_slice(b" NIL");
            }
            AddressItem::GroupEnd => out.extend_from_slice(b"NIL NIL NIL NIL"),
        }
        out.push(b')');
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::structure::body_structure;
    use crate::mime::testing::{FORWARD, section_text, text, wire};

    #[test]
    fn enclosed_message_has_its_envelope_and_structure() {
        let msg = wire(FORWARD);
        let eve = r#"(("Eve" NIL "eve" "example.com"))"#;
        let inner_envelope = format!(
            r#"(NIL "lunch" {eve} {eve} {eve} ((NIL NIL "carol" "example.com")) NIL NIL NIL "<l@example.com>")"#
        );
        assert_eq!(
            text(&body_structure(&msg, true)),
            format!(
                concat!(
                    r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 0 NIL NIL NIL NIL)"#,
                    r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 104 {} "#,
                    r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL) 5"#,
                    r#" NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "fwd") NIL NIL NIL)"#
                ),
                inner_envelope
            )
        );
        assert_eq!(
            text(&body_structure(&msg, false)),
            format!(
                concat!(
                    r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 0)"#,
                    r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 104 {} "#,
                    r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 0) 5) "MIXED")"#
                ),
                inner_envelope
            )
        );
        let inner_header = "From: Eve <eve@example.com>\r\nTo: carol@example.com\r\n\
                            Subject: lunch\r\nMessage-ID: <l@example.com>\r\n\r\n";
        assert_eq!(section_text(&msg, "2.1").as_deref(), Some("Noon?"));
        assert_eq!(
            section_text(&msg, "2.HEADER").as_deref(),
            Some(inner_header)
        );
        assert_eq!(section_text(&msg, "2.TEXT").as_deref(), Some("Noon?"));
        assert_eq!(
            section_text(&msg, "2").as_deref(),
            Some(&*format!("{inner_header}Noon?"))
        );
        assert_eq!(
            section_text(&msg, "2.MIME").as_deref(),
            Some("Content-Type: message/rfc822\r\n\r\n")
        );
        assert_eq!(
            section_text(&msg, "2.HEADER.FIELDS (Subject)").as_deref(),
            Some("Subject: lunch\r\n\r\n")
        );
        assert_eq!(section_text(&msg, "2.2"), None);
        assert_eq!(section_text(&msg, "2.1.1"), None);
        assert_eq!(section_text(&msg, "1.HEADER"), None);
        // The outer message's own envelope.
        assert!(text(&envelope(&msg)).starts_with(r#"(NIL "Fwd: lunch" (("Carol" NIL "carol""#));
    }
}
