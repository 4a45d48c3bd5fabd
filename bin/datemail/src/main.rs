//! datemail [SENDMAIL-ARGS...]: runs this installation's sendmail with a `Date:` line
//! before the message (qmail's datemail, `predate sendmail`), and exits as sendmail did.
//! The date is UTC, as every date rqmail writes.
#![forbid(unsafe_code)]

use rqmail_helpers::forward::home;
use rqmail_helpers::prepend::{date_line, run_with_prefix};
use rqmail_helpers::{EXIT_TEMPORARY, Exit};
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(datemail().unwrap_or_else(|exit| exit).report())
}

fn datemail() -> Result<Exit, Exit> {
    let home = home("datemail")?;
    let mut argv: Vec<OsString> = vec![home.join("bin/sendmail").into_os_string()];
    argv.extend(std::env::args_os().skip(1));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // predate's exit when its child cannot be started is always 111.
    Ok(run_with_prefix(
        "datemail",
        &argv,
        date_line(now).as_bytes(),
        &mut std::io::stdin().lock(),
        |_| EXIT_TEMPORARY,
    ))
}
