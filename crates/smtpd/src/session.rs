//! The SMTP dialogue. A session moves from greeting to HELO/EHLO to a transaction (MAIL,
//! RCPT, DATA) and back; STARTTLS and AUTH change what it may do. Every reply carries an
//! enhanced status code; every refusal is logged.

use crate::auth::{self, Outcome};
use crate::conn::{Conn, Line};
use crate::rcpt::{self, Verdict};
use crate::settings::Settings;
use rqmail_qfiles::client::{QueueFailure, Submission};
use rqmail_smtp::command::{self, AUTH_LINE_MAX, COMMAND_MAX, PathError};
use rqmail_smtp::data::{Decoder, Event, MAX_HOPS};
use rqmail_smtp::received::Trace;
use rqmail_smtp::reply::Reply;
use std::io;
use std::time::Duration;

/// Errors (bad commands, refusals) a client may make before it is disconnected: a client
/// that floods garbage must not hold a process forever.
const MAX_ERRORS: u32 = 20;
/// Failed AUTH attempts before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// QUIT.
    Quit,
    /// The client went away or timed out.
    Gone,
    /// The server closed it (errors, bare LF, TLS failure).
    Closed,
}

struct Transaction {
    sender: Vec<u8>,
    recipients: Vec<Vec<u8>>,
    bad_sender: bool,
    utf8: bool,
}

/// Where DATA's message goes: to rqmail-queue, or (in a session without programs) nowhere.
enum Queue {
    Program(Submission),
    Discard,
}

impl Queue {
    fn write_body(&mut self, data: &[u8]) {
        if let Queue::Program(sub) = self {
            sub.write_body(data);
        }
    }

    fn finish(self, sender: &[u8], recipients: &[&[u8]]) -> Result<u32, QueueFailure> {
        match self {
            Queue::Program(sub) => sub.finish(sender, recipients),
            Queue::Discard => Ok(0),
        }
    }
}

/// The one login a session without programs accepts (see [`Session::without_programs`]).
struct FixedLogin {
    user: String,
    password: Vec<u8>,
}

/// One session's state.
pub struct Session {
    settings: Settings,
    conn: Conn,
    helo: Option<String>,
    esmtp: bool,
    user: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
    auth_failures: u32,
    messages: u32,
    /// Set by [`Session::without_programs`].
    fixed_login: Option<FixedLogin>,
}

fn log(settings: &Settings, text: &str) {
    rqmail_log::line(&format!(
        "rqmail-smtpd: pid {} from {}: {}",
        std::process::id(),
        settings.remote_ip,
        text
    ));
}

fn printable(bytes: &[u8]) -> String {
    rqmail_log::escape(bytes, false)
}

impl Session {
    /// A session over `conn`.
    pub fn new(settings: Settings, conn: Conn) -> Session {
        Session {
            settings,
            conn,
            helo: None,
            esmtp: false,
            user: None,
            tx: None,
            errors: 0,
            auth_failures: 0,
            messages: 0,
            fixed_login: None,
        }
    }

    /// The session without the programs it would run, so that tests and the fuzz target
    /// can drive a whole dialogue in one process and without waiting: AUTH accepts `user`
    /// with `password` and no one else (the user `tempfail` gets 454), a refused AUTH is
    /// not delayed, and DATA reads and checks the message as usual, then throws it away
    /// and answers 250 with qp 0 instead of running rqmail-queue. AUTH is still offered only
    /// where `checkpassword` is set.
    #[doc(hidden)]
    pub fn without_programs(mut self, user: &str, password: &[u8]) -> Session {
        self.fixed_login = Some(FixedLogin {
            user: user.to_string(),
            password: password.to_vec(),
        });
        self
    }

    fn reply(&mut self, r: Reply) {
        if r.is_error() {
            self.errors += 1;
        }
        self.conn.write(&r.to_bytes());
    }

    fn log(&self, text: &str) {
        log(&self.settings, text);
    }

