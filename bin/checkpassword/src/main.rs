//! rqmail-checkpassword PROG [ARG...]: djb's checkpassword interface for system accounts.
//! Checks the password in `user\0password\0timestamp\0` on fd 3, becomes the user, runs PROG.
//!
//! Two ways to run it (DESIGN.md, "TLS across the privilege boundary"):
//! * As root (the root half of rqmail-login): on success it sets the user's supplementary
//!   groups, gid and uid, then `USER`, `HOME`, `SHELL` and the working directory, and execs
//!   PROG (rqmail-pop3d, rqmail-imapd) as the user.
//! * As rqmaild (rqmail-smtpd for SMTP AUTH, with PROG = /bin/true), installed setgid
//!   `shadow` as Debian's unix_chkpwd is: it only verifies. It gives up group shadow as soon
//!   as the hash is read, never changes uid, and on success execs PROG as the caller, with
//!   the user's `USER`, `HOME` and `SHELL`; it enters the home directory if it can. Set-gid
//!   and run by anyone but root or rqmaild (the account named in rqmail-privs, looked up
//!   by name), it refuses at once, before reading fd 3, so other local users cannot use it
//!   to test passwords. Started without any privilege (an instance of one user) it serves
//!   its caller, who can read no hash it could not read itself.
//!
//! A login with `@` is a virtual user (`box@domain`, see [`login_virtual`]): checked
//! against the domain's passwd.cdb, run as the domain's account with HOME and MAILDIR set
//! to the virtual user's directory and Maildir, and MAILDIRQUOTA to its quota if it has one.
//!
//! Exit codes (the interface's): 1 wrong password, unknown user, root, empty password or
//! locked account; 2 misuse (no PROG, over 512 bytes or a missing NUL on fd 3); 111 a
//! temporary problem (shadow unreadable, lookup or uid change failed, PROG not runnable).
//! A refusal or temporary failure comes no sooner than `control/checkpassworddelay`
//! milliseconds (default 2000) after the request was read, whatever the reason, and its log
//! line only then, so timing tells neither a guesser nor a user-name prober anything. Under
//! rqmaild the log line never says why (no such user, bad password, ...); as root it does.
//! Attempts at each account are counted across all runs in `users/loginfailures` (see
//! [`throttle`]): after 5 without a success they are spaced out, 1 s, 2 s, ... 16 s apart,
//! and refused unchecked when more than 30 s are queued. Every log line is one write. The
//! timestamp field is ignored, as djb's does, and like djb's its NUL may be missing. The
//! password is never logged.

mod throttle;

use nix::unistd::{Gid, Uid, User};
use rqmail_outcome::EXIT_TEMPORARY;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// The interface's limit on what fd 3 may carry.
const MAX_INPUT: usize = 512;
/// The descriptor the credentials arrive on.
const CREDENTIALS_FD: i32 = 3;
/// Delay before a refusal when `control/checkpassworddelay` does not say otherwise.
const DEFAULT_DELAY_MS: u64 = 2000;

/// Why no program was run; each maps to one exit code in [`exit_code`].
#[derive(Debug, PartialEq)]
enum Failure {
    /// The login is refused: exit 1, after the delay.
    Refused { user: Vec<u8>, reason: String },
    /// The caller broke the interface: exit 2.
    Misuse(String),
    /// Something that may work later went wrong: exit 111.
    Temporary { user: Vec<u8>, reason: String },
}

/// The interface's exit codes, chosen here and nowhere else.
fn exit_code(failure: &Failure) -> u8 {
    match failure {
        Failure::Refused { .. } => 1,
        Failure::Misuse(_) => 2,
        Failure::Temporary { .. } => EXIT_TEMPORARY,
    }
}

