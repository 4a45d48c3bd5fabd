//! qmail-inject's header processing for rqmail-inject and sendmail: reads a locally submitted
//! message header, qualifies its addresses, adds what is missing and works out the envelope.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod address;
mod field;
mod fixup;
mod input;

pub use field::Field;
pub use fixup::{Prepared, Recipients, envelope_recipients, fix_header};
pub use input::{BodyStart, HEADER_LIMIT, Input, ReadHeader, copy_body, read_header};

use std::io::{self, BufRead};
use std::sync::atomic::{AtomicU32, Ordering};

/// The host and domain names qmail-inject qualifies addresses with, from the control files
/// `defaulthost`, `defaultdomain`, `plusdomain` and `idhost` (each defaulting to `me`) or the
/// `QMAIL*` environment variables that override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Added to addresses without `@`.
    pub default_host: String,
    /// Added (after a dot) to host names without a dot.
    pub default_domain: String,
    /// Replaces a trailing `+` of a host name (after a dot).
    pub plus_domain: String,
    /// Host part of generated Message-IDs.
    pub id_host: String,
}

impl Settings {
    /// Reads the settings: an environment variable, if set and not empty, wins over its
    /// control file, which defaults to `me`, which defaults to the file's own name.
    pub fn load(
        control: &rqmail_control::Control,
        env: impl Fn(&str) -> Option<String>,
    ) -> io::Result<Settings> {
        // `me` is read once, not once for each of the four files it stands in for.
        let mut me: Option<Option<String>> = None;
        let mut get = |var: &str, file: &str| -> io::Result<String> {
            if let Some(v) = nonempty(env(var)) {
                return Ok(v);
            }
            if let Some(v) = control.line(file)? {
                return Ok(v);
            }
            if me.is_none() {
                me = Some(control.me()?);
            }
            Ok(me.clone().flatten().unwrap_or_else(|| file.to_string()))
        };
        Ok(Settings {
            default_host: get("QMAILDEFAULTHOST", "defaulthost")?,
            default_domain: get("QMAILDEFAULTDOMAIN", "defaultdomain")?,
            plus_domain: get("QMAILPLUSDOMAIN", "plusdomain")?,
            id_host: get("QMAILIDHOST", "idhost")?,
        })
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// The letters of `$QMAILINJECT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectFlags {
    /// `c`: write the added From as `user@host (Name)` instead of `Name <user@host>`.
    pub name_comment: bool,
    /// `s`: ignore (and still delete) an incoming Return-Path instead of taking the
    /// envelope sender from it.
    pub ignore_return_path: bool,
    /// `f`: delete any incoming From (so a new one is added).
    pub delete_from: bool,
    /// `i`: delete any incoming Message-ID (so a new one is added).
    pub delete_message_id: bool,
    /// `r`: per-recipient VERP: the sender gets `-@[]` appended, which rqmail-send expands.
    pub verp_recipient: bool,
    /// `m`: per-message VERP: `-TIME.PID` appended to the sender's user.
    pub verp_message: bool,
}

impl InjectFlags {
    /// Reads the letters; others are ignored, as qmail-inject does.
    pub fn parse(letters: &str) -> InjectFlags {
        let mut f = InjectFlags::default();
        for c in letters.chars() {
            match c {
                'c' => f.name_comment = true,
                's' => f.ignore_return_path = true,
                'f' => f.delete_from = true,
                'i' => f.delete_message_id = true,
                'r' => f.verp_recipient = true,
                'm' => f.verp_message = true,
                _ => {}
            }
        }
        f
    }
}

/// Who is sending: the user behind the added From field and the default envelope sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// User part of From (`QMAILUSER`, `MAILUSER`, `USER`, `LOGNAME`, else `anonymous`).
    pub user: String,
    /// Host part of From (`QMAILHOST`, `MAILHOST`); `None` means defaulthost.
    pub host: Option<String>,
    /// Personal name in From (`QMAILNAME`, `MAILNAME`, `NAME`).
    pub name: Option<String>,
    /// User part of the default envelope sender (`QMAILSUSER`); `None` means `user`.
    pub sender_user: Option<String>,
    /// Host part of the default envelope sender (`QMAILSHOST`); `None` means `host`.
    pub sender_host: Option<String>,
    /// The letters of `QMAILINJECT`.
    pub flags: InjectFlags,
}

