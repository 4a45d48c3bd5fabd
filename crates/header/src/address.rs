//! RFC 5322 address lists as qmail-inject reads them (names, angle addresses, groups,
//! comments, quoted strings) and the qualification of each address with the default names.
//!
//! Qualification follows qmail-inject's `rwgeneric`: a source route is dropped, then one
//! trailing `.` and one trailing `@`; an address without `@` gets `@defaulthost`; a host
//! ending in `+` has it replaced by `.plusdomain`; a host without a dot (and not a
//! `[literal]`) gets `.defaultdomain`. A rewritten field keeps its text, comments and folding:
//! only the addresses that change are replaced.

use crate::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Atom,
    Quoted,
    Literal,
    Comment,
    Special(u8),
}

/// A token and where it is in the field value (quotes, brackets and parentheses included).
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

impl Token {
    fn is_word(&self) -> bool {
        matches!(self.kind, Kind::Atom | Kind::Quoted | Kind::Literal)
    }
}

fn is_atom_byte(b: u8) -> bool {
    !matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'"'
            | b'<'
            | b'>'
            | b';'
            | b':'
            | b'@'
            | b','
            | b'.'
    )
}

/// The end of the comment starting at `i` (comments nest); `None` if it is not closed.
fn comment_end(s: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0;
    while i < s.len() {
        match s[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The end of a quoted string or literal whose contents start at `i`.
fn delimited_end(s: &[u8], mut i: usize, close: u8) -> Option<usize> {
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            c if c == close => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits a field value into tokens; `None` for an unclosed quote, comment or literal, or a
/// stray `)` or `]`. A backslash quotes the next byte, in atoms too (as in qmail).
fn tokenize(s: &[u8]) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let start = i;
        let kind = match s[i] {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                i = comment_end(s, i)?;
                Kind::Comment
            }
            b'"' => {
                i = delimited_end(s, i + 1, b'"')?;
                Kind::Quoted
            }
            b'[' => {
                i = delimited_end(s, i + 1, b']')?;
                Kind::Literal
            }
            b')' | b']' => return None,
            c @ (b'.' | b',' | b'@' | b'<' | b'>' | b':' | b';') => {
                i += 1;
                Kind::Special(c)
            }
            _ => {
                while i < s.len() && is_atom_byte(s[i]) {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                i = i.min(s.len());
                Kind::Atom
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Some(tokens)
}

/// Removes backslash quoting and the line breaks of folding.
fn unescape(bytes: &[u8], out: &mut Vec<u8>) {
    let mut escaped = false;
    for &b in bytes {
        if escaped {
            out.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
}

/// A token as it goes into the envelope: quotes and comments gone (qmail's
/// `token822_unquote`).
fn unquote(s: &[u8], t: &Token, out: &mut Vec<u8>) {
    match t.kind {
        Kind::Atom => unescape(&s[t.start..t.end], out),
        Kind::Quoted => unescape(&s[t.start + 1..t.end - 1], out),
        Kind::Literal => {
            out.push(b'[');
            unescape(&s[t.start + 1..t.end - 1], out);
            out.push(b']');
        }
        Kind::Special(c) => out.push(c),
        Kind::Comment => {}
    }
}

/// One address found in a list: its tokens (comments left out) and the bytes it covers.
struct Found {
    tokens: Vec<Token>,
    start: usize,
    end: usize,
}

impl Found {
    fn bare(tokens: Vec<Token>) -> Found {
        let start = tokens.first().map_or(0, |t| t.start);
        let end = tokens.last().map_or(0, |t| t.end);
        Found { tokens, start, end }
    }
}

/// Ends a run of bare words: one address, or several where words follow each other with
/// only a space between them (qmail's "illegal space": `djb fred` is two addresses, and a
/// comma is inserted).
fn flush_bare(
    words: &mut Vec<Token>,
    found: &mut Vec<Found>,
    commas: &mut Vec<usize>,
    after_angle: &mut Option<usize>,
) {
    if words.is_empty() {
        return;
    }
    if let Some(at) = after_angle.take() {
        commas.push(at);
    }
    let mut current: Vec<Token> = Vec::new();
    for t in words.drain(..) {
        if let Some(prev) = current.last()
            && prev.is_word()
            && t.is_word()
        {
            commas.push(prev.end);
            found.push(Found::bare(std::mem::take(&mut current)));
        }
        current.push(t);
    }
    found.push(Found::bare(current));
}

/// Finds the addresses of an address list; also returns where commas are missing.
/// `None` if the list cannot be parsed.
fn parse_list(s: &[u8]) -> Option<(Vec<Found>, Vec<usize>)> {
    let tokens: Vec<Token> = tokenize(s)?
        .into_iter()
        .filter(|t| t.kind != Kind::Comment)
        .collect();
    let mut found = Vec::new();
    let mut commas = Vec::new();
    let mut words: Vec<Token> = Vec::new();
    let mut in_group = false;
    // The end of an angle address not yet followed by a comma.
    let mut after_angle: Option<usize> = None;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        match t.kind {
            Kind::Special(b',') | Kind::Special(b';') => {
                flush_bare(&mut words, &mut found, &mut commas, &mut after_angle);
                after_angle = None;
                if t.kind == Kind::Special(b';') {
                    in_group = false;
                }
            }
            Kind::Special(b':') => {
                // A group: the words so far are its name. Groups do not nest. A group
                // without its closing `;` is accepted (`undisclosed-recipients:`).
                if in_group {
                    return None;
                }
                in_group = true;
                words.clear();
                after_angle = None;
            }
            Kind::Special(b'<') => {
                // The words so far are the display name.
                words.clear();
                let close = i
                    + 1
                    + tokens[i + 1..]
                        .iter()
                        .position(|t| t.kind == Kind::Special(b'>'))?;
                let inner = &tokens[i + 1..close];
                if inner.iter().any(|t| t.kind == Kind::Special(b'<')) {
                    return None;
                }
                if let Some(at) = after_angle {
                    commas.push(at);
                }
                found.push(match (inner.first(), inner.last()) {
                    (Some(first), Some(last)) => Found {
                        tokens: inner.to_vec(),
                        start: first.start,
                        end: last.end,
                    },
                    _ => Found {
                        tokens: Vec::new(),
                        start: t.end,
                        end: t.end,
                    },
                });
                after_angle = Some(tokens[close].end);
                i = close;
            }
            Kind::Special(b'>') => return None,
            _ => words.push(t),
        }
        i += 1;
    }
    flush_bare(&mut words, &mut found, &mut commas, &mut after_angle);
    Some((found, commas))
}

/// Appends `.defaultdomain` or `.plusdomain` to a host as qmail-inject does; `None` or an
/// empty host means defaulthost (which is qualified the same way).
pub fn qualify_host(host: Option<&[u8]>, settings: &Settings) -> Vec<u8> {
    qualify_host_changed(host, settings).0
}

fn qualify_host_changed(host: Option<&[u8]>, settings: &Settings) -> (Vec<u8>, bool) {
    let (mut h, mut changed) = match host {
        Some(h) if !h.is_empty() => (h.to_vec(), false),
        _ => (settings.default_host.as_bytes().to_vec(), true),
    };
    if h.ends_with(b"+") {
        h.pop();
        h.push(b'.');
        h.extend_from_slice(settings.plus_domain.as_bytes());
        changed = true;
    }
    if !h.contains(&b'.') && !h.contains(&b'[') {
        h.push(b'.');
        h.extend_from_slice(settings.default_domain.as_bytes());
        changed = true;
    }
    (h, changed)
}

/// One address qualified: as it is written back into the header, as it goes into the
/// envelope, and whether qualification changed it.
struct Qualified {
    header: Vec<u8>,
    envelope: Vec<u8>,
    changed: bool,
}

fn qualify_tokens(s: &[u8], tokens: &[Token], settings: &Settings) -> Qualified {
    let unchanged = |toks: &[Token]| {
        let mut envelope = Vec::new();
        toks.iter().for_each(|t| unquote(s, t, &mut envelope));
        Qualified {
            header: Vec::new(),
            envelope,
            changed: false,
        }
    };
    // `box@[]` is left alone: it is the per-recipient VERP placeholder.
    if let [.., at, lit] = tokens
        && at.kind == Kind::Special(b'@')
        && lit.kind == Kind::Literal
        && lit.end - lit.start == 2
    {
        return unchanged(tokens);
    }
    let mut toks = tokens;
    let mut changed = false;
    if toks.first().is_some_and(|t| t.kind == Kind::Special(b'@')) {
        // A source route, `@relay1,@relay2:box@host`: dropped.
        changed = true;
        toks = match toks.iter().position(|t| t.kind == Kind::Special(b':')) {
            Some(colon) => &toks[colon + 1..],
            None => &[],
        };
    }
    for trailing in [b'.', b'@'] {
        if let [rest @ .., last] = toks
            && last.kind == Kind::Special(trailing)
        {
            toks = rest;
            changed = true;
        }
    }
    if toks.is_empty() {
        // `<>` and what reduces to it.
        return Qualified {
            changed,
            ..unchanged(toks)
        };
    }
    let (local, domain) = match toks.iter().rposition(|t| t.kind == Kind::Special(b'@')) {
        Some(at) => (&toks[..at], Some(&toks[at + 1..])),
        None => (toks, None),
    };
    let domain = domain.map(|d| {
        let mut out = Vec::new();
        d.iter().for_each(|t| unquote(s, t, &mut out));
        out
    });
    let (host, host_changed) = qualify_host_changed(domain.as_deref(), settings);
    let mut header = Vec::new();
    let mut envelope = Vec::new();
    for t in local {
        header.extend_from_slice(&s[t.start..t.end]);
        unquote(s, t, &mut envelope);
    }
    for out in [&mut header, &mut envelope] {
        out.push(b'@');
        out.extend_from_slice(&host);
    }
    Qualified {
        header,
        envelope,
        changed: changed || host_changed,
    }
}

/// An address-list field value with its addresses qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressList {
    /// The addresses in envelope form (unquoted, comments dropped), in order; `<>` gives
    /// an empty address.
    pub addresses: Vec<Vec<u8>>,
    /// The value with each address that qualification changed replaced and missing commas
    /// inserted; everything else (names, comments, folding) as it was.
    pub value: Vec<u8>,
}

/// Parses an address-list field value (To, Cc, From, ...) and qualifies its addresses;
/// `None` if it cannot be parsed.
pub fn rewrite_list(value: &[u8], settings: &Settings) -> Option<AddressList> {
    let (found, commas) = parse_list(value)?;
    let mut edits: Vec<(usize, usize, Vec<u8>)> =
        commas.into_iter().map(|p| (p, p, b",".to_vec())).collect();
    let mut addresses = Vec::with_capacity(found.len());
    for f in &found {
        let q = qualify_tokens(value, &f.tokens, settings);
        if q.changed {
            edits.push((f.start, f.end, q.header));
        }
        addresses.push(q.envelope);
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = Vec::with_capacity(value.len() + 32 * edits.len());
    let mut pos = 0;
    for (start, end, text) in edits {
        out.extend_from_slice(&value[pos..start]);
        out.extend_from_slice(&text);
        pos = end;
    }
    out.extend_from_slice(&value[pos..]);
    Some(AddressList {
        addresses,
        value: out,
    })
}

fn strip_angle(arg: &[u8]) -> &[u8] {
    arg.strip_prefix(b"<")
        .and_then(|a| a.strip_suffix(b">"))
        .unwrap_or(arg)
}

/// Qualifies an address given on the command line. It is taken literally (no quoting or
/// comments): the part after the last `@` is the host; `<...>` around it is dropped.
/// `None` for an empty address, an empty box, or control characters.
pub fn qualify_argument(arg: &[u8], settings: &Settings) -> Option<Vec<u8>> {
    let arg = strip_angle(arg);
    if arg.is_empty() || arg.iter().any(|&b| b < 32 || b == 127) {
        return None;
    }
    let (local, host) = match arg.iter().rposition(|&b| b == b'@') {
        Some(at) => (&arg[..at], Some(&arg[at + 1..])),
        None => (arg, None),
    };
    if local.is_empty() {
        return None;
    }
    let host = host.map(|h| h.strip_suffix(b".").unwrap_or(h));
    let host = qualify_host(host, settings);
    Some([local, b"@", &host].concat())
}

/// Qualifies an envelope sender given with `-f`: like a recipient, except that an empty
/// sender or `<>` is the null sender.
pub fn qualify_sender(arg: &[u8], settings: &Settings) -> Option<Vec<u8>> {
    if strip_angle(arg).is_empty() {
        return Some(Vec::new());
    }
    qualify_argument(arg, settings)
}

pub(crate) use rqmail_address::is_atext;

/// A box name as written in a header: as it is if it is a dot-atom, else quoted
/// ([`rqmail_address::quote_local`]).
pub fn quote_local(local: &str) -> String {
    // Lossless: quoting adds and replaces only ASCII bytes, so UTF-8 stays UTF-8.
    String::from_utf8_lossy(&rqmail_address::quote_local(local.as_bytes())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            default_host: "mail".into(),
            default_domain: "example.com".into(),
            plus_domain: "plus.example".into(),
            id_host: "id.example.com".into(),
        }
    }

    /// The qualified addresses and the rewritten value of a list.
    fn list(value: &str) -> (Vec<String>, String) {
        let l = rewrite_list(value.as_bytes(), &settings()).expect("parses");
        (
            l.addresses
                .into_iter()
                .map(|a| String::from_utf8(a).unwrap())
                .collect(),
            String::from_utf8(l.value).unwrap(),
        )
    }

    #[test]
    fn qualified_addresses_are_left_exactly_as_written() {
        let v =
            " Joe User <joe@example.org>, x@y.z (comment),\n  \"Doe, Jane\" <jane@example.net>\n";
        let (addrs, value) = list(v);
        assert_eq!(addrs, ["joe@example.org", "x@y.z", "jane@example.net"]);
        assert_eq!(value, v);
    }

    #[test]
    fn box_without_host_gets_defaulthost_and_defaultdomain() {
        let (addrs, value) = list(" bob, Carol <carol>\n");
        assert_eq!(addrs, ["bob@mail.example.com", "carol@mail.example.com"]);
        assert_eq!(
            value,
            " bob@mail.example.com, Carol <carol@mail.example.com>\n"
        );
    }

    #[test]
    fn host_without_dot_gets_defaultdomain_and_plus_gets_plusdomain() {
        let (addrs, _) = list(" a@box, b@mammoth.cs+, c@[10.0.0.1], d@host+\n");
        assert_eq!(
            addrs,
            [
                "a@box.example.com",
                "b@mammoth.cs.plus.example",
                "c@[10.0.0.1]",
                "d@host.plus.example"
            ]
        );
    }

    #[test]
    fn groups_contribute_their_members() {
        let (addrs, value) = list(" friends: a@b.c, d@e.f;, g@h.i\n");
        assert_eq!(addrs, ["a@b.c", "d@e.f", "g@h.i"]);
        assert_eq!(value, " friends: a@b.c, d@e.f;, g@h.i\n");
        assert_eq!(list(" undisclosed-recipients:;\n").0, Vec::<String>::new());
        assert_eq!(
            list(" recipient list not shown: ;\n").0,
            Vec::<String>::new()
        );
        assert_eq!(list(" undisclosed-recipients:\n").0, Vec::<String>::new());
    }

    #[test]
    fn quoted_boxes_are_unquoted_in_the_envelope() {
        let (addrs, value) = list(" \"john doe\"@example.com, \"a\\\"b\", Name <\"x y\">\n");
        assert_eq!(
            addrs,
            [
                "john doe@example.com",
                "a\"b@mail.example.com",
                "x y@mail.example.com"
            ]
        );
        // Only the changed addresses are rewritten, quoting kept.
        assert_eq!(
            value,
            " \"john doe\"@example.com, \"a\\\"b\"@mail.example.com, Name <\"x y\"@mail.example.com>\n"
        );
    }

    #[test]
    fn comments_are_ignored_and_kept() {
        let (addrs, value) = list(" (first) bob (the builder), (x) <c@d.e> (y)\n");
        assert_eq!(addrs, ["bob@mail.example.com", "c@d.e"]);
        assert_eq!(
            value,
            " (first) bob@mail.example.com (the builder), (x) <c@d.e> (y)\n"
        );
    }

    #[test]
    fn space_separated_boxes_become_separate_addresses() {
        let (addrs, value) = list(" djb fred\n");
        assert_eq!(addrs, ["djb@mail.example.com", "fred@mail.example.com"]);
        assert_eq!(value, " djb@mail.example.com, fred@mail.example.com\n");
        let (addrs, value) = list(" <a@b.c> <d@e.f>\n");
        assert_eq!(addrs, ["a@b.c", "d@e.f"]);
        assert_eq!(value, " <a@b.c>, <d@e.f>\n");
    }

    #[test]
    fn routes_trailing_dots_and_empty_addresses() {
        let (addrs, value) = list(" <@r1,@r2:joe@x.y>, <>, a@b.c., d@, <@>\n");
        assert_eq!(addrs, ["joe@x.y", "", "a@b.c", "d@mail.example.com", ""]);
        assert_eq!(value, " <joe@x.y>, <>, a@b.c, d@mail.example.com, <>\n");
        // The VERP placeholder is not touched.
        assert_eq!(list(" a-@b.c-@[]\n").0, ["a-@b.c-@[]"]);
    }

    #[test]
    fn folded_values_keep_their_folding() {
        let (addrs, value) = list(" a,\n\tb@c.d,\n  e\n");
        assert_eq!(addrs, ["a@mail.example.com", "b@c.d", "e@mail.example.com"]);
        assert_eq!(
            value,
            " a@mail.example.com,\n\tb@c.d,\n  e@mail.example.com\n"
        );
    }

    #[test]
    fn unparsable_lists_are_reported() {
        for bad in [
            " \"unterminated <a@b>\n",
            " (open comment a@b\n",
            " a@b)\n",
            " <a@b\n",
            " a@b>\n",
            " g: h: a@b;\n",
            " [1.2.3.4\n",
        ] {
            assert!(
                rewrite_list(bad.as_bytes(), &settings()).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn empty_lists_have_no_addresses() {
        assert_eq!(list("\n"), (vec![], "\n".to_string()));
        assert_eq!(list(" ,, \n").0, Vec::<String>::new());
    }

    #[test]
    fn eight_bit_addresses_pass_through() {
        let (addrs, _) = list(" J\u{f6}rg <j\u{f6}rg@b\u{fc}cher.example>\n");
        assert_eq!(addrs, ["j\u{f6}rg@b\u{fc}cher.example"]);
    }

    #[test]
    fn command_line_addresses_are_taken_literally() {
        let s = settings();
        let q = |a: &str| qualify_argument(a.as_bytes(), &s).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(q("bob").as_deref(), Some("bob@mail.example.com"));
        assert_eq!(q("bob@box").as_deref(), Some("bob@box.example.com"));
        assert_eq!(q("bob@x.org").as_deref(), Some("bob@x.org"));
        assert_eq!(q("<bob@x.org>").as_deref(), Some("bob@x.org"));
        assert_eq!(q("bob@host+").as_deref(), Some("bob@host.plus.example"));
        assert_eq!(q("bob@").as_deref(), Some("bob@mail.example.com"));
        assert_eq!(q("bob smith@x.org").as_deref(), Some("bob smith@x.org"));
        assert_eq!(q("a@b@x.org").as_deref(), Some("a@b@x.org"));
        assert_eq!(q(""), None);
        assert_eq!(q("@x.org"), None);
        assert_eq!(q("bob\n@x.org"), None);
    }

    #[test]
    fn empty_sender_is_the_null_sender() {
        let s = settings();
        assert_eq!(qualify_sender(b"", &s), Some(Vec::new()));
        assert_eq!(qualify_sender(b"<>", &s), Some(Vec::new()));
        assert_eq!(
            qualify_sender(b"joe", &s),
            Some(b"joe@mail.example.com".to_vec())
        );
    }

    #[test]
    fn dotless_defaulthost_is_qualified_too() {
        let s = settings();
        assert_eq!(qualify_host(None, &s), b"mail.example.com");
        let plus = Settings {
            default_host: "here+".into(),
            ..settings()
        };
        assert_eq!(qualify_host(None, &plus), b"here.plus.example");
    }

    #[test]
    fn boxes_are_quoted_only_when_needed() {
        assert_eq!(quote_local("joe.user"), "joe.user");
        assert_eq!(quote_local("joe user"), "\"joe user\"");
        assert_eq!(quote_local("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote_local(".x"), "\".x\"");
    }
}
