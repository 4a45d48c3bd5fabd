//! preline and datemail: run a program with a few lines written before the message on its
//! stdin (From_, Return-Path, Delivered-To; or Date), and exit as the program did.

use crate::{EXIT_TEMPORARY, Exit, Status, display, pass_through};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// Bytes copied from stdin to the program at a time.
const BUFFER: usize = 64 * 1024;

/// The command line was not one preline understands: exit 100 with the usage line.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage;

/// preline's options and the program it runs.
#[derive(Debug, PartialEq, Eq)]
pub struct Preline {
    /// Write `$UFLINE` (the mbox From_ line); `-f` turns it off, `-F` on.
    pub ufline: bool,
    /// Write `$RPLINE` (Return-Path); `-r` off, `-R` on.
    pub rpline: bool,
    /// Write `$DTLINE` (Delivered-To); `-d` off, `-D` on.
    pub dtline: bool,
    /// The program and its arguments.
    pub program: Vec<OsString>,
}

impl Preline {
    /// Reads preline's arguments (without argv\[0\]) getopt style: flags may be grouped
    /// (`-fr`), `--` or the first word not starting with `-` ends them, a program must
    /// follow.
    pub fn parse(args: &[OsString]) -> Result<Preline, Usage> {
        let mut p = Preline {
            ufline: true,
            rpline: true,
            dtline: true,
            program: Vec::new(),
        };
        let mut rest = args;
        while let Some((word, after)) = rest.split_first() {
            let bytes = word.as_bytes();
            if bytes == b"--" {
                rest = after;
                break;
            }
            if bytes.len() < 2 || bytes[0] != b'-' {
                break;
            }
            for flag in &bytes[1..] {
                match flag {
                    b'f' => p.ufline = false,
                    b'r' => p.rpline = false,
                    b'd' => p.dtline = false,
                    b'F' => p.ufline = true,
                    b'R' => p.rpline = true,
                    b'D' => p.dtline = true,
                    _ => return Err(Usage),
                }
            }
            rest = after;
        }
        if rest.is_empty() {
            return Err(Usage);
        }
        p.program = rest.to_vec();
        Ok(p)
    }