    /// Runs the whole session: greeting, commands until QUIT or the end.
    pub fn run(&mut self) -> End {
        if self.settings.smtps {
            let Some(config) = self.tls_config() else {
                self.log("SMTPS requested but no usable control/servercert.pem");
                return End::Closed;
            };
            if let Err(e) = self.conn.start_tls(config) {
                self.log(&format!("TLS handshake failed: {e}"));
                return End::Closed;
            }
        }
        let greeting = Reply::plain(220, format!("{} ESMTP", self.settings.greeting));
        self.conn.write(&greeting.to_bytes());
        let end = self.dialogue();
        self.conn.close();
        self.log(&format!("end: {end:?}, {} messages", self.messages));
        end
    }

    fn tls_config(&self) -> Option<std::sync::Arc<rustls::ServerConfig>> {
        let path = self.settings.servercert.as_ref()?;
        match crate::tls::server_config(path) {
            Ok(c) => Some(c),
            Err(e) => {
                self.log(&format!("TLS unavailable: {e}"));
                None
            }
        }
    }

    fn dialogue(&mut self) -> End {
        loop {
            if self.errors >= MAX_ERRORS {
                self.reply(Reply::new(
                    421,
                    "4.7.0",
                    "too many errors, closing connection",
                ));
                self.log("closing: too many errors");
                return End::Closed;
            }
            let line = match self.conn.read_line(AUTH_LINE_MAX) {
                Ok(Line::Text(l)) => l,
                Ok(Line::TooLong) => {
                    self.reply(Reply::new(500, "5.5.2", "line too long"));
                    continue;
                }
                Ok(Line::Eof) => return End::Gone,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.reply(Reply::new(421, "4.4.2", "timeout, closing connection"));
                    self.log("timeout");
                    return End::Gone;
                }
                Err(_) => return End::Gone,
            };
            let (verb, arg) = command::split(&line);
            if verb != "AUTH" && line.len() > COMMAND_MAX - 2 {
                self.reply(Reply::new(500, "5.5.2", "command line too long"));
                continue;
            }
            let arg = arg.to_vec();
            let result = match verb.as_str() {
                "HELO" => self.helo(&arg, false),
                "EHLO" => self.helo(&arg, true),
                "STARTTLS" => self.starttls(&arg),
                "AUTH" => self.auth(&arg),
                "MAIL" => self.mail(&arg),
                "RCPT" => self.rcpt(&arg),
                "DATA" => self.data(&arg),
                "RSET" => {
                    self.tx = None;
                    self.reply(Reply::new(250, "2.0.0", "ok"));
                    Ok(())
                }
                "NOOP" => {
                    self.reply(Reply::new(250, "2.0.0", "ok"));
                    Ok(())
                }
                "VRFY" => {
                    self.reply(Reply::new(252, "2.5.2", "send some mail, I'll try my best"));
                    Ok(())
                }
                "HELP" => {
                    self.reply(Reply::new(214, "2.0.0", "see RFC 5321"));
                    Ok(())
                }
                "QUIT" => {
                    let r = Reply::new(
                        221,
                        "2.0.0",
                        format!("{} closing connection", self.settings.greeting),
                    );
                    self.reply(r);
                    return End::Quit;
                }
                _ => {
                    self.reply(Reply::new(502, "5.5.1", "unrecognized command"));
                    Ok(())
                }
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    fn helo(&mut self, arg: &[u8], esmtp: bool) -> Result<(), End> {
        if arg.is_empty() || arg.iter().any(|&b| b < 32 || b == 127) {
            self.reply(Reply::new(501, "5.5.4", "syntax: HELO hostname"));
            return Ok(());
        }
        self.helo = Some(String::from_utf8_lossy(arg).into_owned());
        self.esmtp = esmtp;
        self.tx = None;
        if !esmtp {
            let r = Reply::plain(250, self.settings.greeting.clone());
            self.reply(r);
            return Ok(());
        }
        let mut lines = vec![
            self.settings.greeting.clone(),
            "PIPELINING".into(),
            "8BITMIME".into(),
            if self.settings.databytes > 0 {
                format!("SIZE {}", self.settings.databytes)
            } else {
                "SIZE".into()
            },
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
        ];
        if self.settings.servercert.is_some() && !self.conn.is_tls() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        self.reply(Reply {
            code: 250,
            enhanced: None,
            lines,
        });
        Ok(())
    }

    fn auth_offered(&self) -> bool {
        self.settings.checkpassword.is_some()
            && self.user.is_none()
            && (self.conn.is_tls() || self.settings.auth_plaintext)
    }

    fn starttls(&mut self, arg: &[u8]) -> Result<(), End> {
        if !arg.is_empty() {
            self.reply(Reply::new(
                501,
                "5.5.4",
                "syntax: STARTTLS takes no argument",
            ));
            return Ok(());
        }
        if self.conn.is_tls() {
            self.reply(Reply::new(503, "5.5.1", "TLS already active"));
            return Ok(());
        }
        let Some(config) = self.tls_config() else {
            self.reply(Reply::new(454, "4.7.0", "TLS not available"));
            return Ok(());
        };
        self.conn
            .write(&Reply::new(220, "2.0.0", "ready to start TLS").to_bytes());
        if self.conn.flush().is_err() {
            return Err(End::Gone);
        }
        // Anything sent after STARTTLS in the clear was sent before the handshake: it must
        // never be read as if it came inside TLS (CVE-2011-0411).
        let dropped = self.conn.discard_buffered();
        if dropped > 0 {
            self.log(&format!(
                "discarded {dropped} bytes pipelined after STARTTLS"
            ));
        }
        if let Err(e) = self.conn.start_tls(config) {
            self.log(&format!("TLS handshake failed: {e}"));
            return Err(End::Closed);
        }
        // RFC 3207 §4.2: the session starts over.
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.user = None;
        Ok(())
    }

    fn read_auth_line(&mut self) -> Result<Option<Vec<u8>>, End> {
        match self.conn.read_line(AUTH_LINE_MAX) {
            Ok(Line::Text(l)) if l == b"*" => {
                self.reply(Reply::new(501, "5.0.0", "authentication cancelled"));
                Ok(None)
            }
            Ok(Line::Text(l)) => match auth::decode(&l) {
                Some(v) => Ok(Some(v)),
                None => {
                    self.reply(Reply::new(501, "5.5.2", "invalid base64"));
                    Ok(None)
                }
            },
            Ok(Line::TooLong) => {
                self.reply(Reply::new(500, "5.5.6", "authentication line too long"));
                Ok(None)
            }
            _ => Err(End::Gone),
        }
    }

    fn auth(&mut self, arg: &[u8]) -> Result<(), End> {
        if self.settings.checkpassword.is_none() {
            self.reply(Reply::new(503, "5.5.1", "AUTH not available"));
            return Ok(());
        }
        if self.user.is_some() {
            self.reply(Reply::new(503, "5.5.1", "already authenticated"));
            return Ok(());
        }
        if self.helo.is_none() || !self.esmtp {
            self.reply(Reply::new(503, "5.5.1", "send EHLO first"));
            return Ok(());
        }
        if self.tx.is_some() {
            self.reply(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a transaction",
            ));
            return Ok(());
        }
        if !self.auth_offered() {
            self.reply(Reply::new(
                538,
                "5.7.11",
                "encryption required: use STARTTLS first",
            ));
            return Ok(());
        }
        let mut words = arg.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let mechanism = words
            .next()
            .map(|m| m.to_ascii_uppercase())
            .unwrap_or_default();
        let initial = words.next().map(<[u8]>::to_vec);
        let creds = match mechanism.as_slice() {
            b"PLAIN" => {
                let response = match initial {
                    Some(i) if i == b"=" => Some(Vec::new()),
                    Some(i) => match auth::decode(&i) {
                        Some(v) => Some(v),
                        None => {
                            self.reply(Reply::new(501, "5.5.2", "invalid base64"));
                            return Ok(());
                        }
                    },
                    None => {
                        self.conn.write(b"334 \r\n");
                        self.read_auth_line()?
                    }
                };
                let Some(response) = response else {
                    return Ok(());
                };
                auth::plain(&response)
            }
            b"LOGIN" => {
                let user = match initial {
                    Some(i) => auth::decode(&i),
                    None => {
                        self.conn
                            .write(format!("334 {}\r\n", auth::encode(b"Username:")).as_bytes());
                        self.read_auth_line()?
                    }
                };
                let Some(user) = user else { return Ok(()) };
                self.conn
                    .write(format!("334 {}\r\n", auth::encode(b"Password:")).as_bytes());
                let Some(password) = self.read_auth_line()? else {
                    return Ok(());
                };
                auth::login(user, password)
            }
            _ => {
                self.reply(Reply::new(
                    504,
                    "5.5.4",
                    "unrecognized authentication mechanism",
                ));
                return Ok(());
            }
        };
        let Some(creds) = creds else {
            self.reply(Reply::new(
                501,
                "5.5.2",
                "malformed authentication response",
            ));
            return Ok(());
        };
        let _ = self.conn.flush();
        let outcome = match &self.fixed_login {
            Some(fixed) => auth::verify_fixed(&creds, &fixed.user, &fixed.password),
            None => {
                let command = self.settings.checkpassword.clone().unwrap_or_default();
                auth::verify(&command, &creds)
            }
        };
        match outcome {
            Outcome::Accepted => {
                self.log(&format!(
                    "authenticated as {}",
                    printable(creds.user.as_bytes())
                ));
                self.user = Some(creds.user.clone());
                self.reply(Reply::new(235, "2.7.0", "authentication successful"));
                Ok(())
            }
            Outcome::Temporary => {
                self.log("authentication temporarily unavailable");
                self.reply(Reply::new(454, "4.7.0", "temporary authentication failure"));
                Ok(())
            }
            Outcome::Refused => {
                self.auth_failures += 1;
                self.log(&format!(
                    "authentication failed for {} (attempt {})",
                    printable(creds.user.as_bytes()),
                    self.auth_failures
                ));
                // Each failure costs the client more time; checkpassword adds its own delay.
                if self.fixed_login.is_none() {
                    std::thread::sleep(Duration::from_secs(u64::from(self.auth_failures)));
                }
                self.reply(Reply::new(535, "5.7.8", "authentication failed"));
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.reply(Reply::new(421, "4.7.0", "too many authentication failures"));
                    return Err(End::Closed);
                }
                Ok(())
            }
        }
    }