/// One log line on stderr per failure: the user (escaped), never the password; the reason
/// only where `reasons` (not for a set-gid run, whose caller must learn nothing from it).
fn log(failure: &Failure, reasons: bool) {
    let line = match failure {
        Failure::Refused { user, reason } if reasons => {
            format!(
                "rqmail-checkpassword: login failed for {}: {reason}",
                escape(user)
            )
        }
        Failure::Refused { user, .. } => {
            format!("rqmail-checkpassword: login failed for {}", escape(user))
        }
        Failure::Temporary { user, reason } if reasons => format!(
            "rqmail-checkpassword: login failed for {}: temporary failure: {reason}",
            escape(user)
        ),
        Failure::Temporary { user, .. } => format!(
            "rqmail-checkpassword: login failed for {}: temporary failure",
            escape(user)
        ),
        Failure::Misuse(reason) => format!("rqmail-checkpassword: misuse: {reason}"),
    };
    rqmail_log::line(&line);
}

/// A user name fit for a log line: printable ASCII as is, anything else (newlines, escape
/// sequences, non-ASCII) as `\xNN`, so a name cannot forge or garble log lines.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// What fd 3 carried; the password is borrowed from the input buffer, never copied.
#[derive(Debug, PartialEq)]
struct Request<'a> {
    user: &'a [u8],
    password: &'a [u8],
}

/// Splits `user\0password\0[timestamp\0...]`. Both NULs are required; what follows the
/// second (the timestamp, maybe more) is ignored, as djb's checkpassword does.
fn parse(input: &[u8]) -> Result<Request<'_>, Failure> {
    let missing = |what: &str| Failure::Misuse(format!("no NUL after the {what} on fd 3"));
    let user_end = input
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| missing("user name"))?;
    let rest = &input[user_end + 1..];
    let password_end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| missing("password"))?;
    Ok(Request {
        user: &input[..user_end],
        password: &rest[..password_end],
    })
}

/// Reads fd 3 to EOF into `buf` (one byte more than allowed, to see an overrun) and closes
/// it; returns how many bytes came.
fn read_credentials(buf: &mut [u8; MAX_INPUT + 1]) -> Result<usize, Failure> {
    // SAFETY: fcntl(F_GETFD) only looks a number up in the descriptor table and changes
    // nothing; any integer is a valid argument. (nix's fcntl wants a BorrowedFd, whose
    // contract already requires the descriptor to be open, which is what is checked here.)
    if unsafe { libc::fcntl(CREDENTIALS_FD, libc::F_GETFD) } == -1 {
        return Err(Failure::Misuse("fd 3 is not open".into()));
    }
    // SAFETY: fd 3 is open (just checked; this single-threaded process has opened nothing
    // since it started) and by the checkpassword interface it is this program's to read and
    // close. Nothing else in the process refers to it, so taking ownership is sound.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(CREDENTIALS_FD) });
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Misuse(format!("unable to read fd 3: {e}"))),
        }
    }
    drop(file);
    if len > MAX_INPUT {
        return Err(Failure::Misuse(format!(
            "more than {MAX_INPUT} bytes on fd 3"
        )));
    }
    Ok(len)
}

/// The configured refusal delay. A setgid program must not take it from the environment;
/// the rqmail home comes from the kernel (rqmail_control::home). Unreadable → the default.
fn refusal_delay() -> Duration {
    let ms = rqmail_control::home()
        .ok()
        .and_then(|home| {
            rqmail_control::Control::new(&home)
                .int("checkpassworddelay", DEFAULT_DELAY_MS)
                .ok()
        })
        .unwrap_or(DEFAULT_DELAY_MS);
    Duration::from_millis(ms)
}

/// Looks a user up in passwd; errno values that some NSS modules use for "no such user"
/// count as not found, any other error is temporary.
fn lookup(name: &str) -> Result<Option<User>, nix::Error> {
    match User::from_name(name) {
        Err(nix::Error::ENOENT | nix::Error::ESRCH) => Ok(None),
        other => other,
    }
}

