//! One SMTP client transaction: one message for several recipients at one server, with
//! STARTTLS, PIPELINING, SIZE, 8BITMIME and SMTPUTF8, reported the way qmail-remote reports.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod address;
mod conn;
pub mod message;
pub mod reply;
mod tls;

pub use message::{Encoder, Message};

use address::Unsendable;
use conn::{Conn, Died};
use reply::{Extensions, Reply};
use rustls_pki_types::ServerName;
use std::io::Read;
use std::net::{IpAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// How many commands are written at once when the server offers PIPELINING. The replies
/// to a group are read before the next group is written, so neither side's socket buffer
/// can fill while the other waits (RFC 2920 §3.1's deadlock).
pub const PIPELINE_GROUP: usize = 100;

/// When to use STARTTLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never (control/notlshosts).
    Never,
    /// Whenever the server offers it, without checking its certificate; once started, the
    /// handshake must succeed (a failed handshake is a temporary failure for this host).
    Opportunistic,
    /// Always: no STARTTLS, a failed handshake or a certificate that does not verify for
    /// `name` is a temporary failure for this host.
    Required {
        /// The name the certificate must be valid for (also sent as SNI).
        name: String,
        /// PEM file of the CAs to trust; the system's roots if none.
        ca_file: Option<PathBuf>,
    },
}

/// How long to wait at each stage: RFC 5321 §4.5.3.2's minimums by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For the 220 greeting (5 min).
    pub greeting: Duration,
    /// For EHLO, HELO, STARTTLS and the TLS handshake (5 min; the RFC names none).
    pub command: Duration,
    /// For the reply to MAIL (5 min).
    pub mail: Duration,
    /// For the reply to each RCPT (5 min).
    pub rcpt: Duration,
    /// For the 354 reply to DATA (2 min).
    pub data_start: Duration,
    /// For each write of the message (3 min).
    pub data_block: Duration,
    /// For the reply after the final dot (10 min).
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            greeting: min(5),
            command: min(5),
            mail: min(5),
            rcpt: min(5),
            data_start: min(2),
            data_block: min(3),
            data_end: min(10),
        }
    }
}

impl Timeouts {
    /// Every timeout at most `cap` (control/timeoutremote).
    pub fn capped(self, cap: Duration) -> Timeouts {
        let c = |d: Duration| d.min(cap);
        Timeouts {
            greeting: c(self.greeting),
            command: c(self.command),
            mail: c(self.mail),
            rcpt: c(self.rcpt),
            data_start: c(self.data_start),
            data_block: c(self.data_block),
            data_end: c(self.data_end),
        }
    }
}

/// How to run the transaction.
#[derive(Debug, Clone)]
pub struct Options {
    /// The name given in EHLO/HELO (control/helohost).
    pub helo: String,
    /// Per-stage timeouts.
    pub timeouts: Timeouts,
    /// When to use STARTTLS.
    pub tls: TlsPolicy,
    /// The server's host name (the MX name), sent as SNI under opportunistic TLS when it
    /// is a DNS name.
    pub server_name: Option<String>,
}

/// How a recipient or the whole message fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted (recipient `r`, message `K`).
    Success,
    /// Try again later (recipient `s`, message `Z`).
    Temporary,
    /// Give up (recipient `h`, message `D`).
    Permanent,
}

impl Status {
    /// `K`, `Z` or `D`: the letter of a message report.
    pub fn message_letter(self) -> u8 {
        match self {
            Status::Success => b'K',
            Status::Temporary => b'Z',
            Status::Permanent => b'D',
        }
    }

