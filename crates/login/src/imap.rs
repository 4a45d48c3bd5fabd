//! IMAP's not-authenticated state as the front speaks it (RFC 3501 §6.1–6.2 and 9051; 4959
//! SASL-IR, 7888 LITERAL+, 2971 ID, 8314 implicit TLS): greeting, CAPABILITY, NOOP, LOGOUT,
//! STARTTLS, LOGIN, AUTHENTICATE PLAIN and ID. The password check is the root half's.
//!
//! On success the post-login program (rqmail-imapd, running as the user) answers the login
//! command itself: the front sends the command's tag with the credentials and the root half
//! gives it to that program as `IMAPLOGINTAG`. Passwords are taken only inside TLS, or where
//! `IMAP_PLAINTEXT` is set (a rule for loopback); elsewhere the greeting says LOGINDISABLED
//! and LOGIN and AUTHENTICATE get `NO [PRIVACYREQUIRED]`.
//!
//! Every input is bounded: lines ([`LINE_MAX`]), tags ([`MAX_TAG`]), literals
//! ([`LITERAL_MAX`], and [`LITERALS_MAX`] of them in one command), errors ([`MAX_ERRORS`]).

use crate::conn::{Conn, Line};
use crate::handoff::{Credentials, Handoff, MAX_ATTEMPTS, MAX_TAG, Secret, Verdict, valid_tag};
use crate::settings::Settings;
use crate::{LoggedIn, Protocol};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io;

/// Longest command line, CRLF excluded (RFC 7162 §4 recommends accepting at least 8000).
pub const LINE_MAX: usize = 8192;
/// Longest literal: ample for a name or password (the root half takes 511 bytes of both).
pub const LITERAL_MAX: usize = 1024;
/// Literals in one command; a login needs two, ID's field list a few more.
pub const LITERALS_MAX: usize = 16;
/// Longest AUTHENTICATE response line: the base64 of the longest credentials the root
/// half accepts (511 bytes) is 684 characters.
pub const AUTH_LINE_MAX: usize = 1024;
/// Strings in ID's field list (RFC 2971 §3.3: at most 30 field/value pairs).
const ID_STRINGS_MAX: usize = 60;
/// Errors (bad or refused commands) a client may make before it is disconnected.
const MAX_ERRORS: u32 = 20;
/// Commands of the authenticated and selected states (RFC 3501, 9051 and extensions):
/// refused with NO, since they are valid, only not yet.
const AFTER_LOGIN: &[&str] = &[
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "NAMESPACE",
    "STATUS",
    "APPEND",
    "IDLE",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "GETQUOTA",
    "GETQUOTAROOT",
    "GETACL",
    "MYRIGHTS",
];

/// What one command leads to.
enum Step {
    /// Stay in the not-authenticated state.
    Continue,
    /// Close the connection.
    Close,
    /// Logged in: the post-login program's first output, and the login name.
    LoggedIn(Vec<u8>, Vec<u8>),
}

/// Why a command did not run.
#[derive(Debug)]
enum Fail {
    /// Tagged BAD with this text: the command is malformed.
    Bad(String),
    /// Tagged NO with this text: the command is refused.
    No(String),
    /// The connection ends (already answered, or gone).
    Close,
}

fn bad(text: &str) -> Fail {
    Fail::Bad(text.to_string())
}

/// RFC 3501 §9 ATOM-CHAR: printable ASCII but `(`, `)`, `{`, space, `%`, `*`, `"`, `\`, `]`.
fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b)
}

/// ASTRING-CHAR: an ATOM-CHAR or `]`.
fn is_astring_char(b: u8) -> bool {
    b == b']' || is_atom_char(b)
}

/// The literal announced at the end of `line` (`{n}` or, LITERAL+, `{n+}`), as its size
/// and whether it is synchronizing; `None` if the line does not end with one.
fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let spec = &inner[open + 1..];
    let (digits, sync) = match spec.strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (spec, true),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, sync))
}

/// The command being read: the line at hand (after a literal, the line that follows it)
/// and the position in it.
struct Cursor {
    line: Secret,
    pos: usize,
    literals: usize,
}

impl Cursor {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// The single space between arguments.
    fn sp(&mut self) -> Result<(), Fail> {
        if self.peek() != Some(b' ') {
            return Err(bad("syntax error: missing argument"));
        }
        self.pos += 1;
        Ok(())
    }

