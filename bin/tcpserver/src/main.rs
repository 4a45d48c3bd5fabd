//! rqmail-tcpserver [opts] HOST PORT PROG [ARG...]: listens (as root), switches uid, and for
//! each connection allowed by the rules CDB runs PROG with the socket on fd 0 and 1.
//!
//! Differences from ucspi-tcp's tcpserver: `-i n` limits children per client IP (a client
//! over it is closed at once and logged as `deny-ip-limit`); TERM stops accepting and
//! waits for the children before exiting 0; systemd socket activation (`LISTEN_PID`,
//! `LISTEN_FDS`) supplies the socket as fd 3, and HOST and PORT are then ignored. Ident is
//! obsolete: `-r` is taken as `-R` and TCPREMOTEINFO is never set (`-t` is accepted and
//! unused); `-o`/`-O` change nothing, since Linux drops source-routed packets itself.
//! `-h` (the default) looks names up with getnameinfo, so /etc/hosts counts. Descriptors
//! above 2 that it inherited (systemd's sockets too) are not passed on to PROG. Without
//! `-b` the listen backlog is the kernel's most, `net.core.somaxconn` (4096 if
//! /proc/sys/net/core/somaxconn cannot be read), not tcpserver's 20: a burst of clients
//! as large as `-c` waits in it to be accepted, where with 20 most of it was dropped by
//! the kernel and retried seconds later (1, 3, 7... s). `-b n` still sets it.
#![deny(unsafe_code)]

mod child;
mod dns;
mod listen;
mod log;
mod options;
mod server;

use options::{Options, USAGE, UsageError, Verbosity};
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;

/// tcpserver's codes: 100 for a bad command line, 111 for anything that stops the server.
const EXIT_USAGE: u8 = EXIT_PERMANENT;
const EXIT_FATAL: u8 = EXIT_TEMPORARY;

fn run(opts: &Options) -> Result<(), String> {
    // Before anything opens a file, so that fd 3 is still systemd's.
    let activated = listen::activated(|name| std::env::var_os(name));
    let listener = if activated {
        listen::inherited()?
    } else {
        let port = listen::port(&opts.port)?;
        let addr = listen::address(&opts.host, port)?;
        let backlog = opts.backlog.unwrap_or_else(listen::default_backlog);
        listen::bind(addr, backlog)?
    };
    // Nothing is accepted before the uid is dropped.
    listen::drop_privileges(opts.uid, opts.gid)?;
    let port = listen::local_port(&listener)?;
    if opts.print_port {
        let mut out = std::io::stdout();
        writeln!(out, "{port}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("unable to print the port: {e}"))?;
    }
    // As tcpserver closes fd 0 and 1: whoever started us sees end of file on our stdout, and
    // nothing reads or writes the server's own terminal or pipes by mistake.
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("unable to open /dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null)
        .and_then(|()| nix::unistd::dup2_stdout(&null))
        .map_err(|e| format!("unable to close stdin and stdout: {e}"))?;
    drop(null);
    let skip = if activated {
        listen::ACTIVATION_VARIABLES
    } else {
        &[]
    };
    server::run(listener, opts, child::Env::from_current(skip))
}

fn main() -> ExitCode {
    // Only fds 0 to 2 and systemd's listening sockets (3 on) are meant for this program,
    // and none of them above 2 for the programs it runs: marked close-on-exec, not
    // closed, so that fd 3 is still there for listen::inherited.
    if let Err(e) = rqmail_privs::cloexec_from(3) {
        log::line(
            format!("fatal: unable to set close-on-exec on inherited descriptors: {e}").as_bytes(),
        );
        return ExitCode::from(EXIT_FATAL);
    }
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let opts = match options::parse(&args, |name| std::env::var_os(name)) {
        Ok(opts) => opts,
        Err(UsageError(reason)) => {
            log::line(reason.as_bytes());
            log::line(USAGE.as_bytes());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            if opts.verbosity >= Verbosity::Errors {
                log::line(format!("fatal: {reason}").as_bytes());
            }
            ExitCode::from(EXIT_FATAL)
        }
    }
}
