//! tcpserver's side of the rules: the keys it tries for a client, first hit wins, and what
//! the hit's data tells it (deny, variables to set).

use crate::cdb::Cdb;
use crate::parse::Action;
use std::io;
use std::net::{IpAddr, Ipv6Addr};

/// What tcpserver knows about a client when it consults the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client<'a> {
    /// TCPREMOTEIP as tcpserver sets it (see [`ip_text`]).
    pub ip: &'a [u8],
    /// TCPREMOTEHOST, if known (lowercase).
    pub host: Option<&'a [u8]>,
    /// TCPREMOTEINFO, if known.
    pub info: Option<&'a [u8]>,
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

impl Client<'_> {
    /// The keys tcpserver looks up, in its order: `INFO@IP`, `INFO@=HOST`, `IP`, `=HOST`,
    /// prefixes of IP ending in `.` or `:` (longest first), `=` + suffixes of HOST starting
    /// at a `.` (longest first), `=`, and the empty key.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let ip = self.ip;
        let mut keys = Vec::new();
        if let Some(info) = self.info {
            keys.push(join(&[info, b"@", ip]));
            if let Some(host) = self.host {
                keys.push(join(&[info, b"@=", host]));
            }
        }
        keys.push(ip.to_vec());
        if let Some(host) = self.host {
            keys.push(join(&[b"=", host]));
        }
        // IPv6 prefixes end in `:` as in the IPv6 patch; an IPv4 address has no `:`. The
        // whole IP was tried above, so the prefixes start one byte shorter.
        for len in (1..ip.len()).rev() {
            if matches!(ip[len - 1], b'.' | b':') {
                keys.push(ip[..len].to_vec());
            }
        }
        if let Some(host) = self.host {
            for (i, &b) in host.iter().enumerate() {
                if b == b'.' {
                    keys.push(join(&[b"=", &host[i..]]));
                }
            }
            keys.push(b"=".to_vec());
        }
        keys.push(Vec::new());
        keys
    }
}

/// What the rules say about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The key that matched; `None` if no rule applied (then the connection is allowed).
    pub key: Option<Vec<u8>>,
    /// Allow or deny.
    pub action: Action,
    /// Variables to set for the program, in order: (name, value).
    pub vars: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Decision {
    /// No rule applied: allowed, nothing set.
    pub fn no_rule() -> Decision {
        Decision {
            key: None,
            action: Action::Allow,
            vars: Vec::new(),
        }
    }

    /// Reads a record's data as tcpserver does: NUL-terminated entries, `D` denies, `+VAR=value`
    /// sets (split at the first `=`; without one it is ignored), anything else is ignored,
    /// and so is a last entry without its NUL.
    pub fn from_data(key: Vec<u8>, data: &[u8]) -> Decision {
        let mut decision = Decision {
            key: Some(key),
            action: Action::Allow,
            vars: Vec::new(),
        };
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == 0) {
            let entry = &rest[..end];
            rest = &rest[end + 1..];
            match entry.split_first() {
                Some((b'D', _)) => decision.action = Action::Deny,
                Some((b'+', var)) => {
                    if let Some(equals) = var.iter().position(|&b| b == b'=') {
                        decision
                            .vars
                            .push((var[..equals].to_vec(), var[equals + 1..].to_vec()));
                    }
                }
                _ => {}
            }
        }
        decision
    }
}

/// Looks `client` up in `cdb` in tcpserver's order; the first key found decides.
pub fn lookup(cdb: &Cdb, client: &Client<'_>) -> io::Result<Decision> {
    for key in client.keys() {
        if let Some(data) = cdb.get(&key)? {
            return Ok(Decision::from_data(key, &data));
        }
    }
    Ok(Decision::no_rule())
}

/// TCPREMOTEIP (and TCPLOCALIP) text for an address: dotted decimal for IPv4 and for
/// IPv4-mapped IPv6 (the IPv6 patch treats those as IPv4 clients), else IPv6 as
/// inet_ntop prints it.
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format_ipv6(&v6),
        },
    }
}

/// An IPv6 address exactly as glibc's inet_ntop writes it: lowercase hex without leading
/// zeros, the first longest run of two or more zero groups as `::`, and a dotted IPv4 tail
/// for `::a.b.c.d` and `::ffff:a.b.c.d`.
pub fn format_ipv6(ip: &Ipv6Addr) -> String {
    let words = ip.segments();
    // The first longest run of zero words, if at least two long.
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            let len = i - start;
            if len >= 2 && best.is_none_or(|(_, best_len)| len > best_len) {
                best = Some((start, len));
            }
        } else {
            i += 1;
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if let Some((start, len)) = best
            && i == start
        {
            out.push(':');
            i += len;
            if i == 8 {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6
            && let Some((0, len)) = best
            && (len == 6 || (len == 5 && words[5] == 0xffff))
        {
            let o = ip.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            break;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(keys: Vec<Vec<u8>>) -> Vec<String> {
        keys.into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect()
    }

    #[test]
    fn ipv4_client_without_host_tries_ip_prefixes_then_default() {
        let client = Client {
            ip: b"1.2.3.4",
            host: None,
            info: None,
        };
        assert_eq!(
            strings(client.keys()),
            ["1.2.3.4", "1.2.3.", "1.2.", "1.", ""]
        );
    }

    #[test]
    fn full_lookup_order_with_info_and_host() {
        let client = Client {
            ip: b"1.2.3.4",
            host: Some(b"a.b.c"),
            info: Some(b"joe"),
        };
        assert_eq!(
            strings(client.keys()),
            [
                "joe@1.2.3.4",
                "joe@=a.b.c",
                "1.2.3.4",
                "=a.b.c",
                "1.2.3.",
                "1.2.",
                "1.",
                "=.b.c",
                "=.c",
                "=",
                ""
            ]
        );
    }

    #[test]
    fn ipv6_prefixes_end_in_colons() {
        let client = Client {
            ip: b"2001:db8::1",
            host: None,
            info: None,
        };
        assert_eq!(
            strings(client.keys()),
            ["2001:db8::1", "2001:db8::", "2001:db8:", "2001:", ""]
        );
    }

    #[test]
    fn data_entries_set_deny_and_variables() {
        let d = Decision::from_data(b"k".to_vec(), b"D\0+A=1\0+B=x=y\0+NOEQUALS\0-C\0\0+D=");
        assert_eq!(d.action, Action::Deny);
        assert_eq!(
            d.vars,
            vec![
                (b"A".to_vec(), b"1".to_vec()),
                (b"B".to_vec(), b"x=y".to_vec())
            ]
        );
        let d = Decision::from_data(Vec::new(), b"");
        assert_eq!(d.action, Action::Allow);
        assert!(d.vars.is_empty());
    }

    #[test]
    fn inet_ntop_forms() {
        let cases = [
            ("::", "::"),
            ("::1", "::1"),
            ("2001:db8::1", "2001:db8::1"),
            (
                "2001:0db8:0000:0000:0001:0000:0000:0001",
                "2001:db8::1:0:0:1",
            ),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("fe80::", "fe80::"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("ABCD:EF01::", "abcd:ef01::"),
        ];
        for (input, want) in cases {
            let ip: Ipv6Addr = input.parse().unwrap();
            assert_eq!(format_ipv6(&ip), want, "{input}");
        }
    }

    #[test]
    fn mapped_addresses_are_ipv4_clients() {
        let ip: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(ip_text(ip), "127.0.0.1");
        let ip: IpAddr = "::1".parse().unwrap();
        assert_eq!(ip_text(ip), "::1");
    }
}
