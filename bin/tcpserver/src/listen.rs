//! The listening socket: bound from HOST and PORT (as root, before the uid changes), or
//! handed over by systemd socket activation as fd 3.

use nix::unistd::{Gid, Uid};
use socket2::{Domain, Protocol, Socket, Type};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd};

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: i32 = 3;

/// The variables of the socket activation protocol; removed from the children's environment.
pub const ACTIVATION_VARIABLES: &[&str] = &["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// Whether `LISTEN_PID` and `LISTEN_FDS` hand this process at least one socket.
pub fn activated(env: impl Fn(&str) -> Option<OsString>) -> bool {
    let number = |name| {
        env(name)
            .and_then(|v| v.into_string().ok())
            .and_then(|v| v.parse::<u32>().ok())
    };
    number("LISTEN_PID") == Some(std::process::id()) && number("LISTEN_FDS").unwrap_or(0) >= 1
}

/// Takes fd 3 from systemd; it must be a listening socket.
#[allow(unsafe_code)]
pub fn inherited() -> Result<Socket, String> {
    if std::fs::symlink_metadata("/proc/self/fd/3").is_err() {
        return Err("LISTEN_FDS is set but fd 3 is not open".into());
    }
    // SAFETY: fd 3 is open (checked just above) and LISTEN_PID names this process, so
    // systemd opened it for us. main calls this once, before it opens any file, so fd 3 is
    // not a descriptor std or this program opened: the OwnedFd is its only owner.
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let socket = Socket::from(fd);
    match socket.is_listener() {
        Ok(true) => {}
        Ok(false) => return Err("fd 3 from systemd is not a listening socket".into()),
        Err(e) => return Err(format!("fd 3 from systemd is not a socket: {e}")),
    }
    socket
        .set_cloexec(true)
        .map_err(|e| format!("unable to set close-on-exec on fd 3: {e}"))?;
    Ok(socket)
}

/// PORT as a number, or a name looked up in /etc/services (tcp).
pub fn port(text: &str) -> Result<u16, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("port number out of range: {text}"));
    }
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    service_port(&services, text)
        .ok_or_else(|| format!("unable to figure out port number for {text}"))
}

/// Finds `name` (as a service name or alias) for tcp in /etc/services text.
fn service_port(services: &str, name: &str) -> Option<u16> {
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let service = fields.next()?;
        let (number, protocol) = fields.next()?.split_once('/')?;
        let aliases: Vec<&str> = fields.collect();
        (protocol == "tcp" && (service == name || aliases.contains(&name)))
            .then(|| number.parse().ok())
            .flatten()
    })
}

/// HOST as an address: `0` or empty is every IPv4 address, `::` every IPv6 address, a
/// literal is itself, and a name is its first address.
pub fn address(host: &str, port: u16) -> Result<SocketAddr, String> {
    if host.is_empty() || host == "0" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("temporarily unable to figure out IP address for {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no IP address for {host}"))
}

/// The kernel's cap on any listen backlog, `net.core.somaxconn`.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// Without /proc: Linux's default somaxconn since 5.4; a larger kernel limit is not
/// needed, and a smaller one caps this anyway.
const FALLBACK_BACKLOG: i32 = 4096;

/// The backlog without `-b`: the most the kernel allows (it silently caps a larger value),
/// so that a burst of connections waits to be accepted instead of being dropped.
pub fn default_backlog() -> i32 {
    backlog_from(std::fs::read_to_string(SOMAXCONN).ok().as_deref())
}

/// somaxconn's text as a backlog; the fallback when it is missing or not a positive number.
fn backlog_from(somaxconn: Option<&str>) -> i32 {
    somaxconn
        .and_then(|text| text.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK_BACKLOG)
}

