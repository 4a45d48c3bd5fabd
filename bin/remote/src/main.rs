//! rqmail-remote HOST SENDER RECIP...: qmail-remote's interface. The message is on fd 0;
//! the recipient and message reports go to stdout for rqmail-rspawn (spec/smtp.md §8.6).
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

/// Always exits 0: every outcome, even a usage or control-file error, is in the report
/// (qmail-remote's contract: rspawn reads a nonzero exit as a crash).
fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let outcome = if args.len() < 3 {
        rqmail_remote_delivery::usage()
    } else {
        let host = args[0].to_string_lossy().into_owned();
        let sender = args[1].as_bytes().to_vec();
        let recipients: Vec<Vec<u8>> = args[2..].iter().map(|a| a.as_bytes().to_vec()).collect();
        run(&host, &sender, &recipients)
    };
    // Nothing sensible is left to do if rspawn has gone away.
    let _ = std::io::stdout().lock().write_all(&outcome.report());
    ExitCode::SUCCESS
}

fn run(host: &str, sender: &[u8], recipients: &[Vec<u8>]) -> rqmail_smtpclient::Outcome {
    use rqmail_smtpclient::{Outcome, Status};
    let home = match rqmail_control::home() {
        Ok(h) => h,
        Err(e) => {
            return Outcome::message_only(
                Status::Temporary,
                format!("Unable to find my home directory: {e}. (#4.3.0)\n"),
            );
        }
    };
    let message = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(rqmail_remote_delivery::seekable);
    match message {
        Ok(file) => rqmail_remote_delivery::deliver(&home, host, sender, recipients, file),
        Err(e) => Outcome::message_only(
            Status::Temporary,
            format!("Unable to read message: {e}. (#4.3.0)\n"),
        ),
    }
}
