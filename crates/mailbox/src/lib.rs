//! Writes one message into a Maildir or an mbox file, durably, as qmail-local does, and
//! creates Maildirs and Maildir++ folders; replaces small files (`maildirsize`, a mail
//! reader's lists) whole.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod maildir;
mod mbox;
pub mod quota;
mod replace;

pub use maildir::{
    deliver_maildir, deliver_maildir_within, make_folder, make_maildir, spool, unique_name,
};
pub use mbox::deliver_mbox;
pub use replace::replace_file;

use std::fmt;

/// Why a delivery failed. The text ends in a qmail-style enhanced status code, e.g.
/// `(#4.3.0)`, and becomes the deferral or bounce text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// True if retrying cannot help (bounce); false for a temporary failure (retry later).
    pub permanent: bool,
    /// What went wrong, for the delivery report.
    pub text: String,
}

impl DeliveryError {
    /// A temporary failure: qmail-local never makes a mailbox failure permanent.
    pub fn temporary(text: impl Into<String>) -> DeliveryError {
        DeliveryError {
            permanent: false,
            text: text.into(),
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for DeliveryError {}

/// Why [`deliver_maildir_within`] delivered nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WithinError {
    /// The message grew past the size the caller allows (a quota).
    TooLarge,
    /// Anything else, as from [`deliver_maildir`].
    Failed(DeliveryError),
}

impl From<DeliveryError> for WithinError {
    fn from(e: DeliveryError) -> WithinError {
        WithinError::Failed(e)
    }
}

/// Size of the buffer the message is copied through.
const COPY_BUFFER: usize = 64 * 1024;

#[cfg(test)]
mod tests;
