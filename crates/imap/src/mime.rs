//! The MIME views of one message that IMAP FETCH gives (RFC 3501 §7.4.2, §6.4.5): ENVELOPE,
//! BODY and BODYSTRUCTURE, and the bytes of a `BODY[section]`; pure functions over wire bytes.

// Every function takes the whole message in wire form (CRLF line ends, see
// `store::to_wire`), so sizes are octets of the wire form and line counts count LFs.
// mail-parser finds the parts and their offsets; header values are read from the raw bytes,
// because IMAP wants them as written (encoded-words left encoded, `<>` kept on Content-ID,
// parameter values not decoded).

use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, HeaderValue, Message, MessageParser, PartType};

/// Parts nested deeper than this (multiparts and enclosed messages both count) are opaque:
/// the tree is walked recursively, and a hostile message must not exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Longer strings go out as literals, so that no response line grows without bound.
const QUOTED_MAX: usize = 1024;

/// What a BODY[...] section names after its part number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// Nothing after the part number: the whole message, or the part's body.
    All,
    /// `HEADER`: the header, through the empty line.
    Header,
    /// `HEADER.FIELDS (...)` (false) or `HEADER.FIELDS.NOT (...)` (true).
    Fields(Vec<String>, bool),
    /// `TEXT`: the body of the message.
    Text,
    /// `MIME`: the part's own MIME header, through the empty line.
    Mime,
}

/// A parsed section spec: the part path (empty = the whole message) and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSpec {
    /// Part numbers, each at least 1.
    pub path: Vec<u32>,
    /// What of the message or part.
    pub text: SectionText,
}

/// One MIME entity: a part, or a whole message (whose MIME header is its RFC 5322 header).
#[derive(Debug)]
struct Entity<'a> {
    header: &'a [u8],
    body: &'a [u8],
    kind: Kind<'a>,
    /// In a multipart/digest, where a part without Content-Type is message/rfc822
    /// (RFC 2046 §5.1.5).
    in_digest: bool,
}

#[derive(Debug)]
enum Kind<'a> {
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

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/// The ENVELOPE of a message (or of a message/rfc822 part's header), as the parenthesised
/// IMAP list.
pub fn envelope(msg: &[u8]) -> Vec<u8> {
    let (header, _) = split_message(msg);
    let mut out = Vec::new();
    write_envelope(&mut out, header);
    out
}

/// BODYSTRUCTURE (extensible = true) or BODY (false) of the message, as the parenthesised
/// IMAP list.
pub fn body_structure(msg: &[u8], extensible: bool) -> Vec<u8> {
    let root = parse_tree(msg);
    let mut out = Vec::new();
    write_body(&mut out, &root, extensible);
    out
}

/// Parses what is between the brackets of BODY[...] (case-insensitive): "", "HEADER", "TEXT",
/// "HEADER.FIELDS (A B)", "HEADER.FIELDS.NOT (A)", "1", "1.2", "1.2.MIME", "2.HEADER",
/// "3.TEXT", "2.HEADER.FIELDS (X)". None for a malformed spec (MIME without a part number,
/// part 0, etc.).
pub fn parse_section(spec: &str) -> Option<SectionSpec> {
    if spec.is_empty() {
        return Some(SectionSpec {
            path: Vec::new(),
            text: SectionText::All,
        });
    }
    // RFC 3501 §9: header-list = "(" header-fld-name *(SP header-fld-name) ")".
    let (head, list) = match spec.find('(') {
        Some(i) => (spec.get(..i)?.trim_end(), Some(spec.get(i..)?)),
        None => (spec, None),
    };
    let mut path = Vec::new();
    let mut words = head.split('.').peekable();
    while let Some(word) = words.peek() {
        if !word.starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
        // nz-number: no leading zero, no sign.
        if word.starts_with('0') || !word.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        path.push(word.parse::<u32>().ok()?);
        words.next();
    }
    let rest: Vec<&str> = words.collect();
    let rest = rest.join(".").to_ascii_uppercase();
    let text = match (rest.as_str(), list) {
        ("", None) if !path.is_empty() && !head.ends_with('.') => SectionText::All,
        ("HEADER", None) => SectionText::Header,
        ("TEXT", None) => SectionText::Text,
        ("MIME", None) if !path.is_empty() => SectionText::Mime,
        ("HEADER.FIELDS", Some(list)) => SectionText::Fields(field_names(list)?, false),
        ("HEADER.FIELDS.NOT", Some(list)) => SectionText::Fields(field_names(list)?, true),
        _ => return None,
    };
    Some(SectionSpec { path, text })
}

