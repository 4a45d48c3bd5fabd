//! bouncesaying TEXT [PROGRAM [ARG...]]: bounces the message (exit 100) with TEXT as the
//! reason; given PROGRAM, only if PROGRAM exits 0: 111 or a crash defers (111), any other
//! code lets the delivery go on (0). qmail's bouncesaying.
#![forbid(unsafe_code)]

use rqmail_helpers::{EXIT_PERMANENT, Exit, Gate, gate, run};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const USAGE: &str = "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]";

fn main() -> ExitCode {
    ExitCode::from(bouncesaying().report())
}

fn bouncesaying() -> Exit {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some((text, program)) = args.split_first() else {
        return Exit::saying(EXIT_PERMANENT, USAGE);
    };
    if !program.is_empty()
        && let Gate::Closed(exit) = gate("bouncesaying", run("bouncesaying", program))
    {
        return exit;
    }
    Exit::saying(EXIT_PERMANENT, text.as_bytes())
}
