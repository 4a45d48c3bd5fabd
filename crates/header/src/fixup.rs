//! The changes qmail-inject makes to a header: addresses qualified; Bcc, Return-Path and
//! Content-Length removed; Date, Message-ID, From and Cc added if missing; and the envelope.

use crate::address::{self, AddressList, is_atext, quote_local};
use crate::{Error, Field, Identity, Settings, Stamp};

/// The header fields qmail-inject treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sender,
    From,
    ReplyTo,
    To,
    Cc,
    Bcc,
    Date,
    MessageId,
    ResentSender,
    ResentFrom,
    ResentReplyTo,
    ResentTo,
    ResentCc,
    ResentBcc,
    ResentDate,
    ResentMessageId,
    ReturnReceiptTo,
    ErrorsTo,
    ApparentlyTo,
    ReturnPath,
    ContentLength,
    Other,
}

const NAMES: [(&str, Kind); 21] = [
    ("sender", Kind::Sender),
    ("from", Kind::From),
    ("reply-to", Kind::ReplyTo),
    ("to", Kind::To),
    ("cc", Kind::Cc),
    ("bcc", Kind::Bcc),
    ("date", Kind::Date),
    ("message-id", Kind::MessageId),
    ("resent-sender", Kind::ResentSender),
    ("resent-from", Kind::ResentFrom),
    ("resent-reply-to", Kind::ResentReplyTo),
    ("resent-to", Kind::ResentTo),
    ("resent-cc", Kind::ResentCc),
    ("resent-bcc", Kind::ResentBcc),
    ("resent-date", Kind::ResentDate),
    ("resent-message-id", Kind::ResentMessageId),
    ("return-receipt-to", Kind::ReturnReceiptTo),
    ("errors-to", Kind::ErrorsTo),
    ("apparently-to", Kind::ApparentlyTo),
    ("return-path", Kind::ReturnPath),
    ("content-length", Kind::ContentLength),
];

fn kind(field: &Field) -> Kind {
    NAMES
        .iter()
        .find(|(name, _)| field.is(name))
        .map_or(Kind::Other, |&(_, k)| k)
}

/// A header after the fix-ups, with what it says about the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The new header: added fields first, then the kept fields in order; each field ends
    /// in LF; no empty line after it.
    pub header: Vec<u8>,
    /// The envelope sender: `-f`, else the first incoming Return-Path, else the default.
    pub sender: Vec<u8>,
    /// The recipients the header names: Resent-To, -Cc, -Bcc if the message is resent,
    /// else To, Cc, Bcc, Apparently-To; qualified, in order, `<>` left out.
    pub header_recipients: Vec<Vec<u8>>,
    /// The first of those recipient fields that could not be parsed.
    pub bad_recipient_field: Option<Vec<u8>>,
    /// Whether the message is being resent (it has a Resent- field).
    pub resent: bool,
}

/// Collects the addresses of one group of recipient fields.
#[derive(Default)]
struct RecipientFields {
    addresses: Vec<Vec<u8>>,
    bad: Option<Vec<u8>>,
}

impl RecipientFields {
    fn add(&mut self, field: &Field, list: Option<&AddressList>) {
        match list {
            Some(list) => self
                .addresses
                .extend(list.addresses.iter().filter(|a| !a.is_empty()).cloned()),
            None => {
                self.bad.get_or_insert_with(|| field.text().to_vec());
            }
        }
    }
}

