//! The self-MX rule (qmail-remote): never deliver to this host or to a worse MX than it,
//! since that would loop; the host's own addresses come from its interfaces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Candidate, RouteError};

/// This host's addresses: every interface address (getifaddrs), plus `0.0.0.0` and `::`,
/// which connect to this host too, plus any listed in `control/moreipme` (for a host
/// behind NAT whose public address is on no interface), as qmail's moreipme patch does.
pub fn local_addresses(extra: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ];
    if let Ok(interfaces) = nix::ifaddrs::getifaddrs() {
        for interface in interfaces {
            let Some(address) = interface.address else {
                continue;
            };
            if let Some(v4) = address.as_sockaddr_in() {
                ips.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = address.as_sockaddr_in6() {
                ips.push(IpAddr::V6(v6.ip()));
            }
        }
    }
    ips.extend_from_slice(extra);
    ips.sort();
    ips.dedup();
    ips
}

/// Applies the rule to MX-derived candidates: if one of them is this host, let P be the
/// best (lowest) preference among such; keep only candidates strictly better than P.
/// None left means this host is a best-preference MX for a domain it does not treat as
/// local: permanent `(#5.4.6)`. An IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn apply(candidates: Vec<Candidate>, local: &[IpAddr]) -> Result<Vec<Candidate>, RouteError> {
    let is_local = |ip: IpAddr| local.iter().any(|l| l.to_canonical() == ip.to_canonical());
    let Some(mine) = candidates
        .iter()
        .filter(|c| is_local(c.addr.ip()))
        .map(|c| c.preference)
        .min()
    else {
        return Ok(candidates);
    };
    let kept: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| c.preference < mine)
        .collect();
    if kept.is_empty() {
        return Err(RouteError::Permanent(
            "Sorry. Although I'm listed as a best-preference MX or A for that host, \
             it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)"
                .to_string(),
        ));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn candidate(ip: &str, preference: u16) -> Candidate {
        Candidate {
            addr: SocketAddr::new(ip.parse().unwrap(), 25),
            host: format!("mx{preference}.test"),
            preference,
            routed: false,
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn addrs(list: &[Candidate]) -> Vec<String> {
        list.iter().map(|c| c.addr.ip().to_string()).collect()
    }

    #[test]
    fn leaves_candidates_alone_when_none_is_this_host() {
        let list = vec![candidate("192.0.2.1", 10), candidate("192.0.2.2", 20)];
        let kept = apply(list, &ips(&["192.0.2.99", "0.0.0.0"])).unwrap();
        assert_eq!(addrs(&kept), ["192.0.2.1", "192.0.2.2"]);
    }

    #[test]
    fn keeps_only_preferences_better_than_this_host() {
        let list = vec![
            candidate("2001:db8::1", 5),
            candidate("192.0.2.1", 5),
            candidate("192.0.2.2", 10),
            candidate("192.0.2.3", 10),
            candidate("192.0.2.4", 20),
        ];
        let kept = apply(list, &ips(&["192.0.2.3"])).unwrap();
        assert_eq!(addrs(&kept), ["2001:db8::1", "192.0.2.1"]);
    }

    #[test]
    fn uses_the_best_preference_at_which_this_host_appears() {
        let list = vec![
            candidate("192.0.2.1", 10),
            candidate("192.0.2.9", 20),
            candidate("192.0.2.2", 30),
            candidate("192.0.2.9", 40),
        ];
        let kept = apply(list, &ips(&["192.0.2.9"])).unwrap();
        assert_eq!(addrs(&kept), ["192.0.2.1"]);
    }

    #[test]
    fn refuses_as_ambiguous_mx_when_this_host_is_a_best_mx() {
        let list = vec![candidate("192.0.2.1", 10), candidate("2001:db8::7", 10)];
        let Err(RouteError::Permanent(text)) = apply(list, &ips(&["2001:db8::7"])) else {
            panic!("expected a permanent error");
        };
        assert!(text.ends_with("(#5.4.6)"), "{text}");
    }

    #[test]
    fn counts_the_unspecified_and_mapped_addresses_as_this_host() {
        let local = ips(&["0.0.0.0", "::", "127.0.0.1"]);
        assert!(apply(vec![candidate("0.0.0.0", 0)], &local).is_err());
        assert!(apply(vec![candidate("::", 0)], &local).is_err());
        assert!(apply(vec![candidate("::ffff:127.0.0.1", 0)], &local).is_err());
    }

    #[test]
    fn finds_loopback_among_the_interfaces() {
        let local = local_addresses(&ips(&["198.51.100.7"]));
        for want in ["0.0.0.0", "::", "127.0.0.1", "198.51.100.7"] {
            assert!(
                local.contains(&want.parse().unwrap()),
                "{want} in {local:?}"
            );
        }
    }
}
