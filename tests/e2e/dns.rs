//! Remote delivery's choice of servers (rqmail-mx) against a real DNS server: Debian's
//! dnsmasq on a loopback port, named in the scratch home's `control/dnsservers`.
//!
//! Each test starts its own dnsmasq with the zone below and kills it at the end. Without
//! dnsmasq installed the tests print `SKIPPED: dnsmasq not installed` and pass.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rqmail_mx::{Candidate, RouteError, candidates};

/// The zone every test's dnsmasq serves. `--local=/test/` makes dnsmasq answer every
/// other name under `.test` with NXDOMAIN instead of refusing it.
const ZONE: &[&str] = &[
    "--local=/test/",
    // MX order with fallbacks; mx20 has AAAA and A.
    "--mx-host=order.test,mx30.test,30",
    "--mx-host=order.test,mx10.test,10",
    "--mx-host=order.test,mx20.test,20",
    "--host-record=mx10.test,192.0.2.10",
    "--host-record=mx20.test,192.0.2.20,2001:db8::20",
    "--host-record=mx30.test,192.0.2.30",
    // Two MX hosts of equal preference.
    "--mx-host=equal.test,eqa.test,10",
    "--mx-host=equal.test,eqb.test,10",
    "--host-record=eqa.test,192.0.2.41",
    "--host-record=eqb.test,192.0.2.42",
    // No MX: the domain's own addresses.
    "--host-record=implicit.test,192.0.2.50,2001:db8::50",
    // Null MX (RFC 7505): MX 0 "." as raw RDATA: preference 0x0000, the root label 0x00.
    "--dns-rr=nullmx.test,15,000000",
    // CNAME to a name with addresses and no MX.
    "--cname=alias.test,implicit.test",
    // An MX host that does not exist, then one that does.
    "--mx-host=fallback.test,missing.test,5",
    "--mx-host=fallback.test,mx20.test,20",
    // This host (127.0.0.1) as a middle MX, and as the only one.
    "--mx-host=selfmx.test,better.test,5",
    "--mx-host=selfmx.test,me.test,10",
    "--mx-host=selfmx.test,worse.test,20",
    "--host-record=better.test,192.0.2.60",
    "--host-record=me.test,127.0.0.1",
    "--host-record=worse.test,192.0.2.70",
    "--mx-host=ambiguous.test,me.test,10",
    // A relay for smtproutes.
    "--host-record=relay.test,192.0.2.99,2001:db8::99",
];

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn dnsmasq_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("dnsmasq"))
        .find(|p| p.is_file())
}

/// A scratch home with `control/` and `queue/lock/`.
struct Home(PathBuf);

