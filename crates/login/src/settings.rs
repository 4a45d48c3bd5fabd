//! What the front needs to know, read once at start from control files, the environment
//! tcpserver and its rules set, and the command line.

use crate::Protocol;
use rqmail_control::Control;
use std::path::PathBuf;
use std::time::Duration;

/// Default wait before the first `-ERR` for a failed login; it doubles with each failure.
const DEFAULT_FAIL_DELAY_MS: u64 = 1000;

/// The front's configuration.
pub struct Settings {
    /// The name in the greeting (`control/me`).
    pub hostname: String,
    /// TCPREMOTEIP, for the logs.
    pub remote_ip: String,
    /// Idle timeout before and after login (`control/timeoutpop3d`, `control/timeoutimapd`).
    pub timeout: Duration,
    /// Wait before answering the first failed login (`control/logindelay`, milliseconds).
    pub fail_delay: Duration,
    /// `control/servercert.pem`, when it exists: STLS is offered.
    pub servercert: Option<PathBuf>,
    /// TLS from the first byte (`-s`: port 995 or 993).
    pub implicit_tls: bool,
    /// Passwords may be sent without TLS (`POP3_PLAINTEXT` or `IMAP_PLAINTEXT` set, e.g. by a
    /// rule for loopback).
    pub plaintext_auth: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

impl Settings {
    /// Reads the configuration; an unreadable control file is an error.
    pub fn load(protocol: Protocol, implicit_tls: bool) -> std::io::Result<Settings> {
        let home = rqmail_control::home()?;
        let control = Control::new(&home);
        let hostname = control.me()?.unwrap_or_else(|| "localhost".into());
        let timeout = control
            .int(protocol.timeout_control(), protocol.default_timeout())?
            .max(1);
        let fail_delay = control.int("logindelay", DEFAULT_FAIL_DELAY_MS)?;
        let servercert = Some(control.dir().join("servercert.pem")).filter(|p| p.exists());
        Ok(Settings {
            hostname,
            remote_ip: env("TCPREMOTEIP").unwrap_or_else(|| "unknown".into()),
            timeout: Duration::from_secs(timeout),
            fail_delay: Duration::from_millis(fail_delay),
            servercert,
            implicit_tls,
            plaintext_auth: std::env::var_os(protocol.plaintext_variable()).is_some(),
        })
    }
}
