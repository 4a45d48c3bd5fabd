//! rqmail-remote's work: find the servers for a domain, connect to the first that answers,
//! run one SMTP transaction for all of its recipients, and report the way qmail-remote does.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod settings;

use rqmail_mx::{Candidate, RouteError, tcpto};
use rqmail_smtpclient::{Message, Options, Outcome, Status};
// Printable ASCII only, for text that ends up in reports.
use rqmail_log::printable_ascii as safe;
use settings::Settings;
use socket2::{Domain, Protocol, Socket, Type};
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// qmail's temp_control.
fn control_failure(detail: &str) -> Outcome {
    Outcome::message_only(
        Status::Temporary,
        format!("Unable to read control files: {detail}. (#4.3.0)\n"),
    )
}

/// The usage error qmail-remote reports when run without HOST SENDER RECIP.
pub fn usage() -> Outcome {
    Outcome::message_only(
        Status::Permanent,
        "I (rqmail-remote) was invoked improperly. (#5.3.5)\n",
    )
}

/// Makes the message on fd 0 a seekable file: the queue file itself, or (when an admin
/// pipes a message in) an anonymous in-memory copy, so nothing is written to disk.
pub fn seekable(input: File) -> io::Result<File> {
    if input.metadata()?.is_file() {
        return Ok(input);
    }
    let fd = nix::sys::memfd::memfd_create(
        c"rqmail-remote-message",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )?;
    let mut copy = File::from(fd);
    io::copy(&mut &input, &mut copy)?;
    Ok(copy)
}

/// Connects to `addr` within `timeout`, from `source` when it is of the same family.
fn connect(addr: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&addr.into(), timeout)?;
    Ok(socket.into())
}

/// Delivers `message` from `sender` to `recipients` (all at `domain`), trying the
/// domain's candidates in order:
/// - an address the tcpto table marks as down is skipped;
/// - a connect that fails moves on to the next (a timeout is recorded in tcpto);
/// - once connected, the transaction's outcome is final (qmail: a 4xx is not retried on
///   the next MX), except when it ended before MAIL in a way another host may not share
///   (greeting refused, connection lost, TLS failure, no 8BITMIME): then the next
///   candidate is tried, and the last such outcome is reported if none does better.
pub fn deliver(
    home: &Path,
    domain: &str,
    sender: &[u8],
    recipients: &[Vec<u8>],
    message: File,
) -> Outcome {
    let settings = match Settings::load(home) {
        Ok(s) => s,
        Err(e) => return control_failure(&e),
    };
    let mut message = match Message::new(message) {
        Ok(m) => m,
        Err(e) => {
            return Outcome::message_only(
                Status::Temporary,
                format!("Unable to read message: {e}. (#4.3.0)\n"),
            );
        }
    };
    let candidates = match rqmail_mx::candidates(home, domain) {
        Ok(c) => c,
        Err(RouteError::Temporary(t)) => return Outcome::message_only(Status::Temporary, t + "\n"),
        Err(RouteError::Permanent(t)) => return Outcome::message_only(Status::Permanent, t + "\n"),
    };
    let mut last: Option<Outcome> = None;
    let mut connect_error = String::new();
    for Candidate { addr, host, .. } in candidates {
        let ip = addr.ip();
        if tcpto::is_down(home, ip) {
            connect_error = format!("{ip} timed out recently");
            continue;
        }
        let stream = match connect(addr, settings.outgoing_ip, settings.timeout_connect) {
            Ok(s) => s,
            Err(e) => {
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) {
                    tcpto::record_timeout(home, ip);
                }
                connect_error = format!("{ip}: {e}");
                continue;
            }
        };
        tcpto::record_success(home, ip);
        let options = Options {
            helo: settings.helo.clone(),
            timeouts: settings.timeouts,
            tls: settings.tls_policy(domain, &host),
            server_name: Some(host),
        };
        let outcome =
            rqmail_smtpclient::deliver(stream, &options, sender, recipients, &mut message);
        if !outcome.try_next_host {
            return outcome;
        }
        last = Some(outcome);
    }
    last.unwrap_or_else(|| {
        Outcome::message_only(
            Status::Temporary,
            format!(
                "Sorry, I wasn't able to establish an SMTP connection ({}). (#4.4.1)\n",
                safe(&connect_error)
            ),
        )
    })
}
