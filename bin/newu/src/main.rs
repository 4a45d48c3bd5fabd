//! rqmail-newu: compiles HOME/users/assign into HOME/users/cdb, atomically.
//! On any error the old users/cdb stays in place and the exit code is 111 (qmail-newu's).
#![forbid(unsafe_code)]

use rqmail_outcome::EXIT_TEMPORARY;
use std::process::ExitCode;

/// qmail-newu exits 111 on every failure: nothing changed, fix and run again.
const EXIT_FATAL: u8 = EXIT_TEMPORARY;

fn run() -> Result<(), String> {
    let home =
        rqmail_control::home().map_err(|e| format!("unable to find the rqmail home: {e}"))?;
    rqmail_users::compile(&home).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            rqmail_log::line(&format!("rqmail-newu: fatal: {reason}"));
            ExitCode::from(EXIT_FATAL)
        }
    }
}
