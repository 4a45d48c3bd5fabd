//! POP3's transaction and update states (RFC 1939, RFC 2449) on a locked Maildir, as
//! qmail-pop3d serves them after login, over any input and output so tests can drive them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod command;
pub mod input;
pub mod maildrop;
pub mod session;
pub mod transmit;

pub use maildrop::{Maildrop, MaildropLock, uidl};
pub use session::{End, Options, Summary, Transaction};

use std::io;
use std::path::Path;
use std::time::SystemTime;

/// Why a session could not start; each has its reply in [`StartError::reply`].
#[derive(Debug)]
pub enum StartError {
    /// Another session holds the maildrop's lock (RFC 1939 §8: exclusive access).
    InUse,
    /// The lock file could not be created or locked.
    Lock(io::Error),
    /// `new/` or `cur/` could not be read.
    Scan(io::Error),
}

impl StartError {
    /// The reply that ends the session, without its CRLF. It answers the client's PASS or
    /// AUTH, as qmail-pop3d's greeting does.
    pub fn reply(&self) -> &'static str {
        match self {
            StartError::InUse => "-ERR [IN-USE] mailbox in use",
            StartError::Lock(_) => "-ERR [SYS/TEMP] unable to lock the mailbox",
            StartError::Scan(_) => "-ERR [SYS/TEMP] unable to scan the mailbox",
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::InUse => f.write_str("mailbox in use"),
            StartError::Lock(e) => write!(f, "unable to lock the mailbox: {e}"),
            StartError::Scan(e) => write!(f, "unable to scan the mailbox: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Opens the Maildir `root` for one session, in qmail-pop3d's order plus a lock: takes the
/// maildrop lock, removes files of `tmp/` left stale as of `now`, and lists the messages.
pub fn open_maildrop(root: &Path, now: SystemTime) -> Result<(MaildropLock, Maildrop), StartError> {
    let lock = maildrop::lock(root).map_err(|e| match e {
        maildrop::LockError::InUse => StartError::InUse,
        maildrop::LockError::Io(e) => StartError::Lock(e),
    })?;
    maildrop::clean_tmp(root, now);
    let maildrop = Maildrop::scan(root).map_err(StartError::Scan)?;
    Ok((lock, maildrop))
}