impl Home {
    fn new(test: &str) -> Home {
        let dir = std::env::temp_dir().join(format!(
            "rqmail-e2e-dns-{test}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("control")).unwrap();
        std::fs::create_dir_all(dir.join("queue/lock")).unwrap();
        Home(dir)
    }

    fn control(&self, name: &str, text: &str) {
        std::fs::write(self.0.join("control").join(name), text).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// dnsmasq serving [`ZONE`] on a free loopback port, killed when dropped.
struct Dnsmasq {
    child: Child,
    port: u16,
}

impl Dnsmasq {
    /// Starts dnsmasq for `home` and points its `control/dnsservers` at it; `None` (after
    /// printing SKIPPED) if dnsmasq is not installed.
    fn start(home: &Home) -> Option<Dnsmasq> {
        let Some(program) = dnsmasq_path() else {
            println!("SKIPPED: dnsmasq not installed");
            return None;
        };
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(home.path().join("dnsmasq.log")).unwrap();
            let child = Command::new(&program)
                .arg("--no-daemon")
                .arg(format!("--port={port}"))
                .args([
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                ])
                .arg(format!(
                    "--pid-file={}",
                    home.path().join("dnsmasq.pid").display()
                ))
                .args(ZONE)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start dnsmasq");
            let mut server = Dnsmasq { child, port };
            if server.wait_ready() {
                home.control("dnsservers", &format!("127.0.0.1:{port}\n"));
                return Some(server);
            }
            // Most likely another test took the port between our probe and dnsmasq's bind.
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        let log = std::fs::read_to_string(home.path().join("dnsmasq.log")).unwrap_or_default();
        panic!("dnsmasq did not start: {log}");
    }

    /// dnsmasq listens on TCP and UDP once it is ready; a TCP connect tells.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 at the time of asking.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn summary(list: &[Candidate]) -> Vec<(String, u16, String)> {
    list.iter()
        .map(|c| (c.addr.to_string(), c.preference, c.host.clone()))
        .collect()
}

fn row(addr: &str, preference: u16, host: &str) -> (String, u16, String) {
    (addr.to_string(), preference, host.to_string())
}

fn permanent(result: Result<Vec<Candidate>, RouteError>) -> String {
    match result {
        Err(RouteError::Permanent(text)) => text,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn temporary(result: Result<Vec<Candidate>, RouteError>) -> String {
    match result {
        Err(RouteError::Temporary(text)) => text,
        other => panic!("expected a temporary failure, got {other:?}"),
    }
}

#[test]
fn orders_mx_hosts_by_preference_with_every_fallback() {
    let home = Home::new("order");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let list = candidates(home.path(), "order.test").unwrap();
    assert_eq!(
        summary(&list),
        [
            row("192.0.2.10:25", 10, "mx10.test"),
            row("[2001:db8::20]:25", 20, "mx20.test"),
            row("192.0.2.20:25", 20, "mx20.test"),
            row("192.0.2.30:25", 30, "mx30.test"),
        ]
    );
    assert!(list.iter().all(|c| !c.routed));
}

#[test]
fn keeps_both_mx_hosts_of_equal_preference() {
    let home = Home::new("equal");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..20 {
        let list = candidates(home.path(), "equal.test").unwrap();
        let mut hosts: Vec<&str> = list.iter().map(|c| c.host.as_str()).collect();
        firsts.insert(hosts[0].to_string());
        hosts.sort();
        assert_eq!(hosts, ["eqa.test", "eqb.test"]);
        assert!(list.iter().all(|c| c.preference == 10));
    }
    // Twenty shuffles that all put the same host first would happen once in 2^19 runs.
    assert_eq!(firsts.len(), 2, "equal preferences are shuffled");
}

#[test]
fn uses_the_domains_own_addresses_without_mx_ipv6_first() {
    let home = Home::new("implicit");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let list = candidates(home.path(), "implicit.test").unwrap();
    assert_eq!(
        summary(&list),
        [
            row("[2001:db8::50]:25", 0, "implicit.test"),
            row("192.0.2.50:25", 0, "implicit.test"),
        ]
    );
}

#[test]
fn a_null_mx_fails_permanently_with_5_1_10() {
    let home = Home::new("nullmx");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let text = permanent(candidates(home.path(), "nullmx.test"));
    assert!(text.ends_with("(#5.1.10)"), "{text}");
    assert!(text.contains("nullmx.test"), "{text}");
}

#[test]
fn follows_a_cname_to_the_addresses() {
    let home = Home::new("cname");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let list = candidates(home.path(), "alias.test").unwrap();
    let addrs: Vec<String> = list.iter().map(|c| c.addr.to_string()).collect();
    assert_eq!(addrs, ["[2001:db8::50]:25", "192.0.2.50:25"]);
}

#[test]
fn a_domain_that_does_not_exist_fails_permanently_with_5_1_2() {
    let home = Home::new("nxdomain");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let text = permanent(candidates(home.path(), "nonexistent.test"));
    assert_eq!(
        text,
        "Sorry, I couldn't find any host named nonexistent.test. (#5.1.2)"
    );
}

#[test]
fn skips_an_mx_host_that_does_not_exist() {
    let home = Home::new("fallback");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let list = candidates(home.path(), "fallback.test").unwrap();
    assert_eq!(
        summary(&list),
        [
            row("[2001:db8::20]:25", 20, "mx20.test"),
            row("192.0.2.20:25", 20, "mx20.test"),
        ]
    );
}

#[test]
fn applies_the_self_mx_rule_to_dns_answers() {
    let home = Home::new("selfmx");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    let list = candidates(home.path(), "selfmx.test").unwrap();
    assert_eq!(summary(&list), [row("192.0.2.60:25", 5, "better.test")]);
    let text = permanent(candidates(home.path(), "ambiguous.test"));
    assert!(text.ends_with("(#5.4.6)"), "{text}");
}

#[test]
fn smtproutes_overrides_dns() {
    let home = Home::new("routes");
    let Some(_dns) = Dnsmasq::start(&home) else {
        return;
    };
    home.control(
        "smtproutes",
        "# the relay for everything but implicit.test\n\
         order.test:relay.test:2525\n\
         ambiguous.test:me.test\n\
         implicit.test:\n\
         :[192.0.2.98]:26\n",
    );
    let list = candidates(home.path(), "order.test").unwrap();
    assert_eq!(
        summary(&list),
        [
            row("[2001:db8::99]:2525", 0, "relay.test"),
            row("192.0.2.99:2525", 0, "relay.test"),
        ]
    );
    assert!(list.iter().all(|c| c.routed));
    // The self-MX rule does not apply to a relay, even one on this host.
    let list = candidates(home.path(), "ambiguous.test").unwrap();
    assert_eq!(summary(&list), [row("127.0.0.1:25", 0, "me.test")]);
    // An empty relay means "look up MX as usual"; everything else takes the default route.
    let list = candidates(home.path(), "implicit.test").unwrap();
    assert!(list.iter().all(|c| !c.routed), "{list:?}");
    assert_eq!(list.len(), 2);
    let list = candidates(home.path(), "nonexistent.test").unwrap();
    assert_eq!(summary(&list), [row("192.0.2.98:26", 0, "192.0.2.98")]);
}

#[test]
fn a_server_that_never_answers_is_a_temporary_failure_within_bounded_time() {
    let home = Home::new("silent");
    // A bound UDP socket that reads nothing and answers nothing: queries time out. No TCP
    // listener on the port, so a fallback to TCP is refused.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    home.control("dnsservers", &format!("127.0.0.1:{port}\n"));
    let start = Instant::now();
    let text = temporary(candidates(home.path(), "order.test"));
    let took = start.elapsed();
    assert!(text.ends_with("(#4.1.2)"), "{text}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    drop(silent);
}

#[test]
fn a_closed_dns_port_is_a_temporary_failure() {
    let home = Home::new("closed");
    let port = free_port();
    home.control("dnsservers", &format!("127.0.0.1:{port}\n"));
    let start = Instant::now();
    let text = temporary(candidates(home.path(), "order.test"));
    assert!(text.ends_with("(#4.1.2)"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(30));
}
