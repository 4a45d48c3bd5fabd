//! Command lines: the verb, and the paths and ESMTP parameters of MAIL and RCPT.

/// RFC 5321 §4.5.3.1.4: a command line, CRLF included, is at most 512 octets.
pub const COMMAND_MAX: usize = 512;
/// RFC 4954 §4: an AUTH line with its initial response may be 12288 octets.
pub const AUTH_LINE_MAX: usize = 12288;
/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets.
pub const PATH_MAX: usize = 256;

/// Splits a command line (without its line end) into the upper-cased verb and the
/// argument, leading spaces skipped.
pub fn split(line: &[u8]) -> (String, &[u8]) {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let verb = String::from_utf8_lossy(&line[..end]).to_ascii_uppercase();
    let mut rest = &line[end..];
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    (verb, rest)
}

/// Why a MAIL or RCPT argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The `FROM:` / `TO:` keyword is missing.
    Keyword,
    /// No `<...>` path, or it is malformed.
    Syntax,
    /// The path is longer than RFC 5321 allows.
    TooLong,
    /// An ESMTP parameter is malformed.
    Parameter,
    /// The address (given, unquoted) has a domain that is not a host name or an address
    /// literal ([`crate::domain::is_valid`]).
    Domain(Vec<u8>),
}

/// A parsed MAIL FROM or RCPT TO argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The address, unquoted, source route removed; empty for `<>`.
    pub address: Vec<u8>,
    /// ESMTP parameters as (upper-cased keyword, value).
    pub params: Vec<(String, Option<String>)>,
}

impl Path {
    /// The value of a parameter, if given.
    pub fn param(&self, keyword: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(k, _)| k == keyword)
            .map(|(_, v)| v.as_deref())
    }
}

/// Parses `FROM:<path> params` (keyword `FROM`) or `TO:<path> params` (keyword `TO`).
/// Spaces after the colon are tolerated, as many clients send them.
pub fn parse_path(arg: &[u8], keyword: &str) -> Result<Path, PathError> {
    let colon = arg
        .iter()
        .position(|&b| b == b':')
        .ok_or(PathError::Keyword)?;
    if !arg[..colon].eq_ignore_ascii_case(keyword.as_bytes()) {
        return Err(PathError::Keyword);
    }
    let mut rest = &arg[colon + 1..];
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    if rest.first() != Some(&b'<') {
        return Err(PathError::Syntax);
    }
    // Find the closing '>' outside quotes.
    let mut quoted = false;
    let mut escaped = false;
    let mut close = None;
    for (i, &b) in rest.iter().enumerate().skip(1) {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => {
                close = Some(i);
                break;
            }
            _ => {}
        }
    }
    let close = close.ok_or(PathError::Syntax)?;
    let inner = &rest[1..close];
    if inner.len() > PATH_MAX {
        return Err(PathError::TooLong);
    }
    let path = strip_source_route(inner);
    let address = unquote(path)?;
    // Checked once unquoted, as the queue will hold it: `a@"x> y"` and `"a@x> y"` both
    // become `a@x> y`, whose domain (after the last `@`) is `x> y`. Only a local part
    // may be quoted (RFC 5321 §4.1.2), so `a@"x"y` is refused too, though `a@xy` is fine.
    if quoted_domain(path) || !crate::domain::address_is_valid(&address) {
        return Err(PathError::Domain(address));
    }
    let params = parse_params(&rest[close + 1..])?;
    Ok(Path { address, params })
}

/// Drops a source route: `@a,@b:user@host` -> `user@host`.
fn strip_source_route(path: &[u8]) -> &[u8] {
    if path.first() == Some(&b'@')
        && let Some(colon) = path.iter().position(|&b| b == b':')
    {
        return &path[colon + 1..];
    }
    path
}

/// True if a quote comes after the last `@` that is outside quotes (in the domain).
fn quoted_domain(path: &[u8]) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    let (mut in_domain, mut quote_in_domain) = (false, false);
    for &b in path {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
            quote_in_domain |= in_domain;
        } else if !quoted && b == b'@' {
            in_domain = true;
            quote_in_domain = false;
        }
    }
    quote_in_domain
}

