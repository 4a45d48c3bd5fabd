//! The pieces qmail's `.qmail` helpers (preline, bouncesaying, condredirect, forward,
//! except, datemail) share: running the program they wrap and reading its exit status.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod forward;
pub mod prepend;

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// Success: the delivery goes on with the next `.qmail` line.
pub const EXIT_OK: u8 = 0;
/// Success, and qmail-local stops reading the `.qmail` file.
pub const EXIT_STOP: u8 = 99;
/// Permanent failure (the message bounces) and temporary failure (the delivery is retried
/// later): qmail's two failure codes.
pub use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Exited(u8),
    /// A signal killed it.
    Crashed,
}

/// What a helper exits with, and the line it prints on stderr first (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit code.
    pub code: u8,
    /// The explanation, which qmail-local puts in the log or the bounce.
    pub message: Option<Vec<u8>>,
}

impl Exit {
    /// An exit with nothing to say.
    pub fn silent(code: u8) -> Exit {
        Exit {
            code,
            message: None,
        }
    }

    /// An exit with a line of explanation.
    pub fn saying(code: u8, message: impl Into<Vec<u8>>) -> Exit {
        Exit {
            code,
            message: Some(message.into()),
        }
    }

    /// Prints the explanation (one write, so it stays one line in the report) and returns
    /// the code, for `main`.
    pub fn report(self) -> u8 {
        if let Some(mut text) = self.message {
            text.push(b'\n');
            let _ = io::stderr().lock().write_all(&text);
        }
        self.code
    }
}

/// The errors qmail's `error_temp()` counts as temporary: running a program that failed
/// with one of these is worth retrying; any other (no such file, permission denied) is not.
pub fn is_temporary_errno(code: i32) -> bool {
    const TEMPORARY: &[i32] = &[
        4,   // EINTR
        12,  // ENOMEM
        26,  // ETXTBSY
        5,   // EIO
        110, // ETIMEDOUT
        11,  // EAGAIN (EWOULDBLOCK)
        35,  // EDEADLK
        16,  // EBUSY
        23,  // ENFILE
        24,  // EMFILE
        27,  // EFBIG
        28,  // ENOSPC
        100, // ENETDOWN
        101, // ENETUNREACH
        102, // ENETRESET
        103, // ECONNABORTED
        104, // ECONNRESET
        105, // ENOBUFS
        109, // ETOOMANYREFS
        111, // ECONNREFUSED
        112, // EHOSTDOWN
        113, // EHOSTUNREACH
        87,  // EUSERS
        122, // EDQUOT
        116, // ESTALE
        37,  // ENOLCK
    ];
    TEMPORARY.contains(&code)
}

/// Whether an error from starting a program is temporary (qmail's `error_temp`).
pub fn is_temporary(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(is_temporary_errno)
}

/// The program's name for messages.
pub fn display(program: &OsString) -> String {
    String::from_utf8_lossy(program.as_bytes()).into_owned()
}

/// Runs `argv` (found through PATH, as execvp would) with this process's stdin, stdout and
/// stderr, and waits for it. A program that cannot be started counts as one that exited
/// 111 if the reason is temporary and 100 otherwise, as qmail's helpers have their child
/// exit when execvp fails; the reason is printed on stderr.
pub fn run(helper: &str, argv: &[OsString]) -> Status {
    let Some((program, args)) = argv.split_first() else {
        return Status::Exited(EXIT_PERMANENT);
    };
    let result = Command::new(program).args(args).status();
    match result {
        Ok(status) if status.signal().is_some() => Status::Crashed,
        // A code outside 0..=255 cannot come from exit(); keep the low byte as wait() does.
        Ok(status) => Status::Exited(status.code().unwrap_or(0) as u8),
        Err(e) => {
            let code = if is_temporary(&e) {
                EXIT_TEMPORARY
            } else {
                EXIT_PERMANENT
            };
            Exit::saying(
                code,
                format!("{helper}: fatal: unable to run {}: {e}", display(program)),
            )
            .report();
            Status::Exited(code)
        }
    }
}