/// Gives up a set-group-ID (group shadow) for good: real, effective and saved gid all
/// become the caller's, so PROG cannot read /etc/shadow. As root the uid change does it.
fn drop_setgid() -> Result<(), String> {
    if rqmail_privs::is_root() {
        return Ok(());
    }
    let real = Gid::current();
    if Gid::effective() == real {
        return Ok(());
    }
    nix::unistd::setresgid(real, real, real).map_err(|e| format!("unable to drop setgid: {e}"))?;
    if Gid::effective() != real {
        return Err("effective gid unchanged after setresgid".into());
    }
    Ok(())
}

/// As root: the user's supplementary groups (from the group database), gid and uid, in
/// that order. Otherwise nothing: the caller keeps its own ids (rqmail_privs::become_ids).
fn become_user(account: &User) -> Result<(), String> {
    if !rqmail_privs::is_root() {
        return Ok(());
    }
    let name = CString::new(account.name.as_bytes()).map_err(|e| e.to_string())?;
    let groups = nix::unistd::getgrouplist(&name, account.gid)
        .map_err(|e| format!("unable to list the groups of the user: {e}"))?;
    let groups: Vec<u32> = groups.into_iter().map(Gid::as_raw).collect();
    let ids = rqmail_privs::Ids {
        uid: account.uid.as_raw(),
        gid: account.gid.as_raw(),
    };
    rqmail_privs::become_ids(ids, &groups).map_err(|e| format!("unable to become the user: {e}"))
}

/// Checks the request and, if it is acceptable, execs PROG; returns only on failure.
fn login(request: &Request, program: &OsStr, args: &[OsString], throttle: &Throttle) -> Failure {
    let refused = |reason: &str| Failure::Refused {
        user: request.user.to_vec(),
        reason: reason.to_string(),
    };
    let temporary = |reason: String| Failure::Temporary {
        user: request.user.to_vec(),
        reason,
    };
    let Ok(name) = std::str::from_utf8(request.user) else {
        return refused("no such user");
    };
    if name.contains('@') {
        return login_virtual(request, name, program, args, throttle);
    }
    let account = match lookup(name) {
        Ok(Some(account)) => account,
        Ok(None) => return refused("no such user"),
        Err(e) => return temporary(format!("unable to look the user up: {e}")),
    };
    // Root must never be reachable with a password over the network.
    if account.uid.is_root() {
        return refused("root may not log in");
    }
    if request.password.is_empty() {
        return refused("empty password");
    }
    let passwd_field = account.passwd.to_str().unwrap_or("*");
    let hash = rqmail_passwd::account_hash(name, passwd_field);
    // Group shadow was needed only for that read.
    if let Err(e) = drop_setgid() {
        return temporary(e);
    }
    let hash = match hash {
        Ok(Some(hash)) => hash,
        Ok(None) => return refused("no password hash for the user"),
        Err(e) => return temporary(e.to_string()),
    };
    if rqmail_passwd::is_locked(&hash) {
        return refused("account locked or without a password");
    }
    match rqmail_passwd::verify(&hash, request.password) {
        Ok(true) => {}
        Ok(false) => return refused("bad password"),
        Err(e) if e.is_temporary() => return temporary(e.to_string()),
        Err(e) => return refused(&e.to_string()),
    }
    throttle.succeeded(request.user);
    if let Err(e) = become_user(&account) {
        return temporary(e);
    }
    // The interface wants PROG to start in the home directory. A verifying caller that is
    // not the user (smtpd) may well be unable to enter it; that must not fail its AUTH.
    let is_the_user = Uid::effective() == account.uid;
    if let Err(e) = std::env::set_current_dir(&account.dir)
        && is_the_user
    {
        return temporary(format!("unable to enter {}: {e}", account.dir.display()));
    }
    let shell = if account.shell.as_os_str().is_empty() {
        OsStr::new("/bin/sh")
    } else {
        account.shell.as_os_str()
    };
    rqmail_log::line(&format!(
        "rqmail-checkpassword: login succeeded for {}",
        escape(request.user)
    ));
    let e = Command::new(program)
        .args(args)
        .env("USER", name)
        .env("HOME", &account.dir)
        .env("SHELL", shell)
        .exec();
    temporary(format!("unable to run {}: {e}", program.to_string_lossy()))
}

