//! rqmail-inject: reads a message on stdin, fixes up its header as qmail-inject does and
//! queues it through rqmail-queue (or prints it, with -n). Exit 0, 100 permanent, 111 temporary.
#![forbid(unsafe_code)]

use rqmail_header::{
    Identity, Input, Message, Recipients, Request, Settings, Stamp, copy_body, read_message,
};
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use rqmail_submit::{BUFFER, Failure, queue};
use std::ffi::OsString;
use std::io::{self, BufRead, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const USAGE: &str = "usage: rqmail-inject [-nNaAhH] [-fsender] [recipient ...]";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    /// -n: print the message instead of queueing it.
    print: bool,
    request: Request,
}

/// qmail-inject's options, getopt style: flags may be grouped (`-an`), `-f` takes the rest
/// of its word or the next argument, `--` or the first non-option ends the options.
fn parse_args(args: &[OsString]) -> Result<Options, Failure> {
    let usage = || Failure::Permanent(USAGE.to_string());
    let mut print = false;
    let mut recipients = Recipients::ArgumentsElseHeader;
    let mut sender = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        if arg == b"--" {
            i += 1;
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            break;
        }
        for (j, &letter) in arg.iter().enumerate().skip(1) {
            match letter {
                b'a' => recipients = Recipients::Arguments,
                b'A' => recipients = Recipients::ArgumentsElseHeader,
                b'h' => recipients = Recipients::Header,
                b'H' => recipients = Recipients::ArgumentsAndHeader,
                b'n' => print = true,
                b'N' => print = false,
                b'f' => {
                    let value = if j + 1 < arg.len() {
                        &arg[j + 1..]
                    } else {
                        i += 1;
                        args.get(i).ok_or_else(usage)?.as_bytes()
                    };
                    sender = Some(value.to_vec());
                    break;
                }
                _ => return Err(usage()),
            }
        }
        i += 1;
    }
    let arguments = args[i.min(args.len())..]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    Ok(Options {
        print,
        request: Request {
            recipients,
            arguments,
            sender,
        },
    })
}

/// Prints the message as it would be queued, with a Return-Path line for the sender.
fn print<R: BufRead>(message: &Message, input: &mut Input<R>) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(BUFFER, stdout.lock());
    let write_error = |e: io::Error| Failure::Temporary(format!("write error: {e}"));
    out.write_all(b"Return-Path: <").map_err(write_error)?;
    out.write_all(&message.sender).map_err(write_error)?;
    out.write_all(b">\n").map_err(write_error)?;
    out.write_all(&message.header).map_err(write_error)?;
    copy_body(input, &message.body, &mut out)?;
    out.flush().map_err(write_error)
}

fn run() -> Result<(), Failure> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let options = parse_args(&args)?;
    let home = rqmail_control::home()
        .map_err(|e| Failure::Temporary(format!("unable to find the rqmail home: {e}")))?;
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::load(&rqmail_control::Control::new(&home), env)
        .map_err(|e| Failure::Temporary(e.to_string()))?;
    let identity = Identity::from_env(env);
    let stdin = io::stdin();
    let mut input = Input::new(io::BufReader::with_capacity(BUFFER, stdin.lock()), false);
    let message = read_message(
        &mut input,
        &settings,
        &identity,
        &options.request,
        &Stamp::now(),
    )?;
    if options.print {
        print(&message, &mut input)
    } else {
        queue(&home, &message, &mut input)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Permanent(text)) if text == USAGE => {
            rqmail_log::line(&format!("rqmail-inject: {text}"));
            ExitCode::from(EXIT_PERMANENT)
        }
        Err(Failure::Permanent(text)) => {
            rqmail_log::line(&format!("rqmail-inject: fatal: {text}"));
            ExitCode::from(EXIT_PERMANENT)
        }
        Err(Failure::Temporary(text)) => {
            rqmail_log::line(&format!("rqmail-inject: fatal: {text}"));
            ExitCode::from(EXIT_TEMPORARY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Failure> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_args(&args)
    }

    #[test]
    fn recipients_come_from_arguments_else_header_by_default() {
        let o = parse(&["bob", "carol"]).unwrap();
        assert_eq!(o.request.recipients, Recipients::ArgumentsElseHeader);
        assert_eq!(o.request.arguments, [b"bob".to_vec(), b"carol".to_vec()]);
        assert!(!o.print);
    }

    #[test]
    fn the_last_recipient_option_wins() {
        assert_eq!(
            parse(&["-a"]).unwrap().request.recipients,
            Recipients::Arguments
        );
        assert_eq!(
            parse(&["-ah"]).unwrap().request.recipients,
            Recipients::Header
        );
        assert_eq!(
            parse(&["-h", "-H"]).unwrap().request.recipients,
            Recipients::ArgumentsAndHeader
        );
        assert_eq!(
            parse(&["-H", "-A"]).unwrap().request.recipients,
            Recipients::ArgumentsElseHeader
        );
    }

    #[test]
    fn sender_is_attached_or_the_next_argument() {
        let o = parse(&["-fjoe@x.org", "bob"]).unwrap();
        assert_eq!(o.request.sender.as_deref(), Some(&b"joe@x.org"[..]));
        assert_eq!(o.request.arguments, [b"bob".to_vec()]);
        let o = parse(&["-nf", "", "--", "-bob"]).unwrap();
        assert!(o.print);
        assert_eq!(o.request.sender.as_deref(), Some(&b""[..]));
        assert_eq!(o.request.arguments, [b"-bob".to_vec()]);
    }

    #[test]
    fn options_stop_at_the_first_recipient() {
        let o = parse(&["bob", "-n"]).unwrap();
        assert!(!o.print);
        assert_eq!(o.request.arguments, [b"bob".to_vec(), b"-n".to_vec()]);
    }

    #[test]
    fn unknown_options_and_a_missing_sender_are_usage_errors() {
        let usage = Err(Failure::Permanent(USAGE.to_string()));
        assert_eq!(parse(&["-x"]), usage);
        assert_eq!(parse(&["-f"]), usage);
    }
}
