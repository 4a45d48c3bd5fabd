//! Where rqmail-remote connects for a recipient domain, as qmail-remote decides it:
//! `smtproutes`, IP literals, MX then AAAA/A records, the self-MX rule, and the tcpto table.
//!
//! Only rqmail-remote links this crate: hickory-resolver is async, so [`candidates`] runs
//! it on a current-thread tokio runtime of its own and returns when the lookup is done.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dns;
pub mod literal;
pub mod routes;
pub mod selfmx;
pub mod tcpto;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::Name;
use rqmail_control::Control;
// qmail's `outsafe`: a name echoed in a report shows only printable ASCII.
use rqmail_log::printable_ascii as safe;

use dns::Answer;
use routes::{RelayHost, Route, Routes, SMTP_PORT};

/// At most this many MX hosts (the best ones) are resolved: a domain with hundreds of MX
/// records must not turn one delivery into hundreds of queries.
pub const MAX_MX_HOSTS: usize = 32;

/// One address to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The MX or relay name (ASCII, no final dot), for TLS name checks and logs; the
    /// address as text for an IP literal.
    pub host: String,
    /// The MX preference (0 for an implicit MX, a literal or a route).
    pub preference: u16,
    /// True if the address comes from `smtproutes`.
    pub routed: bool,
}

/// Why no candidates: qmail-style texts ending in an enhanced code, e.g.
/// "Sorry, I couldn't find any host named x. (#5.1.2)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Try again later (qmail-remote's `Z`).
    Temporary(String),
    /// Give up and bounce (qmail-remote's `D`).
    Permanent(String),
}

