//! rqmail-tcprules RULES.cdb RULES.tmp < RULES: compiles the rules text on stdin into
//! RULES.cdb via RULES.tmp, atomically; the old RULES.cdb stays on any error.
#![forbid(unsafe_code)]

use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use rqmail_rules::{CompileError, WriteError};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// tcprules' codes: 100 for bad usage or a bad line (fix the input), 111 for system errors
/// (nothing changed; try again).
const EXIT_BAD_INPUT: u8 = EXIT_PERMANENT;
const EXIT_SYSTEM: u8 = EXIT_TEMPORARY;

/// A failure: the exit code and the bytes of the message after `rqmail-tcprules: `.
struct Fatal(u8, Vec<u8>);

fn system(message: String) -> Fatal {
    Fatal(EXIT_SYSTEM, format!("fatal: {message}").into_bytes())
}

fn run(args: &[OsString]) -> Result<(), Fatal> {
    let [cdb, tmp] = args else {
        return Err(Fatal(
            EXIT_BAD_INPUT,
            b"usage: rqmail-tcprules rules.cdb rules.tmp".to_vec(),
        ));
    };
    let (cdb, tmp) = (Path::new(cdb), Path::new(tmp));
    let mut text = Vec::new();
    std::io::stdin()
        .read_to_end(&mut text)
        .map_err(|e| system(format!("unable to read input: {e}")))?;
    rqmail_rules::compile(&text, cdb, tmp).map_err(|e| match e {
        // The line is printed as written, bytes and all, as tcprules prints it.
        CompileError::Parse(e) => {
            let mut message =
                format!("fatal: unable to parse this line (line {}): ", e.line).into_bytes();
            message.extend_from_slice(&e.text);
            Fatal(EXIT_BAD_INPUT, message)
        }
        CompileError::Write(WriteError::Create(e)) => {
            system(format!("unable to create {}: {e}", tmp.display()))
        }
        CompileError::Write(WriteError::Write(e)) => {
            system(format!("unable to write to {}: {e}", tmp.display()))
        }
        CompileError::Write(WriteError::Move(e)) => system(format!(
            "unable to move {} to {}: {e}",
            tmp.display(),
            cdb.display()
        )),
    })
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(code, message)) => {
            let mut line = b"rqmail-tcprules: ".to_vec();
            line.extend_from_slice(&message);
            line.push(b'\n');
            let _ = std::io::stderr().write_all(&line);
            ExitCode::from(code)
        }
    }
}
