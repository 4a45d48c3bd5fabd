//! IP address literals as recipient domains and relays: `1.2.3.4`, `[1.2.3.4]`,
//! `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3) and, leniently, `[2001:db8::1]`.

use std::net::{IpAddr, Ipv4Addr};

/// The address a literal names, or `None` if `text` is not a literal (then it is a name).
/// A bare dotted quad counts, as in qmail; a bare IPv6 address does not, because a domain
/// cannot contain `:`.
pub fn parse(text: &str) -> Option<IpAddr> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let inner = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => {
                return inner[5..]
                    .parse::<std::net::Ipv6Addr>()
                    .ok()
                    .map(IpAddr::V6);
            }
            _ => inner,
        };
        return inner.parse::<IpAddr>().ok();
    }
    parse_dotted_quad(text).map(IpAddr::V4)
}

/// A strict dotted quad: four decimal numbers of at most three digits, each below 256.
/// (Rust's parser already refuses leading zeros, which some resolvers read as octal.)
fn parse_dotted_quad(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_bare_and_bracketed_ipv4() {
        assert_eq!(parse("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(parse("[192.0.2.1]"), Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn recognises_ipv6_with_or_without_the_tag() {
        let want: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse("[IPv6:2001:db8::1]"), Some(want));
        assert_eq!(parse("[ipv6:2001:DB8::1]"), Some(want));
        assert_eq!(parse("[2001:db8::1]"), Some(want));
    }

    #[test]
    fn treats_everything_else_as_a_name() {
        for name in [
            "example.com",
            "2001:db8::1",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "[example.com]",
            "[IPv6:192.0.2.1]",
            "[192.0.2.1",
            "01.2.3.4",
            "",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
    }
}
