//! DNS lookups for remote delivery through hickory-resolver on a current-thread tokio
//! runtime: the servers, the time limits, and MX and AAAA/A answers sorted into outcomes.
//!
//! Servers: `control/dnsservers` if it exists and lists any (one `IP`, `IP:port` or
//! `[IPv6]:port` per line), else the system's `/etc/resolv.conf`. A query waits
//! [`QUERY_TIMEOUT`] (5 s) for an answer and is sent [`ATTEMPTS`] (2) times, so a silent
//! server fails it in about 10 s; a whole lookup (MX, then the addresses of every MX host
//! in parallel) gives up after [`LOOKUP_DEADLINE`] (60 s). `/etc/hosts` is not read (qmail
//! asks DNS only), names are taken as fully qualified (no search list), and nothing is
//! cached between deliveries.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ServerOrderingStrategy,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

/// How long one query waits for an answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a query is sent in all (the first try and one retry) before it fails.
pub const ATTEMPTS: usize = 2;
/// The most a whole lookup may take, however many MX hosts there are.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(60);

/// What DNS said about one name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// Records of the type asked for.
    Found(T),
    /// NXDOMAIN: the name does not exist.
    NoSuchDomain,
    /// The name exists but has no records of this type.
    NoData,
    /// No usable answer now (timeout, SERVFAIL, refused, network error): try later.
    Temporary(String),
}

/// Parses the lines of `control/dnsservers`; the text of the first bad line on error.
pub fn parse_servers<S: AsRef<str>>(lines: &[S]) -> Result<Vec<SocketAddr>, String> {
    lines
        .iter()
        .map(|line| {
            let line = line.as_ref().trim();
            if let Ok(addr) = line.parse::<SocketAddr>() {
                return Ok(addr);
            }
            let bare = line
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .unwrap_or(line);
            bare.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
                .map_err(|_| line.to_string())
        })
        .collect()
}

/// Runs `lookup` with a fresh resolver on a current-thread runtime, within
/// [`LOOKUP_DEADLINE`]. `servers` empty means the system configuration. The error is a
/// reason for a temporary failure.
pub fn run<T, F, Fut>(servers: &[SocketAddr], lookup: F) -> Result<T, String>
where
    F: FnOnce(TokioResolver) -> Fut,
    Fut: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the DNS runtime: {e}"))?;
    // The resolver spawns its connection tasks on the runtime it is built in, so it is
    // built inside block_on.
    runtime.block_on(async {
        let resolver = build(servers)?;
        tokio::time::timeout(LOOKUP_DEADLINE, lookup(resolver))
            .await
            .map_err(|_| format!("DNS lookup took more than {LOOKUP_DEADLINE:?}"))
    })
}

fn build(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if servers.is_empty() {
        Resolver::builder(provider).map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?
    } else {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut builder = Resolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], name_servers),
            provider,
        );
        builder.options_mut().server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
        builder
    };
    let options = builder.options_mut();
    options.timeout = QUERY_TIMEOUT;
    // hickory counts retries after the first try.
    options.attempts = ATTEMPTS - 1;
    options.use_hosts_file = ResolveHosts::Never;
    options.cache_size = 64;
    builder
        .build()
        .map_err(|e| format!("cannot set up the resolver: {e}"))
}

/// A domain as a fully qualified DNS name (UTF-8 labels become punycode); `None` if it
/// cannot be one.
pub fn fqdn(domain: &str) -> Option<Name> {
    if domain.is_empty() || domain.starts_with('.') || domain.contains("..") {
        return None;
    }
    let mut name = Name::from_utf8(domain).ok()?;
    name.set_fqdn(true);
    Some(name)
}

fn classify<T>(result: Result<T, NetError>) -> Answer<T> {
    match result {
        Ok(found) => Answer::Found(found),
        Err(e) if e.is_nx_domain() => Answer::NoSuchDomain,
        Err(e) if e.is_no_records_found() => Answer::NoData,
        Err(e) => Answer::Temporary(e.to_string()),
    }
}

