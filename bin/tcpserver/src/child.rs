//! One connection, in the forked child: banner, addresses and names, the rules, the
//! environment, then PROG with the socket on fd 0 and 1, or exit 100 if a rule denies it.

use crate::dns;
use crate::log;
use crate::options::{Options, Verbosity};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use rqmail_rules::{Action, Cdb, Client, ip_text};
use socket2::Socket;
use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;

/// A denied connection ends with tcpserver's 100.
const EXIT_DENIED: u8 = EXIT_PERMANENT;
/// A dropped connection (rules unreadable, exec failed, ...) ends with 111.
const EXIT_DROPPED: u8 = EXIT_TEMPORARY;

/// The environment PROG gets, in order, as bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(Vec<(Vec<u8>, Vec<u8>)>);

impl Env {
    /// The server's own environment without the variables named in `skip`.
    pub fn from_current(skip: &[&str]) -> Env {
        Env(std::env::vars_os()
            .filter(|(name, _)| !skip.iter().any(|s| name == s))
            .map(|(n, v)| (n.into_vec(), v.into_vec()))
            .collect())
    }

    /// Sets `name` to `value`, or removes it for `None`.
    pub fn set(&mut self, name: &[u8], value: Option<&[u8]>) {
        match value {
            Some(value) => match self.0.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = value.to_vec(),
                None => self.0.push((name.to_vec(), value.to_vec())),
            },
            None => self.0.retain(|(n, _)| n != name),
        }
    }

    /// The value of `name`, if set.
    #[cfg(test)]
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// `NAME=value` strings for execve; an entry with a NUL byte (impossible from the rules
    /// CDB, whose entries end at NULs) is left out.
    fn to_c(&self) -> Vec<CString> {
        self.0
            .iter()
            .filter_map(|(n, v)| CString::new([&n[..], b"=", &v[..]].concat()).ok())
            .collect()
    }
}

/// What is known about one connection, as tcpserver's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `TCP` or `TCP6`.
    pub proto: &'static str,
    /// TCPLOCALIP.
    pub local_ip: String,
    /// TCPLOCALPORT.
    pub local_port: u16,
    /// TCPLOCALHOST, if known.
    pub local_host: Option<Vec<u8>>,
    /// TCPREMOTEIP.
    pub remote_ip: String,
    /// TCPREMOTEPORT.
    pub remote_port: u16,
    /// TCPREMOTEHOST, if known.
    pub remote_host: Option<Vec<u8>>,
}

/// The variables set per connection, without their `TCP`/`TCP6` prefix; REMOTEINFO is
/// always removed since ident is never asked.
const SUFFIXES: &[&str] = &[
    "LOCALIP",
    "LOCALPORT",
    "LOCALHOST",
    "REMOTEIP",
    "REMOTEPORT",
    "REMOTEHOST",
    "REMOTEINFO",
];

impl Connection {
    /// Describes a connection from `remote` to `local`; IPv4-mapped addresses count as IPv4.
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Connection {
        let ipv6 = dns::canonical(remote.ip()).is_ipv6();
        Connection {
            proto: if ipv6 { "TCP6" } else { "TCP" },
            local_ip: ip_text(local.ip()),
            local_port: local.port(),
            local_host: None,
            remote_ip: ip_text(remote.ip()),
            remote_port: remote.port(),
            remote_host: None,
        }
    }

    /// Sets PROTO and the TCP variables in `env`, removing the unknown ones rather than
    /// letting the server's own values through. An IPv6 connection also gets the `TCP6`
    /// copies the IPv6 patch sets; an IPv4 one has them removed.
    pub fn apply(&self, env: &mut Env) {
        env.set(b"PROTO", Some(self.proto.as_bytes()));
        let local_port = self.local_port.to_string();
        let remote_port = self.remote_port.to_string();
        let values: [Option<&[u8]>; 7] = [
            Some(self.local_ip.as_bytes()),
            Some(local_port.as_bytes()),
            self.local_host.as_deref(),
            Some(self.remote_ip.as_bytes()),
            Some(remote_port.as_bytes()),
            self.remote_host.as_deref(),
            None,
        ];
        let ipv6 = self.proto == "TCP6";
        for (suffix, value) in SUFFIXES.iter().zip(values) {
            env.set(format!("TCP{suffix}").as_bytes(), value);
            env.set(
                format!("TCP6{suffix}").as_bytes(),
                if ipv6 { value } else { None },
            );
        }
        env.set(b"TCP6INTERFACE", None);
    }

