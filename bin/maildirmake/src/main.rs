//! rqmail-maildirmake: `rqmail-maildirmake DIR` creates a Maildir;
//! `rqmail-maildirmake -f FOLDER DIR` creates a Maildir++ folder inside the Maildir DIR.
#![forbid(unsafe_code)]

use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use std::path::Path;
use std::process::ExitCode;

/// Wrong arguments: running again the same way cannot help (maildirmake's 100).
const EXIT_USAGE: u8 = EXIT_PERMANENT;
/// The directories could not be created.
const EXIT_FATAL: u8 = EXIT_TEMPORARY;

const USAGE: &str = "usage: rqmail-maildirmake [-f FOLDER] DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        [dir] if !dir.starts_with('-') => rqmail_mailbox::make_maildir(Path::new(dir)),
        ["-f", folder, dir] => rqmail_mailbox::make_folder(Path::new(dir), folder).map(|_| ()),
        _ => {
            rqmail_log::line(&format!("rqmail-maildirmake: {USAGE}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            rqmail_log::line(&format!("rqmail-maildirmake: fatal: {e}"));
            ExitCode::from(EXIT_FATAL)
        }
    }
}