/// Binds and listens on `addr` with SO_REUSEADDR; an IPv6 socket takes IPv6 only, so `::`
/// and `0` can be served by two servers side by side.
pub fn bind(addr: SocketAddr, backlog: i32) -> Result<Socket, String> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("unable to create socket: {e}"))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| format!("unable to set SO_REUSEADDR: {e}"))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(true)
            .map_err(|e| format!("unable to set IPV6_V6ONLY: {e}"))?;
    }
    socket
        .bind(&addr.into())
        .map_err(|e| format!("unable to bind: {e}"))?;
    socket
        .listen(backlog)
        .map_err(|e| format!("unable to listen: {e}"))?;
    Ok(socket)
}

/// The port a listening socket has (the one chosen for port 0).
pub fn local_port(socket: &Socket) -> Result<u16, String> {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .ok_or_else(|| "unable to get local address".to_string())
}

/// Switches to `gid` (as the only group) and `uid`, as tcpserver does after binding; 0
/// keeps the current one. Not root, nothing can change and nothing is tried, so an
/// instance runs as one user for tests.
pub fn drop_privileges(uid: u32, gid: u32) -> Result<(), String> {
    if !Uid::effective().is_root() || (uid == 0 && gid == 0) {
        return Ok(());
    }
    // With -u alone the current gid stays, but root's supplementary groups go.
    let gid = if gid == 0 {
        Gid::current()
    } else {
        Gid::from_raw(gid)
    };
    nix::unistd::setgroups(&[gid]).map_err(|e| format!("unable to set groups: {e}"))?;
    nix::unistd::setgid(gid).map_err(|e| format!("unable to set gid: {e}"))?;
    if uid != 0 {
        nix::unistd::setuid(Uid::from_raw(uid)).map_err(|e| format!("unable to set uid: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_numbers_or_service_names() {
        assert_eq!(port("25"), Ok(25));
        assert!(port("70000").is_err());
        let services = "# comment\nsmtp\t\t25/tcp\t\tmail\nsubmissions\t465/tcp\tssmtp smtps\n\
                        domain 53/udp\ndomain 53/tcp\n";
        assert_eq!(service_port(services, "smtp"), Some(25));
        assert_eq!(service_port(services, "mail"), Some(25));
        assert_eq!(service_port(services, "smtps"), Some(465));
        assert_eq!(service_port(services, "domain"), Some(53));
        assert_eq!(service_port(services, "nosuch"), None);
    }

    #[test]
    fn default_backlog_is_somaxconn_or_4096() {
        assert_eq!(backlog_from(Some("4096\n")), 4096);
        assert_eq!(backlog_from(Some("65535\n")), 65535);
        assert_eq!(backlog_from(Some("128")), 128);
        assert_eq!(backlog_from(None), FALLBACK_BACKLOG);
        assert_eq!(backlog_from(Some("")), FALLBACK_BACKLOG);
        assert_eq!(backlog_from(Some("0\n")), FALLBACK_BACKLOG);
        assert_eq!(backlog_from(Some("-1\n")), FALLBACK_BACKLOG);
        assert!(default_backlog() > 20);
    }

    #[test]
    fn host_zero_is_every_ipv4_address() {
        assert_eq!(address("0", 25).unwrap(), "0.0.0.0:25".parse().unwrap());
        assert_eq!(address("", 25).unwrap(), "0.0.0.0:25".parse().unwrap());
        assert_eq!(address("::", 25).unwrap(), "[::]:25".parse().unwrap());
        assert_eq!(
            address("127.0.0.1", 9).unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
    }

    #[test]
    fn activation_needs_our_pid_and_a_descriptor() {
        let pid = std::process::id().to_string();
        let env = |pid: String, fds: &'static str| {
            move |name: &str| match name {
                "LISTEN_PID" => Some(OsString::from(pid.clone())),
                "LISTEN_FDS" => Some(OsString::from(fds)),
                _ => None,
            }
        };
        assert!(activated(env(pid.clone(), "1")));
        assert!(!activated(env(pid.clone(), "0")));
        assert!(!activated(env("1".into(), "1")));
        assert!(!activated(|_| None));
    }
}
