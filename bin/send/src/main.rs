//! rqmail-send: the scheduler, started by rqmail-start with its pipes on fds 3 to 8
//! (to/from lspawn, to/from rspawn, to/from clean). Logs go to stderr.

use nix::sys::signal::{SigSet, Signal};
use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_sched::send::{Pipes, Scheduler};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

/// Takes ownership of the inherited descriptors 3..=8.
fn inherited_pipes() -> Pipes {
    // SAFETY: rqmail-start passes exactly these six descriptors, open and owned by nobody
    // else in this process; each is wrapped once.
    let fd = |n| unsafe { OwnedFd::from_raw_fd(n) };
    Pipes {
        to_spawn: [fd(3), fd(5)],
        from_spawn: [fd(4), fd(6)],
        to_clean: fd(7),
        from_clean: fd(8),
    }
}

fn main() -> ExitCode {
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGALRM, Signal::SIGHUP] {
        signals.add(s);
    }
    // Blocked here, read from a signalfd in the loop; children get a clean mask from exec.
    if let Err(e) = signals.thread_block() {
        rqmail_log::line(&format!(
            "alert: cannot start: unable to block signals: {e}"
        ));
        return ExitCode::from(EXIT_TEMPORARY);
    }
    let home = match rqmail_control::home() {
        Ok(h) => h,
        Err(e) => {
            rqmail_log::line(&format!("alert: cannot start: unable to find home: {e}"));
            return ExitCode::from(EXIT_TEMPORARY);
        }
    };
    let pipes = inherited_pipes();
    let mut scheduler = match Scheduler::start(&home, pipes, signals) {
        Ok(s) => s,
        Err(e) => {
            rqmail_log::line(&format!("alert: {e}"));
            return ExitCode::from(EXIT_TEMPORARY);
        }
    };
    let result = scheduler.run();
    // Closing the pipes tells lspawn, rspawn and clean to finish; wait for them, so a
    // supervisor sees one clean exit rather than orphans.
    drop(scheduler);
    while nix::sys::wait::wait().is_ok() {}
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            rqmail_log::line(&e.to_string());
            ExitCode::from(EXIT_TEMPORARY)
        }
    }
}
