//! rqmail-login's unprivileged front (uid rqmaild): owns the client socket and its TLS,
//! speaks the protocol until login, then relays between the client and the post-login program.
//!
//! DESIGN.md, "TLS across the privilege boundary": a TLS session cannot be handed to a
//! program running as another user, so the front keeps it for the whole connection. The
//! credentials go to the root half through [`handoff`]; the post-login program runs as the
//! user on the other end of a socket pair, and [`relay`] copies bytes between the two.
//! Each protocol's pre-login dialogue is a module: [`pop3`] and [`imap`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use rqmail_serverconn::conn;
pub mod handoff;
pub mod imap;
pub mod pop3;
pub mod relay;
pub mod settings;
pub use rqmail_serverconn::tls;

use conn::Conn;
use handoff::Handoff;
use rqmail_outcome::EXIT_TEMPORARY;
use settings::Settings;
use std::fs::File;
use std::os::fd::AsFd;
use std::time::Duration;

/// Longest wait before answering a failed login, however many failures.
const MAX_FAIL_DELAY: Duration = Duration::from_secs(30);

/// The protocols the front speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// POP3 (RFC 1939): ports 110 (STLS) and 995 (implicit TLS).
    Pop3,
    /// IMAP (RFC 3501): ports 143 (STARTTLS) and 993 (implicit TLS).
    Imap,
}

impl Protocol {
    /// The protocol named on the command line.
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "pop3" => Some(Protocol::Pop3),
            "imap" => Some(Protocol::Imap),
            _ => None,
        }
    }

    /// The environment variable that allows passwords without TLS.
    pub fn plaintext_variable(self) -> &'static str {
        match self {
            Protocol::Pop3 => "POP3_PLAINTEXT",
            Protocol::Imap => "IMAP_PLAINTEXT",
        }
    }

    /// The control file holding the idle timeout in seconds.
    pub fn timeout_control(self) -> &'static str {
        match self {
            Protocol::Pop3 => "timeoutpop3d",
            Protocol::Imap => "timeoutimapd",
        }
    }

    /// The idle timeout without its control file: qmail-popup's 20 minutes for POP3, and
    /// for IMAP the 30 minutes RFC 3501 §5.4 asks of a server's autologout timer.
    pub fn default_timeout(self) -> u64 {
        match self {
            Protocol::Pop3 => 1200,
            Protocol::Imap => 1800,
        }
    }

    /// The reply for a server-side problem before any dialogue (configuration, uid change).
    pub fn temporary_failure(self) -> &'static [u8] {
        match self {
            Protocol::Pop3 => b"-ERR [SYS/TEMP] temporary server problem, try again later\r\n",
            Protocol::Imap => b"* BYE [UNAVAILABLE] temporary server problem, try again later\r\n",
        }
    }
}

/// One log line, prefixed with the program, protocol, pid and client address.
pub(crate) fn log(protocol: Protocol, settings: &Settings, text: &str) {
    let name = match protocol {
        Protocol::Pop3 => "pop3",
        Protocol::Imap => "imap",
    };
    rqmail_log::line(&format!(
        "rqmail-login: {name} pid {} from {}: {text}",
        std::process::id(),
        settings.remote_ip
    ));
}

/// Runs the front over fds 0 and 1 until the connection ends; returns the exit code.
/// The caller has already changed to uid rqmaild.
pub fn run(protocol: Protocol, implicit_tls: bool, handoff: Handoff) -> u8 {
    let dup = |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().map(File::from);
    let (Ok(input), Ok(output)) = (
        dup(std::io::stdin().as_fd()),
        dup(std::io::stdout().as_fd()),
    ) else {
        return EXIT_TEMPORARY;
    };
    let settings = match Settings::load(protocol, implicit_tls) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::io::Write::write_all(&mut &output, protocol.temporary_failure());
            rqmail_log::line(&format!("rqmail-login: fatal: {e}"));
            return EXIT_TEMPORARY;
        }
    };
    let mut conn = Conn::new(input, output, settings.timeout);
    if settings.implicit_tls {
        let Some(config) = tls_config(protocol, &settings) else {
            log(
                protocol,
                &settings,
                "implicit TLS requested but no usable control/servercert.pem",
            );
            return EXIT_TEMPORARY;
        };
        if let Err(e) = conn.start_tls(config) {
            log(protocol, &settings, &format!("TLS handshake failed: {e}"));
            return 0;
        }
    }
    let logged_in = match protocol {
        Protocol::Pop3 => pop3::authorize(&settings, conn, handoff),
        Protocol::Imap => imap::authorize(&settings, conn, handoff),
    };
    let Some(session) = logged_in else {
        return 0;
    };
    let parts = match session.conn.into_parts() {
        Ok(parts) => parts,
        Err(e) => {
            log(protocol, &settings, &format!("client gone: {e}"));
            return 0;
        }
    };
    let (socket, status) = session.handoff.into_session();
    let end = relay::relay(parts, socket, status, session.first, settings.timeout);
    log(
        protocol,
        &settings,
        &format!(
            "end of session for {}: {end:?}",
            rqmail_log::escape(&session.user, false)
        ),
    );
    0
}

/// The wait before answering the `failures`th failed login: `control/logindelay`, twice
/// as long with each failure, at most [`MAX_FAIL_DELAY`].
pub(crate) fn fail_delay(settings: &Settings, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    settings
        .fail_delay
        .saturating_mul(factor)
        .min(MAX_FAIL_DELAY)
}

/// The TLS configuration, or `None` (logged) when there is no usable certificate.
pub(crate) fn tls_config(
    protocol: Protocol,
    settings: &Settings,
) -> Option<std::sync::Arc<rustls::ServerConfig>> {
    let path = settings.servercert.as_ref()?;
    match tls::server_config(path) {
        Ok(c) => Some(c),
        Err(e) => {
            log(protocol, settings, &format!("TLS unavailable: {e}"));
            None
        }
    }
}

/// A client that has logged in: what the relay needs.
pub struct LoggedIn {
    /// The client connection.
    pub conn: Conn,
    /// The channel, whose session socket now carries the post-login program.
    pub handoff: Handoff,
    /// The post-login program's first output (the reply to the login command).
    pub first: Vec<u8>,
    /// The login name, for the logs.
    pub user: Vec<u8>,
}