    /// The `ok`/`deny` log line after its first word and the pid.
    fn log_fields(&self) -> Vec<u8> {
        let mut line = Vec::new();
        let empty: &[u8] = b"";
        line.extend(log::safe(self.local_host.as_deref().unwrap_or(empty)));
        line.push(b':');
        line.extend(log::safe(self.local_ip.as_bytes()));
        line.push(b':');
        line.extend(log::safe(self.local_port.to_string().as_bytes()));
        line.push(b' ');
        line.extend(log::safe(self.remote_host.as_deref().unwrap_or(empty)));
        line.push(b':');
        line.extend(log::safe(self.remote_ip.as_bytes()));
        // TCPREMOTEINFO, always empty.
        line.extend_from_slice(b"::");
        line.extend(log::safe(self.remote_port.to_string().as_bytes()));
        line
    }
}

/// Why a connection was dropped, for the warning line.
struct Dropped(String);

/// Serves one accepted connection in the child and never returns: execs PROG, or exits
/// 100 (denied) or 111 (dropped, with a warning unless -q).
pub fn serve(conn: Socket, remote: SocketAddr, opts: &Options, env: &Env) -> ! {
    let code = match run(conn, remote, opts, env.clone()) {
        Ok(()) => EXIT_DENIED,
        Err(Dropped(reason)) => {
            if opts.verbosity >= Verbosity::Errors {
                log::line(format!("warning: dropping connection, {reason}").as_bytes());
            }
            EXIT_DROPPED
        }
    };
    std::process::exit(code.into())
}

/// Returns only if the connection is denied; execs PROG otherwise.
fn run(conn: Socket, remote: SocketAddr, opts: &Options, mut env: Env) -> Result<(), Dropped> {
    let pid = std::process::id().to_string();
    let verbose = opts.verbosity >= Verbosity::Verbose;
    let remote_ip = ip_text(remote.ip());
    if verbose {
        let mut line = format!("pid {pid} from ").into_bytes();
        line.extend(log::safe(remote_ip.as_bytes()));
        log::line(&line);
    }
    if opts.nodelay {
        // As tcpserver: a socket that refuses TCP_NODELAY is still served.
        let _ = conn.set_tcp_nodelay(true);
    }
    if !opts.banner.is_empty() {
        (&conn)
            .write_all(&opts.banner)
            .map_err(|e| Dropped(format!("unable to print banner: {e}")))?;
    }
    let local = conn
        .local_addr()
        .map_err(|e| Dropped(format!("unable to get local address: {e}")))?
        .as_socket()
        .ok_or_else(|| Dropped("unable to get local address: not an IP socket".into()))?;
    let mut connection = Connection::new(local, remote);
    connection.local_host = match &opts.local_name {
        Some(name) => Some(name.clone()),
        None => dns::reverse(local),
    };
    if opts.remote_host {
        connection.remote_host = dns::reverse(remote)
            .filter(|name| !opts.paranoid || dns::confirms(name, dns::canonical(remote.ip())));
    }
    connection.apply(&mut env);

    let mut deny = false;
    if let Some(path) = &opts.rules {
        let unreadable = |e: io::Error| Dropped(format!("unable to read {}: {e}", path.display()));
        match Cdb::open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && opts.allow_no_rules => {}
            Err(e) => return Err(unreadable(e)),
            Ok(cdb) => {
                let client = Client {
                    ip: connection.remote_ip.as_bytes(),
                    host: connection.remote_host.as_deref(),
                    info: None,
                };
                let decision = rqmail_rules::lookup(&cdb, &client).map_err(unreadable)?;
                deny = decision.action == Action::Deny;
                for (name, value) in &decision.vars {
                    // An empty name cannot be a variable; tcpserver would set "=value".
                    if !name.is_empty() {
                        env.set(name, Some(value));
                    }
                }
            }
        }
    }
    if verbose {
        let mut line = if deny {
            b"deny ".to_vec()
        } else {
            b"ok ".to_vec()
        };
        line.extend_from_slice(pid.as_bytes());
        line.push(b' ');
        line.extend(connection.log_fields());
        log::line(&line);
    }
    if deny {
        return Ok(());
    }
    exec(&conn, opts, &env)
}

