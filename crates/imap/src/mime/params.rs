//! Content-Type and Content-Disposition (RFC 2045 §5.1, RFC 2183): MIME tokens,
//! parameters, and RFC 2231 continuations joined.

use super::headers::header_value;

#[derive(Debug)]
pub(super) struct ContentType {
    pub(super) ty: String,
    pub(super) subtype: String,
    pub(super) params: Vec<Param>,
}

#[derive(Debug)]
pub(super) struct Disposition {
    pub(super) ty: String,
    pub(super) params: Vec<Param>,
}

#[derive(Debug, PartialEq)]
pub(super) enum MimeToken {
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
pub(super) fn mime_tokens(value: &[u8]) -> Vec<MimeToken> {
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
pub(super) fn skip_comment(value: &[u8], start: usize) -> (usize, Vec<u8>) {
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
pub(super) fn quoted_string(value: &[u8], start: usize) -> (usize, Vec<u8>) {
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
pub(super) fn content_type(header: &[u8]) -> Option<ContentType> {
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
pub(super) fn disposition(value: &[u8]) -> Option<Disposition> {
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
pub(super) type Param = (String, Vec<u8>);

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

#[cfg(test)]
mod tests {

    use crate::mime::structure::body_structure;
    use crate::mime::testing::{text, wire};

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
}