    /// The lines to write before the message, in qmail's order, from the values of
    /// UFLINE, RPLINE and DTLINE.
    pub fn prefix(&self, ufline: &[u8], rpline: &[u8], dtline: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ufline.len() + rpline.len() + dtline.len());
        for (wanted, line) in [
            (self.ufline, ufline),
            (self.rpline, rpline),
            (self.dtline, dtline),
        ] {
            if wanted {
                out.extend_from_slice(line);
            }
        }
        out
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// predate's `Date:` line for `now` (seconds since the epoch), in UTC as every date rqmail
/// writes: `Date: 8 Dec 2026 02:15:42 +0000` LF.
pub fn date_line(now: i64) -> String {
    let t = rqmail_date::Utc::from_unix(now);
    format!(
        "Date: {} {} {} {:02}:{:02}:{:02} +0000\n",
        t.day,
        MONTHS[(t.month as usize).saturating_sub(1) % 12],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// Why copying stopped early.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy(prefix: &[u8], input: &mut dyn Read, output: &mut dyn Write) -> Result<(), CopyError> {
    output.write_all(prefix).map_err(CopyError::Write)?;
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        output.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Runs `argv` with `prefix` and then all of `input` on its stdin, waits for it and
/// returns its exit code (111 if it crashed). If it cannot be started, the code is
/// `not_run(error)`: preline says 111 for a temporary reason and 100 otherwise, predate
/// always 111.
///
/// A program may stop reading early (`head -1`): the broken pipe is its choice, and its
/// exit status decides. A read error on `input` kills the program before it sees the end
/// of a truncated message, and is a temporary failure.
pub fn run_with_prefix(
    helper: &str,
    argv: &[OsString],
    prefix: &[u8],
    input: &mut dyn Read,
    not_run: fn(&io::Error) -> u8,
) -> Exit {
    let Some((program, args)) = argv.split_first() else {
        return Exit::saying(
            crate::EXIT_PERMANENT,
            format!("{helper}: usage: {helper} cmd [ arg ... ]"),
        );
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Exit::saying(
                not_run(&e),
                format!("{helper}: fatal: unable to run {}: {e}", display(program)),
            );
        }
    };
    let copied = match child.stdin.take() {
        Some(mut pipe) => copy(prefix, input, &mut pipe),
        None => Err(CopyError::Write(io::Error::other("no pipe to the program"))),
    };
    let failure = match copied {
        Ok(()) => None,
        Err(CopyError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => None,
        Err(CopyError::Write(e)) => Some(format!("{helper}: fatal: unable to copy input: {e}")),
        Err(CopyError::Read(e)) => Some(format!("{helper}: fatal: unable to read input: {e}")),
    };
    if let Some(text) = failure {
        let _ = child.kill();
        let _ = child.wait();
        return Exit::saying(EXIT_TEMPORARY, text);
    }
    match child.wait() {
        Ok(status) if status.signal().is_some() => pass_through(helper, Status::Crashed),
        Ok(status) => pass_through(helper, Status::Exited(status.code().unwrap_or(0) as u8)),
        Err(e) => Exit::saying(EXIT_TEMPORARY, format!("{helper}: fatal: wait failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn preline_options_turn_lines_off_and_on_and_end_at_the_program() {
        let p = Preline::parse(&args(&["procmail"])).unwrap();
        assert!(p.ufline && p.rpline && p.dtline);
        assert_eq!(p.program, args(&["procmail"]));
        let p = Preline::parse(&args(&["-fr", "-d", "cat", "-f"])).unwrap();
        assert!(!p.ufline && !p.rpline && !p.dtline);
        assert_eq!(
            p.program,
            args(&["cat", "-f"]),
            "options after the program are its own"
        );
        let p = Preline::parse(&args(&["-dD", "--", "-prog"])).unwrap();
        assert!(p.dtline);
        assert_eq!(p.program, args(&["-prog"]));
    }

    #[test]
    fn preline_without_a_program_or_with_an_unknown_flag_is_a_usage_error() {
        assert_eq!(Preline::parse(&[]), Err(Usage));
        assert_eq!(Preline::parse(&args(&["-f"])), Err(Usage));
        assert_eq!(Preline::parse(&args(&["--"])), Err(Usage));
        assert_eq!(Preline::parse(&args(&["-x", "cat"])), Err(Usage));
    }

    #[test]
    fn the_prefix_keeps_qmails_order() {
        let p = Preline::parse(&args(&["-r", "cat"])).unwrap();
        assert_eq!(
            p.prefix(b"From a\n", b"Return-Path: <a>\n", b"Delivered-To: b\n"),
            b"From a\nDelivered-To: b\n"
        );
    }

    #[test]
    fn predates_line_is_utc_without_a_weekday() {
        // 1996-01-03 01:05:34 UTC.
        assert_eq!(date_line(820_631_134), "Date: 3 Jan 1996 01:05:34 +0000\n");
    }

    #[test]
    fn the_program_gets_the_prefix_then_the_input_and_its_code_is_returned() {
        let dir = std::env::temp_dir().join(format!("rqmail-helpers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("cat > {}; exit 42", out.display());
        let exit = run_with_prefix(
            "test",
            &args(&["sh", "-c", &script]),
            b"Line: 1\n",
            &mut &b"body\n"[..],
            |_| 111,
        );
        assert_eq!(exit.code, 42);
        assert_eq!(std::fs::read(&out).unwrap(), b"Line: 1\nbody\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_program_that_stops_reading_decides_by_its_own_code() {
        let big = vec![b'x'; 1 << 20];
        let exit = run_with_prefix("test", &args(&["true"]), b"", &mut &big[..], |_| 111);
        assert_eq!(exit.code, 0);
        let exit = run_with_prefix(
            "test",
            &args(&["sh", "-c", "kill -9 $$"]),
            b"",
            &mut &big[..],
            |_| 111,
        );
        assert_eq!(exit.code, 111);
    }

    #[test]
    fn a_program_that_cannot_start_gets_the_callers_code() {
        let exit = run_with_prefix("test", &args(&["/nonexistent"]), b"", &mut &b""[..], |e| {
            if crate::is_temporary(e) { 111 } else { 100 }
        });
        assert_eq!(exit.code, 100);
        assert!(
            String::from_utf8_lossy(&exit.message.unwrap()).contains("unable to run /nonexistent")
        );
    }
}