/// A virtual user, `box@domain`: the hash comes from the domain's passwd.cdb in
/// `users/virtual/DOMAIN` (see the rqmail-virtual crate), which must be readable by this
/// process: 0640 group shadow, as rqmail-vusers writes it, serves both root (rqmail-login)
/// and smtpd's setgid-shadow run.
/// As root it becomes the domain's account (its uid and gid only); otherwise it keeps the
/// caller's ids. PROG gets `USER` = the login, `HOME` = `~ACCOUNT/DOMAIN/BOX` (also the
/// working directory), `MAILDIR` = its `Maildir` and, when its boxes.cdb entry has a
/// quota, `MAILDIRQUOTA` = `BYTESS` (Maildir++'s and Courier's form).
fn login_virtual(
    request: &Request,
    name: &str,
    program: &OsStr,
    args: &[OsString],
    throttle: &Throttle,
) -> Failure {
    let refused = |reason: &str| Failure::Refused {
        user: request.user.to_vec(),
        reason: reason.to_string(),
    };
    let temporary = |reason: String| Failure::Temporary {
        user: request.user.to_vec(),
        reason,
    };
    let (user, domain) = name.rsplit_once('@').unwrap_or((name, ""));
    let user = user.to_ascii_lowercase();
    if request.password.is_empty() {
        let _ = drop_setgid();
        return refused("empty password");
    }
    let found = rqmail_control::home()
        .map_err(|e| format!("unable to find the rqmail home: {e}"))
        .and_then(|home| Ok(rqmail_virtual::locate(&home, domain)?.map(|d| (home, d))));
    let (home, domain) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            let _ = drop_setgid();
            return refused("no such user");
        }
        Err(e) => {
            let _ = drop_setgid();
            return temporary(e);
        }
    };
    // The hashes live in the rqmail home, where the domain's account cannot reach them.
    let hash = rqmail_virtual::lookup_hash(&rqmail_virtual::hash_dir(&home, &domain.name), &user);
    // Group shadow was needed only for that read.
    if let Err(e) = drop_setgid() {
        return temporary(e);
    }
    let hash = match hash {
        Ok(Some(hash)) => hash,
        Ok(None) => return refused("no such user"),
        Err(e) => {
            return temporary(format!(
                "unable to read the virtual users of {}: {e}",
                domain.name
            ));
        }
    };
    if domain.account.uid == 0 {
        return refused("a virtual domain may not belong to root");
    }
    if rqmail_passwd::is_locked(&hash) {
        return refused("account locked or without a password");
    }
    match rqmail_passwd::verify(&hash, request.password) {
        Ok(true) => {}
        Ok(false) => return refused("bad password"),
        Err(e) if e.is_temporary() => return temporary(e.to_string()),
        Err(e) => return refused(&e.to_string()),
    }
    throttle.succeeded(request.user);
    if rqmail_privs::is_root() {
        let ids = rqmail_privs::Ids {
            uid: domain.account.uid,
            gid: domain.account.gid,
        };
        if let Err(e) = rqmail_privs::become_ids(ids, &[domain.account.gid]) {
            return temporary(format!("unable to become the domain's account: {e}"));
        }
    }
    // The quota goes to the program (rqmail-imapd holds APPEND and COPY to it), so that it
    // holds before rqmail-vdeliver has made a maildirsize. Never inherited from upstream.
    let quota = match rqmail_virtual::lookup_box(&domain.dir, &user) {
        Ok(targets) => targets.into_iter().flatten().find_map(|t| match t {
            rqmail_virtual::Target::Mailbox { name, quota } if name == user && quota > 0 => {
                Some(format!("{quota}S"))
            }
            _ => None,
        }),
        Err(e) => {
            return temporary(format!(
                "unable to read the mailboxes of {}: {e}",
                domain.name
            ));
        }
    };
    let user_dir = rqmail_virtual::user_dir(&domain.dir, &user);
    let is_the_owner = Uid::effective().as_raw() == domain.account.uid;
    if let Err(e) = std::env::set_current_dir(&user_dir)
        && is_the_owner
    {
        return temporary(format!("unable to enter {}: {e}", user_dir.display()));
    }
    rqmail_log::line(&format!(
        "rqmail-checkpassword: login succeeded for {}",
        escape(request.user)
    ));
    let login = format!("{user}@{}", domain.name);
    let mut command = Command::new(program);
    command
        .args(args)
        .env("USER", login)
        .env("HOME", &user_dir)
        .env("MAILDIR", user_dir.join("Maildir"))
        .env("SHELL", "/bin/sh");
    match quota {
        Some(q) => command.env("MAILDIRQUOTA", q),
        None => command.env_remove("MAILDIRQUOTA"),
    };
    let e = command.exec();
    temporary(format!("unable to run {}: {e}", program.to_string_lossy()))
}