/// Removes quoting from the local part: `"a b"@c` -> `a b@c`. Control characters and
/// unbalanced quotes are syntax errors; NUL can never be in a queued address.
fn unquote(path: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(path.len());
    let mut quoted = false;
    let mut escaped = false;
    for &b in path {
        if b < 32 || b == 127 {
            return Err(PathError::Syntax);
        }
        if escaped {
            out.push(b);
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if !quoted && (b == b' ' || b == b'<' || b == b'>') {
            return Err(PathError::Syntax);
        } else {
            out.push(b);
        }
    }
    if quoted || escaped {
        return Err(PathError::Syntax);
    }
    Ok(out)
}

fn parse_params(text: &[u8]) -> Result<Vec<(String, Option<String>)>, PathError> {
    let mut params = Vec::new();
    for word in text.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.iter().position(|&b| b == b'=') {
            Some(i) => (&word[..i], Some(&word[i + 1..])),
            None => (word, None),
        };
        if key.is_empty() || !key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
            return Err(PathError::Parameter);
        }
        let value = match value {
            Some(v) if v.iter().all(|&b| (33..=126).contains(&b)) => {
                Some(String::from_utf8_lossy(v).into_owned())
            }
            Some(_) => return Err(PathError::Parameter),
            None => None,
        };
        params.push((String::from_utf8_lossy(key).to_ascii_uppercase(), value));
    }
    Ok(params)
}

/// The domain of an address (after the last `@`), lower-cased; empty if none.
pub fn domain(address: &[u8]) -> String {
    match address.iter().rposition(|&b| b == b'@') {
        Some(i) => String::from_utf8_lossy(&address[i + 1..]).to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_verbs_case_insensitively() {
        assert_eq!(
            split(b"mail FROM:<a@b>"),
            ("MAIL".to_string(), &b"FROM:<a@b>"[..])
        );
        assert_eq!(split(b"QUIT"), ("QUIT".to_string(), &b""[..]));
        assert_eq!(split(b"EHLO   x"), ("EHLO".to_string(), &b"x"[..]));
    }

    #[test]
    fn parses_paths_and_parameters() {
        let p = parse_path(b"FROM:<a@b.c> SIZE=100 BODY=8BITMIME", "FROM").unwrap();
        assert_eq!(p.address, b"a@b.c");
        assert_eq!(p.param("SIZE"), Some(Some("100")));
        assert_eq!(p.param("BODY"), Some(Some("8BITMIME")));
        assert_eq!(parse_path(b"from: <>", "FROM").unwrap().address, b"");
        assert_eq!(
            parse_path(b"TO:<@r1,@r2:u@h>", "TO").unwrap().address,
            b"u@h"
        );
        assert_eq!(
            parse_path(b"TO:<\"a b>\"@h>", "TO").unwrap().address,
            b"a b>@h"
        );
        assert_eq!(
            parse_path(b"TO:<u@h> SMTPUTF8", "TO")
                .unwrap()
                .param("SMTPUTF8"),
            Some(None)
        );
        assert_eq!(parse_path(b"TO:u@h", "TO"), Err(PathError::Syntax));
        assert_eq!(parse_path(b"TO:<u@h", "TO"), Err(PathError::Syntax));
        assert_eq!(parse_path(b"FROM:<u@h>", "TO"), Err(PathError::Keyword));
        assert_eq!(parse_path(b"TO:<u\x01@h>", "TO"), Err(PathError::Syntax));
        assert_eq!(parse_path(b"TO:<u@h> =x", "TO"), Err(PathError::Parameter));
        assert_eq!(
            parse_path(b"TO:<a@\"x> NOTIFY=SUCCESS\">", "TO"),
            Err(PathError::Domain(b"a@x> NOTIFY=SUCCESS".to_vec()))
        );
        assert_eq!(
            parse_path(b"TO:<\"a@x> NOTIFY=SUCCESS\">", "TO"),
            Err(PathError::Domain(b"a@x> NOTIFY=SUCCESS".to_vec()))
        );
        assert_eq!(
            parse_path(b"TO:<\"a> NOTIFY=x\"@h>", "TO").unwrap().address,
            b"a> NOTIFY=x@h"
        );
        assert_eq!(
            parse_path(b"TO:<a@\"x\"y>", "TO"),
            Err(PathError::Domain(b"a@xy".to_vec()))
        );
        assert_eq!(
            parse_path(b"TO:<\"post master\">", "TO").unwrap().address,
            b"post master"
        );
        let long = [b"TO:<".to_vec(), vec![b'a'; 300], b">".to_vec()].concat();
        assert_eq!(parse_path(&long, "TO"), Err(PathError::TooLong));
        assert_eq!(domain(b"u@Example.COM"), "example.com");
    }
}