    fn end(&self) -> Result<(), Fail> {
        if self.at_end() {
            Ok(())
        } else {
            Err(bad("syntax error: unexpected arguments"))
        }
    }

    /// The longest run of bytes that `accept` takes, at least one.
    fn run(&mut self, accept: fn(u8) -> bool) -> Result<&[u8], Fail> {
        let start = self.pos;
        while self.peek().is_some_and(accept) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(bad("syntax error"));
        }
        Ok(&self.line[start..self.pos])
    }

    /// An atom, in upper case (a command or mechanism name).
    fn atom(&mut self) -> Result<String, Fail> {
        let atom = self.run(is_atom_char)?;
        Ok(String::from_utf8_lossy(atom).to_ascii_uppercase())
    }

    /// An astring: atom, quoted string or literal (RFC 3501 §9).
    fn astring(&mut self, conn: &mut Conn) -> Result<Secret, Fail> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(conn),
            _ => Ok(Secret::new(self.run(is_astring_char)?.to_vec())),
        }
    }

    /// A quoted string, `\"` and `\\` its only escapes. Bytes above 127 are let through
    /// (UTF-8 names and passwords, as RFC 9051 allows).
    fn quoted(&mut self) -> Result<Secret, Fail> {
        // Never reallocated, so that no copy of a password is left behind unwiped.
        let mut bytes = Vec::with_capacity(self.line.len());
        self.pos += 1;
        let result = loop {
            match self.peek() {
                None => break Err(bad("syntax error: unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    break Ok(());
                }
                Some(b'\\') => match self.line.get(self.pos + 1) {
                    Some(&c @ (b'"' | b'\\')) => {
                        bytes.push(c);
                        self.pos += 2;
                    }
                    _ => break Err(bad("syntax error: bad escape in quoted string")),
                },
                Some(0) => break Err(bad("syntax error: NUL in quoted string")),
                Some(c) => {
                    bytes.push(c);
                    self.pos += 1;
                }
            }
        };
        let text = Secret::new(bytes);
        result.map(|()| text)
    }

    /// A literal at the end of the line: `+` asks for it unless it is non-synchronizing
    /// (LITERAL+); then its bytes, and the next line carries on the command.
    fn literal(&mut self, conn: &mut Conn) -> Result<Secret, Fail> {
        let Some((n, sync)) = literal_at_end(&self.line[self.pos..]) else {
            return Err(bad("syntax error: malformed literal"));
        };
        if self.line[self.pos + 1..].contains(&b'{') {
            return Err(bad("syntax error: malformed literal"));
        }
        self.literals += 1;
        if n > LITERAL_MAX as u64 || self.literals > LITERALS_MAX {
            if sync {
                // The client waits for a continuation that does not come.
                return Err(Fail::No("[TOOBIG] literal too large".into()));
            }
            // The bytes are on their way and cannot be told from commands: hang up.
            conn.write(b"* BYE [TOOBIG] literal too large\r\n");
            return Err(Fail::Close);
        }
        let n = n as usize;
        if sync {
            conn.write(b"+ ready for literal data\r\n");
        }
        while conn.buffered().len() < n {
            match conn.fill() {
                Ok(0) | Err(_) => return Err(Fail::Close),
                Ok(_) => {}
            }
        }
        let data = Secret::new(conn.buffered()[..n].to_vec());
        conn.consume(n);
        match conn.read_line(LINE_MAX) {
            Ok(Line::Text(line)) => {
                self.line = Secret::new(line);
                self.pos = 0;
                Ok(data)
            }
            Ok(Line::TooLong) => Err(bad("line too long")),
            Ok(Line::Eof) | Err(_) => Err(Fail::Close),
        }
    }
}

/// The not-authenticated state.
struct NotAuthenticated<'s> {
    settings: &'s Settings,
    conn: Conn,
    handoff: Handoff,
    errors: u32,
    failures: u32,
}