    /// Answers a MAIL or RCPT argument that did not parse; `bad_address` is the enhanced
    /// code for an unusable address (5.1.7 for the sender, 5.1.3 for a recipient).
    fn path_error(&mut self, e: PathError, bad_address: &'static str) {
        match e {
            PathError::Domain(address) => {
                self.log(&format!(
                    "refused an address whose domain is not a host name: {}",
                    printable(&address)
                ));
                self.reply(Reply::new(
                    501,
                    bad_address,
                    "the domain must be a host name or an address literal",
                ))
            }
            PathError::TooLong => self.reply(Reply::new(501, "5.1.3", "path too long")),
            PathError::Parameter => self.reply(Reply::new(555, "5.5.4", "malformed parameter")),
            PathError::Keyword | PathError::Syntax => {
                self.reply(Reply::new(501, "5.5.4", "syntax error in address"))
            }
        }
    }

    fn mail(&mut self, arg: &[u8]) -> Result<(), End> {
        if self.helo.is_none() {
            self.reply(Reply::new(503, "5.5.1", "send HELO or EHLO first"));
            return Ok(());
        }
        if self.settings.auth_required && self.user.is_none() {
            self.reply(Reply::new(530, "5.7.0", "authentication required"));
            return Ok(());
        }
        if self.tx.is_some() {
            self.reply(Reply::new(503, "5.5.1", "nested MAIL command"));
            return Ok(());
        }
        let path = match command::parse_path(arg, "FROM") {
            Ok(p) => p,
            Err(e) => {
                self.path_error(e, "5.1.7");
                return Ok(());
            }
        };
        let mut utf8 = false;
        for (key, value) in &path.params {
            match (key.as_str(), value.as_deref()) {
                ("SIZE", Some(v)) => {
                    let Ok(size) = v.parse::<u64>() else {
                        self.reply(Reply::new(501, "5.5.4", "malformed SIZE"));
                        return Ok(());
                    };
                    if self.settings.databytes > 0 && size > self.settings.databytes {
                        self.reply(Reply::new(
                            552,
                            "5.3.4",
                            "message size exceeds fixed maximum message size",
                        ));
                        return Ok(());
                    }
                }
                ("BODY", Some(v))
                    if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
                ("SMTPUTF8", None) => utf8 = true,
                ("AUTH", Some(_)) => {}
                _ => {
                    self.reply(Reply::new(
                        555,
                        "5.5.4",
                        format!("unsupported parameter {key}"),
                    ));
                    return Ok(());
                }
            }
        }
        if !utf8 && !path.address.is_ascii() {
            self.reply(Reply::new(
                553,
                "5.6.7",
                "non-ASCII address requires SMTPUTF8",
            ));
            return Ok(());
        }
        let bad_sender = self.is_bad_sender(&path.address);
        self.tx = Some(Transaction {
            sender: path.address,
            recipients: Vec::new(),
            bad_sender,
            utf8,
        });
        self.reply(Reply::new(250, "2.1.0", "ok"));
        Ok(())
    }