/// How the program was started, which decides whom it serves and what it may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// The real uid is root (the root half of rqmail-login).
    Root,
    /// Set-gid (group shadow) in effect: the caller gains a privilege through this run.
    Setgid,
    /// No privilege either way: serves its caller, who could read the hashes itself.
    Plain,
}

impl Caller {
    fn detect() -> Caller {
        if Uid::current().is_root() {
            Caller::Root
        } else if Gid::effective() != Gid::current() || Uid::effective() != Uid::current() {
            Caller::Setgid
        } else {
            Caller::Plain
        }
    }

    /// Whether the reasons for a failure may be logged to this caller.
    fn may_know_reasons(self) -> bool {
        self != Caller::Setgid
    }
}

/// A set-gid run serves rqmaild alone: the only account that verifies passwords without
/// root (rqmail-smtpd, for SMTP AUTH).
fn serves(caller: Caller) -> bool {
    if caller != Caller::Setgid {
        return true;
    }
    matches!(
        rqmail_privs::account(rqmail_privs::RQMAILD),
        Ok(Some(ids)) if ids.uid == Uid::current().as_raw()
    )
}

/// The table of attempts, opened while the process still holds group shadow (so it can
/// write a table that rqmaild cannot touch otherwise); made when missing unless set-gid.
fn open_throttle(caller: Caller) -> Throttle {
    let Ok(home) = rqmail_control::home() else {
        return Throttle(None);
    };
    let path = home.join("users").join(THROTTLE_FILE);
    let mut options = std::fs::OpenOptions::new();
    options
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(if caller == Caller::Root { 0o660 } else { 0o600 });
    if caller != Caller::Setgid {
        options.create(true);
    }
    match options.open(&path) {
        Ok(file) => Throttle(Some(throttle::Table::new(file))),
        Err(e) => {
            rqmail_log::line(&format!(
                "rqmail-checkpassword: unable to open {}: {e}; logins are not throttled",
                path.display()
            ));
            Throttle(None)
        }
    }
}

/// The name of the table of attempts in the rqmail home's `users/`.
const THROTTLE_FILE: &str = "loginfailures";

/// The table of attempts, if it could be opened: a table that cannot be used must not stop
/// logins, so its errors only cost the throttling.
struct Throttle(Option<throttle::Table>);

impl Throttle {
    fn admit(&self, name: &[u8]) -> throttle::Admission {
        match self.0.as_ref().map(|t| t.admit(name)) {
            Some(Ok(admission)) => admission,
            Some(Err(e)) => {
                rqmail_log::line(&format!(
                    "rqmail-checkpassword: unable to use the table of login failures: {e}"
                ));
                throttle::Admission::After(Duration::ZERO)
            }
            None => throttle::Admission::After(Duration::ZERO),
        }
    }

