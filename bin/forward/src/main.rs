//! forward ADDRESS...: queues `$DTLINE` and the message on stdin for the addresses with
//! envelope sender `$NEWSENDER`, as a `&ADDRESS` line would; exits 0, 100 if the queue
//! refuses the message for good, 111 to try again later. qmail's forward.
#![forbid(unsafe_code)]

use rqmail_helpers::forward::{addresses, forward, home, required_env};
use rqmail_helpers::{EXIT_OK, EXIT_PERMANENT, Exit};
use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "forward: usage: forward address [ address ... ]";

fn main() -> ExitCode {
    ExitCode::from(run().unwrap_or_else(|exit| exit).report())
}

fn run() -> Result<Exit, Exit> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // qmail's forward queues a message with no recipient at all here; a usage error says
    // what is wrong instead.
    if args.is_empty() {
        return Err(Exit::saying(EXIT_PERMANENT, USAGE));
    }
    let sender = required_env("forward", "NEWSENDER")?;
    let dtline = required_env("forward", "DTLINE")?;
    let home = home("forward")?;
    let qp = forward(
        "forward",
        &home,
        &sender,
        &dtline,
        &addresses(&args),
        &mut std::io::stdin().lock(),
    )?;
    Ok(Exit::saying(EXIT_OK, format!("forward: qp {qp}")))
}