/// Puts the socket on fd 0 and 1, restores the signal state PROG expects and execs it.
#[allow(unsafe_code)]
fn exec(conn: &Socket, opts: &Options, env: &Env) -> Result<(), Dropped> {
    let descriptors = |e: nix::Error| Dropped(format!("unable to set up descriptors: {e}"));
    nix::unistd::dup2_stdin(conn).map_err(descriptors)?;
    nix::unistd::dup2_stdout(conn).map_err(descriptors)?;
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| Dropped(format!("unable to unblock signals: {e}")))?;
    // SAFETY: SIG_DFL installs no handler, so no Rust code can be called from a signal.
    // The Rust runtime ignores SIGPIPE and an ignored signal stays ignored across exec; PROG
    // (an SMTP server writing to a closed socket) expects the default, as under tcpserver.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(|e| Dropped(format!("unable to reset SIGPIPE: {e}")))?;
    let program = &opts.program[0];
    let args: Vec<CString> = opts
        .program
        .iter()
        .filter_map(|a| CString::new(a.clone().into_vec()).ok())
        .collect();
    let Ok(path) = CString::new(program.clone().into_vec()) else {
        return Err(Dropped("program name contains a NUL byte".into()));
    };
    let err = nix::unistd::execvpe(&path, &args, &env.to_c()).unwrap_err();
    Err(Dropped(format!(
        "unable to run {}: {err}",
        OsString::from(program).to_string_lossy()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect())
    }

    #[test]
    fn ipv4_connection_sets_tcp_variables_and_removes_stale_ones() {
        let mut e = env(&[
            ("PATH", "/bin"),
            ("TCPREMOTEINFO", "stale"),
            ("TCPREMOTEHOST", "stale"),
            ("TCP6REMOTEIP", "stale"),
        ]);
        let mut c = Connection::new(
            "127.0.0.1:25".parse().unwrap(),
            "127.0.0.2:4000".parse().unwrap(),
        );
        c.local_host = Some(b"0".to_vec());
        c.apply(&mut e);
        assert_eq!(
            e,
            env(&[
                ("PATH", "/bin"),
                ("PROTO", "TCP"),
                ("TCPLOCALIP", "127.0.0.1"),
                ("TCPLOCALPORT", "25"),
                ("TCPLOCALHOST", "0"),
                ("TCPREMOTEIP", "127.0.0.2"),
                ("TCPREMOTEPORT", "4000"),
            ])
        );
    }

    #[test]
    fn ipv6_connection_sets_tcp6_and_its_copies() {
        let mut e = Env::default();
        let mut c = Connection::new(
            "[2001:db8::25]:25".parse().unwrap(),
            "[2001:db8::1]:4000".parse().unwrap(),
        );
        c.remote_host = Some(b"client.example".to_vec());
        c.apply(&mut e);
        assert_eq!(e.get(b"PROTO"), Some(&b"TCP6"[..]));
        assert_eq!(e.get(b"TCPREMOTEIP"), Some(&b"2001:db8::1"[..]));
        assert_eq!(e.get(b"TCP6REMOTEIP"), Some(&b"2001:db8::1"[..]));
        assert_eq!(e.get(b"TCP6LOCALIP"), Some(&b"2001:db8::25"[..]));
        assert_eq!(e.get(b"TCPREMOTEHOST"), Some(&b"client.example"[..]));
        assert_eq!(e.get(b"TCP6REMOTEPORT"), Some(&b"4000"[..]));
        assert_eq!(e.get(b"TCPLOCALHOST"), None);
        assert_eq!(e.get(b"TCPREMOTEINFO"), None);
    }

    #[test]
    fn mapped_client_is_an_ipv4_connection() {
        let c = Connection::new(
            "[::ffff:127.0.0.1]:25".parse().unwrap(),
            "[::ffff:10.0.0.1]:4000".parse().unwrap(),
        );
        assert_eq!(c.proto, "TCP");
        assert_eq!(c.remote_ip, "10.0.0.1");
        assert_eq!(c.local_ip, "127.0.0.1");
    }

    #[test]
    fn log_fields_are_tcpservers() {
        let mut c = Connection::new(
            "127.0.0.1:25".parse().unwrap(),
            "10.0.0.1:4000".parse().unwrap(),
        );
        c.remote_host = Some(b"bad host%".to_vec());
        assert_eq!(
            String::from_utf8(c.log_fields()).unwrap(),
            ":127.0.0.1:25 bad?host?:10.0.0.1::4000"
        );
    }

    #[test]
    fn env_set_replaces_in_place_and_removes() {
        let mut e = env(&[("A", "1"), ("B", "2")]);
        e.set(b"A", Some(b"3"));
        e.set(b"B", None);
        e.set(b"C", Some(b""));
        assert_eq!(e, env(&[("A", "3"), ("C", "")]));
        assert_eq!(
            e.to_c(),
            vec![CString::new("A=3").unwrap(), CString::new("C=").unwrap()]
        );
    }
}