    /// `r`, `s` or `h`: the letter of a recipient report.
    pub fn recipient_letter(self) -> u8 {
        match self {
            Status::Success => b'r',
            Status::Temporary => b's',
            Status::Permanent => b'h',
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    /// Accepted, temporarily or permanently refused.
    pub status: Status,
    /// Empty when accepted; else what went wrong, with the server's reply.
    pub text: String,
}

/// The result of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One result per recipient, in order, for as many as the dialogue got to (none if it
    /// ended before RCPT).
    pub recipients: Vec<RecipientResult>,
    /// The message's outcome: `K` the accepted recipients have it, `Z`/`D` they do not.
    pub status: Status,
    /// qmail-remote's text: what happened, then `Remote host said: ` and the reply.
    pub text: String,
    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384` when TLS was used.
    pub tls: Option<String>,
    /// True when the transaction ended before MAIL was sent, in a way another server for
    /// the same domain might not share (greeting refused, connection lost, TLS failure, no
    /// 8BITMIME): the caller should try its next candidate.
    pub try_next_host: bool,
}

impl Outcome {
    /// A message report alone (for failures before any server was reached).
    pub fn message_only(status: Status, text: impl Into<String>) -> Outcome {
        Outcome {
            recipients: Vec::new(),
            status,
            text: text.into(),
            tls: None,
            try_next_host: false,
        }
    }

    /// The report rqmail-rspawn reads (spec/smtp.md §8.6): a recipient report per
    /// recipient reached (`r`/`h`/`s` + text + NUL), then the message report
    /// (`K`/`Z`/`D` + text + NUL).
    pub fn report(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for r in &self.recipients {
            out.push(r.status.recipient_letter());
            out.extend(r.text.bytes().map(|b| if b == 0 { b'?' } else { b }));
            out.push(0);
        }
        out.push(self.status.message_letter());
        out.extend(self.text.bytes().map(|b| if b == 0 { b'?' } else { b }));
        out.push(0);
        out
    }
}

/// How the connection is left at the end.
enum Close {
    /// Send QUIT (without waiting for its reply), then close.
    Quit,
    /// Just close: the connection is dead, out of sync, or inside DATA where QUIT would be
    /// taken as message text.
    Only,
}

/// The end of a transaction, before the connection is closed.
struct End {
    status: Status,
    text: String,
    try_next_host: bool,
    close: Close,
}

impl End {
    fn next_host(mut self) -> End {
        self.try_next_host = true;
        self
    }

    fn close_only(mut self) -> End {
        self.close = Close::Only;
        self
    }
}

/// Which command a pipelined reply answers.
#[derive(Clone, Copy)]
enum Step {
    Mail,
    Rcpt(usize),
    Data,
}

struct Session<'a> {
    conn: Conn,
    peer: Option<IpAddr>,
    ip: String,
    options: &'a Options,
    tls: Option<String>,
    mail_sent: bool,
    critical: bool,
    reached_rcpt: bool,
    results: Vec<Option<RecipientResult>>,
}

/// Runs one transaction on `stream` (connected, nothing read yet): the message goes to
/// every recipient the server accepts. Never fails: every problem is in the Outcome.
///
/// The dialogue: the 220 greeting; EHLO (HELO after a 5xx); STARTTLS as `options.tls`
/// says, discarding any plaintext behind its 220, then EHLO again; the checks that need
/// the server's extensions (SIZE too small: `D` 5.3.4; 8-bit message without 8BITMIME:
/// `Z` 4.3.0, never converted; non-ASCII sender without SMTPUTF8: `D` 5.6.7, such a
/// recipient: `h` 5.6.7; control bytes in an address: never sent); MAIL FROM with SIZE=,
/// BODY=8BITMIME and SMTPUTF8 where they apply, every RCPT and DATA, pipelined in groups
/// of [`PIPELINE_GROUP`] when offered; the message as [`Encoder`] writes it; the final
/// reply; QUIT without waiting for its answer. Texts are qmail-remote's, with the TLS
/// version and cipher named in the final report when TLS was used.
pub fn deliver(
    stream: TcpStream,
    options: &Options,
    sender: &[u8],
    recipients: &[Vec<u8>],
    message: &mut Message,
) -> Outcome {
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    // Our writes are whole commands or whole body chunks, already batched: Nagle's
    // algorithm would only hold the final `.` back until the server acknowledged the body,
    // which servers delay by 40 ms (measured: every delivery stalled that long).
    let _ = stream.set_nodelay(true);
    let mut session = Session {
        conn: Conn::new(stream),
        ip: peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string()),
        peer,
        options,
        tls: None,
        mail_sent: false,
        critical: false,
        reached_rcpt: false,
        results: vec![None; recipients.len()],
    };
    let end = match session.run(sender, recipients, message) {
        Ok(end) | Err(end) => end,
    };
    session.finish(end)
}

impl Session<'_> {
    /// The end caused by a server reply: qmail-remote's `prefix IP suffix.` line, then
    /// `Remote host said: ` and the reply.
    fn refused(&self, status: Status, prefix: &str, suffix: &str, reply: Option<&Reply>) -> End {
        let tls = self
            .tls
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        let mut text = format!("{prefix}{}{suffix}{tls}.\n", self.ip);
        if let Some(r) = reply {
            text.push_str("Remote host said: ");
            text.push_str(&r.text);
        }
        End {
            status,
            text,
            try_next_host: false,
            close: Close::Quit,
        }
    }

    /// A temporary end with our own text (no reply to quote).
    fn temporary(&self, text: String) -> End {
        End {
            status: Status::Temporary,
            text,
            try_next_host: false,
            close: Close::Quit,
        }
    }

    fn permanent(&self, text: String) -> End {
        End {
            status: Status::Permanent,
            ..self.temporary(text)
        }
    }

    /// The connection died: qmail's "connection died", with its warning once the final dot
    /// may have reached the server.
    fn died(&self, why: Died) -> End {
        let duplicate = if self.critical {
            "Possible duplicate! "
        } else {
            ""
        };
        End {
            status: Status::Temporary,
            text: format!(
                "Connected to {} but connection died ({why}). {duplicate}(#4.4.2)\n",
                self.ip
            ),
            try_next_host: !self.mail_sent,
            close: Close::Only,
        }
    }

    fn read(&mut self, timeout: Duration) -> Result<Reply, End> {
        self.conn.read_reply(timeout).map_err(|d| self.died(d))
    }

    fn send(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), End> {
        self.conn.send(bytes, timeout).map_err(|d| self.died(d))
    }

    fn finish(self, end: End) -> Outcome {
        let recipients = if self.reached_rcpt {
            self.results.into_iter().map_while(|r| r).collect()
        } else {
            Vec::new()
        };
        match end.close {
            Close::Quit => self
                .conn
                .quit(self.options.timeouts.command.min(Duration::from_secs(30))),
            Close::Only => self.conn.close(),
        }
        Outcome {
            recipients,
            status: end.status,
            text: end.text,
            tls: self.tls,
            try_next_host: end.try_next_host,
        }
    }

    fn run(
        &mut self,
        sender: &[u8],
        recipients: &[Vec<u8>],
        message: &mut Message,
    ) -> Result<End, End> {
        let t = self.options.timeouts;
        let greeting = self.read(t.greeting)?;
        if greeting.code != 220 {
            let end = self.refused(
                Status::Temporary,
                "Connected to ",
                " but greeting failed",
                Some(&greeting),
            );
            return Err(end.next_host());
        }
        let mut ext = self.hello()?;
        match self.options.tls.clone() {
            TlsPolicy::Never => {}
            TlsPolicy::Opportunistic => {
                if ext.starttls
                    && let Some(after) = self.starttls(None)?
                {
                    ext = after;
                }
            }
            TlsPolicy::Required { name, ca_file } => {
                if !ext.starttls {
                    let text = format!(
                        "Connected to {} but it does not offer STARTTLS, and TLS is required for it. (#4.7.5)\n",
                        self.ip
                    );
                    return Err(self.temporary(text).next_host());
                }
                match self.starttls(Some((name, ca_file)))? {
                    Some(after) => ext = after,
                    // starttls gives None only for a refused opportunistic STARTTLS; were
                    // that ever to change, required TLS must still never go on in plaintext.
                    None => {
                        let text = format!(
                            "Connected to {} but TLS did not start, and TLS is required for it. (#4.7.5)\n",
                            self.ip
                        );
                        return Err(self.temporary(text).next_host());
                    }
                }
            }
        }
        self.check_message(sender, message, &ext)?;
        self.transaction(sender, recipients, message, &ext)
    }

    /// EHLO, or HELO when EHLO gets a 5xx.
    fn hello(&mut self) -> Result<Extensions, End> {
        let t = self.options.timeouts;
        let helo = self.options.helo.clone();
        self.send(format!("EHLO {helo}\r\n").as_bytes(), t.command)?;
        let reply = self.read(t.command)?;
        if reply.code == 250 {
            return Ok(Extensions::from_ehlo(&reply));
        }
        let reply = if reply.code >= 500 {
            self.send(format!("HELO {helo}\r\n").as_bytes(), t.command)?;
            let reply = self.read(t.command)?;
            if reply.code == 250 {
                return Ok(Extensions::default());
            }
            reply
        } else {
            reply
        };
        Err(self.refused(
            Status::Temporary,
            "Connected to ",
            " but my name was rejected",
            Some(&reply),
        ))
    }

    /// STARTTLS, the handshake and EHLO again. `required` carries the name to verify and
    /// the CA file; without it the certificate is not checked. Returns the extensions
    /// offered inside TLS, or None when an opportunistic STARTTLS was refused (the session
    /// goes on in plaintext, as it was).
    fn starttls(
        &mut self,
        required: Option<(String, Option<PathBuf>)>,
    ) -> Result<Option<Extensions>, End> {
        let t = self.options.timeouts;
        // Everything that can fail locally is checked before STARTTLS is sent.
        let (config, name) = match &required {
            Some((name, ca_file)) => {
                let config = tls::verified(ca_file.as_deref()).map_err(|e| {
                    self.temporary(format!("Unable to set up TLS: {e}. (#4.3.0)\n"))
                })?;
                let name = ServerName::try_from(name.clone()).map_err(|_| {
                    self.temporary(format!(
                        "Unable to set up TLS: {name:?} is not a host name. (#4.3.0)\n"
                    ))
                })?;
                (config, name)
            }
            None => {
                let config = tls::opportunistic().map_err(|e| {
                    self.temporary(format!("Unable to set up TLS: {e}. (#4.3.0)\n"))
                })?;
                let sni = self
                    .options
                    .server_name
                    .as_deref()
                    .filter(|n| n.parse::<IpAddr>().is_err())
                    .and_then(|n| ServerName::try_from(n.to_string()).ok());
                let name = match (sni, self.peer) {
                    (Some(name), _) => name,
                    // An IP address as the name: rustls then sends no SNI.
                    (None, Some(ip)) => ServerName::IpAddress(ip.into()),
                    (None, None) => {
                        return Err(self.died(Died::Closed));
                    }
                };
                (config, name)
            }
        };
        self.send(b"STARTTLS\r\n", t.command)?;
        let reply = self.read(t.command)?;
        if reply.code != 220 {
            if required.is_none() {
                return Ok(None);
            }
            let end = self.refused(
                Status::Temporary,
                "Connected to ",
                " but STARTTLS was refused, and TLS is required for it",
                Some(&reply),
            );
            return Err(end.next_host());
        }
        self.conn.discard_buffered();
        if let Err(e) = self.conn.start_tls(config, name, t.command) {
            let text = format!(
                "Connected to {} but the TLS handshake failed: {e}. (#4.7.5)\n",
                self.ip
            );
            return Err(self.temporary(text).next_host().close_only());
        }
        self.tls = self.conn.tls_description();
        self.hello().map(Some)
    }

    /// What the server's extensions say about this message before MAIL is sent.
    fn check_message(
        &mut self,
        sender: &[u8],
        message: &Message,
        ext: &Extensions,
    ) -> Result<(), End> {
        match address::check(sender, ext.smtputf8) {
            Ok(()) => {}
            Err(Unsendable::Control) => {
                return Err(self.permanent(
                    "The sender address contains control characters; SMTP cannot carry it. (#5.1.7)\n".to_string(),
                ));
            }
            Err(Unsendable::Domain) => {
                return Err(self.permanent(
                    "The domain of the sender address is not a host name or an address literal; SMTP cannot carry it. (#5.1.7)\n".to_string(),
                ));
            }
            Err(Unsendable::NeedsSmtpUtf8) => {
                return Err(self.permanent(format!(
                    "Connected to {} but it does not offer SMTPUTF8, which the sender address needs. (#5.6.7)\n",
                    self.ip
                )));
            }
        }
        if let Some(limit) = ext.size
            && limit > 0
            && message.wire_size() > limit
        {
            return Err(self.permanent(format!(
                "Connected to {} but the message is too big for it: {} bytes, it accepts at most {limit}. (#5.3.4)\n",
                self.ip,
                message.wire_size()
            )));
        }
        if message.eight_bit() && !ext.eight_bit_mime {
            // RFC 6152 forbids sending 8-bit data without 8BITMIME; converting to
            // quoted-printable would break signatures, so wait for a server that takes it.
            let text = format!(
                "Connected to {} but it does not offer 8BITMIME: 8-bit message to a 7-bit server: not converting. (#4.3.0)\n",
                self.ip
            );
            return Err(self.temporary(text).next_host());
        }
        Ok(())
    }

    fn mail_command(
        &self,
        sender: &[u8],
        message: &Message,
        ext: &Extensions,
        smtputf8: bool,
    ) -> Vec<u8> {
        let mut cmd = b"MAIL FROM:<".to_vec();
        cmd.extend(address::quote(sender));
        cmd.push(b'>');
        if ext.size.is_some() {
            cmd.extend(format!(" SIZE={}", message.wire_size()).bytes());
        }
        if message.eight_bit() && ext.eight_bit_mime {
            cmd.extend_from_slice(b" BODY=8BITMIME");
        }
        if smtputf8 {
            cmd.extend_from_slice(b" SMTPUTF8");
        }
        cmd.extend_from_slice(b"\r\n");
        cmd
    }

    /// MAIL, RCPT for each recipient, DATA (pipelined when offered), the message, the dot.
    fn transaction(
        &mut self,
        sender: &[u8],
        recipients: &[Vec<u8>],
        message: &mut Message,
        ext: &Extensions,
    ) -> Result<End, End> {
        let t = self.options.timeouts;
        let smtputf8 = ext.smtputf8
            && (address::is_non_ascii(sender)
                || recipients.iter().any(|r| address::is_non_ascii(r))
                || message.eight_bit_headers());
        let mut steps = vec![Step::Mail];
        for (i, r) in recipients.iter().enumerate() {
            let refusal = match address::check(r, ext.smtputf8) {
                Ok(()) => {
                    steps.push(Step::Rcpt(i));
                    continue;
                }
                Err(Unsendable::Control) => {
                    "The recipient address contains control characters; SMTP cannot carry it. (#5.1.3)\n".to_string()
                }
                Err(Unsendable::Domain) => {
                    "The domain of the recipient address is not a host name or an address literal; SMTP cannot carry it. (#5.1.3)\n".to_string()
                }
                Err(Unsendable::NeedsSmtpUtf8) => format!(
                    "Connected to {} but it does not offer SMTPUTF8, which this recipient address needs. (#5.6.7)\n",
                    self.ip
                ),
            };
            self.results[i] = Some(RecipientResult {
                status: Status::Permanent,
                text: refusal,
            });
        }
        if steps.len() == 1 {
            self.reached_rcpt = true;
            return Err(self.refused(Status::Permanent, "Giving up on ", "", None));
        }
        steps.push(Step::Data);
        let group = if ext.pipelining { PIPELINE_GROUP } else { 1 };
        let timeout = |step: Step| match step {
            Step::Mail => t.mail,
            Step::Rcpt(_) => t.rcpt,
            Step::Data => t.data_start,
        };
        let mut accepted = 0;
        let mut data_reply = None;
        let mut next = 0;
        while next < steps.len() {
            let mut end = next;
            let mut bytes = Vec::new();
            while end < steps.len() && end - next < group {
                match steps[end] {
                    Step::Mail => bytes.extend(self.mail_command(sender, message, ext, smtputf8)),
                    Step::Rcpt(i) => {
                        bytes.extend_from_slice(b"RCPT TO:<");
                        bytes.extend(address::quote(&recipients[i]));
                        bytes.extend_from_slice(b">\r\n");
                    }
                    // Unpipelined, DATA is sent only when someone can receive the message.
                    Step::Data if !ext.pipelining && accepted == 0 => break,
                    Step::Data => bytes.extend_from_slice(b"DATA\r\n"),
                }
                end += 1;
            }
            if end == next {
                break;
            }
            self.mail_sent = true;
            self.send(&bytes, timeout(steps[next]))?;
            for &step in &steps[next..end] {
                let reply = self.read(timeout(step))?;
                match step {
                    Step::Mail => {
                        if !(200..300).contains(&reply.code) {
                            let status = if reply.code >= 500 {
                                Status::Permanent
                            } else {
                                Status::Temporary
                            };
                            return Err(self.refused(
                                status,
                                "Connected to ",
                                " but sender was rejected",
                                Some(&reply),
                            ));
                        }
                        self.reached_rcpt = true;
                    }
                    Step::Rcpt(i) => {
                        let status = match reply.code {
                            200..300 => Status::Success,
                            500.. => Status::Permanent,
                            _ => Status::Temporary,
                        };
                        let text = if status == Status::Success {
                            accepted += 1;
                            String::new()
                        } else {
                            format!(
                                "{} does not like recipient.\nRemote host said: {}",
                                self.ip, reply.text
                            )
                        };
                        self.results[i] = Some(RecipientResult { status, text });
                    }
                    Step::Data => data_reply = Some(reply),
                }
            }
            next = end;
        }
        if accepted == 0 {
            if data_reply.as_ref().is_some_and(|r| r.code == 354) {
                // RFC 2920 §3.1: DATA was taken with no recipient; end it with an empty body.
                self.send(b".\r\n", t.data_block)?;
                let _ = self.read(t.data_end)?;
            }
            return Err(self.refused(Status::Permanent, "Giving up on ", "", None));
        }
        let Some(reply) = data_reply else {
            return Err(self.died(Died::Malformed));
        };
        if reply.code != 354 {
            let status = if reply.code >= 500 {
                Status::Permanent
            } else {
                Status::Temporary
            };
            return Err(self.refused(status, "", " failed on DATA command", Some(&reply)));
        }
        self.body(message)?;
        let reply = self.read(t.data_end)?;
        let (status, suffix) = match reply.code {
            200..300 => (Status::Success, " accepted message"),
            500.. => (Status::Permanent, " failed after I sent the message"),
            _ => (Status::Temporary, " failed after I sent the message"),
        };
        Ok(self.refused(status, "", suffix, Some(&reply)))
    }

    /// Sends the message in its wire form, then the final dot.
    fn body(&mut self, message: &mut Message) -> Result<(), End> {
        let t = self.options.timeouts;
        let unreadable = |this: &Self, e: std::io::Error| {
            // Inside DATA: closing without the dot makes the server drop what it has.
            this.temporary(format!("Unable to read message: {e}. (#4.3.0)\n"))
                .close_only()
        };
        let file = message.rewound().map_err(|e| unreadable(self, e))?;
        let mut encoder = Encoder::new();
        let mut buf = vec![0u8; message::CHUNK];
        let mut out = Vec::with_capacity(message::CHUNK * 2);
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(unreadable(self, e)),
            };
            out.clear();
            encoder.encode(&buf[..n], &mut out);
            self.send(&out, t.data_block)?;
        }
        out.clear();
        encoder.finish(&mut out);
        // From here the server may have the whole message: a lost connection may mean
        // it was delivered, and retrying may deliver it twice.
        self.critical = true;
        self.send(&out, t.data_block)
    }
}

#[cfg(test)]
mod tests;