/// What bouncesaying and condredirect do after running their program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The program exited 0: bounce, or redirect.
    Open,
    /// Anything else: exit with this, doing nothing more.
    Closed(Exit),
}

/// bouncesaying's and condredirect's reading of the program's status: 0 opens the gate,
/// 111 and a crash are temporary failures, any other code means "not this message"
/// (exit 0, the delivery goes on).
pub fn gate(helper: &str, status: Status) -> Gate {
    match status {
        Status::Exited(0) => Gate::Open,
        Status::Exited(EXIT_TEMPORARY) => Gate::Closed(Exit::saying(
            EXIT_TEMPORARY,
            format!("{helper}: fatal: temporary child error"),
        )),
        Status::Crashed => Gate::Closed(Exit::saying(
            EXIT_TEMPORARY,
            format!("{helper}: fatal: child crashed"),
        )),
        Status::Exited(_) => Gate::Closed(Exit::silent(EXIT_OK)),
    }
}

/// except's reading: 0 becomes a bounce (100), 111 and a crash stay temporary (111), and
/// every other code, 100 included, becomes success (0).
pub fn invert(status: Status) -> Exit {
    match status {
        Status::Exited(0) => Exit::silent(EXIT_PERMANENT),
        Status::Exited(EXIT_TEMPORARY) => {
            Exit::saying(EXIT_TEMPORARY, "except: fatal: temporary child error")
        }
        Status::Crashed => Exit::saying(EXIT_TEMPORARY, "except: fatal: child crashed"),
        Status::Exited(_) => Exit::silent(EXIT_OK),
    }
}

/// preline's and predate's reading: the program's own code, and 111 if it crashed.
pub fn pass_through(helper: &str, status: Status) -> Exit {
    match status {
        Status::Exited(code) => Exit::silent(code),
        Status::Crashed => Exit::saying(EXIT_TEMPORARY, format!("{helper}: fatal: child crashed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_only_on_zero() {
        assert_eq!(gate("x", Status::Exited(0)), Gate::Open);
        for code in [1, 2, 99, 100, 112, 255] {
            assert_eq!(
                gate("x", Status::Exited(code)),
                Gate::Closed(Exit::silent(0)),
                "{code}"
            );
        }
        for status in [Status::Exited(111), Status::Crashed] {
            match gate("x", status) {
                Gate::Closed(exit) => assert_eq!(exit.code, 111),
                Gate::Open => panic!("{status:?} opened the gate"),
            }
        }
    }

    #[test]
    fn except_turns_zero_into_a_bounce_and_everything_else_but_111_into_success() {
        assert_eq!(invert(Status::Exited(0)).code, 100);
        assert_eq!(invert(Status::Exited(100)).code, 0);
        assert_eq!(invert(Status::Exited(1)).code, 0);
        assert_eq!(invert(Status::Exited(99)).code, 0);
        assert_eq!(invert(Status::Exited(111)).code, 111);
        assert_eq!(invert(Status::Crashed).code, 111);
    }

    #[test]
    fn preline_passes_the_code_through_and_a_crash_is_temporary() {
        for code in [0, 1, 99, 100, 111, 64] {
            assert_eq!(pass_through("preline", Status::Exited(code)).code, code);
        }
        assert_eq!(pass_through("preline", Status::Crashed).code, 111);
    }

    #[test]
    fn a_missing_program_is_permanent_and_a_busy_one_temporary() {
        assert!(!is_temporary_errno(2)); // ENOENT
        assert!(!is_temporary_errno(13)); // EACCES
        assert!(is_temporary_errno(26)); // ETXTBSY
        assert!(is_temporary_errno(12)); // ENOMEM
        let status = run("test", &["/nonexistent/program".into()]);
        assert_eq!(status, Status::Exited(100));
    }

    #[test]
    fn runs_a_program_and_reads_its_code_or_its_crash() {
        let sh = |script: &str| -> Vec<OsString> { vec!["sh".into(), "-c".into(), script.into()] };
        assert_eq!(run("test", &sh("exit 0")), Status::Exited(0));
        assert_eq!(run("test", &sh("exit 77")), Status::Exited(77));
        assert_eq!(run("test", &sh("kill -9 $$")), Status::Crashed);
    }
}