impl Identity {
    /// Reads the identity from the environment as qmail-inject does; a variable that is set
    /// but empty counts as unset.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Identity {
        let first = |vars: &[&str]| vars.iter().find_map(|v| nonempty(env(v)));
        Identity {
            user: first(&["QMAILUSER", "MAILUSER", "USER", "LOGNAME"])
                .unwrap_or_else(|| "anonymous".to_string()),
            host: first(&["QMAILHOST", "MAILHOST"]),
            name: first(&["QMAILNAME", "MAILNAME", "NAME"]),
            sender_user: first(&["QMAILSUSER"]),
            sender_host: first(&["QMAILSHOST"]),
            flags: InjectFlags::parse(&env("QMAILINJECT").unwrap_or_default()),
        }
    }

    /// Takes the From user and host from an explicit envelope sender and forgets the
    /// personal name, as qmail's sendmail does for `-f`: the name of the invoking user does
    /// not belong to another address. An empty sender (`-f ''`) changes nothing.
    pub fn use_sender(&mut self, sender: &[u8]) {
        if sender.is_empty() {
            return;
        }
        let sender = String::from_utf8_lossy(sender);
        match sender.rfind('@') {
            Some(at) => {
                self.user = sender[..at].to_string();
                self.host = Some(sender[at + 1..].to_string());
            }
            None => {
                self.user = sender.into_owned();
                self.host = None;
            }
        }
        self.name = None;
    }
}

/// What makes generated Message-IDs unique: the time, the process and a counter within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Seconds since the epoch; also the time of the added Date field.
    pub time: i64,
    /// The injecting process.
    pub pid: u32,
    /// Messages this process stamped before.
    pub counter: u32,
}

static STAMPS: AtomicU32 = AtomicU32::new(0);

