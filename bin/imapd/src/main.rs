//! rqmail-imapd [MAILDIR]: IMAP after login on the Maildir++ MAILDIR (default `./Maildir`,
//! or `$MAILDIR`), relative to the user's home, on fds 0 and 1.
//!
//! rqmail-checkpassword runs it as the user, in the user's home, once rqmail-login has
//! checked the password. With `IMAPLOGINTAG` set, its first line is the tagged OK that
//! answers the client's LOGIN or AUTHENTICATE; without it (run directly, e.g. by tests or
//! over ssh), it greets with `* PREAUTH`. `MAILDIRQUOTA` (e.g. `1500S`, set by
//! rqmail-checkpassword for a virtual user) is the quota APPEND and COPY are held to.
//!
//! Exit codes: 0 after a session, however it ended; 1 when the session is refused (run as
//! root, no Maildir), after a `NO`/`BYE`; 111 for a usage error.
#![forbid(unsafe_code)]

use rqmail_imap::{End, Input, Session};
use rqmail_mailbox::quota::Quota;
use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_timeouts::set_send_timeout;
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// RFC 3501 §5.4: an autologout timer of at least 30 minutes.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60 + 60);
/// Output is sent in pieces this large, or when a reply is complete.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// Why no session took place.
enum Refusal {
    Root,
    Usage,
    NoMailbox(std::io::Error),
    Io(std::io::Error),
}

/// Sends the refusal's reply, logs it, and picks the exit code.
fn refuse(refusal: Refusal, user: &str, tag: Option<&str>) -> ExitCode {
    let (code, why) = match &refusal {
        Refusal::Root => (1, "invoked as uid 0, terminating".to_string()),
        Refusal::Usage => (EXIT_TEMPORARY, "usage: rqmail-imapd [MAILDIR]".to_string()),
        Refusal::NoMailbox(e) => (1, format!("no mailbox: {e}")),
        Refusal::Io(e) => (EXIT_TEMPORARY, format!("fatal: {e}")),
    };
    if !matches!(refusal, Refusal::Root) {
        let reply = match tag {
            Some(tag) => format!("{tag} NO [UNAVAILABLE] mailbox unavailable\r\n"),
            None => "* BYE [UNAVAILABLE] mailbox unavailable\r\n".to_string(),
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(reply.as_bytes()).and_then(|()| out.flush());
    }
    rqmail_log::line(&format!("rqmail-imapd: user {user}: {why}"));
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

/// The user's Maildir++ quota from `MAILDIRQUOTA` (`BYTESS`, `COUNTC` or both, as in
/// Courier), which rqmail-checkpassword sets for a virtual user with a quota: the quota
/// holds even before `maildirsize` exists. Unset or unreadable: `maildirsize` decides.
fn maildir_quota() -> Option<Quota> {
    Quota::parse(&std::env::var("MAILDIRQUOTA").ok()?)
}

fn main() -> ExitCode {
    let user = user_name();
    let tag = std::env::var("IMAPLOGINTAG").ok().filter(|t| !t.is_empty());
    let tag = tag.as_deref();
    if nix::unistd::getuid().is_root() || nix::unistd::geteuid().is_root() {
        return refuse(Refusal::Root, &user, tag);
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(maildir) = maildir_path(&args) else {
        return refuse(Refusal::Usage, &user, tag);
    };
    if let Err(e) = std::env::set_current_dir(&maildir) {
        return refuse(Refusal::NoMailbox(e), &user, tag);
    }
    let dup = |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().map(std::fs::File::from);
    let (input, output) = match (
        dup(std::io::stdin().as_fd()),
        dup(std::io::stdout().as_fd()),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => return refuse(Refusal::Io(e), &user, tag),
    };
    set_send_timeout(&output, IDLE_TIMEOUT);
    let mut input = Input::new(input, IDLE_TIMEOUT);
    let output = BufWriter::with_capacity(OUTPUT_BUFFER, output);
    let mut session = Session::new(PathBuf::from("."), output);
    if let Some(quota) = maildir_quota() {
        session.set_quota(quota);
    }
    if let Err(e) = session.greet(tag) {
        rqmail_log::line(&format!("rqmail-imapd: user {user}: dropped: {e}"));
        return ExitCode::SUCCESS;
    }
    let end = match session.serve(&mut input) {
        End::Logout => "logout".to_string(),
        End::Dropped(e) => format!("dropped ({e})"),
    };
    rqmail_log::line(&format!("rqmail-imapd: user {user}: {end}"));
    // However the session ended, the login worked: 0, as rqmail-pop3d does.
    ExitCode::SUCCESS
}
