//! `control/smtproutes`: artificial routes that send a domain's mail to a fixed relay
//! instead of its MX hosts, keyed by domain, `.suffix` or the empty default key.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::literal;

/// The SMTP port, used when a route names none.
pub const SMTP_PORT: u16 = 25;

/// The host a route sends mail to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayHost {
    /// An address written as `1.2.3.4`, `[1.2.3.4]`, `[2001:db8::1]` or `[IPv6:2001:db8::1]`.
    Ip(IpAddr),
    /// A host name, resolved through AAAA and A records (never MX).
    Name(String),
}

/// What `smtproutes` says for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An empty relay (`.af.mil:`): look up MX records as if there were no route.
    Mx,
    /// Connect to this relay as if it were the domain's only MX.
    Relay {
        /// The relay host.
        host: RelayHost,
        /// The port from the route, else 25.
        port: u16,
    },
}

/// A line of `smtproutes` that cannot be used; delivery waits until it is fixed rather
/// than going somewhere the admin did not mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The offending entry, as written.
    pub line: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "control/smtproutes: {}: {}", self.reason, self.line)
    }
}

impl std::error::Error for ParseError {}

/// The parsed `smtproutes` file.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    by_key: HashMap<String, Route>,
}

impl Routes {
    /// Parses the entries of `smtproutes` (as `Control::list` returns them: comments and
    /// blank lines already gone). As in qmail, a line without `:` is ignored and a later
    /// line for the same key replaces an earlier one. Keys match case-insensitively.
    ///
    /// Modern extensions: a bracketed IPv6 relay (`[2001:db8::1]:2525`) and a bracketed
    /// IPv6 key. The auth patch's `|user|password` tail is accepted and ignored here.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Result<Routes, ParseError> {
        let mut by_key = HashMap::new();
        for line in lines {
            let line = line.as_ref();
            let Some((key, value)) = split_key(line) else {
                continue;
            };
            let route = parse_value(value).map_err(|reason| ParseError {
                line: line.to_string(),
                reason,
            })?;
            by_key.insert(key.to_ascii_lowercase(), route);
        }
        Ok(Routes { by_key })
    }

    /// True if the file has no routes at all.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The route for `domain`: qmail tries the whole domain, then each suffix that starts
    /// at a dot (`.af.mil`, `.mil`), then the empty key; the first key present wins.
    pub fn lookup(&self, domain: &str) -> Option<&Route> {
        let domain = domain.to_ascii_lowercase();
        if let Some(route) = self.by_key.get(&domain) {
            return Some(route);
        }
        for (i, _) in domain.match_indices('.') {
            if let Some(route) = self.by_key.get(&domain[i..]) {
                return Some(route);
            }
        }
        self.by_key.get("")
    }
}

/// Splits `key:value` at the first colon, or after the closing bracket of a bracketed key
/// (an IPv6 literal domain contains colons).
fn split_key(line: &str) -> Option<(&str, &str)> {
    if line.starts_with('[') {
        let close = line.find(']')?;
        let rest = &line[close + 1..];
        return Some((&line[..close + 1], rest.strip_prefix(':')?));
    }
    line.split_once(':')
}

