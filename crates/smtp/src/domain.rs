//! Which domains an address may carry: the ones SMTP can write after the `@` of a path
//! unquoted, so that no quote, space, `<` or `>` in one can end a path or add a parameter.

/// True if `domain` is a domain rqmail passes on (RFC 5321 §4.1.2 `Domain` or
/// `address-literal`, a little wider, never with a byte that could end a path):
///
/// - labels joined by single dots, none empty, each made of ASCII letters, digits, `-`
///   and `_` (seen in real host names, harmless), and bytes from 0x80 up (UTF-8 labels,
///   RFC 6531 §3.3, sent only with SMTPUTF8); or
/// - an address literal, `[` letters, digits, `.`, `:` and `-` `]`: IPv4, `IPv6:` and
///   the general `tag:content` form with such content. `[]` is qmail's own placeholder
///   (`#@[]`, the double-bounce sender; `-@[]`, VERP) and is let through.
///
/// Quotes, spaces, `<`, `>`, `\`, `,`, control bytes and the like are never in a domain:
/// `a@"x> NOTIFY=SUCCESS"` unquotes to the domain `x> NOTIFY=SUCCESS`, which, written out
/// by an SMTP client, would give the next server a NOTIFY parameter nobody asked for.
pub fn is_valid(domain: &[u8]) -> bool {
    if let Some(inner) = domain.strip_prefix(b"[").and_then(|d| d.strip_suffix(b"]")) {
        return inner
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b".:-".contains(&b));
    }
    !domain.is_empty()
        && domain.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80)
        })
}

/// The domain of an address as rqmail splits it: after the last `@`; `None` without one.
pub fn of(address: &[u8]) -> Option<&[u8]> {
    address
        .iter()
        .rposition(|&b| b == b'@')
        .map(|at| &address[at + 1..])
}

/// True if the address has no domain (`postmaster`, the null sender) or a valid one.
/// The local part may hold anything: SMTP can quote it (RFC 5321 §4.1.2 `Quoted-string`).
pub fn address_is_valid(address: &[u8]) -> bool {
    of(address).is_none_or(is_valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_address_literals_are_domains() {
        for good in [
            &b"example.com"[..],
            b"EXAMPLE.com",
            b"localhost",
            b"mail-1.example.com",
            b"_dmarc.example.com",
            b"xn--bcher-kva.example",
            "b\u{fc}cher.example".as_bytes(),
            b"[192.0.2.1]",
            b"[IPv6:2001:db8::1]",
            b"[IPv6:::ffff:192.0.2.1]",
            b"[]",
        ] {
            assert!(is_valid(good), "{}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn quotes_spaces_angles_and_controls_are_never_in_a_domain() {
        for bad in [
            &b"x> NOTIFY=SUCCESS"[..],
            b"x>",
            b"x<y",
            b"\"x\"",
            b"x y",
            b"x\r\nRSET",
            b"x\0",
            b"x\\y",
            b"x,y",
            b"",
            b".x",
            b"x.",
            b"x..y",
            b"[1.2.3.4> NOTIFY=SUCCESS]",
            b"[\"x\"]",
            b"[1.2.3.4",
        ] {
            assert!(!is_valid(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_the_domain_of_an_address_is_checked() {
        assert!(address_is_valid(b"a@example.com"));
        assert!(address_is_valid(b"postmaster"));
        assert!(address_is_valid(b""));
        assert!(address_is_valid(b"a b> NOTIFY=x\"@example.com"));
        assert!(address_is_valid(b"#@[]"));
        assert!(!address_is_valid(b"a@x> NOTIFY=SUCCESS"));
        assert!(!address_is_valid(b"a@"));
        assert_eq!(of(b"a@b@c"), Some(&b"c"[..]));
    }
}