/// Applies qmail-inject's fix-ups (qmail-header(5)) to the fields of a header. `sender` is
/// the qualified envelope sender given with `-f`, if any.
pub fn fix_header(
    fields: &[Field],
    settings: &Settings,
    identity: &Identity,
    sender: Option<&[u8]>,
    stamp: &Stamp,
) -> Prepared {
    let flags = identity.flags;
    let mut seen: Vec<Kind> = Vec::new();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut plain = RecipientFields::default();
    let mut resent = RecipientFields::default();
    let mut return_path: Option<Vec<u8>> = None;
    for field in fields {
        let k = kind(field);
        let deleted = (flags.delete_from && k == Kind::From)
            || (flags.delete_message_id && k == Kind::MessageId)
            || (flags.ignore_return_path && k == Kind::ReturnPath);
        if deleted {
            continue;
        }
        seen.push(k);
        let list = match k {
            Kind::Other | Kind::Date | Kind::MessageId | Kind::ResentDate => None,
            Kind::ResentMessageId | Kind::ContentLength => None,
            _ => address::rewrite_list(field.value(), settings),
        };
        match k {
            Kind::To | Kind::Cc | Kind::Bcc | Kind::ApparentlyTo => plain.add(field, list.as_ref()),
            Kind::ResentTo | Kind::ResentCc | Kind::ResentBcc => resent.add(field, list.as_ref()),
            Kind::ReturnPath if return_path.is_none() => {
                return_path = list.and_then(|l| l.addresses.into_iter().next());
                continue;
            }
            _ => {}
        }
        // Bcc must not reach the recipients; Return-Path is the delivery's business;
        // Content-Length is wrong as soon as anything changes the message.
        if matches!(
            k,
            Kind::Bcc | Kind::ResentBcc | Kind::ReturnPath | Kind::ContentLength
        ) {
            continue;
        }
        kept.push(match list {
            Some(list) => field.with_value(&list.value),
            None => field.text().to_vec(),
        });
    }
    let is_resent = seen.iter().any(|k| {
        matches!(
            k,
            Kind::ResentSender
                | Kind::ResentFrom
                | Kind::ResentReplyTo
                | Kind::ResentTo
                | Kind::ResentCc
                | Kind::ResentBcc
                | Kind::ResentDate
                | Kind::ResentMessageId
        )
    });
    let has = |k: Kind| seen.contains(&k);

    let sender = match (sender, return_path) {
        (Some(s), _) => s.to_vec(),
        (None, Some(mut rp)) => {
            if flags.verp_recipient {
                rp.extend_from_slice(b"-@[]");
            }
            rp
        }
        (None, None) => default_sender(settings, identity, stamp),
    };

    let mut header = Vec::new();
    let (prefix, date, id, from, to, cc) = if is_resent {
        (
            "Resent-",
            Kind::ResentDate,
            Kind::ResentMessageId,
            Kind::ResentFrom,
            Kind::ResentTo,
            Kind::ResentCc,
        )
    } else {
        (
            "",
            Kind::Date,
            Kind::MessageId,
            Kind::From,
            Kind::To,
            Kind::Cc,
        )
    };
    let mut add = |name: &str, value: &str| {
        header.extend_from_slice(format!("{prefix}{name}: {value}\n").as_bytes());
    };
    if !has(date) {
        add("Date", &rqmail_date::Utc::from_unix(stamp.time).rfc5322());
    }
    if !has(id) {
        add("Message-ID", &message_id(settings, stamp));
    }
    if !has(from) {
        add("From", &default_from(settings, identity));
    }
    if !has(to) && !has(cc) {
        // qmail-inject's way to say there are only blind recipients (qmail-header(5)).
        add("Cc", "recipient list not shown: ;");
    }
    for field in kept {
        header.extend_from_slice(&field);
    }
    let recipients = if is_resent { resent } else { plain };
    Prepared {
        header,
        sender,
        header_recipients: recipients.addresses,
        bad_recipient_field: recipients.bad,
        resent: is_resent,
    }
}

/// `<YYYYMMDDHHMMSS.PID.COUNTER@idhost>`.
fn message_id(settings: &Settings, stamp: &Stamp) -> String {
    let t = rqmail_date::Utc::from_unix(stamp.time);
    format!(
        "<{}{:02}{:02}{:02}{:02}{:02}.{}.{}@{}>",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        stamp.pid,
        stamp.counter,
        settings.id_host
    )
}

/// The From value for the invoking user: `Name <user@host>`, or `user@host (Name)` with
/// the `c` flag, or `user@host` without a name.
fn default_from(settings: &Settings, identity: &Identity) -> String {
    let host = address::qualify_host(identity.host.as_deref().map(str::as_bytes), settings);
    let addr = format!(
        "{}@{}",
        quote_local(&identity.user),
        String::from_utf8_lossy(&host)
    );
    match identity.name.as_deref().filter(|n| !n.trim().is_empty()) {
        None => addr,
        Some(name) if identity.flags.name_comment => format!("{addr} ({})", comment(name)),
        Some(name) => format!("{} <{addr}>", phrase(name)),
    }
}

/// The default envelope sender: `QMAILSUSER` (else the From user) at `QMAILSHOST` (else
/// the From host, else defaulthost), with the VERP additions of the `m` and `r` flags.
fn default_sender(settings: &Settings, identity: &Identity, stamp: &Stamp) -> Vec<u8> {
    let flags = identity.flags;
    let mut user = identity
        .sender_user
        .clone()
        .unwrap_or_else(|| identity.user.clone());
    if flags.verp_message {
        user.push_str(&format!("-{}.{}", stamp.time, stamp.pid));
    }
    if flags.verp_recipient {
        user.push('-');
    }
    let host = identity.sender_host.as_ref().or(identity.host.as_ref());
    let host = address::qualify_host(host.map(|h| h.as_bytes()), settings);
    let mut sender = [user.as_bytes(), b"@", &host].concat();
    if flags.verp_recipient {
        sender.extend_from_slice(b"-@[]");
    }
    sender
}

