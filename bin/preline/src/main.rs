//! preline [-frdFRD] PROGRAM [ARG...]: runs PROGRAM with the message on stdin preceded by
//! `$UFLINE`, `$RPLINE` and `$DTLINE` (as an mbox delivery writes them), and exits as
//! PROGRAM did, 111 if it crashed (qmail's preline).
#![forbid(unsafe_code)]

use rqmail_helpers::forward::env;
use rqmail_helpers::prepend::{Preline, run_with_prefix};
use rqmail_helpers::{EXIT_PERMANENT, EXIT_TEMPORARY, Exit, is_temporary};
use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "preline: usage: preline cmd [ arg ... ]";

fn main() -> ExitCode {
    ExitCode::from(preline().report())
}

fn preline() -> Exit {
    let usage = || Exit::saying(EXIT_PERMANENT, USAGE);
    // Outside a delivery there is nothing to prepend: qmail calls that a usage error too.
    let (Some(ufline), Some(rpline), Some(dtline)) = (env("UFLINE"), env("RPLINE"), env("DTLINE"))
    else {
        return usage();
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Ok(preline) = Preline::parse(&args) else {
        return usage();
    };
    let prefix = preline.prefix(&ufline, &rpline, &dtline);
    run_with_prefix(
        "preline",
        &preline.program,
        &prefix,
        &mut std::io::stdin().lock(),
        |e| {
            if is_temporary(e) {
                EXIT_TEMPORARY
            } else {
                EXIT_PERMANENT
            }
        },
    )
}