    fn is_bad_sender(&self, sender: &[u8]) -> bool {
        if self.settings.badmailfrom.is_empty() || sender.is_empty() {
            return false;
        }
        let lower = String::from_utf8_lossy(sender).to_ascii_lowercase();
        let at_domain = lower.rfind('@').map(|i| lower[i..].to_string());
        self.settings
            .badmailfrom
            .iter()
            .any(|b| *b == lower || Some(b) == at_domain.as_ref())
    }

    fn rcpt(&mut self, arg: &[u8]) -> Result<(), End> {
        let Some(tx) = self.tx.as_ref() else {
            self.reply(Reply::new(503, "5.5.1", "MAIL first"));
            return Ok(());
        };
        let (bad_sender, utf8, count) = (tx.bad_sender, tx.utf8, tx.recipients.len());
        let path = match command::parse_path(arg, "TO") {
            Ok(p) => p,
            Err(e) => {
                self.path_error(e, "5.1.3");
                return Ok(());
            }
        };
        if let Some((key, _)) = path.params.first() {
            self.reply(Reply::new(
                555,
                "5.5.4",
                format!("unsupported parameter {key}"),
            ));
            return Ok(());
        }
        if path.address.is_empty() {
            self.reply(Reply::new(501, "5.1.3", "empty recipient"));
            return Ok(());
        }
        if !utf8 && !path.address.is_ascii() {
            self.reply(Reply::new(
                553,
                "5.6.7",
                "non-ASCII address requires SMTPUTF8",
            ));
            return Ok(());
        }
        if bad_sender {
            self.log(&format!(
                "refused sender in badmailfrom: {}",
                printable(
                    &self
                        .tx
                        .as_ref()
                        .map(|t| t.sender.clone())
                        .unwrap_or_default()
                )
            ));
            self.reply(Reply::new(
                553,
                "5.7.1",
                "sorry, your envelope sender is in my badmailfrom list",
            ));
            return Ok(());
        }
        if count >= self.settings.maxrcpt {
            self.reply(Reply::new(452, "4.5.3", "too many recipients"));
            return Ok(());
        }
        let mut address = path.address;
        if let Some(suffix) = &self.settings.relayclient {
            address.extend_from_slice(suffix.as_bytes());
        }
        let may_relay = self.settings.relayclient.is_some() || self.user.is_some();
        match rcpt::check(&self.settings, &address, may_relay) {
            Verdict::Accept => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.recipients.push(address);
                }
                self.reply(Reply::new(250, "2.1.5", "ok"));
            }
            Verdict::NoRelay => {
                self.log(&format!("refused relaying to {}", printable(&address)));
                self.reply(Reply::new(
                    553,
                    "5.7.1",
                    "sorry, that domain isn't in my list of allowed rcpthosts",
                ));
            }
            Verdict::NoMailbox => {
                self.log(&format!(
                    "refused unknown recipient {}",
                    printable(&address)
                ));
                self.reply(Reply::new(
                    550,
                    "5.1.1",
                    "sorry, no mailbox here by that name",
                ));
            }
            Verdict::TryLater => {
                self.log(&format!(
                    "unable to check recipient {}",
                    printable(&address)
                ));
                self.reply(Reply::new(
                    451,
                    "4.3.0",
                    "unable to check the recipient, try again later",
                ));
            }
        }
        Ok(())
    }

    fn data(&mut self, arg: &[u8]) -> Result<(), End> {
        let Some(tx) = self.tx.take() else {
            self.reply(Reply::new(503, "5.5.1", "MAIL first"));
            return Ok(());
        };
        if tx.recipients.is_empty() {
            self.tx = Some(tx);
            self.reply(Reply::new(503, "5.5.1", "RCPT first"));
            return Ok(());
        }
        if !arg.is_empty() {
            self.tx = Some(tx);
            self.reply(Reply::new(501, "5.5.4", "syntax: DATA takes no argument"));
            return Ok(());
        }
        let started = match self.fixed_login {
            Some(_) => Ok(Queue::Discard),
            None => Submission::start(&self.settings.home).map(Queue::Program),
        };
        let mut sub = match started {
            Ok(s) => s,
            Err(e) => {
                self.log(&format!("unable to start the queue: {e}"));
                self.reply(Reply::new(
                    451,
                    "4.3.0",
                    "unable to queue the message, try again later",
                ));
                return Ok(());
            }
        };
        let tls = self.conn.tls_description();
        let remote_info = self
            .user
            .clone()
            .or_else(|| self.settings.remote_info.clone());
        let trace = Trace {
            remote_host: self.settings.remote_host.as_deref(),
            helo: self.helo.as_deref(),
            remote_info: remote_info.as_deref(),
            remote_ip: &self.settings.remote_ip,
            local_host: &self.settings.local_host,
            esmtp: self.esmtp,
            tls: tls.as_deref(),
            authenticated: self.user.is_some(),
            utf8: tx.utf8,
        };
        sub.write_body(trace.line(rqmail_date::now()).as_bytes());
        self.conn
            .write(&Reply::plain(354, "go ahead, end with <CRLF>.<CRLF>").to_bytes());
        let mut decoder = Decoder::new();
        let mut out = Vec::with_capacity(64 * 1024);
        let limit = self.settings.databytes;
        let event = loop {
            if self.conn.buffered().is_empty() {
                match self.conn.fill() {
                    Ok(0) | Err(_) => {
                        self.log("connection lost during DATA; nothing queued");
                        return Err(End::Gone);
                    }
                    Ok(_) => {}
                }
            }
            let (used, event) = decoder.feed(self.conn.buffered(), &mut out);
            self.conn.consume(used);
            if limit == 0 || decoder.size <= limit {
                sub.write_body(&out);
            }
            out.clear();
            if let Some(event) = event {
                break event;
            }
        };
        match event {
            Event::End => {}
            Event::BareLf | Event::BareCr => {
                drop(sub);
                let what = if event == Event::BareLf {
                    "bare LF"
                } else {
                    "bare CR"
                };
                self.log(&format!(
                    "{what} in DATA; nothing queued, connection closed"
                ));
                self.reply(Reply::new(
                    451,
                    "4.5.0",
                    format!("{what} received; lines must end in CRLF (RFC 5321 2.3.8)"),
                ));
                return Err(End::Closed);
            }
        }
        if limit > 0 && decoder.size > limit {
            drop(sub);
            self.log(&format!(
                "refused message over databytes ({} bytes)",
                decoder.size
            ));
            self.reply(Reply::new(
                552,
                "5.3.4",
                "sorry, that message size exceeds my databytes limit",
            ));
            return Ok(());
        }
        if decoder.hops >= MAX_HOPS {
            drop(sub);
            self.log("refused looping message (too many Received lines)");
            self.reply(Reply::new(
                554,
                "5.4.6",
                "too many hops, this message is looping",
            ));
            return Ok(());
        }
        let recipients: Vec<&[u8]> = tx.recipients.iter().map(Vec::as_slice).collect();
        match sub.finish(&tx.sender, &recipients) {
            Ok(qp) => {
                self.messages += 1;
                self.log(&format!(
                    "accepted message qp {qp}: from <{}> to {} recipients, {} bytes{}{}",
                    printable(&tx.sender),
                    recipients.len(),
                    decoder.size,
                    tls.as_deref().map(|t| format!(", {t}")).unwrap_or_default(),
                    self.user
                        .as_deref()
                        .map(|u| format!(", auth {}", printable(u.as_bytes())))
                        .unwrap_or_default(),
                ));
                self.reply(Reply::new(
                    250,
                    "2.0.0",
                    format!("ok {} qp {qp}", rqmail_date::now()),
                ));
            }
            Err(f) => {
                self.log(&format!("queue refused the message: {}", f.text));
                let reply = if f.permanent {
                    Reply::new(554, "5.3.0", f.text)
                } else {
                    Reply::new(451, "4.3.0", f.text)
                };
                self.reply(reply);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rqmail_control::Control;
    use rqmail_route::Routing;
    use std::fs::{self, File};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "rqmail-smtpd-session-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// AUTH offered without TLS; example.org accepted; nothing local.
    fn settings(home: &Path) -> Settings {
        Settings {
            home: home.to_path_buf(),
            control: Control::new(home),
            greeting: "mx.example".into(),
            local_host: "mx.example".into(),
            remote_ip: "192.0.2.1".into(),
            remote_host: None,
            remote_info: None,
            relayclient: None,
            timeout: Duration::from_secs(5),
            databytes: 0,
            maxrcpt: 100,
            rcpthosts: vec!["example.org".into()],
            morercpthosts: None,
            badmailfrom: Vec::new(),
            routing: Routing {
                locals: Vec::new(),
                virtualdomains: Vec::new(),
                percenthack: Vec::new(),
                envnoathost: "example.org".into(),
            },
            servercert: None,
            smtps: false,
            checkpassword: Some(Vec::new()),
            auth_required: false,
            auth_plaintext: true,
        }
    }

    /// Runs a session without programs on `input`, with `change` applied to the settings;
    /// returns how it ended and what it wrote.
    fn dialogue(input: &[u8], change: impl FnOnce(&mut Settings)) -> (End, String) {
        let scratch = Scratch::new();
        let mut settings = settings(&scratch.0);
        change(&mut settings);
        fs::write(scratch.0.join("input"), input).unwrap();
        let conn = Conn::new(
            File::open(scratch.0.join("input")).unwrap(),
            File::create(scratch.0.join("output")).unwrap(),
            settings.timeout,
        );
        let end = Session::new(settings, conn)
            .without_programs("joe", b"secret")
            .run();
        let output = fs::read(scratch.0.join("output")).unwrap();
        (end, String::from_utf8(output).unwrap())
    }

    #[test]
    fn without_programs_accepts_the_fixed_login_and_discards_the_message() {
        // AUTH PLAIN \0joe\0wrong, then \0joe\0secret.
        let (end, out) = dialogue(
            b"EHLO c\r\nAUTH PLAIN AGpvZQB3cm9uZw==\r\nAUTH PLAIN AGpvZQBzZWNyZXQ=\r\n\
              MAIL FROM:<joe@example.com>\r\nRCPT TO:<a@elsewhere.example>\r\n\
              DATA\r\nhi\r\n.\r\nQUIT\r\n",
            |_| {},
        );
        assert_eq!(end, End::Quit);
        assert!(out.contains("250 AUTH PLAIN LOGIN\r\n"), "{out}");
        assert!(out.contains("535 5.7.8 authentication failed\r\n"), "{out}");
        assert!(
            out.contains("235 2.7.0 authentication successful\r\n"),
            "{out}"
        );
        // Relaying is allowed once authenticated, and the message "queued" as qp 0.
        assert!(out.contains("250 2.1.5 ok\r\n"), "{out}");
        assert!(out.contains(" qp 0\r\n221 "), "{out}");
    }
}
