//! rqmail-send's scheduler: turns committed envelopes into delivery jobs, hands them to
//! the local and remote spawns, retries on qmail's schedule, and bounces what fails.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bounce;
pub mod config;
mod deliveries;
mod finish;
mod passes;
pub mod schedule;
pub mod send;
mod todo;
