//! The part tree: a message's header and body split, its parts found by mail-parser
//! (depth-capped, dropped without recursion), and the decoded texts SEARCH reads.

use super::params::content_type;
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, HeaderValue, Message, MessageParser, PartType};

/// Parts nested deeper than this (multiparts and enclosed messages both count) are opaque:
/// the tree is walked recursively, and a hostile message must not exhaust the stack.
const MAX_DEPTH: usize = 64;

/// One MIME entity: a part, or a whole message (whose MIME header is its RFC 5322 header).
#[derive(Debug)]
pub(super) struct Entity<'a> {
    pub(super) header: &'a [u8],
    pub(super) body: &'a [u8],
    pub(super) kind: Kind<'a>,
    /// In a multipart/digest, where a part without Content-Type is message/rfc822
    /// (RFC 2046 §5.1.5).
    pub(super) in_digest: bool,
}

#[derive(Debug)]
pub(super) enum Kind<'a> {
    /// A leaf part, written with its declared type.
    Single,
    /// A multipart or message/rfc822 part deeper than `MAX_DEPTH`: written as
    /// application/octet-stream, so that a client does not expect the sub-structure its
    /// type promises.
    Opaque,
    /// A multipart; no children when its boundary never occurs.
    Multipart(Vec<Entity<'a>>),
    /// A message/rfc822 part and the message it encloses.
    Message(Box<Entity<'a>>),
}

/// The header of a message (through the empty line) and its body.
pub(super) fn split_message(bytes: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        start += line.len();
        if line == b"\r\n" || line == b"\n" {
            return bytes.split_at(start);
        }
    }
    (bytes, &[])
}

/// The message as a tree of entities: header and body split here, parts found by
/// mail-parser.
pub(super) fn parse_tree(msg: &[u8]) -> Entity<'_> {
    let (header, body) = split_message(msg);
    // mail-parser's offsets are u32: a larger message would have wrapped offsets.
    let parsed = if u32::try_from(msg.len()).is_ok() {
        MessageParser::default().parse(msg)
    } else {
        None
    };
    let kind = match parsed {
        Some(parsed) => {
            let kind = kind_of(msg, &parsed, 0, 0, header);
            dismantle(parsed);
            kind
        }
        None => Kind::Single,
    };
    Entity {
        header,
        body,
        kind,
        in_digest: false,
    }
}

/// The text of a message's text parts (text/plain, text/html and the like, in enclosed
/// messages too), decoded from their transfer encoding and charset: what SEARCH BODY and
/// TEXT look in when the raw bytes do not match.
pub fn decoded_texts(msg: &[u8]) -> Vec<String> {
    if u32::try_from(msg.len()).is_err() {
        return Vec::new();
    }
    let Some(parsed) = MessageParser::default().parse(msg) else {
        return Vec::new();
    };
    let mut texts = Vec::new();
    // Taken apart without recursion, as `dismantle` does.
    let mut stack = vec![parsed];
    while let Some(mut message) = stack.pop() {
        for part in &mut message.parts {
            match std::mem::take(&mut part.body) {
                PartType::Text(t) | PartType::Html(t) => texts.push(t.into_owned()),
                PartType::Message(inner) => stack.push(inner),
                _ => {}
            }
        }
    }
    texts
}

/// A header field's unfolded value with its RFC 2047 encoded words decoded.
pub fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut raw = value.as_bytes().to_vec();
    raw.push(b'\n');
    match MessageStream::new(&raw).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        _ => value.to_string(),
    }
}

/// Drops a parsed message without recursion. mail-parser parses enclosed messages without
/// recursing, but its `Message` nests one per message/rfc822 level, and the default drop
/// recurses that deep: a few megabytes of nested message/rfc822 headers would overflow the
/// stack.
fn dismantle(parsed: Message<'_>) {
    let mut stack = vec![parsed];
    while let Some(mut message) = stack.pop() {
        for part in &mut message.parts {
            if let PartType::Message(inner) = std::mem::take(&mut part.body) {
                stack.push(inner);
            }
        }
    }
}

/// The entity of part `id` of a parsed message whose offsets index `raw`.
fn entity_of<'a>(
    raw: &'a [u8],
    parsed: &Message<'_>,
    id: usize,
    depth: usize,
    in_digest: bool,
) -> Option<Entity<'a>> {
    let part = parsed.parts.get(id)?;
    let offset = |o: u32| usize::try_from(o).unwrap_or(usize::MAX).min(raw.len());
    let start = offset(part.offset_header);
    let body_start = offset(part.offset_body).max(start);
    let end = offset(part.offset_end).max(body_start);
    let header = raw.get(start..body_start)?;
    let body = raw.get(body_start..end)?;
    Some(Entity {
        header,
        body,
        kind: kind_of(raw, parsed, id, depth, header),
        in_digest,
    })
}

/// What part `id` is, given its MIME header.
fn kind_of<'a>(
    raw: &'a [u8],
    parsed: &Message<'_>,
    id: usize,
    depth: usize,
    header: &[u8],
) -> Kind<'a> {
    let Some(part) = parsed.parts.get(id) else {
        return Kind::Single;
    };
    let declared = content_type(header);
    let declared_is = |ty: &str| declared.as_ref().is_some_and(|c| c.ty == ty);
    match &part.body {
        PartType::Multipart(ids) => {
            if depth >= MAX_DEPTH {
                return Kind::Opaque;
            }
            let digest = declared.as_ref().is_some_and(|c| c.subtype == "DIGEST");
            // Children come after their parent in mail-parser's list; insisting on it
            // rules out cycles whatever the list holds.
            let children = ids
                .iter()
                .filter_map(|&c| usize::try_from(c).ok())
                .filter(|&c| c > id)
                .filter_map(|c| entity_of(raw, parsed, c, depth + 1, digest))
                .collect();
            Kind::Multipart(children)
        }
        // message/global also parses as a message, but RFC 3501's body-type-msg is for
        // message/rfc822 only. An encoded enclosed message was decoded by mail-parser into
        // a buffer of its own, whose offsets are not into `raw`.
        PartType::Message(inner)
            if part.encoding == Encoding::None
                && (declared.is_none()
                    || declared
                        .as_ref()
                        .is_some_and(|c| c.ty == "MESSAGE" && c.subtype == "RFC822")) =>
        {
            if depth >= MAX_DEPTH || inner.raw_message.as_ptr() != raw.as_ptr() {
                return Kind::Opaque;
            }
            let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
            let end = usize::try_from(part.offset_end).unwrap_or(usize::MAX);
            let Some(enclosed) = raw.get(start..end.max(start)) else {
                return Kind::Opaque;
            };
            let (inner_header, inner_body) = split_message(enclosed);
            Kind::Message(Box::new(Entity {
                header: inner_header,
                body: inner_body,
                kind: kind_of(raw, inner, 0, depth + 1, inner_header),
                in_digest: false,
            }))
        }
        // A multipart whose boundary never occurs: no parts (Dovecot writes one empty
        // text/plain in its place).
        _ if declared_is("MULTIPART") => Kind::Multipart(Vec::new()),
        _ => Kind::Single,
    }
}
