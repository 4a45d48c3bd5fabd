//! The accept loop: a fork per connection, at most `-c` children (then no accepting until
//! one exits), at most `-i` per client IP, children reaped on SIGCHLD, a clean stop on TERM.

use crate::child::{self, Env};
use crate::dns;
use crate::log;
use crate::options::{Options, Verbosity};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use socket2::Socket;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Duration;

/// How long to pause when the system is out of descriptors or memory, instead of spinning
/// on a listener that stays readable.
const RESOURCE_PAUSE: Duration = Duration::from_millis(100);

struct Server<'a> {
    /// `None` once TERM has arrived: the socket is closed and nothing more is accepted.
    listener: Option<Socket>,
    signals: SignalFd,
    opts: &'a Options,
    env: Env,
    /// Each running child and the client IP it serves.
    children: HashMap<Pid, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

/// Serves connections on `listener` until TERM, then waits for the children and returns.
/// Must be called while the process has a single thread (it forks).
pub fn run(listener: Socket, opts: &Options, env: Env) -> Result<(), String> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGTERM);
    // Blocked, the two signals wait in the signalfd for the loop to read them; the child
    // unblocks them before exec.
    mask.thread_block()
        .map_err(|e| format!("unable to block signals: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("unable to create signalfd: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("unable to set the listener non-blocking: {e}"))?;
    let mut server = Server {
        listener: Some(listener),
        signals,
        opts,
        env,
        children: HashMap::new(),
        per_ip: HashMap::new(),
    };
    server.status();
    server.serve()
}

impl Server<'_> {
    fn verbose(&self) -> bool {
        self.opts.verbosity >= Verbosity::Verbose
    }

    fn status(&self) {
        if self.verbose() {
            log::line(format!("status: {}/{}", self.children.len(), self.opts.limit).as_bytes());
        }
    }

    fn serve(&mut self) -> Result<(), String> {
        loop {
            if self.listener.is_none() && self.children.is_empty() {
                return Ok(());
            }
            // At the limit the listener is left out of the poll: connections wait in the
            // backlog, as under tcpserver, and nothing is refused.
            let accepting = self.children.len() < self.opts.limit;
            let (signalled, connected) = {
                let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
                if let Some(listener) = self.listener.as_ref().filter(|_| accepting) {
                    fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
                }
                match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(format!("unable to poll: {e}")),
                }
                let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), fds.get(1).is_some_and(ready))
            };
            if signalled {
                self.take_signals();
            }
            if connected {
                self.accept();
            }
        }
    }

    fn take_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo == Signal::SIGTERM as u32 && self.listener.is_some() {
                // Stop accepting; the children finish their connections undisturbed.
                self.listener = None;
            }
        }
        // SIGCHLD or not, reaping is cheap, and signals of the same kind merge.
        self.reap();
    }

    fn reap(&mut self) {
        loop {
            let (pid, status) = match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code << 8),
                Ok(WaitStatus::Signaled(pid, signal, core)) => {
                    (pid, signal as i32 | if core { 0x80 } else { 0 })
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) | Ok(_) => continue,
                Err(_) => return,
            };
            let Some(ip) = self.children.remove(&pid) else {
                continue;
            };
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
            if self.verbose() {
                log::line(format!("end {pid} status {status}").as_bytes());
            }
            self.status();
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let (conn, addr) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                ) {
                    if self.opts.verbosity >= Verbosity::Errors {
                        log::line(format!("warning: unable to accept: {e}").as_bytes());
                    }
                    std::thread::sleep(RESOURCE_PAUSE);
                }
                return;
            }
        };
        let Some(remote) = addr.as_socket() else {
            return;
        };
        // Accepted sockets do not inherit O_NONBLOCK on Linux; PROG expects a blocking one.
        let _ = conn.set_nonblocking(false);
        let ip = dns::canonical(remote.ip());
        if let Some(limit) = self.opts.per_ip {
            let current = self.per_ip.get(&ip).copied().unwrap_or(0);
            if current >= limit {
                if self.verbose() {
                    let text = rqmail_rules::ip_text(ip);
                    log::line(format!("deny-ip-limit {text} {current}/{limit}").as_bytes());
                }
                // Closed at once, before any byte is written or a program runs.
                return;
            }
        }
        match self.fork() {
            Ok(ForkResult::Child) => {
                // The child must not keep the port open after the server closes it.
                self.listener = None;
                child::serve(conn, remote, self.opts, &self.env);
            }
            Ok(ForkResult::Parent { child }) => {
                self.children.insert(child, ip);
                *self.per_ip.entry(ip).or_insert(0) += 1;
                self.status();
            }
            Err(e) => {
                if self.opts.verbosity >= Verbosity::Errors {
                    log::line(
                        format!("warning: dropping connection, unable to fork: {e}").as_bytes(),
                    );
                }
            }
        }
    }

    #[allow(unsafe_code)]
    fn fork(&self) -> nix::Result<ForkResult> {
        // SAFETY: rqmail-tcpserver never starts a thread (no code in it or its libraries
        // spawns one), so the child is a complete copy of a single-threaded process: no lock
        // can be held by a thread that does not exist there, and it may allocate, open the
        // rules and call getnameinfo before it execs or exits.
        unsafe { nix::unistd::fork() }
    }
}
