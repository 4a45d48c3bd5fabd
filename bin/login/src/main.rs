//! rqmail-login pop3|imap [-s] CHECKPASSWORD POSTLOGIN [ARGS...]: run as root by
//! rqmail-tcpserver per connection; splits into a tiny root half and an unprivileged front
//! (uid rqmaild).
//!
//! The root half (the parent, [`root`]) never touches the client: fds 0 and 1 become
//! /dev/null, and it only reads `user\0password\0` (IMAP: `user\0password\0tag\0`) from
//! the front and runs CHECKPASSWORD POSTLOGIN ARGS once per attempt, with the post-login
//! program's stdin and stdout on a socket pair. The front (the child, the
//! `rqmail-login-front` crate) owns the client socket and TLS (`-s`: from the first byte,
//! ports 995 and 993; else STLS or STARTTLS), speaks the protocol until login, and then
//! relays between the client and that socket pair. IMAP's post-login program sends the
//! reply to the login command itself, and finds its tag in `IMAPLOGINTAG`.
//!
//! Configuration: `control/servercert.pem` (STLS, STARTTLS and `-s`), `control/me` (the
//! POP3 greeting), `control/timeoutpop3d` or `control/timeoutimapd` (idle seconds, default
//! 1200 and 1800), `control/logindelay` (milliseconds before the first failed login is
//! answered, doubling with each failure; default 1000), and from tcpserver's rules
//! `POP3_PLAINTEXT` or `IMAP_PLAINTEXT` (passwords allowed without TLS, e.g. on loopback)
//! and `TCPREMOTEIP` (logs). Up to 3 login attempts per connection.
//!
//! Exit codes: 0 when the connection ended normally; 100 for a bad command line; 111 for
//! a problem on this side (fork, uid change, configuration). Not started as root, nothing
//! changes uid and the whole chain runs as the caller (tests, the quick start).
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod root;

use nix::unistd::ForkResult;
use rqmail_login_front::Protocol;
use rqmail_login_front::handoff;
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: rqmail-login pop3|imap [-s] CHECKPASSWORD POSTLOGIN [ARGS...]";
const EXIT_USAGE: u8 = EXIT_PERMANENT;

/// The command line.
struct Args {
    protocol: Protocol,
    implicit_tls: bool,
    /// CHECKPASSWORD POSTLOGIN [ARGS...].
    command: Vec<OsString>,
}

fn parse(mut args: Vec<OsString>) -> Option<Args> {
    if args.is_empty() {
        return None;
    }
    let protocol = Protocol::from_name(args.remove(0).to_str()?)?;
    let implicit_tls = args.first().is_some_and(|a| a == "-s");
    if implicit_tls {
        args.remove(0);
    }
    (args.len() >= 2).then_some(Args {
        protocol,
        implicit_tls,
        command: args,
    })
}

/// The front: becomes rqmaild (the client cannot reach root through it), then talks.
fn front(args: &Args, handoff: handoff::Handoff) -> u8 {
    let ids = rqmail_privs::service_ids(rqmail_privs::RQMAILD, rqmail_privs::NOFILES);
    if let Err(e) = ids.and_then(|ids| rqmail_privs::become_ids(ids, &[])) {
        let _ = std::io::stdout().write_all(args.protocol.temporary_failure());
        let _ = std::io::stdout().flush();
        rqmail_log::line(&format!(
            "rqmail-login: fatal: unable to become {}: {e}",
            rqmail_privs::RQMAILD
        ));
        return EXIT_TEMPORARY;
    }
    rqmail_login_front::run(args.protocol, args.implicit_tls, handoff)
}

/// The root half: lets go of the client, serves attempts, then waits for the front so
/// that tcpserver sees the connection end when it really does.
fn root_half(ends: handoff::RootEnds, args: &Args, front: nix::unistd::Pid) -> u8 {
    let detached = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .and_then(|null| {
            nix::unistd::dup2_stdin(&null)?;
            nix::unistd::dup2_stdout(&null)?;
            Ok(())
        });
    let code = match detached {
        Err(e) => {
            // The root half must not go on holding the client socket.
            rqmail_log::line(&format!(
                "rqmail-login: fatal: unable to close fds 0 and 1: {e}"
            ));
            drop(ends);
            EXIT_TEMPORARY
        }
        Ok(()) => match root::serve(ends, &args.command, args.protocol) {
            root::End::SessionDone | root::End::FrontGone | root::End::TooManyAttempts => 0,
            root::End::Malformed(why) => {
                rqmail_log::line(&format!("rqmail-login: front misbehaved: {why}"));
                EXIT_TEMPORARY
            }
        },
    };
    // serve() has dropped its ends: the front sees end of file and finishes.
    while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(front, None) {}
    code
}

fn main() -> ExitCode {
    // The client socket (fds 0 and 1) and the log (2) are ours; anything else tcpserver or
    // its starter left open must reach neither the front nor checkpassword and the user's
    // post-login program.
    if let Err(e) = rqmail_privs::cloexec_from(3) {
        rqmail_log::line(&format!(
            "rqmail-login: fatal: unable to set close-on-exec on inherited descriptors: {e}"
        ));
        return ExitCode::from(EXIT_TEMPORARY);
    }
    let Some(args) = parse(std::env::args_os().skip(1).collect()) else {
        rqmail_log::line(USAGE);
        return ExitCode::from(EXIT_USAGE);
    };
    let fail = |why: String| {
        let _ = std::io::stdout().write_all(args.protocol.temporary_failure());
        let _ = std::io::stdout().flush();
        rqmail_log::line(&format!("rqmail-login: fatal: {why}"));
        ExitCode::from(EXIT_TEMPORARY)
    };
    let (front_ends, root_ends) = match handoff::channel() {
        Ok(c) => c,
        Err(e) => return fail(format!("unable to make pipes: {e}")),
    };
    // SAFETY: the process has one thread (nothing has spawned any), so the child starts
    // in a consistent state: no lock is held by a thread that does not exist there.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() };
    match forked {
        Err(e) => fail(format!("unable to fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(root_ends);
            ExitCode::from(front(&args, front_ends))
        }
        Ok(ForkResult::Parent { child }) => {
            drop(front_ends);
            ExitCode::from(root_half(root_ends, &args, child))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Option<Args> {
        parse(words.iter().map(OsString::from).collect())
    }

    #[test]
    fn parses_protocol_implicit_tls_and_the_command() {
        let a = args(&["pop3", "-s", "cp", "pop3d", "Maildir"]).unwrap();
        assert_eq!(a.protocol, Protocol::Pop3);
        assert!(a.implicit_tls);
        assert_eq!(a.command, ["cp", "pop3d", "Maildir"]);
        let a = args(&["pop3", "cp", "pop3d"]).unwrap();
        assert!(!a.implicit_tls);
        assert!(args(&["pop3", "cp"]).is_none());
        assert!(args(&["pop3", "-s", "cp"]).is_none());
        let a = args(&["imap", "-s", "cp", "imapd"]).unwrap();
        assert_eq!(a.protocol, Protocol::Imap);
        assert!(a.implicit_tls);
        assert!(args(&["imap", "cp"]).is_none());
        assert!(args(&["smtp", "cp", "smtpd"]).is_none());
        assert!(args(&[]).is_none());
    }
}
