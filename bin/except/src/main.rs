//! except PROGRAM [ARG...]: runs PROGRAM and inverts its verdict: 0 becomes 100 (bounce),
//! 111 and a crash stay 111 (retry), any other code becomes 0. qmail's except.
#![forbid(unsafe_code)]

use rqmail_helpers::{EXIT_PERMANENT, Exit, invert, run};
use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "except: usage: except program [ arg ... ]";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let exit = if args.is_empty() {
        Exit::saying(EXIT_PERMANENT, USAGE)
    } else {
        invert(run("except", &args))
    };
    ExitCode::from(exit.report())
}