impl Stamp {
    /// A new stamp for this process, now.
    pub fn now() -> Stamp {
        Stamp {
            time: rqmail_date::now(),
            pid: std::process::id(),
            counter: STAMPS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Why a message could not be injected.
#[derive(Debug)]
pub enum Error {
    /// Reading the message failed (temporary).
    Read(io::Error),
    /// Writing the message out failed (temporary).
    Write(io::Error),
    /// The header is longer than [`HEADER_LIMIT`] (permanent).
    HeaderTooLarge,
    /// An address given on the command line is unusable (permanent).
    BadAddress(Vec<u8>),
    /// An envelope address has a domain that is not a host name or an address literal
    /// (`rqmail_smtp::domain::is_valid`): no SMTP command could carry it safely (permanent).
    BadDomain(Vec<u8>),
    /// A recipient field of the header cannot be parsed, so its recipients are unknown
    /// (permanent; only when header recipients are used).
    BadRecipientField(Vec<u8>),
}

impl Error {
    /// Whether trying again cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Error::Read(_) | Error::Write(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Read(e) => write!(f, "read error: {e}"),
            Error::Write(e) => write!(f, "write error: {e}"),
            Error::HeaderTooLarge => {
                write!(f, "message header is longer than {HEADER_LIMIT} bytes")
            }
            Error::BadAddress(a) if a.is_empty() => write!(f, "empty address"),
            Error::BadAddress(a) => {
                write!(f, "unable to parse address: {}", printable(a))
            }
            Error::BadDomain(a) => write!(
                f,
                "the domain of this address is not a host name or an address literal: {}",
                printable(a)
            ),
            Error::BadRecipientField(field) => write!(
                f,
                "unable to parse the addresses in this header field: {}",
                printable(field)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Text for an error message: folded lines joined, other control bytes shown as `?`.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes.trim_ascii_end());
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where the envelope recipients come from.
    pub recipients: Recipients,
    /// The recipient arguments, as given.
    pub arguments: Vec<Vec<u8>>,
    /// The envelope sender given with `-f`, as given.
    pub sender: Option<Vec<u8>>,
}

/// A message whose header is read and fixed up, ready to be printed or queued; its body is
/// still in the [`Input`], starting with [`Message::body`].
#[derive(Debug)]
pub struct Message {
    /// The header to store, each field ending in LF, without the empty line after it.
    pub header: Vec<u8>,
    /// The envelope sender (may be empty: the null sender).
    pub sender: Vec<u8>,
    /// The envelope recipients, in order, duplicates removed.
    pub recipients: Vec<Vec<u8>>,
    /// How the body begins.
    pub body: BodyStart,
}

/// Reads and fixes up the header of a message: qualifies the command-line addresses (before
/// reading anything, so a bad argument fails at once), reads the header, adds and removes
/// fields and works out the envelope.
pub fn read_message<R: BufRead>(
    input: &mut Input<R>,
    settings: &Settings,
    identity: &Identity,
    request: &Request,
    stamp: &Stamp,
) -> Result<Message, Error> {
    let sender = match &request.sender {
        Some(s) => {
            Some(address::qualify_sender(s, settings).ok_or_else(|| Error::BadAddress(s.clone()))?)
        }
        None => None,
    };
    let arguments = request
        .arguments
        .iter()
        .map(|a| address::qualify_argument(a, settings).ok_or_else(|| Error::BadAddress(a.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    for address in sender.iter().chain(&arguments) {
        check_domain(address)?;
    }
    let read = read_header(input)?;
    let prepared = fix_header(&read.fields, settings, identity, sender.as_deref(), stamp);
    let recipients = envelope_recipients(request.recipients, &arguments, &prepared)?;
    // The header's addresses too: `To: a@"x> NOTIFY=SUCCESS"` unquotes to that domain.
    for address in std::iter::once(&prepared.sender).chain(&recipients) {
        check_domain(address)?;
    }
    Ok(Message {
        header: prepared.header,
        sender: prepared.sender,
        recipients,
        body: read.body,
    })
}

/// Refuses an envelope address whose domain could end an SMTP path or add a parameter.
fn check_domain(address: &[u8]) -> Result<(), Error> {
    if rqmail_smtp::domain::address_is_valid(address) {
        Ok(())
    } else {
        Err(Error::BadDomain(address.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn identity_takes_the_first_set_variable() {
        let id = Identity::from_env(env(&[
            ("USER", "joe"),
            ("LOGNAME", "other"),
            ("MAILUSER", ""),
            ("MAILHOST", "box"),
            ("NAME", "Joe User"),
            ("QMAILSUSER", "bounces"),
            ("QMAILINJECT", "cfz"),
        ]));
        assert_eq!(id.user, "joe");
        assert_eq!(id.host.as_deref(), Some("box"));
        assert_eq!(id.name.as_deref(), Some("Joe User"));
        assert_eq!(id.sender_user.as_deref(), Some("bounces"));
        assert_eq!(id.sender_host, None);
        assert!(id.flags.name_comment && id.flags.delete_from && !id.flags.delete_message_id);
    }

    #[test]
    fn identity_without_a_user_is_anonymous() {
        assert_eq!(Identity::from_env(env(&[])).user, "anonymous");
    }

    #[test]
    fn explicit_sender_replaces_the_from_identity() {
        let mut id = Identity::from_env(env(&[("USER", "joe"), ("NAME", "Joe")]));
        id.use_sender(b"list-owner@lists.example");
        assert_eq!(id.user, "list-owner");
        assert_eq!(id.host.as_deref(), Some("lists.example"));
        assert_eq!(id.name, None);
        id.use_sender(b"");
        assert_eq!(id.user, "list-owner");
    }

    #[test]
    fn settings_come_from_environment_then_control_then_me() {
        let dir =
            std::env::temp_dir().join(format!("rqmail-header-settings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("control")).unwrap();
        std::fs::write(dir.join("control/me"), "mx.example.com\n").unwrap();
        std::fs::write(dir.join("control/defaultdomain"), "example.com\n").unwrap();
        let control = rqmail_control::Control::new(&dir);
        let s = Settings::load(&control, env(&[("QMAILIDHOST", "id.example.com")])).unwrap();
        assert_eq!(
            s,
            Settings {
                default_host: "mx.example.com".into(),
                default_domain: "example.com".into(),
                plus_domain: "mx.example.com".into(),
                id_host: "id.example.com".into(),
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn settings() -> Settings {
        Settings {
            default_host: "mail".into(),
            default_domain: "example.com".into(),
            plus_domain: "plus.example".into(),
            id_host: "id.example.com".into(),
        }
    }

    const STAMP: Stamp = Stamp {
        time: 0,
        pid: 1,
        counter: 0,
    };

    #[test]
    fn reads_a_whole_message_with_arguments_and_header_recipients() {
        let mut input = Input::new(
            &b"To: bob\r\nBcc: carol@x.org\r\nSubject: hi\r\n\r\nbody\r\n.\r\nmore\r\n"[..],
            true,
        );
        let request = Request {
            recipients: Recipients::ArgumentsAndHeader,
            arguments: vec![b"dave".to_vec(), b"bob@mail.example.com".to_vec()],
            sender: Some(b"<>".to_vec()),
        };
        let identity = Identity {
            user: "joe".into(),
            ..Identity::default()
        };
        let m = read_message(&mut input, &settings(), &identity, &request, &STAMP).unwrap();
        assert_eq!(m.sender, b"");
        let recipients: Vec<&[u8]> = m.recipients.iter().map(Vec::as_slice).collect();
        assert_eq!(
            recipients,
            [
                &b"dave@mail.example.com"[..],
                b"bob@mail.example.com",
                b"carol@x.org"
            ]
        );
        assert!(
            m.header
                .ends_with(b"To: bob@mail.example.com\nSubject: hi\n")
        );
        assert_eq!(m.body, BodyStart::Separator);
        let mut body = Vec::new();
        copy_body(&mut input, &m.body, &mut body).unwrap();
        assert_eq!(body, b"\nbody\n");
    }

    #[test]
    fn a_bad_argument_fails_before_the_message_is_read() {
        struct Unreadable;
        impl io::Read for Unreadable {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("the message must not be read")
            }
        }
        let mut input = Input::new(io::BufReader::new(Unreadable), false);
        let request = Request {
            recipients: Recipients::Arguments,
            arguments: vec![b"ok".to_vec(), b"".to_vec()],
            sender: None,
        };
        let r = read_message(
            &mut input,
            &settings(),
            &Identity::default(),
            &request,
            &STAMP,
        );
        assert!(matches!(r, Err(Error::BadAddress(a)) if a.is_empty()));
        let request = Request {
            arguments: vec![b"ok".to_vec(), b"a@x> NOTIFY=SUCCESS".to_vec()],
            ..request
        };
        let r = read_message(
            &mut input,
            &settings(),
            &Identity::default(),
            &request,
            &STAMP,
        );
        assert!(matches!(r, Err(Error::BadDomain(a)) if a.starts_with(b"a@x> NOTIFY=SUCCESS")));
    }

    #[test]
    fn a_header_recipient_with_a_quoted_domain_is_refused() {
        let mut input = Input::new(
            &b"To: a@\"x> NOTIFY=SUCCESS\", b@x.org\n\nbody\n"[..],
            false,
        );
        let request = Request {
            recipients: Recipients::Header,
            arguments: vec![],
            sender: None,
        };
        let r = read_message(
            &mut input,
            &settings(),
            &Identity::default(),
            &request,
            &STAMP,
        );
        assert!(
            matches!(&r, Err(Error::BadDomain(a)) if a.starts_with(b"a@x> NOTIFY=SUCCESS")),
            "{r:?}"
        );
        assert!(r.unwrap_err().is_permanent());
    }

    #[test]
    fn errors_say_whether_they_are_permanent() {
        assert!(Error::HeaderTooLarge.is_permanent());
        assert!(!Error::Read(io::Error::other("x")).is_permanent());
        let e = Error::BadRecipientField(b"To: \"bob\n <b@x>\n".to_vec());
        assert_eq!(
            e.to_string(),
            "unable to parse the addresses in this header field: To: \"bob  <b@x>"
        );
    }
}
