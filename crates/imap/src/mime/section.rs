//! `BODY[section]`: the section spec parsed (RFC 3501 §6.4.5), and the bytes it names
//! found by part number in the part tree.

use super::headers::header_fields;
use super::tree::{Entity, Kind, parse_tree, split_message};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::testing::{SIMPLE, section_text, wire};

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
}