/// The bytes of a section of the message (wire form in, wire form out), or None when the
/// part does not exist or the section does not apply to it (HEADER or TEXT of a part that
/// is not message/rfc822). Part numbering as RFC 3501 §6.4.5.
pub fn section(msg: &[u8], spec: &SectionSpec) -> Option<Vec<u8>> {
    if spec.path.is_empty() {
        // The common FETCH of headers needs no MIME parse.
        let (header, body) = split_message(msg);
        return match &spec.text {
            SectionText::All => Some(msg.to_vec()),
            SectionText::Header => Some(header.to_vec()),
            SectionText::Fields(names, not) => Some(header_fields(header, names, *not)),
            SectionText::Text => Some(body.to_vec()),
            SectionText::Mime => None,
        };
    }
    let root = parse_tree(msg);
    let mut numbers = spec.path.iter();
    let first = numbers.next()?;
    let mut part = nth(message_parts(&root), *first)?;
    for &n in numbers {
        part = nth(part_parts(part), n)?;
    }
    match &spec.text {
        SectionText::All => Some(part.body.to_vec()),
        SectionText::Mime => Some(part.header.to_vec()),
        SectionText::Header | SectionText::Fields(..) | SectionText::Text => {
            let Kind::Message(inner) = &part.kind else {
                return None;
            };
            Some(match &spec.text {
                SectionText::Header => inner.header.to_vec(),
                SectionText::Fields(names, not) => header_fields(inner.header, names, *not),
                _ => inner.body.to_vec(),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Section helpers
// ---------------------------------------------------------------------------------------

/// The names of a header-list, `(A "B" C)`.
fn field_names(list: &str) -> Option<Vec<String>> {
    let inner = list.trim().strip_prefix('(')?.strip_suffix(')')?;
    let names: Vec<String> = inner
        .split_ascii_whitespace()
        .map(|n| {
            n.strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    let valid = |n: &String| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_graphic() && !b":\"()".contains(&b))
    };
    (!names.is_empty() && names.iter().all(valid)).then_some(names)
}

/// Part `n` (from 1) of a list.
fn nth<'e, 'a>(parts: Vec<&'e Entity<'a>>, n: u32) -> Option<&'e Entity<'a>> {
    parts
        .into_iter()
        .nth(usize::try_from(n).ok()?.checked_sub(1)?)
}

/// The numbered parts of a message: those of its multipart body, or else part 1, the body
/// itself (RFC 3501 §6.4.5: "non-multipart messages ... only have a part 1").
fn message_parts<'e, 'a>(message: &'e Entity<'a>) -> Vec<&'e Entity<'a>> {
    match &message.kind {
        Kind::Multipart(children) => children.iter().collect(),
        _ => vec![message],
    }
}

/// The numbered sub-parts of a part: a multipart's children, or the parts of the message a
/// message/rfc822 part encloses.
fn part_parts<'e, 'a>(part: &'e Entity<'a>) -> Vec<&'e Entity<'a>> {
    match &part.kind {
        Kind::Multipart(children) => children.iter().collect(),
        Kind::Message(inner) => message_parts(inner),
        Kind::Single | Kind::Opaque => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The part tree
// ---------------------------------------------------------------------------------------

/// The header of a message (through the empty line) and its body.
fn split_message(bytes: &[u8]) -> (&[u8], &[u8]) {
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
fn parse_tree(msg: &[u8]) -> Entity<'_> {
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

// ---------------------------------------------------------------------------------------
// BODY and BODYSTRUCTURE
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Content-Type and Content-Disposition (RFC 2045 §5.1, RFC 2183)
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct ContentType {
    ty: String,
    subtype: String,
    params: Vec<Param>,
}

#[derive(Debug)]
struct Disposition {
    ty: String,
    params: Vec<Param>,
}

#[derive(Debug, PartialEq)]
enum MimeToken {
    /// A token, or (true) the contents of a quoted-string.
    Word(Vec<u8>, bool),
    /// One of RFC 2045's tspecials, outside quotes and comments.
    Special(u8),
}

/// RFC 2045 §5.1 tspecials, less `(` and `"` which open comments and quoted-strings.
fn is_tspecial(b: u8) -> bool {
    b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// The tokens of a structured MIME header value; comments are dropped.
fn mime_tokens(value: &[u8]) -> Vec<MimeToken> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        match b {
            b'(' => i = skip_comment(value, i).0,
            b'"' => {
                let (end, text) = quoted_string(value, i);
                tokens.push(MimeToken::Word(text, true));
                i = end;
            }
            _ if is_tspecial(b) => {
                tokens.push(MimeToken::Special(b));
                i += 1;
            }
            _ if b <= b' ' || b == 0x7f => i += 1,
            _ => {
                let start = i;
                while value
                    .get(i)
                    .is_some_and(|&c| c > b' ' && c != 0x7f && !is_tspecial(c))
                {
                    i += 1;
                }
                tokens.push(MimeToken::Word(
                    value.get(start..i).unwrap_or_default().to_vec(),
                    false,
                ));
            }
        }
    }
    tokens
}

/// The comment opening at `start` (nested, with quoted-pairs): where it ends and its text.
fn skip_comment(value: &[u8], start: usize) -> (usize, Vec<u8>) {
    let mut depth = 0usize;
    let mut text = Vec::new();
    let mut i = start;
    while let Some(&b) = value.get(i) {
        i += 1;
        match b {
            b'\\' => {
                if let Some(&next) = value.get(i) {
                    text.push(next);
                    i += 1;
                }
            }
            b'(' => {
                if depth > 0 {
                    text.push(b);
                }
                depth += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
                text.push(b);
            }
            _ => text.push(b),
        }
    }
    (i, text)
}

/// The quoted-string opening at `start`: where it ends and its unescaped contents.
fn quoted_string(value: &[u8], start: usize) -> (usize, Vec<u8>) {
    let mut text = Vec::new();
    let mut i = start + 1;
    while let Some(&b) = value.get(i) {
        i += 1;
        match b {
            b'\\' => {
                if let Some(&next) = value.get(i) {
                    text.push(next);
                    i += 1;
                }
            }
            b'"' => break,
            _ => text.push(b),
        }
    }
    (i, text)
}

/// The Content-Type of a MIME header; None when absent or not `type/subtype`, which then
/// defaults (RFC 2045 §5.2).
fn content_type(header: &[u8]) -> Option<ContentType> {
    let value = header_value(header, "Content-Type")?;
    let tokens = mime_tokens(&value);
    let [
        MimeToken::Word(ty, false),
        MimeToken::Special(b'/'),
        MimeToken::Word(subtype, false),
        rest @ ..,
    ] = tokens.as_slice()
    else {
        return None;
    };
    Some(ContentType {
        ty: String::from_utf8_lossy(ty).to_ascii_uppercase(),
        subtype: String::from_utf8_lossy(subtype).to_ascii_uppercase(),
        params: parameters(rest),
    })
}

/// The Content-Disposition of a value (RFC 2183).
fn disposition(value: &[u8]) -> Option<Disposition> {
    let tokens = mime_tokens(value);
    let [MimeToken::Word(ty, false), rest @ ..] = tokens.as_slice() else {
        return None;
    };
    Some(Disposition {
        ty: String::from_utf8_lossy(ty).to_ascii_uppercase(),
        params: parameters(rest),
    })
}

/// A MIME parameter: name upper-cased, value as written.
type Param = (String, Vec<u8>);

/// `*(";" attribute "=" value)`, names upper-cased, values as written; parsing stops at
/// the first thing that is not a parameter. RFC 2231 continuations (`name*0`, `name*1`)
/// are joined; an extended value keeps its `*` and its `charset'language'` prefix.
fn parameters(mut tokens: &[MimeToken]) -> Vec<Param> {
    let mut raw: Vec<Param> = Vec::new();
    while let [MimeToken::Special(b';'), rest @ ..] = tokens {
        tokens = rest;
        // A stray `;` (some mailers end the list with one) is not an error.
        if let [
            MimeToken::Word(name, false),
            MimeToken::Special(b'='),
            MimeToken::Word(value, _),
            rest @ ..,
        ] = tokens
        {
            raw.push((
                String::from_utf8_lossy(name).to_ascii_uppercase(),
                value.clone(),
            ));
            tokens = rest;
        }
    }
    join_continuations(raw)
}

/// One piece of an RFC 2231 continuation: `NAME*3` or (encoded) `NAME*3*`.
struct Piece {
    number: u32,
    encoded: bool,
    value: Vec<u8>,
}

/// RFC 2231 §3: `NAME*0`, `NAME*1*`, ... become one `NAME` (or `NAME*` if any piece is
/// encoded), in the order of their numbers, where the first piece stood.
fn join_continuations(raw: Vec<Param>) -> Vec<Param> {
    let split = |name: &str| -> Option<(String, u32, bool)> {
        let (base, section) = name.split_once('*')?;
        let (number, encoded) = match section.strip_suffix('*') {
            Some(n) => (n, true),
            None => (section, false),
        };
        if base.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((base.to_string(), number.parse().ok()?, encoded))
    };
    let mut out: Vec<Param> = Vec::new();
    // Each joined parameter: its name, its place in `out`, its pieces.
    let mut joined: Vec<(String, usize, Vec<Piece>)> = Vec::new();
    for (name, value) in raw {
        let Some((base, number, encoded)) = split(&name) else {
            out.push((name, value));
            continue;
        };
        let piece = Piece {
            number,
            encoded,
            value,
        };
        match joined.iter_mut().find(|(b, _, _)| *b == base) {
            Some((_, _, pieces)) => pieces.push(piece),
            None => {
                joined.push((base.clone(), out.len(), vec![piece]));
                out.push((base, Vec::new()));
            }
        }
    }
    for (_, place, mut pieces) in joined {
        pieces.sort_by_key(|p| p.number);
        let encoded = pieces.iter().any(|p| p.encoded);
        if let Some(slot) = out.get_mut(place) {
            if encoded {
                slot.0.push('*');
            }
            slot.1 = pieces.into_iter().flat_map(|p| p.value).collect();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

/// The fields of a header block: name and raw value (continuation lines included), up to
/// the empty line.
fn header_fields_raw(header: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut fields: Vec<(&[u8], Vec<u8>)> = Vec::new();
    let mut current = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if current && let Some((_, value)) = fields.last_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        current = false;
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
            let value = line.get(colon + 1..).unwrap_or_default();
            fields.push((name, value.to_vec()));
            current = true;
        }
    }
    fields
}

/// The first field `name`'s value, unfolded (CR and LF dropped, RFC 5322 §2.2.3) and
/// trimmed; encoded-words stay as written.
fn header_value(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let (_, value) = header_fields_raw(header)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))?;
    let unfolded: Vec<u8> = value
        .into_iter()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    Some(unfolded.trim_ascii().to_vec())
}

/// The header lines (with continuations) whose names are (or, with `not`, are not) in
/// `names`, then the empty line (RFC 3501 §6.4.5 HEADER.FIELDS).
fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line
                .split(|&b| b == b':')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            let listed = names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

// ---------------------------------------------------------------------------------------
// ENVELOPE (RFC 3501 §7.4.2)
// ---------------------------------------------------------------------------------------

/// `envelope` of RFC 3501 §9 for a header block.
fn write_envelope(out: &mut Vec<u8>, header: &[u8]) {
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

/// One `address` of an envelope list: a mailbox, or a group's start or end marker.
#[derive(Debug, Clone, PartialEq)]
enum AddressItem {
    Mailbox {
        name: Option<Vec<u8>>,
        route: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Vec<u8>,
    },
    /// "[RFC-2822] group syntax is indicated by a special form of address structure in
    /// which the host name field is NIL. If the mailbox name field is also NIL, this is an
    /// end of group marker ... If the mailbox name field is non-NIL, this is a start of
    /// group marker, and the mailbox name field holds the group name phrase."
    GroupStart(Vec<u8>),
    GroupEnd,
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

#[derive(Debug, Clone, PartialEq)]
enum AddressToken {
    /// An atom (dots included), a domain literal, or (true) a quoted-string's contents.
    Word(Vec<u8>, bool),
    Comment(Vec<u8>),
    /// One of `<>:;,@`.
    Special(u8),
}

/// The tokens of an RFC 5322 address list.
fn address_tokens(value: &[u8]) -> Vec<AddressToken> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        match b {
            b'(' => {
                let (end, text) = skip_comment(value, i);
                tokens.push(AddressToken::Comment(text));
                i = end;
            }
            b'"' => {
                let (end, text) = quoted_string(value, i);
                tokens.push(AddressToken::Word(text, true));
                i = end;
            }
            b'<' | b'>' | b':' | b';' | b',' | b'@' => {
                tokens.push(AddressToken::Special(b));
                i += 1;
            }
            b'[' => {
                let start = i;
                while value.get(i).is_some_and(|&c| c != b']') {
                    i += 1;
                }
                i = (i + 1).min(value.len());
                tokens.push(AddressToken::Word(
                    value.get(start..i).unwrap_or_default().to_vec(),
                    false,
                ));
            }
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            _ => {
                let start = i;
                while value
                    .get(i)
                    .is_some_and(|&c| !b" \t\r\n()\"<>:;,@[".contains(&c))
                {
                    i += 1;
                }
                tokens.push(AddressToken::Word(
                    value.get(start..i).unwrap_or_default().to_vec(),
                    false,
                ));
            }
        }
    }
    tokens
}

/// The envelope address list of the first field `name`; empty when absent or empty.
fn addresses(header: &[u8], name: &str) -> Vec<AddressItem> {
    header_value(header, name)
        .map(|v| parse_addresses(&v))
        .unwrap_or_default()
}

/// RFC 5322 §3.4 address-list, leniently: display names unquoted and kept encoded, a
/// comment standing for a missing display name, groups as start and end markers.
fn parse_addresses(value: &[u8]) -> Vec<AddressItem> {
    let tokens = address_tokens(value);
    let mut items = Vec::new();
    let mut in_group = false;
    let mut i = 0;
    loop {
        let start = i;
        while tokens
            .get(i)
            .is_some_and(|t| !matches!(t, AddressToken::Special(b'<' | b':' | b';' | b',')))
        {
            i += 1;
        }
        let before = tokens.get(start..i).unwrap_or_default();
        match tokens.get(i) {
            Some(AddressToken::Special(b'<')) => {
                let inner_start = i + 1;
                i = inner_start;
                while tokens
                    .get(i)
                    .is_some_and(|t| *t != AddressToken::Special(b'>'))
                {
                    i += 1;
                }
                let inner = tokens.get(inner_start..i).unwrap_or_default();
                i += 1;
                let after_start = i.min(tokens.len());
                while tokens
                    .get(i)
                    .is_some_and(|t| !matches!(t, AddressToken::Special(b';' | b',')))
                {
                    i += 1;
                }
                let after = tokens.get(after_start..i).unwrap_or_default();
                let name = phrase(before).or_else(|| first_comment(before.iter().chain(after)));
                items.extend(route_address(name, inner));
            }
            Some(AddressToken::Special(b':')) if !in_group => {
                items.push(AddressItem::GroupStart(phrase(before).unwrap_or_default()));
                in_group = true;
                i += 1;
            }
            Some(AddressToken::Special(b';')) => {
                items.extend(addr_spec(before));
                if in_group {
                    items.push(AddressItem::GroupEnd);
                    in_group = false;
                }
                i += 1;
            }
            Some(_) => {
                items.extend(addr_spec(before));
                i += 1;
            }
            None => {
                items.extend(addr_spec(before));
                break;
            }
        }
    }
    if in_group {
        items.push(AddressItem::GroupEnd);
    }
    items
}

/// A display name: its words joined by single spaces, quoted-strings unquoted.
fn phrase(tokens: &[AddressToken]) -> Option<Vec<u8>> {
    let mut name = Vec::new();
    for token in tokens {
        if let AddressToken::Word(w, _) = token {
            if !name.is_empty() {
                name.push(b' ');
            }
            name.extend_from_slice(w);
        }
    }
    (!name.is_empty()).then_some(name)
}

fn first_comment<'t>(mut tokens: impl Iterator<Item = &'t AddressToken>) -> Option<Vec<u8>> {
    tokens.find_map(|t| match t {
        AddressToken::Comment(c) if !c.trim_ascii().is_empty() => Some(c.trim_ascii().to_vec()),
        _ => None,
    })
}

/// What is between `<` and `>`: an optional obsolete route (`@a,@b:`), then an addr-spec.
fn route_address(name: Option<Vec<u8>>, inner: &[AddressToken]) -> Option<AddressItem> {
    let (route, spec) = match inner.iter().position(|t| *t == AddressToken::Special(b':')) {
        Some(colon) if inner.first() == Some(&AddressToken::Special(b'@')) => {
            let mut route = Vec::new();
            for token in inner.get(..colon).unwrap_or_default() {
                match token {
                    AddressToken::Word(w, _) => route.extend_from_slice(w),
                    AddressToken::Special(b) => route.push(*b),
                    AddressToken::Comment(_) => {}
                }
            }
            (Some(route), inner.get(colon + 1..).unwrap_or_default())
        }
        _ => (None, inner),
    };
    let (mailbox, host) = local_and_domain(spec);
    mailbox_item(name, route, mailbox, host)
}

/// A bare addr-spec, maybe with a comment for its name (`user@host (Name)`).
fn addr_spec(tokens: &[AddressToken]) -> Option<AddressItem> {
    let (mailbox, host) = local_and_domain(tokens);
    mailbox_item(first_comment(tokens.iter()), None, mailbox, host)
}

/// The words before and after the last `@`.
fn local_and_domain(tokens: &[AddressToken]) -> (Vec<u8>, Vec<u8>) {
    let at = tokens
        .iter()
        .rposition(|t| *t == AddressToken::Special(b'@'));
    let words = |ts: &[AddressToken]| -> Vec<u8> {
        ts.iter()
            .filter_map(|t| match t {
                AddressToken::Word(w, _) => Some(w.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    };
    match at {
        Some(at) => (
            words(tokens.get(..at).unwrap_or_default()),
            words(tokens.get(at + 1..).unwrap_or_default()),
        ),
        None => (words(tokens), Vec::new()),
    }
}

/// A mailbox, with Dovecot's placeholders for a missing local part or domain: an empty
/// host would read as a group marker. Nothing at all is no address.
fn mailbox_item(
    name: Option<Vec<u8>>,
    route: Option<Vec<u8>>,
    mailbox: Vec<u8>,
    host: Vec<u8>,
) -> Option<AddressItem> {
    if name.is_none() && mailbox.is_empty() && host.is_empty() {
        return None;
    }
    let or = |v: Vec<u8>, missing: &[u8]| if v.is_empty() { missing.to_vec() } else { v };
    Some(AddressItem::Mailbox {
        name,
        route,
        mailbox: or(mailbox, b"MISSING_MAILBOX"),
        host: or(host, b"MISSING_DOMAIN"),
    })
}

// ---------------------------------------------------------------------------------------
// IMAP strings
// ---------------------------------------------------------------------------------------

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

    /// The wire form of a test message written with LF line ends.
    fn wire(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn spec(s: &str) -> SectionSpec {
        match parse_section(s) {
            Some(spec) => spec,
            None => panic!("section {s:?} should parse"),
        }
    }

    fn section_text(msg: &[u8], s: &str) -> Option<String> {
        section(msg, &spec(s)).map(|b| text(&b))
    }

    const SIMPLE: &str = "From: Alice <alice@example.org>\n\
        To: bob@example.net\n\
        Subject: Hello\n  again\n\
        Date: Mon, 7 Feb 1994 21:52:25 -0800\n\
        Message-ID: <1@example.org>\n\
        \n\
        Hi Bob,\n\
        bye\n";

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
    fn header_fields_keep_continuations_and_end_with_the_empty_line() {
        let msg = wire(SIMPLE);
        assert_eq!(
            section_text(&msg, "HEADER.FIELDS (SUBJECT to)").as_deref(),
            Some("To: bob@example.net\r\nSubject: Hello\r\n  again\r\n\r\n")
        );
        assert_eq!(
            section_text(&msg, "HEADER.FIELDS.NOT (Subject Date Message-ID From)").as_deref(),
            Some("To: bob@example.net\r\n\r\n")
        );
        assert_eq!(
            section_text(&msg, "HEADER.FIELDS (X-Absent)").as_deref(),
            Some("\r\n")
        );
    }

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

    const MIXED: &str = "Content-Type: multipart/mixed; boundary=b1\n\
        \n\
        preamble\n\
        --b1\n\
        \n\
        plain body\n\
        --b1\n\
        Content-Type: application/octet-stream; name=\"x.bin\"\n\
        Content-Transfer-Encoding: base64\n\
        Content-Disposition: attachment; filename=\"x.bin\"\n\
        Content-ID: <att1@example.org>\n\
        Content-Description: some bytes\n\
        \n\
        AAECAwQF\n\
        --b1--\n\
        epilogue\n";

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

    const FORWARD: &str = "From: Carol <carol@example.com>\n\
        To: dave@example.com\n\
        Subject: Fwd: lunch\n\
        Content-Type: multipart/mixed; boundary=\"fwd\"\n\
        \n\
        --fwd\n\
        Content-Type: text/plain\n\
        \n\
        See below.\n\
        --fwd\n\
        Content-Type: message/rfc822\n\
        \n\
        From: Eve <eve@example.com>\n\
        To: carol@example.com\n\
        Subject: lunch\n\
        Message-ID: <l@example.com>\n\
        \n\
        Noon?\n\
        --fwd--\n";

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

    #[test]
    fn groups_and_display_names_follow_rfc_3501() {
        let msg = wire(
            "From: Team: alice@example.org, \"Bob B.\" <bob@example.org>;\n\
             To: undisclosed-recipients:;\n\
             Cc: \"Quoted \\\"Name\\\"\" <q@x.y>, =?utf-8?q?J=C3=BCrgen?= <j@x.y>,\n\
             \tplain@x.y (Plain Comment), <@relay.example:r@x.y>, nodomain\n\
             Reply-To:\n\
             In-Reply-To: <p@x.y>\n\
             Subject:\n\
             \n",
        );
        let team = concat!(
            r#"((NIL NIL "Team" NIL)(NIL NIL "alice" "example.org")"#,
            r#"("Bob B." NIL "bob" "example.org")(NIL NIL NIL NIL))"#
        );
        assert_eq!(
            text(&envelope(&msg)),
            format!(
                concat!(
                    r#"(NIL "" {team} {team} {team} "#,
                    r#"((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) "#,
                    r#"(("Quoted \"Name\"" NIL "q" "x.y")("=?utf-8?q?J=C3=BCrgen?=" NIL "j" "x.y")"#,
                    r#"("Plain Comment" NIL "plain" "x.y")(NIL "@relay.example" "r" "x.y")"#,
                    r#"(NIL NIL "nodomain" "MISSING_DOMAIN")) "#,
                    r#"NIL "<p@x.y>" NIL)"#
                ),
                team = team
            )
        );
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

    #[test]
    fn rfc2231_continuations_are_joined() {
        let msg = wire(
            "Content-Type: application/pdf; name*0=\"long\"; name*1=\"name.pdf\"\n\
             Content-Disposition: attachment; filename*0*=utf-8''caf%C3%A9; filename*1*=.pdf;\n\
             Content-Language: (comment) de-CH\n\
             Content-Location: http://x.y/z\n\
             \n\
             %PDF\n",
        );
        assert_eq!(
            text(&body_structure(&msg, true)),
            concat!(
                r#"("APPLICATION" "PDF" ("NAME" "longname.pdf") NIL NIL "7BIT" 6 NIL "#,
                r#"("ATTACHMENT" ("FILENAME*" "utf-8''caf%C3%A9.pdf")) ("de-CH") "http://x.y/z")"#
            )
        );
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
    fn parses_section_specs() {
        let fields = |names: &[&str], not| SectionSpec {
            path: Vec::new(),
            text: SectionText::Fields(names.iter().map(|n| n.to_string()).collect(), not),
        };
        let at = |path: &[u32], text| SectionSpec {
            path: path.to_vec(),
            text,
        };
        assert_eq!(parse_section(""), Some(at(&[], SectionText::All)));
        assert_eq!(parse_section("HEADER"), Some(at(&[], SectionText::Header)));
        assert_eq!(parse_section("text"), Some(at(&[], SectionText::Text)));
        assert_eq!(
            parse_section("HEADER.FIELDS (A B)"),
            Some(fields(&["A", "B"], false))
        );
        assert_eq!(
            parse_section("header.fields.not (\"A\")"),
            Some(fields(&["A"], true))
        );
        assert_eq!(parse_section("1"), Some(at(&[1], SectionText::All)));
        assert_eq!(parse_section("1.2"), Some(at(&[1, 2], SectionText::All)));
        assert_eq!(
            parse_section("1.2.mime"),
            Some(at(&[1, 2], SectionText::Mime))
        );
        assert_eq!(
            parse_section("2.HEADER"),
            Some(at(&[2], SectionText::Header))
        );
        assert_eq!(parse_section("3.TEXT"), Some(at(&[3], SectionText::Text)));
        assert_eq!(
            parse_section("2.HEADER.FIELDS (X)"),
            Some(at(&[2], SectionText::Fields(vec!["X".into()], false)))
        );
        for bad in [
            "MIME",
            "0",
            "1.0",
            "01",
            "1.",
            ".1",
            "1..2",
            "-1",
            "+1",
            "99999999999",
            "HEADER.FIELDS",
            "HEADER.FIELDS ()",
            "HEADER.FIELDS (A",
            "HEADER (A)",
            "HEADER.FIELDS (A)(B)",
            "1.FOO",
            "TEXT.1",
            "1.MIME.TEXT",
            "HEADERS",
        ] {
            assert_eq!(parse_section(bad), None, "{bad:?}");
        }
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
