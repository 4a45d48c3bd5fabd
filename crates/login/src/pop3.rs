//! POP3's AUTHORIZATION state as the front speaks it (RFC 1939, 2449, 2595, 5034, 3206):
//! greeting, CAPA, STLS, USER/PASS, AUTH PLAIN, NOOP, QUIT. The password check is the root half's.
//!
//! Passwords are taken only inside TLS, or where `POP3_PLAINTEXT` is set (a rule for
//! loopback); elsewhere USER, PASS and AUTH get `-ERR [AUTH]`. APOP is not offered: the
//! system password store keeps hashes, and APOP needs the cleartext secret.

use crate::conn::{Conn, Line};
use crate::handoff::{Credentials, Handoff, MAX_ATTEMPTS, Secret, Verdict};
use crate::settings::Settings;
use crate::{LoggedIn, Protocol};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest command line, CRLF excluded (RFC 2449 §4: 255 octets with it; a little slack).
pub const COMMAND_MAX: usize = 255;
/// Longest AUTH command or response line: the base64 of the longest credentials the
/// root half accepts (511 bytes) is 684 characters; more is refused as too long.
pub const AUTH_LINE_MAX: usize = 1024;
/// Errors (bad or refused commands) a client may make before it is disconnected: a client
/// that floods garbage must not hold a process forever.
const MAX_ERRORS: u32 = 20;

/// What one command leads to.
enum Step {
    /// Stay in AUTHORIZATION.
    Continue,
    /// Close the connection.
    Close,
    /// Logged in: the post-login program's first output, and the login name.
    LoggedIn(Vec<u8>, Vec<u8>),
}

/// The AUTHORIZATION state.
struct Authorization<'s> {
    settings: &'s Settings,
    conn: Conn,
    handoff: Handoff,
    /// The name given by USER, waiting for PASS.
    user: Option<Vec<u8>>,
    errors: u32,
    failures: u32,
}

/// Splits a command line into its verb (upper case) and argument (after the spaces that
/// follow the verb), as qmail-popup does.
fn split(line: &[u8]) -> (String, &[u8]) {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let verb = String::from_utf8_lossy(&line[..end]).to_ascii_uppercase();
    let mut rest = &line[end..];
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    (verb, rest)
}

/// Decodes a SASL PLAIN response (RFC 4616): `authzid\0authcid\0password`. An authzid
/// other than the authcid would ask to act as someone else, which is not offered.
pub(crate) fn plain(response: &[u8]) -> Result<(Vec<u8>, Secret), &'static str> {
    let mut parts = response.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed PLAIN response");
    };
    if !authzid.is_empty() && authzid != user {
        return Err("authorization identity not supported");
    }
    Ok((user.to_vec(), Secret::new(password.to_vec())))
}

/// Runs the AUTHORIZATION state from the greeting; `Some` once the client has logged in.
/// The connection is closed here in every other case.
pub fn authorize(settings: &Settings, conn: Conn, handoff: Handoff) -> Option<LoggedIn> {
    let mut state = Authorization {
        settings,
        conn,
        handoff,
        user: None,
        errors: 0,
        failures: 0,
    };
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let greeting = format!(
        "+OK <{}.{time}@{}> ready\r\n",
        std::process::id(),
        settings.hostname
    );
    state.conn.write(greeting.as_bytes());
    loop {
        match state.step() {
            Step::Continue => {}
            Step::Close => {
                state.conn.close();
                return None;
            }
            Step::LoggedIn(first, user) => {
                return Some(LoggedIn {
                    conn: state.conn,
                    handoff: state.handoff,
                    first,
                    user,
                });
            }
        }
    }
}

