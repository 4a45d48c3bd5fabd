//! Addresses as header fields (`To:`, `From:`, `Return-Path:`) and SMTP paths write them:
//! the local part as it is where it is a dot-atom, else a quoted-string.
//!
//! The envelope holds addresses unquoted (`a b@x`), as qmail's queue does; whatever writes
//! one where a reader parses it goes through [`quote`]. RFC 5322 §3.4.1: `local-part =
//! dot-atom / quoted-string`; RFC 5321 §4.1.2 has the same two forms (`Dot-string` /
//! `Quoted-string`), with the same atom characters and escapes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// RFC 5322 `atext`, plus every 8-bit byte: RFC 6532 (and RFC 6531 for SMTP) lets UTF-8
/// stand in atoms, and quoting would not make other 8-bit bytes any more legal.
pub fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// True if `local` is a dot-atom: atoms of [`is_atext`] bytes joined by single dots, with
/// no dot at either end.
pub fn is_dot_atom(local: &[u8]) -> bool {
    !local.is_empty()
        && local
            .split(|&b| b == b'.')
            .all(|atom| !atom.is_empty() && atom.iter().all(|&b| is_atext(b)))
}

/// A byte as it may be written inside a header line: CR and LF would end the line (or
/// the SMTP command), so they become `_`, as qmail-local writes them in its header lines.
fn line_safe(b: u8) -> u8 {
    if b == b'\r' || b == b'\n' { b'_' } else { b }
}

/// The local part as written: as it is if it is a dot-atom, else in double quotes with
/// `"` and `\` escaped by a backslash (RFC 5322 `quoted-pair`). The empty local part is
/// `""`.
pub fn quote_local(local: &[u8]) -> Vec<u8> {
    if is_dot_atom(local) {
        return local.to_vec();
    }
    let mut out = Vec::with_capacity(local.len() + 2);
    out.push(b'"');
    for &b in local {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(line_safe(b));
    }
    out.push(b'"');
    out
}

/// `address` as a header field or an SMTP path writes it: the local part (everything
/// before the last `@`, or the whole address without one) through [`quote_local`], the
/// domain as it is. The empty address (the null sender, written `<>`) stays empty.
pub fn quote(address: &[u8]) -> Vec<u8> {
    if address.is_empty() {
        return Vec::new();
    }
    let (local, domain) = match address.iter().rposition(|&b| b == b'@') {
        Some(at) => (&address[..at], &address[at..]),
        None => (address, &b""[..]),
    };
    let mut out = quote_local(local);
    out.extend(domain.iter().map(|&b| line_safe(b)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_atoms_are_written_as_they_are() {
        assert_eq!(quote(b"bob@example.com"), b"bob@example.com");
        assert_eq!(quote(b"a.b+c=d@x"), b"a.b+c=d@x");
        assert_eq!(quote("j\u{f6}rg@x".as_bytes()), "j\u{f6}rg@x".as_bytes());
        assert_eq!(quote(b"caf\xe9@x"), b"caf\xe9@x");
        assert_eq!(quote(b""), b"");
        assert_eq!(quote(b"postmaster"), b"postmaster");
    }

    #[test]
    fn other_local_parts_are_quoted_with_quotes_and_backslashes_escaped() {
        assert_eq!(quote(b"a b@remote.test"), b"\"a b\"@remote.test");
        assert_eq!(quote(b"a..b@x"), b"\"a..b\"@x");
        assert_eq!(quote(b".a@x"), b"\".a\"@x");
        assert_eq!(quote(b"a.@x"), b"\"a.\"@x");
        assert_eq!(quote(b"@x"), b"\"\"@x");
        assert_eq!(quote(b"a\"q\\@x"), b"\"a\\\"q\\\\\"@x");
        assert_eq!(quote(b"a@b@x"), b"\"a@b\"@x");
        assert_eq!(quote(b"MAILER DAEMON"), b"\"MAILER DAEMON\"");
        assert_eq!(quote_local(b"a(b)"), b"\"a(b)\"");
    }

    #[test]
    fn line_ends_never_reach_the_output() {
        assert_eq!(quote(b"a\r\nTo: x@y@h\nz"), b"\"a__To: x@y\"@h_z");
    }
}