impl RouteError {
    /// The human text.
    pub fn text(&self) -> &str {
        match self {
            RouteError::Temporary(t) | RouteError::Permanent(t) => t,
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for RouteError {}

fn control_failure(detail: impl fmt::Display) -> RouteError {
    RouteError::Temporary(format!(
        "Unable to read control files: {}. (#4.3.0)",
        safe(&detail.to_string())
    ))
}

fn dns_failure(name: &str, reason: &str) -> RouteError {
    RouteError::Temporary(format!(
        "Sorry, I couldn't find any host by that name: DNS failed for {} ({}). (#4.1.2)",
        safe(name),
        safe(reason)
    ))
}

fn no_such_host(name: &str) -> RouteError {
    RouteError::Permanent(format!(
        "Sorry, I couldn't find any host named {}. (#5.1.2)",
        safe(name)
    ))
}

fn no_address() -> RouteError {
    RouteError::Permanent(
        "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)".to_string(),
    )
}

fn null_mx(domain: &str) -> RouteError {
    RouteError::Permanent(format!(
        "Sorry, {} does not accept mail: its MX record is null (RFC 7505). (#5.1.10)",
        safe(domain)
    ))
}

/// smtproutes, then an IP literal, then DNS (MX by preference, equal preferences shuffled;
/// implicit MX = the domain's own AAAA/A; null MX (RFC 7505) = Permanent "(#5.1.10)";
/// NXDOMAIN = Permanent "(#5.1.2)"; temporary DNS failure = Temporary "(#4.1.2)"; CNAMEs
/// followed by the resolver; IPv6 and IPv4 addresses both, IPv6 first for each host),
/// then the self-MX rule (an address of this host among the candidates: keep only better
/// preferences; none left = Permanent "(#5.4.6)" ambiguous MX) — not applied to
/// smtproutes relays. Port 25 unless a route says otherwise.
///
/// Reads `control/smtproutes`, `control/dnsservers` (see [`dns`]) and
/// `control/moreipme` (extra addresses of this host, one per line); an unreadable or
/// malformed one is a Temporary "(#4.3.0)".
pub fn candidates(home: &Path, domain: &str) -> Result<Vec<Candidate>, RouteError> {
    let control = Control::new(home);
    let routes = match control.list("smtproutes").map_err(control_failure)? {
        Some(lines) => Routes::parse(&lines).map_err(control_failure)?,
        None => Routes::default(),
    };
    match routes.lookup(domain) {
        Some(Route::Relay { host, port }) => return relay(&control, host, *port),
        Some(Route::Mx) | None => {}
    }
    let local = local_addresses(&control)?;
    if let Some(ip) = literal::parse(domain) {
        let only = Candidate {
            addr: SocketAddr::new(ip, SMTP_PORT),
            host: ip.to_string(),
            preference: 0,
            routed: false,
        };
        return selfmx::apply(vec![only], &local);
    }
    let name = dns::fqdn(domain).ok_or_else(|| no_such_host(domain))?;
    let servers = dns_servers(&control)?;
    let seed = shuffle_seed();
    let found = dns::run(&servers, |resolver| async move {
        mx_candidates(&resolver, name, domain, seed).await
    })
    .map_err(|reason| dns_failure(domain, &reason))??;
    selfmx::apply(found, &local)
}

/// A route's relay as the domain's only MX (preference 0): its addresses, or the IP given.
fn relay(control: &Control, host: &RelayHost, port: u16) -> Result<Vec<Candidate>, RouteError> {
    let name = match host {
        RelayHost::Ip(ip) => {
            return Ok(vec![Candidate {
                addr: SocketAddr::new(*ip, port),
                host: ip.to_string(),
                preference: 0,
                routed: true,
            }]);
        }
        RelayHost::Name(name) => name,
    };
    let fqdn = dns::fqdn(name).ok_or_else(|| no_such_host(name))?;
    let servers = dns_servers(control)?;
    let answer = dns::run(&servers, |resolver| async move {
        dns::addresses(&resolver, fqdn).await
    })
    .map_err(|reason| dns_failure(name, &reason))?;
    let host = name.trim_end_matches('.').to_ascii_lowercase();
    match answer {
        Answer::Found(ips) => Ok(ips
            .into_iter()
            .map(|ip| Candidate {
                addr: SocketAddr::new(ip, port),
                host: host.clone(),
                preference: 0,
                routed: true,
            })
            .collect()),
        Answer::NoSuchDomain => Err(no_such_host(name)),
        Answer::NoData => Err(no_address()),
        Answer::Temporary(reason) => Err(dns_failure(name, &reason)),
    }
}

fn dns_servers(control: &Control) -> Result<Vec<SocketAddr>, RouteError> {
    let lines = control.list("dnsservers").map_err(control_failure)?;
    dns::parse_servers(&lines.unwrap_or_default())
        .map_err(|line| control_failure(format!("control/dnsservers: bad server {line}")))
}

fn local_addresses(control: &Control) -> Result<Vec<IpAddr>, RouteError> {
    let extra = control.list("moreipme").map_err(control_failure)?;
    let extra = extra
        .unwrap_or_default()
        .iter()
        .map(|line| {
            line.trim()
                .parse::<IpAddr>()
                .map_err(|_| control_failure(format!("control/moreipme: bad address {line}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(selfmx::local_addresses(&extra))
}

/// The MX step: MX records, else the implicit MX, each host's addresses in MX order.
async fn mx_candidates(
    resolver: &TokioResolver,
    name: Name,
    domain: &str,
    seed: u64,
) -> Result<Vec<Candidate>, RouteError> {
    let hosts = match dns::mx(resolver, name.clone()).await {
        Answer::Found(records) => order_mx(records, domain, seed)?,
        Answer::NoSuchDomain => return Err(no_such_host(domain)),
        Answer::Temporary(reason) => return Err(dns_failure(domain, &reason)),
        Answer::NoData => {
            // No MX: the domain itself is its implicit MX (RFC 5321 §5.1).
            return match dns::addresses(resolver, name.clone()).await {
                Answer::Found(ips) => Ok(ips
                    .into_iter()
                    .map(|ip| Candidate {
                        addr: SocketAddr::new(ip, SMTP_PORT),
                        host: dns::host_text(&name),
                        preference: 0,
                        routed: false,
                    })
                    .collect()),
                Answer::NoSuchDomain => Err(no_such_host(domain)),
                Answer::NoData => Err(no_address()),
                Answer::Temporary(reason) => Err(dns_failure(domain, &reason)),
            };
        }
    };
    // Every MX host is resolved at once; the answers are used in MX order.
    let mut lookups = Vec::with_capacity(hosts.len());
    for (preference, host) in hosts {
        let resolver = resolver.clone();
        let name = dns::fqdn(&host);
        let task = tokio::spawn(async move {
            match name {
                Some(name) => dns::addresses(&resolver, name).await,
                None => Answer::NoSuchDomain,
            }
        });
        lookups.push((preference, host, task));
    }
    let mut found: Vec<Candidate> = Vec::new();
    let mut temporary = None;
    for (preference, host, task) in lookups {
        let answer = task
            .await
            .unwrap_or_else(|e| Answer::Temporary(e.to_string()));
        match answer {
            Answer::Found(ips) => {
                for ip in ips {
                    // The same address under two MX names is tried once, at its best preference.
                    if found.iter().all(|c| c.addr.ip() != ip) {
                        found.push(Candidate {
                            addr: SocketAddr::new(ip, SMTP_PORT),
                            host: host.clone(),
                            preference,
                            routed: false,
                        });
                    }
                }
            }
            // As in qmail, a temporary failure on one MX host is tolerated if others answer.
            Answer::Temporary(reason) => temporary = temporary.or(Some((host, reason))),
            Answer::NoSuchDomain | Answer::NoData => {}
        }
    }
    if found.is_empty() {
        return Err(match temporary {
            Some((host, reason)) => dns_failure(&host, &reason),
            None => no_address(),
        });
    }
    Ok(found)
}

/// The MX records in the order to try them: by preference, equal preferences shuffled
/// (spreading load as RFC 5321 §5.1 asks), at most [`MAX_MX_HOSTS`]. A domain whose only
/// MX records are null (`MX 0 .`, RFC 7505) accepts no mail; a null record beside real
/// ones is ignored.
pub fn order_mx(
    mut records: Vec<(u16, String)>,
    domain: &str,
    seed: u64,
) -> Result<Vec<(u16, String)>, RouteError> {
    records.retain(|(_, host)| !host.is_empty());
    if records.is_empty() {
        return Err(null_mx(domain));
    }
    for (_, host) in &mut records {
        host.make_ascii_lowercase();
    }
    records.sort_by_key(|(preference, _)| *preference);
    let mut rng = SplitMix(seed);
    let mut start = 0;
    while start < records.len() {
        let preference = records[start].0;
        let end = start
            + records[start..]
                .iter()
                .take_while(|(p, _)| *p == preference)
                .count();
        // Fisher–Yates over the group of equal preferences.
        for i in (start + 1..end).rev() {
            let j = start + (rng.next() % (i - start + 1) as u64) as usize;
            records.swap(i, j);
        }
        start = end;
    }
    records.truncate(MAX_MX_HOSTS);
    Ok(records)
}

/// A seed for the shuffle from the time and pid, as qmail seeds its own.
fn shuffle_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// SplitMix64: enough to shuffle equal MX preferences; nothing here needs to be secret.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, h)| (*p, h.to_string())).collect()
    }

    #[test]
    fn orders_mx_by_preference() {
        let ordered = order_mx(mx(&[(30, "c"), (10, "a"), (20, "B")]), "d", 1).unwrap();
        assert_eq!(ordered, mx(&[(10, "a"), (20, "b"), (30, "c")]));
    }

    #[test]
    fn shuffles_equal_preferences_but_keeps_them_together() {
        let records = mx(&[
            (10, "a1"),
            (10, "a2"),
            (10, "a3"),
            (5, "first"),
            (20, "last"),
        ]);
        let mut seen_first = std::collections::HashSet::new();
        for seed in 0..64 {
            let ordered = order_mx(records.clone(), "d", seed).unwrap();
            assert_eq!(ordered[0], (5, "first".to_string()));
            assert_eq!(ordered[4], (20, "last".to_string()));
            let mut middle: Vec<&str> = ordered[1..4].iter().map(|(_, h)| h.as_str()).collect();
            seen_first.insert(middle[0].to_string());
            middle.sort();
            assert_eq!(middle, ["a1", "a2", "a3"]);
        }
        assert_eq!(
            seen_first.len(),
            3,
            "every equal MX comes first for some seed"
        );
    }

    #[test]
    fn a_null_mx_refuses_mail_permanently() {
        let Err(RouteError::Permanent(text)) = order_mx(mx(&[(0, "")]), "nomail.test", 1) else {
            panic!("expected a permanent error");
        };
        assert!(text.contains("nomail.test"), "{text}");
        assert!(text.ends_with("(#5.1.10)"), "{text}");
    }

    #[test]
    fn a_null_mx_beside_real_ones_is_ignored() {
        let ordered = order_mx(mx(&[(0, ""), (10, "mx")]), "d", 1).unwrap();
        assert_eq!(ordered, mx(&[(10, "mx")]));
    }

    #[test]
    fn resolves_at_most_the_best_mx_hosts() {
        let records: Vec<(u16, String)> = (0..100).map(|i| (i, format!("mx{i}"))).collect();
        let ordered = order_mx(records, "d", 1).unwrap();
        assert_eq!(ordered.len(), MAX_MX_HOSTS);
        assert_eq!(ordered.last().unwrap().0, MAX_MX_HOSTS as u16 - 1);
    }

    fn scratch_home(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let home = std::env::temp_dir().join(format!("rqmail-mx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join("control")).unwrap();
        for (file, text) in files {
            std::fs::write(home.join("control").join(file), text).unwrap();
        }
        home
    }

    #[test]
    fn routes_to_an_ip_relay_without_dns_or_the_self_mx_rule() {
        let home = scratch_home(
            "route",
            &[("smtproutes", "# tests\n.test:[::1]:2525\n:127.0.0.1\n")],
        );
        let list = candidates(&home, "a.test").unwrap();
        assert_eq!(
            list,
            vec![Candidate {
                addr: "[::1]:2525".parse().unwrap(),
                host: "::1".to_string(),
                preference: 0,
                routed: true,
            }]
        );
        let list = candidates(&home, "example.org").unwrap();
        assert_eq!(list[0].addr, "127.0.0.1:25".parse().unwrap());
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn sends_an_ip_literal_to_that_address_on_port_25() {
        let home = scratch_home("literal", &[]);
        let list = candidates(&home, "[192.0.2.7]").unwrap();
        assert_eq!(list[0].addr, "192.0.2.7:25".parse().unwrap());
        assert!(!list[0].routed);
        let list = candidates(&home, "[IPv6:2001:db8::7]").unwrap();
        assert_eq!(list[0].addr, "[2001:db8::7]:25".parse().unwrap());
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn refuses_a_literal_that_is_this_host() {
        let home = scratch_home("self", &[("moreipme", "198.51.100.9\n")]);
        for domain in ["[127.0.0.1]", "127.0.0.1", "[198.51.100.9]", "[IPv6:::]"] {
            let Err(RouteError::Permanent(text)) = candidates(&home, domain) else {
                panic!("{domain} should be refused");
            };
            assert!(text.ends_with("(#5.4.6)"), "{text}");
        }
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn a_bad_control_file_defers_delivery() {
        let home = scratch_home("badcontrol", &[("smtproutes", "a.test:relay:port\n")]);
        let Err(RouteError::Temporary(text)) = candidates(&home, "a.test") else {
            panic!("expected a temporary error");
        };
        assert!(text.ends_with("(#4.3.0)"), "{text}");
        let home2 = scratch_home("baddns", &[("dnsservers", "not-an-ip\n")]);
        let Err(RouteError::Temporary(text)) = candidates(&home2, "example.test") else {
            panic!("expected a temporary error");
        };
        assert!(text.contains("dnsservers"), "{text}");
        std::fs::remove_dir_all(home).unwrap();
        std::fs::remove_dir_all(home2).unwrap();
    }

    #[test]
    fn a_name_that_cannot_be_a_domain_is_no_such_host() {
        let home = scratch_home("badname", &[("dnsservers", "127.0.0.1:1\n")]);
        let Err(RouteError::Permanent(text)) = candidates(&home, "a..b") else {
            panic!("expected a permanent error");
        };
        assert_eq!(text, "Sorry, I couldn't find any host named a..b. (#5.1.2)");
        std::fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn echoed_names_show_only_printable_ascii() {
        assert_eq!(safe("a\nb\u{e9}c"), "a?b?c");
    }
}