/// Runs the not-authenticated state from the greeting; `Some` once the client has logged
/// in. The connection is closed here in every other case.
pub fn authorize(settings: &Settings, conn: Conn, handoff: Handoff) -> Option<LoggedIn> {
    let mut state = NotAuthenticated {
        settings,
        conn,
        handoff,
        errors: 0,
        failures: 0,
    };
    let greeting = format!(
        "* OK [CAPABILITY {}] rqmail ready\r\n",
        state.capabilities()
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

impl NotAuthenticated<'_> {
    fn log(&self, text: &str) {
        crate::log(Protocol::Imap, self.settings, text);
    }

    fn reply(&mut self, tag: &str, text: &str) {
        self.conn.write(format!("{tag} {text}\r\n").as_bytes());
    }

    /// Passwords may be sent: inside TLS, or where the rules allow plaintext.
    fn login_allowed(&self) -> bool {
        self.conn.is_tls() || self.settings.plaintext_auth
    }

    /// What the greeting and CAPABILITY announce. The version is the post-login program's
    /// business as much as the front's: IMAP4rev1 is what both speak.
    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 SASL-IR LITERAL+ ID ENABLE");
        if !self.conn.is_tls() && self.settings.servercert.is_some() {
            caps.push_str(" STARTTLS");
        }
        caps.push_str(if self.login_allowed() {
            " AUTH=PLAIN"
        } else {
            " LOGINDISABLED"
        });
        caps
    }

    /// After a refused command, the rest of it: the bytes of non-synchronizing literals
    /// at the ends of its lines are read and thrown away, so that none is taken for a
    /// command. (A synchronizing literal is never sent: its continuation never came.)
    /// False if the connection is to be closed.
    fn skip_rest(&mut self, mut line: Secret) -> bool {
        for _ in 0..LITERALS_MAX {
            let Some((n, false)) = literal_at_end(&line) else {
                return true;
            };
            if n > LITERAL_MAX as u64 {
                self.conn.write(b"* BYE [TOOBIG] literal too large\r\n");
                return false;
            }
            let n = n as usize;
            while self.conn.buffered().len() < n {
                match self.conn.fill() {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => {}
                }
            }
            self.conn.consume(n);
            line = match self.conn.read_line(LINE_MAX) {
                Ok(Line::Text(next)) => Secret::new(next),
                Ok(Line::TooLong) => return true,
                Ok(Line::Eof) | Err(_) => return false,
            };
        }
        self.conn.write(b"* BYE too many literals\r\n");
        false
    }

    /// Reads and carries out one command.
    fn step(&mut self) -> Step {
        if self.errors >= MAX_ERRORS {
            self.conn.write(b"* BYE too many errors\r\n");
            self.log("closing: too many errors");
            return Step::Close;
        }
        let line = match self.conn.read_line(LINE_MAX) {
            Ok(Line::Text(line)) => Secret::new(line),
            Ok(Line::TooLong) => {
                self.errors += 1;
                self.conn.write(b"* BAD line too long\r\n");
                return Step::Continue;
            }
            Ok(Line::Eof) => return Step::Close,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                self.conn.write(b"* BYE idle timeout\r\n");
                self.log("timeout");
                return Step::Close;
            }
            Err(e) => {
                self.log(&format!("connection lost: {e}"));
                return Step::Close;
            }
        };
        let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        if !valid_tag(&line[..end]) {
            self.errors += 1;
            let text = if end > MAX_TAG {
                "* BAD tag too long\r\n"
            } else {
                "* BAD missing or invalid tag\r\n"
            };
            self.conn.write(text.as_bytes());
            return if self.skip_rest(line) {
                Step::Continue
            } else {
                Step::Close
            };
        }
        // valid_tag admits ASCII only.
        let tag = String::from_utf8_lossy(&line[..end]).into_owned();
        let mut cursor = Cursor {
            line,
            pos: end,
            literals: 0,
        };
        let result = cursor
            .sp()
            .and_then(|()| cursor.atom())
            .and_then(|command| self.command(&tag, &command, &mut cursor));
        match result {
            Ok(step) => step,
            Err(Fail::Close) => Step::Close,
            Err(fail) => {
                self.errors += 1;
                match fail {
                    Fail::Bad(text) => self.reply(&tag, &format!("BAD {text}")),
                    Fail::No(text) => self.reply(&tag, &format!("NO {text}")),
                    Fail::Close => {}
                }
                if self.skip_rest(cursor.line) {
                    Step::Continue
                } else {
                    Step::Close
                }
            }
        }
    }

    fn command(&mut self, tag: &str, command: &str, c: &mut Cursor) -> Result<Step, Fail> {
        match command {
            "CAPABILITY" => {
                c.end()?;
                let caps = format!("* CAPABILITY {}", self.capabilities());
                self.conn.write(caps.as_bytes());
                self.conn.write(b"\r\n");
                self.reply(tag, "OK CAPABILITY completed");
                Ok(Step::Continue)
            }
            "NOOP" => {
                c.end()?;
                self.reply(tag, "OK NOOP completed");
                Ok(Step::Continue)
            }
            "LOGOUT" => {
                c.end()?;
                self.conn.write(b"* BYE logging out\r\n");
                self.reply(tag, "OK LOGOUT completed");
                Ok(Step::Close)
            }
            "STARTTLS" => {
                c.end()?;
                self.starttls(tag)
            }
            "LOGIN" => self.login_command(tag, c),
            "AUTHENTICATE" => self.authenticate(tag, c),
            "ID" => {
                c.sp()?;
                id_params(c, &mut self.conn)?;
                c.end()?;
                self.conn.write(b"* ID NIL\r\n");
                self.reply(tag, "OK ID completed");
                Ok(Step::Continue)
            }
            "ENABLE" => Err(bad("ENABLE is valid only after login")),
            _ if AFTER_LOGIN.contains(&command) => Err(Fail::No("log in first".into())),
            _ => Err(bad("unknown command")),
        }
    }

    /// RFC 3501 §6.2.1: no new greeting after the handshake.
    fn starttls(&mut self, tag: &str) -> Result<Step, Fail> {
        if self.conn.is_tls() {
            return Err(bad("TLS already active"));
        }
        let Some(config) = crate::tls_config(Protocol::Imap, self.settings) else {
            return Err(Fail::No("TLS not available".into()));
        };
        self.reply(tag, "OK begin TLS negotiation now");
        if self.conn.flush().is_err() {
            return Err(Fail::Close);
        }
        // Anything sent after STARTTLS in the clear was sent before the handshake: it must
        // never be read as if it came inside TLS (CVE-2011-0411, RFC 3501 §6.2.1).
        let dropped = self.conn.discard_buffered();
        if dropped > 0 {
            self.log(&format!(
                "discarded {dropped} bytes pipelined after STARTTLS"
            ));
        }
        if let Err(e) = self.conn.start_tls(config) {
            self.log(&format!("TLS handshake failed: {e}"));
            return Err(Fail::Close);
        }
        Ok(Step::Continue)
    }

    fn privacy_required() -> Fail {
        Fail::No("[PRIVACYREQUIRED] plaintext login refused: use STARTTLS first".into())
    }

    /// LOGIN userid password (RFC 3501 §6.2.3).
    fn login_command(&mut self, tag: &str, c: &mut Cursor) -> Result<Step, Fail> {
        // Refused before any literal is asked for: the password is never sent.
        if !self.login_allowed() {
            return Err(Self::privacy_required());
        }
        c.sp()?;
        let user = c.astring(&mut self.conn)?;
        c.sp()?;
        let password = c.astring(&mut self.conn)?;
        c.end()?;
        Ok(self.login(tag, &user, &password))
    }

    /// AUTHENTICATE PLAIN, with an initial response (RFC 4959) or after a continuation.
    fn authenticate(&mut self, tag: &str, c: &mut Cursor) -> Result<Step, Fail> {
        c.sp()?;
        let mechanism = c.atom()?;
        if mechanism != "PLAIN" {
            return Err(Fail::No("unsupported mechanism: only PLAIN".into()));
        }
        if !self.login_allowed() {
            return Err(Self::privacy_required());
        }
        let response = if c.at_end() {
            self.conn.write(b"+ \r\n");
            match self.conn.read_line(AUTH_LINE_MAX) {
                Ok(Line::Text(line)) => Secret::new(line),
                Ok(Line::TooLong) => return Err(bad("authentication line too long")),
                Ok(Line::Eof) | Err(_) => return Err(Fail::Close),
            }
        } else {
            c.sp()?;
            let initial = Secret::new(c.run(|b| b.is_ascii_graphic())?.to_vec());
            c.end()?;
            initial
        };
        if *response == *b"*" {
            return Err(bad("authentication cancelled"));
        }
        let decoded = if *response == *b"=" {
            Secret::new(Vec::new())
        } else {
            match STANDARD.decode(&*response) {
                Ok(bytes) => Secret::new(bytes),
                Err(_) => return Err(bad("invalid base64")),
            }
        };
        match crate::pop3::plain(&decoded) {
            Ok((user, password)) => Ok(self.login(tag, &user, &password)),
            Err(why) => Err(Fail::No(format!("[AUTHENTICATIONFAILED] {why}"))),
        }
    }

    /// One login attempt through the root half; the tag goes with it for the post-login
    /// program's tagged OK.
    fn login(&mut self, tag: &str, user: &[u8], password: &[u8]) -> Step {
        let name = rqmail_log::escape(user, false);
        // Credentials the root half would refuse never reach it; they fail like a wrong
        // password, so that nothing tells a prober which names exist.
        let verdict = match Credentials::with_tag(user, password, tag.as_bytes()) {
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
                self.reply(tag, "NO [UNAVAILABLE] login unavailable, try again later");
                self.conn.write(b"* BYE login unavailable\r\n");
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
                self.reply(
                    tag,
                    if temporary {
                        "NO [UNAVAILABLE] temporary failure, try again later"
                    } else {
                        "NO [AUTHENTICATIONFAILED] authentication failed"
                    },
                );
                if self.failures >= MAX_ATTEMPTS {
                    self.conn
                        .write(b"* BYE too many failures: closing connection\r\n");
                    return Step::Close;
                }
                Step::Continue
            }
        }
    }
}

