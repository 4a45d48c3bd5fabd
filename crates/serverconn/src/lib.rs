//! The client side of rqmail's servers (smtpd, the POP3/IMAP login front): the connection
//! on fds 0 and 1, plain or TLS, and the TLS configuration from `control/servercert.pem`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conn;
pub mod tls;
