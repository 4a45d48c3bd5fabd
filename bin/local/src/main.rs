//! rqmail-local [-nN] [--] USER HOMEDIR LOCAL DASH EXT DOMAIN SENDER DEFAULTDELIVERY:
//! delivers the message on fd 0 (a seekable file) as qmail-local does; rqmail-lspawn runs
//! the same code in-process, this command exists for admins, scripts and tests.
#![forbid(unsafe_code)]

use rqmail_dotqmail::{Delivery, EXIT_PERMANENT, EXIT_TEMPORARY};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: rqmail-local [-nN] [--] user homedir local dash ext domain sender defaultdelivery";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut describe_only = false;
    while let Some(first) = args.first() {
        match first.to_str() {
            Some("-n") => describe_only = true,
            Some("-N") => describe_only = false,
            Some("--") => {
                args.remove(0);
                break;
            }
            _ => break,
        }
        args.remove(0);
    }
    if args.len() != 8 {
        rqmail_log::line(USAGE);
        return ExitCode::from(EXIT_PERMANENT);
    }
    let mut it = args.into_iter().map(OsString::into_vec);
    let mut next = || it.next().unwrap_or_default();
    let user = next();
    let homedir = PathBuf::from(OsString::from_vec(next()));
    if !homedir.is_absolute() {
        rqmail_log::line(&format!("rqmail-local: homedir must be absolute. {USAGE}"));
        return ExitCode::from(EXIT_PERMANENT);
    }
    let rqmail_home = match rqmail_control::home() {
        Ok(h) => h,
        Err(e) => {
            println!("Unable to find the rqmail home: {e}. (#4.3.0)");
            return ExitCode::from(EXIT_TEMPORARY);
        }
    };
    let delivery = Delivery {
        user,
        homedir,
        local: next(),
        dash: next(),
        ext: next(),
        domain: next(),
        sender: next(),
        default_delivery: next(),
        rqmail_home,
    };
    let mut out = std::io::stdout();
    if describe_only {
        return ExitCode::from(rqmail_dotqmail::describe(&delivery, &mut out));
    }
    let mut message = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(_) => {
            println!("Unable to read message. (#4.3.0)");
            return ExitCode::from(EXIT_TEMPORARY);
        }
    };
    ExitCode::from(rqmail_dotqmail::deliver(&delivery, &mut message, &mut out))
}
