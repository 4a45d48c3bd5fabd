//! sendmail: the sendmail-compatible front of rqmail. Takes sendmail's options, fixes up the
//! header as rqmail-inject does and queues the message; -bp lists the queue, -bs speaks SMTP.
#![forbid(unsafe_code)]

use rqmail_header::{Identity, Input, Recipients, Request, Settings, Stamp, read_message};
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use rqmail_submit::BUFFER;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

const USAGE: &str =
    "usage: sendmail [-t] [-i] [-f sender] [-F name] [-bm | -bp | -bs] [recipient ...]";

/// Why sendmail gives up; each maps to one exit code.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// 100, with the usage line.
    Usage,
    /// 100: a bad address or message, or the queue refuses the message.
    Permanent(String),
    /// 111: try again later.
    Temporary(String),
}

impl From<rqmail_submit::Failure> for Failure {
    fn from(f: rqmail_submit::Failure) -> Failure {
        match f {
            rqmail_submit::Failure::Permanent(text) => Failure::Permanent(text),
            rqmail_submit::Failure::Temporary(text) => Failure::Temporary(text),
        }
    }
}

impl From<rqmail_header::Error> for Failure {
    fn from(e: rqmail_header::Error) -> Failure {
        rqmail_submit::Failure::from(e).into()
    }
}

/// What sendmail is asked to do.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// -bm (the default): send a message read from stdin.
    Send,
    /// -bp, or invoked as `mailq`: list the queue.
    ListQueue,
    /// -bs: speak SMTP on stdin and stdout.
    Smtp,
}

/// The command line.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    mode: Mode,
    /// -t: the recipients in the header, as well as the arguments.
    header_recipients: bool,
    /// -i, -oi: a line with only `.` is part of the message, not its end.
    ignore_dots: bool,
    /// -f, -r: the envelope sender.
    sender: Option<Vec<u8>>,
    /// -F: the personal name for an added From.
    full_name: Option<String>,
    recipients: Vec<Vec<u8>>,
}

/// sendmail's options, getopt style: flags may be grouped (`-ti`), an option with a value
/// takes the rest of its word or the next argument, `--` or the first non-option ends the
/// options. Options of other mailers' sendmail that mean nothing here are accepted and
/// ignored; others are usage errors.
fn parse_args(args: &[OsString]) -> Result<Options, Failure> {
    let mut o = Options {
        mode: Mode::Send,
        header_recipients: false,
        ignore_dots: false,
        sender: None,
        full_name: None,
        recipients: Vec::new(),
    };
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
                b't' => o.header_recipients = true,
                b'i' => o.ignore_dots = true,
                // -v verbose, -m also to me, -x, -U initial submission, -G gateway,
                // -n no aliasing: nothing to do.
                b'v' | b'm' | b'x' | b'U' | b'G' | b'n' => {}
                b'f' | b'r' | b'F' | b'o' | b'b' | b'B' | b'N' | b'R' | b'V' | b'p' | b'e'
                | b'h' | b'L' | b'O' => {
                    let value = if j + 1 < arg.len() {
                        &arg[j + 1..]
                    } else {
                        i += 1;
                        args.get(i).ok_or(Failure::Usage)?.as_bytes()
                    };
                    option_with_value(&mut o, letter, value)?;
                    break;
                }
                _ => return Err(Failure::Usage),
            }
        }
        i += 1;
    }
    o.recipients = args[i.min(args.len())..]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    Ok(o)
}

fn option_with_value(o: &mut Options, letter: u8, value: &[u8]) -> Result<(), Failure> {
    match letter {
        b'f' | b'r' => o.sender = Some(value.to_vec()),
        b'F' => o.full_name = Some(String::from_utf8_lossy(value).into_owned()),
        b'o' if value == b"i" => o.ignore_dots = true,
        b'b' => {
            o.mode = match value {
                b"m" => Mode::Send,
                b"p" => Mode::ListQueue,
                b"s" => Mode::Smtp,
                _ => return Err(Failure::Usage),
            }
        }
        // -o other options (-oem, -odi, -odb, -om, ...), -B body type, -N DSN notify,
        // -R DSN return, -V envelope id, -p protocol, -e error mode, -h hop count, -L log
        // tag, -O long options: rqmail has one way of doing each.
        _ => {}
    }
    Ok(())
}

/// Replaces this process with `HOME/bin/program`; returns only if that fails.
fn exec(home: &Path, program: &str, command: &mut Command) -> Failure {
    let path = home.join("bin").join(program);
    let e = command.current_dir(home).exec();
    Failure::Temporary(format!("unable to run {}: {e}", path.display()))
}

/// -bs: rqmail-smtpd on stdin and stdout, set up as for a trusted local client unless an
/// SMTP environment (PROTO) is already there, as qmail's sendmail does.
fn smtp(home: &Path) -> Failure {
    let mut command = Command::new(home.join("bin/rqmail-smtpd"));
    if std::env::var_os("PROTO").is_none() {
        command.envs([
            ("RELAYCLIENT", ""),
            ("DATABYTES", "0"),
            ("PROTO", "TCP"),
            ("TCPLOCALIP", "127.0.0.1"),
            ("TCPLOCALHOST", "localhost"),
            ("TCPREMOTEIP", "127.0.0.1"),
            ("TCPREMOTEHOST", "localhost"),
            ("TCPREMOTEINFO", "sendmail-bs"),
        ]);
    }
    exec(home, "rqmail-smtpd", &mut command)
}

