//! rqmail-rspawn: the remote half of delivery. Remote delivery (rqmail-remote: DNS, SMTP,
//! TLS) is not built yet, so every remote recipient is deferred, never dropped: the
//! message stays queued and is retried on qmail's schedule until remote delivery exists.
#![forbid(unsafe_code)]

use nix::sys::wait::WaitStatus;
use rqmail_spawn::{Report, Request, Spawner, Started, serve};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

/// qmail's default `conf-spawn`.
const SLOTS: u8 = 120;

struct Remote;

impl Spawner for Remote {
    fn slots(&self) -> u8 {
        SLOTS
    }

    fn start(&mut self, _message: File, _request: &Request) -> Started {
        Started::Done(Report::defer(
            "Remote delivery is not available on this host yet; the message stays queued. (#4.3.0)",
        ))
    }

    fn finish(&mut self, _status: WaitStatus, _output: &[u8]) -> Report {
        Report::defer("Internal error: no remote delivery runs. (#4.3.0)")
    }
}

fn main() -> ExitCode {
    let result = rqmail_control::home().and_then(|home| {
        let owner = std::fs::metadata(home.join("queue"))?.uid();
        std::env::set_current_dir(home.join("queue/mess"))?;
        serve(&mut Remote, owner)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rqmail-rspawn: fatal: {e}");
            ExitCode::from(111)
        }
    }
}