/// The MX records of `name` as (preference, exchange) with the exchange in ASCII and
/// without the final dot (`""` for the root, i.e. a null MX). CNAMEs are followed by the
/// resolver; an answer with no MX record left is `NoData`.
pub async fn mx(resolver: &TokioResolver, name: Name) -> Answer<Vec<(u16, String)>> {
    match classify(resolver.lookup(name, RecordType::MX).await) {
        Answer::Found(lookup) => {
            let records: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::MX(mx) => Some((mx.preference, host_text(&mx.exchange))),
                    _ => None,
                })
                .collect();
            if records.is_empty() {
                Answer::NoData
            } else {
                Answer::Found(records)
            }
        }
        Answer::NoSuchDomain => Answer::NoSuchDomain,
        Answer::NoData => Answer::NoData,
        Answer::Temporary(e) => Answer::Temporary(e),
    }
}

/// A name as text: ASCII, lowercase as DNS gave it, no final dot.
pub fn host_text(name: &Name) -> String {
    let text = name.to_ascii();
    text.strip_suffix('.').unwrap_or(&text).to_string()
}

/// The addresses of `name`: its AAAA records, then its A records, asked in parallel.
/// Found if either has any; else Temporary if either failed so; else NXDOMAIN if either
/// said so; else NoData.
pub async fn addresses(resolver: &TokioResolver, name: Name) -> Answer<Vec<IpAddr>> {
    let aaaa = tokio::spawn(one_type(resolver.clone(), name.clone(), RecordType::AAAA));
    let a = tokio::spawn(one_type(resolver.clone(), name, RecordType::A));
    let aaaa = aaaa
        .await
        .unwrap_or_else(|e| Answer::Temporary(e.to_string()));
    let a = a.await.unwrap_or_else(|e| Answer::Temporary(e.to_string()));
    let mut found = Vec::new();
    for answer in [&aaaa, &a] {
        if let Answer::Found(ips) = answer {
            found.extend_from_slice(ips);
        }
    }
    if !found.is_empty() {
        return Answer::Found(found);
    }
    for answer in [aaaa.clone(), a.clone()] {
        if let Answer::Temporary(e) = answer {
            return Answer::Temporary(e);
        }
    }
    if aaaa == Answer::NoSuchDomain || a == Answer::NoSuchDomain {
        return Answer::NoSuchDomain;
    }
    Answer::NoData
}

async fn one_type(resolver: TokioResolver, name: Name, kind: RecordType) -> Answer<Vec<IpAddr>> {
    match classify(resolver.lookup(name, kind).await) {
        Answer::Found(lookup) => {
            let ips: Vec<IpAddr> = lookup
                .answers()
                .iter()
                .filter_map(|record| match (&record.data, kind) {
                    (RData::AAAA(v6), RecordType::AAAA) => Some(IpAddr::V6(v6.0)),
                    (RData::A(v4), RecordType::A) => Some(IpAddr::V4(v4.0)),
                    _ => None,
                })
                .collect();
            if ips.is_empty() {
                Answer::NoData
            } else {
                Answer::Found(ips)
            }
        }
        Answer::NoSuchDomain => Answer::NoSuchDomain,
        Answer::NoData => Answer::NoData,
        Answer::Temporary(e) => Answer::Temporary(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dnsservers_lines_in_every_form() {
        let servers = parse_servers(&[
            "127.0.0.1",
            "127.0.0.1:5353",
            "::1",
            "[::1]:5300",
            "[2001:db8::53]",
        ])
        .unwrap();
        let want: Vec<SocketAddr> = [
            "127.0.0.1:53",
            "127.0.0.1:5353",
            "[::1]:53",
            "[::1]:5300",
            "[2001:db8::53]:53",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(servers, want);
        assert_eq!(
            parse_servers(&["ns.example.com"]),
            Err("ns.example.com".to_string())
        );
    }

    #[test]
    fn makes_names_fully_qualified_and_refuses_broken_ones() {
        assert_eq!(fqdn("Example.COM").unwrap().to_ascii(), "example.com.");
        assert_eq!(fqdn("example.com.").unwrap().to_ascii(), "example.com.");
        assert_eq!(
            fqdn("bücher.example").unwrap().to_ascii(),
            "xn--bcher-kva.example."
        );
        for bad in ["", ".", "a..b", ".example.com"] {
            assert!(fqdn(bad).is_none(), "{bad:?}");
        }
    }
}