    fn succeeded(&self, name: &[u8]) {
        if let Some(Err(e)) = self.0.as_ref().map(|t| t.succeeded(name)) {
            rqmail_log::line(&format!(
                "rqmail-checkpassword: unable to use the table of login failures: {e}"
            ));
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let caller = Caller::detect();
    if !serves(caller) {
        // Before fd 3 is read: the answer cannot depend on the user or the password.
        let _ = drop_setgid();
        rqmail_log::line(&format!(
            "rqmail-checkpassword: refused: uid {} may not use this program (it serves root and {})",
            Uid::current(),
            rqmail_privs::RQMAILD
        ));
        return ExitCode::from(1);
    }
    if args.is_empty() {
        rqmail_log::line("usage: rqmail-checkpassword PROG [ARG...]");
        return ExitCode::from(exit_code(&Failure::Misuse(String::new())));
    }
    let program = args.remove(0);
    let mut input = [0u8; MAX_INPUT + 1];
    let read = read_credentials(&mut input);
    let received = Instant::now();
    let failure = match read.and_then(|len| parse(&input[..len])) {
        Ok(request) => {
            let throttle = open_throttle(caller);
            match throttle.admit(request.user) {
                throttle::Admission::Refused => {
                    let _ = drop_setgid();
                    Failure::Refused {
                        user: request.user.to_vec(),
                        reason: "too many recent failed logins for the account".into(),
                    }
                }
                throttle::Admission::After(wait) => {
                    if !wait.is_zero() {
                        rqmail_log::line(&format!(
                            "rqmail-checkpassword: login for {} throttled for {} ms after failures",
                            escape(request.user),
                            wait.as_millis()
                        ));
                        std::thread::sleep(wait);
                    }
                    login(&request, &program, &args, &throttle)
                }
            }
        }
        Err(failure) => failure,
    };
    // Before the process lingers in the delay.
    rqmail_passwd::wipe(&mut input);
    let _ = drop_setgid();
    // The answer (exit code) and its log line both wait for the delay: a caller that kills
    // the process early, or reads its stderr, learns nothing sooner.
    if !matches!(failure, Failure::Misuse(_)) {
        let until = received + refusal_delay();
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    log(&failure, caller.may_know_reasons());
    ExitCode::from(exit_code(&failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_password_and_ignores_the_timestamp() {
        for input in [
            &b"alice\0secret\0<1.2@host>\0"[..],
            b"alice\0secret\0\0",
            b"alice\0secret\0",
            b"alice\0secret\0<1.2@host>\0trailing",
        ] {
            assert_eq!(
                parse(input).unwrap(),
                Request {
                    user: b"alice",
                    password: b"secret"
                }
            );
        }
    }

    #[test]
    fn missing_nuls_are_misuse() {
        for input in [&b""[..], b"alice", b"alice\0secret"] {
            let failure = parse(input).unwrap_err();
            assert_eq!(exit_code(&failure), 2, "{input:?}");
        }
    }

    #[test]
    fn empty_fields_parse_and_are_refused_later() {
        assert_eq!(
            parse(b"\0\0\0").unwrap(),
            Request {
                user: b"",
                password: b""
            }
        );
    }

    #[test]
    fn escapes_unprintable_bytes_in_user_names() {
        assert_eq!(escape(b"alice"), "alice");
        assert_eq!(escape(b"a\nb\x1b[0m"), "a\\x0ab\\x1b[0m");
        assert_eq!(escape(b"back\\slash"), "back\\\\slash");
        assert_eq!(escape("jörg".as_bytes()), "j\\xc3\\xb6rg");
    }

    #[test]
    fn exit_codes_are_the_interfaces() {
        let user = b"u".to_vec();
        let reason = String::new();
        assert_eq!(
            exit_code(&Failure::Refused {
                user: user.clone(),
                reason: reason.clone()
            }),
            1
        );
        assert_eq!(exit_code(&Failure::Misuse(reason.clone())), 2);
        assert_eq!(exit_code(&Failure::Temporary { user, reason }), 111);
    }
}
