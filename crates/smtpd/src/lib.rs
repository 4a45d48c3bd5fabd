//! rqmail-smtpd's session: one SMTP conversation on fds 0 and 1, with STARTTLS, AUTH
//! through a checkpassword program, relay control, recipient checks and durable queueing.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub use rqmail_serverconn::conn;
pub mod rcpt;
pub mod session;
pub mod settings;
pub use rqmail_serverconn::tls;
