//! rqmail-lspawn DEFAULTDELIVERY: for each local delivery, forks a child that finds the
//! controlling user, becomes that user and runs the dot-qmail delivery in-process (no exec).

use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, dup2_stderr, dup2_stdin, dup2_stdout, fork};
use rqmail_dotqmail::Delivery;
use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_spawn::{Report, ReportStatus, Request, Spawner, Started, serve};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;

/// qmail's default `conf-spawn`.
const SLOTS: u8 = 120;
/// Child exit codes with lspawn's own meanings (qmail's `qlx.h`).
const EXIT_ROOT: i32 = 113;
const EXIT_SYSTEM: i32 = 118;

struct Local {
    home: PathBuf,
    default_delivery: Vec<u8>,
}

/// Splits at the last `@`.
fn split_address(address: &[u8]) -> (&[u8], &[u8]) {
    match address.iter().rposition(|&b| b == b'@') {
        Some(i) => (&address[..i], &address[i + 1..]),
        None => (address, b""),
    }
}

impl Local {
    /// The child's whole life: runs as root only until the uid change, and before it only
    /// looks the local part up; the message is read only as the recipient.
    fn child(&self, mut message: File, request: &Request) -> i32 {
        let mut out = std::io::stdout();
        let (local, domain) = split_address(request.recipient());
        // The local part as it came, bytes that are not UTF-8 included: they are part of
        // `.qmail-EXT` names and of the program environment.
        let entry = match rqmail_users::resolve(&self.home, local) {
            Ok(e) => e,
            Err(e) => {
                let _ = writeln!(out, "{}", e.message());
                return i32::from(e.qmail_code());
            }
        };
        if entry.uid == 0 && rqmail_privs::is_root() {
            let _ = writeln!(out, "Refusing to deliver mail as root. (#4.3.0)");
            return EXIT_ROOT;
        }
        let ids = rqmail_privs::Ids {
            uid: entry.uid,
            gid: entry.gid,
        };
        if let Err(e) = rqmail_privs::become_ids(ids, &[entry.gid]) {
            let _ = writeln!(
                out,
                "Unable to switch to the recipient's uid: {e}. (#4.3.0)"
            );
            return EXIT_SYSTEM;
        }
        let delivery = Delivery {
            user: entry.user,
            homedir: entry.home,
            local: local.to_vec(),
            dash: entry.dash,
            ext: entry.ext,
            domain: domain.to_vec(),
            sender: request.sender.clone(),
            default_delivery: self.default_delivery.clone(),
            rqmail_home: self.home.clone(),
        };
        i32::from(rqmail_dotqmail::deliver_for_spawn(
            &delivery,
            &mut message,
            &mut out,
        ))
    }
}

impl Spawner for Local {
    fn slots(&self) -> u8 {
        SLOTS
    }

    fn start(&mut self, message: File, request: &Request) -> Started {
        let (local, _) = split_address(request.recipient());
        if local.is_empty() {
            // `@domain` is the trash address: accepted, delivered nowhere.
            return Started::Done(Report {
                status: ReportStatus::Success,
                text: b"Trash address. did 0+0+0".to_vec(),
            });
        }
        let Ok((read, write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return Started::Done(Report::defer("Unable to create a pipe. (#4.3.0)"));
        };
        // SAFETY: rqmail-lspawn is single-threaded, so the child owns a consistent copy of
        // the whole process; it does its work and leaves through exit, never returning.
        match unsafe { fork() } {
            Err(_) => Started::Done(Report::defer("Unable to fork. (#4.3.0)")),
            Ok(ForkResult::Parent { child }) => {
                drop(write);
                Started::Child {
                    pid: child,
                    output: read,
                }
            }
            Ok(ForkResult::Child) => {
                drop(read);
                let ok = dup2_stdout(&write).is_ok()
                    && dup2_stderr(&write).is_ok()
                    && dup2_stdin(&message).is_ok();
                drop(write);
                let code = if ok {
                    self.child(message, request)
                } else {
                    EXIT_SYSTEM
                };
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
        }
    }

    fn finish(&mut self, status: WaitStatus, output: &[u8], _recipients: usize) -> Vec<Report> {
        let text = output
            .split(|&b| b == 0)
            .next()
            .unwrap_or_default()
            .to_vec();
        let status = match status {
            WaitStatus::Exited(_, 0) => ReportStatus::Success,
            WaitStatus::Exited(_, code) if code == i32::from(rqmail_dotqmail::EXIT_INTERRUPTED) => {
                ReportStatus::Interrupted
            }
            WaitStatus::Exited(_, code) if code == i32::from(EXIT_TEMPORARY) => {
                ReportStatus::Temporary
            }
            WaitStatus::Exited(_, 71 | 74 | 75) => ReportStatus::Temporary,
            WaitStatus::Exited(_, 126) => ReportStatus::Permanent,
            WaitStatus::Exited(_, 112..=125) => ReportStatus::Temporary,
            WaitStatus::Exited(_, _) => ReportStatus::Permanent,
            s if Report::killed_from_outside(&s) => {
                return vec![Report::interrupted(
                    "Uh-oh: local delivery was killed; trying again soon. (#4.3.0)",
                )];
            }
            _ => {
                return vec![Report::defer("Uh-oh: local delivery crashed. (#4.3.0)")];
            }
        };
        vec![Report { status, text }]
    }
}

fn main() -> ExitCode {
    // Only fds 0 to 2 are ours (the pipes to rqmail-send, and the log); nothing else that
    // was open when this started may reach a recipient's `|program`.
    if let Err(e) = rqmail_privs::cloexec_from(3) {
        rqmail_log::line(&format!(
            "rqmail-lspawn: fatal: unable to set close-on-exec on inherited descriptors: {e}"
        ));
        return ExitCode::from(EXIT_TEMPORARY);
    }
    let default_delivery = std::env::args_os()
        .nth(1)
        .map(std::os::unix::ffi::OsStringExt::into_vec)
        .unwrap_or_else(|| b"./Maildir/".to_vec());
    let result = rqmail_control::home().and_then(|home| {
        let owner = std::fs::metadata(home.join("queue"))?.uid();
        std::env::set_current_dir(home.join("queue/mess"))?;
        let mut local = Local {
            home,
            default_delivery,
        };
        serve(&mut local, owner)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            rqmail_log::line(&format!("rqmail-lspawn: fatal: {e}"));
            ExitCode::from(EXIT_TEMPORARY)
        }
    }
}
