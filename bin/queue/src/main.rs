//! rqmail-queue: reads a message on fd 0 and its envelope on fd 1 and queues it durably.
//! The result is only the exit code (qmail-queue's table); nothing is printed.
#![forbid(unsafe_code)]

use rqmail_qfiles::Queue;
use rqmail_qfiles::enqueue::{Caller, enqueue};
use std::os::fd::AsFd;
use std::process::ExitCode;

/// 61: trouble with the home directory.
const EXIT_HOME: u8 = 61;
/// 62: trouble with queue/.
const EXIT_QUEUE: u8 = 62;

/// The account name of `uid` from `/etc/passwd`. Read directly rather than through NSS:
/// loading NSS modules costs more than the rest of a queue run, and the name only labels
/// the Received line (an account kept elsewhere is simply shown by number).
fn account_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// How the Received line names the caller.
fn invoked_by(uid: u32) -> String {
    use rqmail_privs::{ALIAS, RQMAILD, RQMAILS};
    match account_name(uid).as_deref() {
        Some(ALIAS) => "by alias".into(),
        Some(RQMAILD) => "from network".into(),
        Some(RQMAILS) => "for bounce".into(),
        _ => format!("by uid {uid}"),
    }
}

fn main() -> ExitCode {
    use nix::sys::stat::{Mode, umask};
    umask(Mode::from_bits_truncate(0o033));
    // The home comes from where this binary is installed, never from the environment. It
    // is entered and `queue` checked here, once; nothing after looks either up by name.
    let Ok(home) = rqmail_control::home() else {
        return ExitCode::from(EXIT_HOME);
    };
    if std::env::set_current_dir(&home).is_err() {
        return ExitCode::from(EXIT_HOME);
    }
    if std::env::set_current_dir("queue").is_err() {
        return ExitCode::from(EXIT_QUEUE);
    }
    // The queue must belong to the uid this program runs as: a copy of the setuid binary
    // hard-linked into someone else's tree finds a queue it does not own, and stops.
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(".") {
        Ok(meta) if meta.uid() == nix::unistd::geteuid().as_raw() => {}
        _ => return ExitCode::from(EXIT_QUEUE),
    }
    // A 24-hour watchdog: a queue program that hangs must not hold files forever. The
    // default action of SIGALRM ends the process, which the caller sees as temporary.
    nix::unistd::alarm::set(86400);
    let uid = nix::unistd::getuid().as_raw();
    let caller = Caller {
        uid,
        pid: std::process::id(),
        invoked: invoked_by(uid),
        start: rqmail_date::now(),
    };
    // From here on every path is relative to the directory just checked: an absolute
    // path would be looked up again, and `queue` could by then be a link to elsewhere.
    let queue = Queue::current_dir();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    // fd 1 is the envelope pipe: read from it through a File on a duplicate of the fd.
    let envelope = match stdout.as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => return ExitCode::from(54),
    };
    match enqueue(&queue, &caller, stdin.lock(), envelope) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(failure.exit_code()),
    }
}
