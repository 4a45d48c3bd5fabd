//! Host names for TCPLOCALHOST and TCPREMOTEHOST: the reverse lookup (getnameinfo, so
//! /etc/hosts counts as it does for the rest of the system) and `-p`'s forward check.

use socket2::SockAddr;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The longest host name getnameinfo writes, with its NUL (NI_MAXHOST).
const HOST_BUFFER: usize = 1025;

/// The name of `addr` from a reverse lookup, lowercased as tcpserver reports it; `None`
/// when there is no name. May contain any bytes the resolver let through.
#[allow(unsafe_code)]
pub fn reverse(addr: SocketAddr) -> Option<Vec<u8>> {
    let sockaddr = SockAddr::from(addr);
    let mut host = [0 as libc::c_char; HOST_BUFFER];
    // SAFETY: sockaddr points to a valid socket address of sockaddr.len() bytes (socket2
    // built it from addr), which outlives the call; host is a writable buffer of exactly
    // the length passed; a null service buffer with length 0 is allowed and asks for no
    // service name. getnameinfo writes a NUL-terminated string within host on success.
    let rc = unsafe {
        libc::getnameinfo(
            sockaddr.as_ptr().cast::<libc::sockaddr>(),
            sockaddr.len(),
            host.as_mut_ptr(),
            HOST_BUFFER as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    let bytes: Vec<u8> = host
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| (c as u8).to_ascii_lowercase())
        .collect();
    (!bytes.is_empty()).then_some(bytes)
}

/// `-p`: whether a forward lookup of `name` gives back `ip`.
pub fn confirms(name: &[u8], ip: IpAddr) -> bool {
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    match (name, 0).to_socket_addrs() {
        Ok(addrs) => addrs.map(|a| canonical(a.ip())).any(|a| a == ip),
        Err(_) => false,
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 addresses they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_name_from_etc_hosts() {
        // /etc/hosts maps 127.0.0.1 to localhost on any sane system.
        let name = reverse("127.0.0.1:25".parse().unwrap());
        assert!(name.is_some());
        assert!(confirms(b"localhost", "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let ip: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical(ip), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}
