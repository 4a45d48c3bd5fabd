//! condredirect ADDRESS PROGRAM [ARG...]: runs PROGRAM on the message; if it exits 0,
//! queues `$DTLINE` and the message for ADDRESS with envelope sender `$SENDER` and exits
//! 99 (qmail-local then ignores the rest of the `.qmail` file). 111 or a crash defers
//! (111); any other code lets the delivery go on (0). qmail's condredirect.
#![forbid(unsafe_code)]

use rqmail_helpers::forward::{forward, home, required_env};
use rqmail_helpers::{EXIT_PERMANENT, EXIT_STOP, EXIT_TEMPORARY, Exit, Gate, gate, run};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const USAGE: &str = "condredirect: usage: condredirect newaddress program [ arg ... ]";

fn main() -> ExitCode {
    ExitCode::from(condredirect().unwrap_or_else(|exit| exit).report())
}

fn condredirect() -> Result<Exit, Exit> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [address, program @ ..] = args.as_slice() else {
        return Err(Exit::saying(EXIT_PERMANENT, USAGE));
    };
    if program.is_empty() {
        return Err(Exit::saying(EXIT_PERMANENT, USAGE));
    }
    if let Gate::Closed(exit) = gate("condredirect", run("condredirect", program)) {
        return Ok(exit);
    }
    let fatal = |text: String| Exit::saying(EXIT_TEMPORARY, format!("condredirect: fatal: {text}"));
    // PROGRAM read the message from the same descriptor: start again from its beginning
    // (qmail-local gives programs the queue file, which is seekable).
    let mut message = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| fatal(format!("unable to rewind: {e}")))?;
    message
        .seek(SeekFrom::Start(0))
        .map_err(|e| fatal(format!("unable to rewind: {e}")))?;
    let sender = required_env("condredirect", "SENDER")?;
    let dtline = required_env("condredirect", "DTLINE")?;
    let home = home("condredirect")?;
    let qp = forward(
        "condredirect",
        &home,
        &sender,
        &dtline,
        &[address.as_bytes()],
        &mut message,
    )?;
    Ok(Exit::saying(EXIT_STOP, format!("condredirect: qp {qp}")))
}