fn list_queue(home: &Path) -> Failure {
    exec(
        home,
        "rqmail-qread",
        &mut Command::new(home.join("bin/rqmail-qread")),
    )
}

fn send(home: &Path, options: Options) -> Result<(), Failure> {
    if !options.header_recipients && options.recipients.is_empty() {
        // Fail before waiting for a message that could go nowhere.
        return Err(Failure::Permanent(
            "no recipients given (with -t they are taken from the header)".to_string(),
        ));
    }
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::load(&rqmail_control::Control::new(home), env)
        .map_err(|e| Failure::Temporary(e.to_string()))?;
    let mut identity = Identity::from_env(env);
    if let Some(sender) = &options.sender {
        let sender = sender.strip_prefix(b"<").unwrap_or(sender);
        identity.use_sender(sender.strip_suffix(b">").unwrap_or(sender));
    }
    if let Some(name) = options.full_name {
        identity.name = Some(name);
    }
    let request = Request {
        recipients: if options.header_recipients {
            Recipients::ArgumentsAndHeader
        } else {
            Recipients::Arguments
        },
        arguments: options.recipients,
        sender: options.sender,
    };
    let stdin = io::stdin();
    let reader = io::BufReader::with_capacity(BUFFER, stdin.lock());
    let mut input = Input::new(reader, !options.ignore_dots);
    let message = read_message(&mut input, &settings, &identity, &request, &Stamp::now())?;
    Ok(rqmail_submit::queue(home, &message, &mut input)?)
}

fn run() -> Result<(), Failure> {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    let args: Vec<OsString> = args.collect();
    let invoked_as = Path::new(&program).file_name().unwrap_or_default();
    if invoked_as == "newaliases" {
        return Err(Failure::Permanent(
            "rqmail has no aliases database: addresses are aliased by ~alias/.qmail-* files"
                .to_string(),
        ));
    }
    let mut options = parse_args(&args)?;
    if invoked_as == "mailq" {
        options.mode = Mode::ListQueue;
    }
    let home = rqmail_control::home()
        .map_err(|e| Failure::Temporary(format!("unable to find the rqmail home: {e}")))?;
    match options.mode {
        Mode::Send => send(&home, options),
        Mode::ListQueue => Err(list_queue(&home)),
        Mode::Smtp => Err(smtp(&home)),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage) => {
            rqmail_log::line(&format!("sendmail: {USAGE}"));
            ExitCode::from(EXIT_PERMANENT)
        }
        Err(Failure::Permanent(text)) => {
            rqmail_log::line(&format!("sendmail: fatal: {text}"));
            ExitCode::from(EXIT_PERMANENT)
        }
        Err(Failure::Temporary(text)) => {
            rqmail_log::line(&format!("sendmail: fatal: {text}"));
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

    fn recipients(o: &Options) -> Vec<&str> {
        o.recipients
            .iter()
            .map(|r| std::str::from_utf8(r).unwrap())
            .collect()
    }

    #[test]
    fn plain_arguments_are_recipients() {
        let o = parse(&["bob", "carol@x.org"]).unwrap();
        assert_eq!(o.mode, Mode::Send);
        assert!(!o.header_recipients && !o.ignore_dots);
        assert_eq!(recipients(&o), ["bob", "carol@x.org"]);
    }

    #[test]
    fn sender_name_and_dots() {
        let o = parse(&["-t", "-i", "-f", "joe@x.org", "-FJoe User", "bob"]).unwrap();
        assert!(o.header_recipients && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some(&b"joe@x.org"[..]));
        assert_eq!(o.full_name.as_deref(), Some("Joe User"));
        assert_eq!(recipients(&o), ["bob"]);
        let o = parse(&["-oi", "-rjoe", "-ti"]).unwrap();
        assert!(o.ignore_dots && o.header_recipients);
        assert_eq!(o.sender.as_deref(), Some(&b"joe"[..]));
        assert!(!parse(&["-oem"]).unwrap().ignore_dots);
    }

    #[test]
    fn other_mailers_options_are_ignored() {
        let o = parse(&[
            "-oem", "-odi", "-odb", "-om", "-v", "-N", "never", "-B", "8BITMIME", "-U", "-bm",
            "-oQ/tmp", "-ee", "-h", "5", "--", "-bob",
        ])
        .unwrap();
        assert_eq!(o.mode, Mode::Send);
        assert_eq!(recipients(&o), ["-bob"]);
    }

    #[test]
    fn modes() {
        assert_eq!(parse(&["-bp"]).unwrap().mode, Mode::ListQueue);
        assert_eq!(parse(&["-b", "s"]).unwrap().mode, Mode::Smtp);
        assert_eq!(parse(&["-bi"]), Err(Failure::Usage));
        assert_eq!(parse(&["-bd"]), Err(Failure::Usage));
    }

    #[test]
    fn unknown_options_and_missing_values_are_usage_errors() {
        assert_eq!(parse(&["-q"]), Err(Failure::Usage));
        assert_eq!(parse(&["-tX"]), Err(Failure::Usage));
        assert_eq!(parse(&["bob", "-f"]).map(|o| o.recipients.len()), Ok(2));
        assert_eq!(parse(&["-f"]), Err(Failure::Usage));
    }
}
