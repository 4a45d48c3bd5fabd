//! rqmail-pop3d [MAILDIR]: POP3 after login on the Maildir MAILDIR (default `./Maildir`,
//! or `$MAILDIR`), relative to the user's home, on fds 0 and 1 (qmail-pop3d's interface).
//!
//! rqmail-checkpassword runs it as the user, in the user's home, once rqmail-login has
//! checked the password; its first line, `+OK`, answers the client's PASS or AUTH. With
//! `POP3_EXTRA_BLANK_LINE` set, RETR and TOP add qmail-pop3d's empty line before the
//! terminator, for old clients that need it.
//!
//! Exit codes (qmail-popup and rqmail-login read them as the login's result): 0 after a
//! session, however it ended; 1 when the session is refused (run as root, no Maildir, the
//! mailbox in use), after an `-ERR` to the client; 111 for a temporary problem (the lock or
//! the scan failed), after an `-ERR [SYS/TEMP]`.
#![forbid(unsafe_code)]

use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_pop3::input::{IDLE_TIMEOUT, TimedInput, set_send_timeout};
use rqmail_pop3::{End, Options, StartError, Summary, Transaction};
use std::ffi::OsString;
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

/// Output is sent in pieces this large, or when the client has sent nothing more.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// Why no session took place; each maps to one reply and exit code in [`refuse`].
enum Refusal {
    /// Running as root: nothing is said to the client (qmail-pop3d's `die_root`).
    Root,
    /// More than one argument.
    Usage,
    /// The Maildir could not be entered.
    NoMailbox(std::io::Error),
    /// The maildrop could not be opened.
    Start(StartError),
}

/// Sends the refusal's reply, logs it, and picks the exit code.
fn refuse(refusal: Refusal, user: &str) -> ExitCode {
    let (reply, code, why) = match &refusal {
        Refusal::Root => (None, 1, "invoked as uid 0, terminating".to_string()),
        Refusal::Usage => (
            Some("-ERR [SYS/TEMP] server misconfigured"),
            EXIT_TEMPORARY,
            "usage: rqmail-pop3d [MAILDIR]".to_string(),
        ),
        Refusal::NoMailbox(e) => (
            Some("-ERR [SYS/PERM] this user has no mailbox"),
            1,
            format!("no mailbox: {e}"),
        ),
        Refusal::Start(e @ StartError::InUse) => (Some(e.reply()), 1, e.to_string()),
        Refusal::Start(e) => (Some(e.reply()), EXIT_TEMPORARY, e.to_string()),
    };
    if let Some(reply) = reply {
        let mut out = std::io::stdout().lock();
        let _ = out
            .write_all(format!("{reply}\r\n").as_bytes())
            .and_then(|()| out.flush());
    }
    rqmail_log::line(&format!("rqmail-pop3d: user {user}: {why}"));
    ExitCode::from(code)
}

/// The user, for the log: `$USER` as checkpassword sets it, else the uid.
fn user_name() -> String {
    match std::env::var_os("USER") {
        Some(user) if !user.is_empty() => rqmail_log::escape(user.as_encoded_bytes(), false),
        _ => format!("uid {}", nix::unistd::getuid()),
    }
}

/// The Maildir: the argument, else `$MAILDIR`, else `./Maildir`.
fn maildir_path(args: &[OsString]) -> Option<PathBuf> {
    match args {
        [dir] => Some(PathBuf::from(dir)),
        [] => Some(
            std::env::var_os("MAILDIR")
                .filter(|d| !d.is_empty())
                .map_or_else(|| PathBuf::from("./Maildir"), PathBuf::from),
        ),
        _ => None,
    }
}

fn log_session(user: &str, summary: &Summary) {
    let end = match &summary.end {
        End::Quit => "quit".to_string(),
        End::Dropped => "dropped".to_string(),
        End::TimedOut => "timeout".to_string(),
        End::Failed(e) => format!("failed ({e})"),
    };
    let mut text = format!(
        "rqmail-pop3d: user {user}: {end}: {} messages, retrieved {} ({} bytes), deleted {}",
        summary.messages, summary.retrieved, summary.retrieved_octets, summary.deleted
    );
    if summary.not_removed > 0 || summary.not_moved > 0 {
        let why = summary
            .update_error
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        text.push_str(&format!(
            ", not removed {}, not moved to cur {} ({why})",
            summary.not_removed, summary.not_moved
        ));
    }
    rqmail_log::line(&text);
}

fn main() -> ExitCode {
    let user = user_name();
    if nix::unistd::getuid().is_root() || nix::unistd::geteuid().is_root() {
        return refuse(Refusal::Root, &user);
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(maildir) = maildir_path(&args) else {
        return refuse(Refusal::Usage, &user);
    };
    if let Err(e) = std::env::set_current_dir(&maildir) {
        return refuse(Refusal::NoMailbox(e), &user);
    }
    let (lock, maildrop) = match rqmail_pop3::open_maildrop(".".as_ref(), SystemTime::now()) {
        Ok(opened) => opened,
        Err(e) => return refuse(Refusal::Start(e), &user),
    };
    let dup = |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().map(std::fs::File::from);
    let (input, output) = match (
        dup(std::io::stdin().as_fd()),
        dup(std::io::stdout().as_fd()),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => {
            rqmail_log::line(&format!("rqmail-pop3d: user {user}: fatal: dup: {e}"));
            return ExitCode::from(EXIT_TEMPORARY);
        }
    };
    set_send_timeout(&output, IDLE_TIMEOUT);
    let options = Options {
        extra_blank_line: std::env::var_os("POP3_EXTRA_BLANK_LINE").is_some(),
    };
    let mut input = BufReader::new(TimedInput::new(input, IDLE_TIMEOUT));
    let mut output = BufWriter::with_capacity(OUTPUT_BUFFER, output);
    let summary = Transaction::new(lock, maildrop, options).serve(&mut input, &mut output);
    log_session(&user, &summary);
    // However the session ended, the login worked: 0, as qmail-pop3d's die() does.
    ExitCode::SUCCESS
}
