//! SMTP's wire format as rqmail-smtpd speaks it: commands and their paths and parameters,
//! which domains a path may carry, the DATA decoder that only CRLF.CRLF can end, replies with enhanced codes, Received lines.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod command;
pub mod data;
pub mod domain;
pub mod received;
pub mod reply;