fn parse_value(value: &str) -> Result<Route, &'static str> {
    // The auth patch appends `|user|password`; the relay and port come before it.
    let value = value.split('|').next().unwrap_or("");
    if value.is_empty() {
        return Ok(Route::Mx);
    }
    let (host, port) = if value.starts_with('[') {
        let close = value.find(']').ok_or("unclosed [ in relay")?;
        let rest = &value[close + 1..];
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':').ok_or("text after ] in relay")?),
        };
        (&value[..close + 1], port)
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    let port = match port {
        None => SMTP_PORT,
        Some(text) => match text.parse::<u16>() {
            Ok(p) if p != 0 && text.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err("bad port"),
        },
    };
    if host.is_empty() {
        return Err("port without relay");
    }
    let host = if let Some(ip) = literal::parse(host) {
        RelayHost::Ip(ip)
    } else if host.starts_with('[') {
        return Err("bad address literal in relay");
    } else if host.contains(|c: char| c.is_whitespace() || c == '[' || c == ']') {
        return Err("bad relay host name");
    } else {
        RelayHost::Name(host.to_string())
    };
    Ok(Route::Relay { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(name: &str, port: u16) -> Route {
        Route::Relay {
            host: RelayHost::Name(name.to_string()),
            port,
        }
    }

    fn ip_relay(ip: &str, port: u16) -> Route {
        Route::Relay {
            host: RelayHost::Ip(ip.parse().unwrap()),
            port,
        }
    }

    #[test]
    fn follows_the_example_from_the_qmail_remote_manual() {
        let routes = Routes::parse(&[
            "inside.af.mil:firewall.af.mil:26",
            ".af.mil:",
            ":heaven.af.mil",
        ])
        .unwrap();
        assert_eq!(
            routes.lookup("inside.af.mil"),
            Some(&relay("firewall.af.mil", 26))
        );
        assert_eq!(routes.lookup("other.af.mil"), Some(&Route::Mx));
        assert_eq!(routes.lookup("af.mil"), Some(&relay("heaven.af.mil", 25)));
        assert_eq!(
            routes.lookup("example.com"),
            Some(&relay("heaven.af.mil", 25))
        );
    }

    #[test]
    fn tries_the_domain_then_each_dot_suffix_then_the_default() {
        let routes = Routes::parse(&[".c:c-relay", ".b.c:bc-relay", "a.b.c:abc-relay"]).unwrap();
        assert_eq!(routes.lookup("a.b.c"), Some(&relay("abc-relay", 25)));
        // `a.b.c` has no leading dot, so it does not cover x.a.b.c.
        assert_eq!(routes.lookup("x.a.b.c"), Some(&relay("bc-relay", 25)));
        assert_eq!(routes.lookup("z.b.c"), Some(&relay("bc-relay", 25)));
        assert_eq!(routes.lookup("b.c"), Some(&relay("c-relay", 25)));
        // A key without a leading dot matches only that exact domain.
        let routes = Routes::parse(&["b.c:bc-relay"]).unwrap();
        assert_eq!(routes.lookup("a.b.c"), None);
        assert_eq!(routes.lookup("xb.c"), None);
    }

    #[test]
    fn matches_keys_case_insensitively() {
        let routes = Routes::parse(&["Example.COM:Relay.Example.net"]).unwrap();
        assert_eq!(
            routes.lookup("EXAMPLE.com"),
            Some(&relay("Relay.Example.net", 25))
        );
    }

    #[test]
    fn later_lines_replace_earlier_ones_and_lines_without_colon_are_ignored() {
        let routes = Routes::parse(&["example.com:one", "nonsense", "example.com:two"]).unwrap();
        assert_eq!(routes.lookup("example.com"), Some(&relay("two", 25)));
        assert_eq!(routes.lookup("nonsense"), None);
    }

    #[test]
    fn reads_ip_relays_bare_bracketed_and_ipv6_with_ports() {
        let routes = Routes::parse(&[
            "a.test:192.0.2.1",
            "b.test:[192.0.2.2]:2525",
            "c.test:[2001:db8::1]:26",
            "d.test:[IPv6:2001:db8::2]",
            "e.test:192.0.2.3:587",
        ])
        .unwrap();
        assert_eq!(routes.lookup("a.test"), Some(&ip_relay("192.0.2.1", 25)));
        assert_eq!(routes.lookup("b.test"), Some(&ip_relay("192.0.2.2", 2525)));
        assert_eq!(routes.lookup("c.test"), Some(&ip_relay("2001:db8::1", 26)));
        assert_eq!(routes.lookup("d.test"), Some(&ip_relay("2001:db8::2", 25)));
        assert_eq!(routes.lookup("e.test"), Some(&ip_relay("192.0.2.3", 587)));
    }

    #[test]
    fn ignores_the_auth_patch_credentials() {
        let routes = Routes::parse(&["a.test:relay.test:587|user|secret"]).unwrap();
        assert_eq!(routes.lookup("a.test"), Some(&relay("relay.test", 587)));
    }

    #[test]
    fn accepts_bracketed_ip_literal_keys() {
        let routes =
            Routes::parse(&["[IPv6:2001:db8::9]:relay.test", "[192.0.2.9]:other"]).unwrap();
        assert_eq!(
            routes.lookup("[ipv6:2001:db8::9]"),
            Some(&relay("relay.test", 25))
        );
        assert_eq!(routes.lookup("[192.0.2.9]"), Some(&relay("other", 25)));
    }

    #[test]
    fn refuses_bad_ports_and_literals() {
        for bad in [
            "a.test:relay:abc",
            "a.test:relay:0",
            "a.test:relay:65536",
            "a.test:relay:+25",
            "a.test::25",
            "a.test:[2001:db8::1",
            "a.test:[2001:db8::1]x",
            "a.test:[not-an-ip]",
        ] {
            assert!(Routes::parse(&[bad]).is_err(), "{bad} should be refused");
        }
    }
}