/// A personal name as an RFC 5322 phrase: atoms as they are, other ASCII quoted, anything
/// else as RFC 2047 encoded words.
fn phrase(name: &str) -> String {
    let name = name.trim();
    if !name.is_ascii() {
        return encoded_words(name);
    }
    if name
        .split(' ')
        .all(|w| !w.is_empty() && w.bytes().all(is_atext))
    {
        return name.to_string();
    }
    let mut out = String::from("\"");
    for c in name.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A personal name as the text of a comment.
fn comment(name: &str) -> String {
    let name = name.trim();
    if !name.is_ascii() {
        return encoded_words(name);
    }
    let mut out = String::new();
    for c in name.chars().filter(|c| !c.is_control()) {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RFC 2047 `=?UTF-8?B?...?=` words, each under 75 characters, split between characters.
fn encoded_words(text: &str) -> String {
    const MAX_BYTES: usize = 45; // 60 base64 characters, plus 12 for the markers
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if chunk.len() + c.len_utf8() > MAX_BYTES {
            words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words.join(" ")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where the envelope recipients come from (qmail-inject's `-a`, `-h`, `-A`, `-H`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    /// `-a`: the arguments only.
    Arguments,
    /// `-h`: the header only.
    Header,
    /// `-A` (qmail-inject's default): the arguments if there are any, else the header.
    ArgumentsElseHeader,
    /// `-H` (and sendmail's `-t`): the arguments and the header.
    ArgumentsAndHeader,
}

/// The envelope recipients: the qualified `arguments` first, then the header's, each
/// address once. An unparsable recipient field is an error when the header is used, since
/// its recipients (perhaps in a Bcc that is then removed) would be lost silently.
pub fn envelope_recipients(
    source: Recipients,
    arguments: &[Vec<u8>],
    prepared: &Prepared,
) -> Result<Vec<Vec<u8>>, Error> {
    let (use_arguments, use_header) = match source {
        Recipients::Arguments => (true, false),
        Recipients::Header => (false, true),
        Recipients::ArgumentsElseHeader => (!arguments.is_empty(), arguments.is_empty()),
        Recipients::ArgumentsAndHeader => (true, true),
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut add = |list: &[Vec<u8>]| {
        for a in list {
            if !a.is_empty() && !out.contains(a) {
                out.push(a.clone());
            }
        }
    };
    if use_arguments {
        add(arguments);
    }
    if use_header {
        if let Some(bad) = &prepared.bad_recipient_field {
            return Err(Error::BadRecipientField(bad.clone()));
        }
        add(&prepared.header_recipients);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InjectFlags, Input, read_header};

    fn settings() -> Settings {
        Settings {
            default_host: "mail".into(),
            default_domain: "example.com".into(),
            plus_domain: "plus.example".into(),
            id_host: "id.example.com".into(),
        }
    }

    fn joe() -> Identity {
        Identity {
            user: "joe".into(),
            host: None,
            name: Some("Joe User".into()),
            ..Identity::default()
        }
    }

    /// 2026-11-23 16:05:09 UTC.
    const STAMP: Stamp = Stamp {
        time: 1_795_449_909,
        pid: 4321,
        counter: 7,
    };

    fn fix_with(header: &str, identity: &Identity, sender: Option<&[u8]>) -> Prepared {
        let mut input = Input::new(header.as_bytes(), false);
        let read = read_header(&mut input).unwrap();
        fix_header(&read.fields, &settings(), identity, sender, &STAMP)
    }

    fn fix(header: &str) -> Prepared {
        fix_with(header, &joe(), None)
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    fn strings(list: &[Vec<u8>]) -> Vec<&str> {
        list.iter().map(|a| text(a)).collect()
    }

    #[test]
    fn adds_date_message_id_and_from_when_missing() {
        let p = fix("To: bob\nSubject: hi\n\n");
        assert_eq!(
            text(&p.header),
            "Date: Mon, 23 Nov 2026 16:05:09 +0000\n\
             Message-ID: <20261123160509.4321.7@id.example.com>\n\
             From: Joe User <joe@mail.example.com>\n\
             To: bob@mail.example.com\n\
             Subject: hi\n"
        );
        assert_eq!(text(&p.sender), "joe@mail.example.com");
        assert_eq!(strings(&p.header_recipients), ["bob@mail.example.com"]);
    }

    #[test]
    fn existing_fields_are_kept_and_from_is_qualified() {
        let p = fix(
            "date: Sun, 1 Jan 2023 00:00:00 +0000\nMessage-Id: <x@y>\nFrom: Me <me>\nCc: c@d.e\n",
        );
        assert_eq!(
            text(&p.header),
            "date: Sun, 1 Jan 2023 00:00:00 +0000\nMessage-Id: <x@y>\nFrom: Me <me@mail.example.com>\nCc: c@d.e\n"
        );
    }

    #[test]
    fn bcc_is_removed_but_its_recipients_count() {
        let p = fix("To: a@x.org\nBcc: secret@x.org,\n  other\nSubject: s\n");
        assert!(!text(&p.header).contains("secret"));
        assert!(!text(&p.header).to_lowercase().contains("bcc"));
        assert!(text(&p.header).ends_with("To: a@x.org\nSubject: s\n"));
        assert_eq!(
            strings(&p.header_recipients),
            ["a@x.org", "secret@x.org", "other@mail.example.com"]
        );
    }

    #[test]
    fn only_blind_recipients_get_a_recipient_list_not_shown() {
        let p = fix("Bcc: a@x.org\n");
        assert!(text(&p.header).contains("\nCc: recipient list not shown: ;\n"));
        assert_eq!(strings(&p.header_recipients), ["a@x.org"]);
        assert!(!text(&fix("Cc: a@x.org\n").header).contains("not shown"));
    }

    #[test]
    fn return_path_and_content_length_are_removed() {
        let p = fix("Return-Path: <bounce@x.org>\nContent-Length: 12\nTo: a@x.org\n");
        assert!(!text(&p.header).contains("Return-Path"));
        assert!(!text(&p.header).contains("Content-Length"));
        // As in qmail-inject, an incoming Return-Path sets the envelope sender ...
        assert_eq!(text(&p.sender), "bounce@x.org");
        assert_eq!(text(&fix("Return-Path: <>\n").sender), "");
        // ... unless -f gives one, or QMAILINJECT has `s`.
        let p = fix_with("Return-Path: <bounce@x.org>\n", &joe(), Some(b"f@x.org"));
        assert_eq!(text(&p.sender), "f@x.org");
        let mut id = joe();
        id.flags.ignore_return_path = true;
        let p = fix_with("Return-Path: <bounce@x.org>\n", &id, None);
        assert_eq!(text(&p.sender), "joe@mail.example.com");
    }

    #[test]
    fn default_sender_prefers_qmailsuser_and_qmailshost() {
        let id = Identity {
            host: Some("box".into()),
            sender_user: Some("owner".into()),
            ..joe()
        };
        assert_eq!(
            text(&fix_with("", &id, None).sender),
            "owner@box.example.com"
        );
        let id = Identity {
            sender_host: Some("lists.example.org".into()),
            ..id
        };
        let p = fix_with("", &id, None);
        assert_eq!(text(&p.sender), "owner@lists.example.org");
        assert!(text(&p.header).contains("From: Joe User <joe@box.example.com>\n"));
    }

    #[test]
    fn verp_flags_change_the_default_sender() {
        let mut id = joe();
        id.flags = InjectFlags::parse("r");
        assert_eq!(
            text(&fix_with("", &id, None).sender),
            "joe-@mail.example.com-@[]"
        );
        id.flags = InjectFlags::parse("m");
        assert_eq!(
            text(&fix_with("", &id, None).sender),
            "joe-1795449909.4321@mail.example.com"
        );
    }

    #[test]
    fn from_styles() {
        let mut id = joe();
        id.flags.name_comment = true;
        assert!(
            text(&fix_with("", &id, None).header)
                .contains("From: joe@mail.example.com (Joe User)\n")
        );
        let id = Identity {
            name: None,
            ..joe()
        };
        assert!(text(&fix_with("", &id, None).header).contains("From: joe@mail.example.com\n"));
        let id = Identity {
            name: Some("Doe, John Q.".into()),
            user: "john doe".into(),
            ..joe()
        };
        assert!(
            text(&fix_with("", &id, None).header)
                .contains("From: \"Doe, John Q.\" <\"john doe\"@mail.example.com>\n")
        );
        let id = Identity {
            name: Some("J\u{f6}rg".into()),
            ..joe()
        };
        assert!(
            text(&fix_with("", &id, None).header)
                .contains("From: =?UTF-8?B?SsO2cmc=?= <joe@mail.example.com>\n")
        );
    }

    #[test]
    fn flags_delete_incoming_from_and_message_id() {
        let mut id = joe();
        id.flags = InjectFlags::parse("fi");
        let p = fix_with(
            "From: other@x.org\nMessage-ID: <old@x>\nTo: a@x.org\n",
            &id,
            None,
        );
        let h = text(&p.header);
        assert!(!h.contains("other@x.org") && !h.contains("old@x"));
        assert!(h.contains("From: Joe User <joe@mail.example.com>\n"));
        assert!(h.contains("Message-ID: <20261123160509.4321.7@id.example.com>\n"));
    }

    #[test]
    fn resent_messages_use_resent_fields() {
        let p = fix(
            "From: a@x.org\nTo: b@x.org\nDate: Sun, 1 Jan 2023 00:00:00 +0000\nMessage-ID: <m@x>\nResent-To: c\nResent-Bcc: d@x.org\n",
        );
        let h = text(&p.header);
        assert!(p.resent);
        assert!(h.starts_with(
            "Resent-Date: Mon, 23 Nov 2026 16:05:09 +0000\n\
             Resent-Message-ID: <20261123160509.4321.7@id.example.com>\n\
             Resent-From: Joe User <joe@mail.example.com>\n\
             From: a@x.org\n"
        ));
        assert!(h.contains("Resent-To: c@mail.example.com\n"));
        assert!(!h.contains("d@x.org"));
        assert_eq!(
            strings(&p.header_recipients),
            ["c@mail.example.com", "d@x.org"]
        );
        let p = fix("Resent-Bcc: d@x.org\n");
        assert!(text(&p.header).contains("Resent-Cc: recipient list not shown: ;\n"));
        assert!(!text(&p.header).contains("\nCc:"));
    }

    #[test]
    fn sender_fields_are_qualified_and_other_fields_untouched() {
        let p = fix("Reply-To: r\nErrors-To: e@box\nSubject: to bob\nX-Note: a, b\n");
        let h = text(&p.header);
        assert!(h.contains("Reply-To: r@mail.example.com\n"));
        assert!(h.contains("Errors-To: e@box.example.com\n"));
        assert!(h.contains("Subject: to bob\nX-Note: a, b\n"));
    }

    #[test]
    fn unparsable_fields_are_kept_and_recorded() {
        let p = fix("To: \"broken <a@b>\nFrom: (unclosed\nCc: c@d.e\n");
        let h = text(&p.header);
        assert!(h.contains("To: \"broken <a@b>\n") && h.contains("From: (unclosed\n"));
        assert_eq!(
            p.bad_recipient_field.as_deref(),
            Some(&b"To: \"broken <a@b>\n"[..])
        );
        assert_eq!(strings(&p.header_recipients), ["c@d.e"]);
    }

    #[test]
    fn recipient_sources() {
        let p = fix("To: h1@x.org, a1@x.org\n");
        let args = vec![b"a1@x.org".to_vec(), b"a2@x.org".to_vec()];
        let r = |source, args: &[Vec<u8>]| envelope_recipients(source, args, &p).unwrap();
        assert_eq!(
            strings(&r(Recipients::Arguments, &args)),
            ["a1@x.org", "a2@x.org"]
        );
        assert_eq!(
            strings(&r(Recipients::Header, &args)),
            ["h1@x.org", "a1@x.org"]
        );
        assert_eq!(
            strings(&r(Recipients::ArgumentsElseHeader, &args)),
            ["a1@x.org", "a2@x.org"]
        );
        assert_eq!(
            strings(&r(Recipients::ArgumentsElseHeader, &[])),
            ["h1@x.org", "a1@x.org"]
        );
        assert_eq!(
            strings(&r(Recipients::ArgumentsAndHeader, &args)),
            ["a1@x.org", "a2@x.org", "h1@x.org"]
        );
        assert!(r(Recipients::Arguments, &[]).is_empty());
    }

    #[test]
    fn unparsable_recipient_field_fails_only_when_the_header_is_used() {
        let p = fix("To: <a@b\n");
        let args = vec![b"x@y.z".to_vec()];
        assert!(envelope_recipients(Recipients::Arguments, &args, &p).is_ok());
        assert!(matches!(
            envelope_recipients(Recipients::ArgumentsAndHeader, &args, &p),
            Err(Error::BadRecipientField(_))
        ));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, out) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), out);
        }
    }

    #[test]
    fn long_names_are_split_into_short_encoded_words() {
        let words = encoded_words(&"\u{e9}".repeat(40));
        assert!(words.split(' ').all(|w| w.len() <= 75));
        assert_eq!(words.split(' ').count(), 2);
    }
}