/// ID's argument (RFC 2971): NIL, or a parenthesized list of strings (field, value, ...;
/// values may be NIL). Read only to be passed over: the answer is `* ID NIL` whatever it says.
fn id_params(c: &mut Cursor, conn: &mut Conn) -> Result<(), Fail> {
    if c.peek() != Some(b'(') {
        return match c.atom()?.as_str() {
            "NIL" => Ok(()),
            _ => Err(bad("syntax error: ID takes NIL or a list")),
        };
    }
    c.pos += 1;
    for i in 0..=ID_STRINGS_MAX {
        if c.peek() == Some(b')') && i > 0 {
            c.pos += 1;
            return Ok(());
        }
        if i > 0 {
            c.sp()?;
        }
        if i == ID_STRINGS_MAX {
            break;
        }
        c.astring(conn)?;
    }
    Err(bad("syntax error: ID list too long or unterminated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(line: &[u8]) -> Cursor {
        Cursor {
            line: Secret::new(line.to_vec()),
            pos: 0,
            literals: 0,
        }
    }

    #[test]
    fn finds_literals_at_the_end_of_a_line() {
        assert_eq!(literal_at_end(b"a LOGIN {3}"), Some((3, true)));
        assert_eq!(literal_at_end(b"a LOGIN joe {12+}"), Some((12, false)));
        assert_eq!(literal_at_end(b"{0}"), Some((0, true)));
        assert_eq!(literal_at_end(b"a LOGIN {3} "), None);
        assert_eq!(literal_at_end(b"a LOGIN {}"), None);
        assert_eq!(literal_at_end(b"a LOGIN {+}"), None);
        assert_eq!(literal_at_end(b"a LOGIN {3++}"), None);
        assert_eq!(literal_at_end(b"a LOGIN {12345678901}"), None);
        assert_eq!(literal_at_end(b"a LOGIN {-3}"), None);
    }

    #[test]
    fn reads_atoms_and_quoted_strings_with_their_escapes() {
        let mut c = cursor(br#"joe "pass \"word\" \\ x" "un"#);
        assert_eq!(c.run(is_astring_char).ok(), Some(&b"joe"[..]));
        c.sp().unwrap();
        assert_eq!(&*c.quoted().unwrap(), br#"pass "word" \ x"#);
        c.sp().unwrap();
        assert!(matches!(c.quoted(), Err(Fail::Bad(_))));
        let mut c = cursor(br#""a\b""#);
        assert!(matches!(c.quoted(), Err(Fail::Bad(_))));
        let mut c = cursor(b"\"caf\xc3\xa9\"");
        assert_eq!(&*c.quoted().unwrap(), "café".as_bytes());
        let mut c = cursor(b"(x");
        assert!(matches!(c.atom(), Err(Fail::Bad(_))));
        let mut c = cursor(b"login ");
        assert_eq!(c.atom().ok(), Some("LOGIN".to_string()));
        assert!(!c.at_end());
    }

    #[test]
    fn atoms_exclude_the_specials() {
        for b in b"(){ %*\"\\]\x7f\x00".iter() {
            assert!(!is_atom_char(*b), "{b}");
        }
        assert!(is_astring_char(b']'));
        assert!(is_atom_char(b'+') && is_atom_char(b'.'));
    }
}
