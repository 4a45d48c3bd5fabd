//! IMAP4rev1 after login (rqmail-imapd): the authenticated and selected states on a
//! Maildir++, with persistent UIDs, flags in file names, and IDLE.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
pub mod date;
pub mod index;
pub mod input;
pub mod mime;
pub mod session;
pub mod store;
pub mod utf7;

pub use input::Input;
pub use session::{CAPABILITIES, End, Session};
