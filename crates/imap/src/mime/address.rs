//! An RFC 5322 address-list parser, lenient as Dovecot is: mailboxes, display names,
//! groups and obsolete routes, as the items ENVELOPE writes.

use super::headers::header_value;
use super::params::{quoted_string, skip_comment};

/// One `address` of an envelope list: a mailbox, or a group's start or end marker.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AddressItem {
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
pub(super) fn addresses(header: &[u8], name: &str) -> Vec<AddressItem> {
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

#[cfg(test)]
mod tests {

    use crate::mime::envelope::envelope;
    use crate::mime::testing::{text, wire};

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
}