impl Authorization<'_> {
    fn log(&self, text: &str) {
        crate::log(Protocol::Pop3, self.settings, text);
    }

    fn ok(&mut self, text: &str) {
        self.conn.write(format!("+OK {text}\r\n").as_bytes());
    }

    fn err(&mut self, text: &str) {
        self.errors += 1;
        self.conn.write(format!("-ERR {text}\r\n").as_bytes());
    }

    /// Passwords may be sent: inside TLS, or where the rules allow plaintext.
    fn login_allowed(&self) -> bool {
        self.conn.is_tls() || self.settings.plaintext_auth
    }

    fn refuse_plaintext(&mut self) -> Step {
        self.err("[AUTH] plaintext login refused: use STLS first");
        Step::Continue
    }

    /// Reads and carries out one command.
    fn step(&mut self) -> Step {
        if self.errors >= MAX_ERRORS {
            self.conn
                .write(b"-ERR too many errors, closing connection\r\n");
            self.log("closing: too many errors");
            return Step::Close;
        }
        let line = match self.conn.read_line(AUTH_LINE_MAX) {
            Ok(Line::Text(line)) => Secret::new(line),
            Ok(Line::TooLong) => {
                self.err("line too long");
                return Step::Continue;
            }
            Ok(Line::Eof) => return Step::Close,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                self.conn
                    .write(b"-ERR idle timeout, closing connection\r\n");
                self.log("timeout");
                return Step::Close;
            }
            Err(e) => {
                self.log(&format!("connection lost: {e}"));
                return Step::Close;
            }
        };
        let (verb, arg) = split(&line);
        if verb != "AUTH" && line.len() > COMMAND_MAX {
            self.err("line too long");
            return Step::Continue;
        }
        match verb.as_str() {
            "CAPA" => self.capa(),
            "STLS" => self.stls(arg),
            "USER" => self.user(arg),
            "PASS" => self.pass(arg),
            "AUTH" => self.auth(arg),
            "NOOP" => {
                self.ok("");
                Step::Continue
            }
            "QUIT" => {
                self.ok("bye");
                Step::Close
            }
            "APOP" => {
                self.err("APOP not supported: use USER and PASS, or AUTH PLAIN");
                Step::Continue
            }
            "STAT" | "LIST" | "RETR" | "DELE" | "RSET" | "TOP" | "UIDL" | "LAST" => {
                self.err("log in first");
                Step::Continue
            }
            _ => {
                self.err("unknown command");
                Step::Continue
            }
        }
    }

    /// RFC 2449. TOP, UIDL and the like describe the session after login (rqmail-pop3d);
    /// USER and SASL only where a password may be sent now.
    fn capa(&mut self) -> Step {
        let mut text = String::from("+OK capability list follows\r\n");
        for cap in ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"] {
            text.push_str(cap);
            text.push_str("\r\n");
        }
        if self.login_allowed() {
            text.push_str("USER\r\nSASL PLAIN\r\n");
        }
        if !self.conn.is_tls() && self.settings.servercert.is_some() {
            text.push_str("STLS\r\n");
        }
        text.push_str(".\r\n");
        self.conn.write(text.as_bytes());
        Step::Continue
    }

    /// RFC 2595 §4.
    fn stls(&mut self, arg: &[u8]) -> Step {
        if !arg.is_empty() {
            self.err("syntax: STLS takes no argument");
            return Step::Continue;
        }
        if self.conn.is_tls() {
            self.err("TLS already active");
            return Step::Continue;
        }
        let Some(config) = crate::tls_config(Protocol::Pop3, self.settings) else {
            self.err("TLS not available");
            return Step::Continue;
        };
        self.ok("begin TLS negotiation");
        if self.conn.flush().is_err() {
            return Step::Close;
        }
        // Anything sent after STLS in the clear was sent before the handshake: it must
        // never be read as if it came inside TLS (CVE-2011-0411, RFC 2595 §4).
        let dropped = self.conn.discard_buffered();
        if dropped > 0 {
            self.log(&format!("discarded {dropped} bytes pipelined after STLS"));
        }
        if let Err(e) = self.conn.start_tls(config) {
            self.log(&format!("TLS handshake failed: {e}"));
            return Step::Close;
        }
        // Back to the start of AUTHORIZATION, with no greeting (RFC 2595 §4).
        self.user = None;
        Step::Continue
    }

    fn user(&mut self, arg: &[u8]) -> Step {
        if !self.login_allowed() {
            return self.refuse_plaintext();
        }
        if arg.is_empty() {
            self.err("syntax: USER name");
            return Step::Continue;
        }
        self.user = Some(arg.to_vec());
        self.ok("send PASS");
        Step::Continue
    }

    fn pass(&mut self, arg: &[u8]) -> Step {
        if !self.login_allowed() {
            return self.refuse_plaintext();
        }
        let Some(user) = self.user.take() else {
            self.err("USER first");
            return Step::Continue;
        };
        if arg.is_empty() {
            self.err("syntax: PASS password");
            return Step::Continue;
        }
        self.login(&user, arg)
    }

    /// RFC 5034, mechanism PLAIN only.
    fn auth(&mut self, arg: &[u8]) -> Step {
        let (mechanism, initial) = split(arg);
        if mechanism.is_empty() {
            // Not in RFC 5034, but older clients ask this way for the mechanisms.
            if !self.login_allowed() {
                return self.refuse_plaintext();
            }
            self.conn.write(b"+OK\r\nPLAIN\r\n.\r\n");
            return Step::Continue;
        }
        if mechanism != "PLAIN" {
            self.err("unsupported mechanism: only PLAIN");
            return Step::Continue;
        }
        if !self.login_allowed() {
            return self.refuse_plaintext();
        }
        let response = if initial.is_empty() {
            self.conn.write(b"+ \r\n");
            match self.conn.read_line(AUTH_LINE_MAX) {
                Ok(Line::Text(line)) => Secret::new(line),
                Ok(Line::TooLong) => {
                    self.err("authentication line too long");
                    return Step::Continue;
                }
                Ok(Line::Eof) | Err(_) => return Step::Close,
            }
        } else {
            Secret::new(initial.to_vec())
        };
        if *response == *b"*" {
            self.err("authentication cancelled");
            return Step::Continue;
        }
        let decoded = if *response == *b"=" {
            Secret::new(Vec::new())
        } else {
            match STANDARD.decode(response.trim_ascii()) {
                Ok(bytes) => Secret::new(bytes),
                Err(_) => {
                    self.err("invalid base64");
                    return Step::Continue;
                }
            }
        };
        match plain(&decoded) {
            Ok((user, password)) => self.login(&user, &password),
            Err(why) => {
                self.err(&format!("[AUTH] {why}"));
                Step::Continue
            }
        }
    }

    /// One login attempt through the root half.
    fn login(&mut self, user: &[u8], password: &[u8]) -> Step {
        let name = rqmail_log::escape(user, false);
        // Credentials the root half would refuse never reach it; they fail like a wrong
        // password, so that nothing tells a prober which names exist.
        let verdict = match Credentials::new(user, password) {
            Some(credentials) => self
                .handoff
                .attempt(credentials, self.settings.timeout)
                .unwrap_or_else(|e| {
                    self.log(&format!("no answer from the root half: {e}"));
                    Verdict::Gone
                }),
            None => Verdict::Refused,
        };
        self.conn.wipe_consumed();
        match verdict {
            Verdict::Accepted(first) => {
                let tls = self.conn.tls_description();
                self.log(&format!(
                    "login for {name} ({})",
                    tls.as_deref().unwrap_or("no TLS")
                ));
                Step::LoggedIn(first, user.to_vec())
            }
            Verdict::Gone => {
                self.log(&format!(
                    "login for {name}: the root half or the session is gone"
                ));
                self.conn
                    .write(b"-ERR [SYS/TEMP] login unavailable, try again later\r\n");
                Step::Close
            }
            Verdict::Refused | Verdict::Temporary => {
                self.failures += 1;
                let temporary = verdict == Verdict::Temporary;
                self.log(&format!(
                    "login failed for {name}{} ({} of {MAX_ATTEMPTS})",
                    if temporary { ": temporary failure" } else { "" },
                    self.failures
                ));
                // Each failure waits twice as long as the one before.
                std::thread::sleep(crate::fail_delay(self.settings, self.failures));
                let last = self.failures >= MAX_ATTEMPTS;
                let reply = match (temporary, last) {
                    (false, false) => "-ERR [AUTH] authentication failed\r\n",
                    (false, true) => {
                        "-ERR [AUTH] authentication failed, too many failures: closing connection\r\n"
                    }
                    (true, false) => "-ERR [SYS/TEMP] temporary failure, try again later\r\n",
                    (true, true) => {
                        "-ERR [SYS/TEMP] temporary failure, too many failures: closing connection\r\n"
                    }
                };
                self.conn.write(reply.as_bytes());
                if last { Step::Close } else { Step::Continue }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_verb_and_argument_like_qmail_popup() {
        assert_eq!(split(b"user joe"), ("USER".to_string(), &b"joe"[..]));
        assert_eq!(
            split(b"PASS   two words "),
            ("PASS".to_string(), &b"two words "[..])
        );
        assert_eq!(split(b"NOOP"), ("NOOP".to_string(), &b""[..]));
        assert_eq!(split(b""), (String::new(), &b""[..]));
    }

    #[test]
    fn decodes_plain_and_refuses_acting_as_someone_else() {
        let (user, password) = plain(b"\0joe\0secret").unwrap();
        assert_eq!(user, b"joe");
        assert_eq!(&*password, b"secret");
        let (user, password) = plain(b"joe\0joe\0with\0nul").unwrap();
        assert_eq!(user, b"joe");
        assert_eq!(&*password, b"with\0nul");
        assert!(plain(b"admin\0joe\0secret").is_err());
        assert!(plain(b"joe\0secret").is_err());
    }
}
