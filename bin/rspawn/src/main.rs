//! rqmail-rspawn: the remote half of delivery. For each delivery (one message to one or more
//! recipients at one domain) it runs rqmail-remote (or `$QMAILREMOTE`) as rqmailr and turns
//! its recipient and message reports into one report per recipient.
#![forbid(unsafe_code)]

use nix::sys::wait::WaitStatus;
use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_spawn::{Report, ReportStatus, Request, Spawner, Started, serve};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

/// qmail's default `conf-spawn`.
const SLOTS: u8 = 120;

struct Remote {
    program: PathBuf,
}

/// The domain all of a delivery's recipients share.
fn host_of(recipient: &[u8]) -> &[u8] {
    match recipient.iter().rposition(|&b| b == b'@') {
        Some(i) => &recipient[i + 1..],
        None => b"",
    }
}

impl Spawner for Remote {
    fn slots(&self) -> u8 {
        SLOTS
    }

    fn start(&mut self, message: File, request: &Request) -> Started {
        let Ok((read, write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return Started::Done(Report::defer("Unable to create a pipe. (#4.3.0)"));
        };
        let Ok(write2) = write.try_clone() else {
            return Started::Done(Report::defer("Unable to create a pipe. (#4.3.0)"));
        };
        let child = Command::new(&self.program)
            .arg(OsStr::from_bytes(host_of(request.recipient())))
            .arg(OsStr::from_bytes(&request.sender))
            .args(request.recipients.iter().map(|r| OsStr::from_bytes(r)))
            .stdin(Stdio::from(message))
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            .spawn();
        match child {
            Ok(child) => Started::Child {
                pid: nix::unistd::Pid::from_raw(child.id() as i32),
                output: read,
            },
            Err(_) => Started::Done(Report::defer("Unable to run rqmail-remote. (#4.3.0)")),
        }
    }

    fn finish(&mut self, status: WaitStatus, output: &[u8], recipients: usize) -> Vec<Report> {
        match status {
            WaitStatus::Exited(_, 0) => combine(output, recipients),
            WaitStatus::Exited(_, code) if code == i32::from(EXIT_TEMPORARY) => {
                vec![Report::defer("Unable to run rqmail-remote. (#4.3.0)")]
            }
            WaitStatus::Exited(_, _) => vec![Report::fail("Unable to run rqmail-remote. (#5.3.0)")],
            s if Report::killed_from_outside(&s) => vec![
                Report::interrupted(
                    "Uh-oh: rqmail-remote was killed; trying again soon. (#4.3.0)"
                );
                recipients
            ],
            _ => vec![Report::defer("Uh-oh: rqmail-remote crashed. (#4.3.0)")],
        }
    }
}

/// Merges rqmail-remote's output (qmail-remote's protocol: a recipient report `r`, `h` or
/// `s` per recipient it got to, then one message report `K`, `Z` or `D`) into one report
/// per recipient. A recipient the server refused keeps its own text; an accepted one
/// takes the message's outcome; without recipient reports the message outcome applies to
/// all.
pub fn combine(output: &[u8], recipients: usize) -> Vec<Report> {
    let fields: Vec<&[u8]> = output
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .collect();
    let Some((message, per_rcpt)) = fields.split_last() else {
        return vec![Report::defer(
            "Unable to read rqmail-remote's report. (#4.3.0)",
        )];
    };
    // rqmail-remote's own letters are K, Z and D; R is only a spawn's.
    let (status, text) = match message
        .split_first()
        .and_then(|(&s, text)| Some((ReportStatus::from_letter(s)?, text)))
    {
        Some((status, text)) if status != ReportStatus::Interrupted => (status, text),
        _ => return vec![Report::defer("rqmail-remote's report is mangled. (#4.3.0)")],
    };
    let per_rcpt: Vec<&[u8]> = per_rcpt
        .iter()
        .copied()
        .filter(|f| matches!(f.first(), Some(b'r' | b'h' | b's')))
        .collect();
    (0..recipients)
        .map(|i| match per_rcpt.get(i).and_then(|f| f.split_first()) {
            Some((b'h', t)) => Report {
                status: ReportStatus::Permanent,
                text: t.to_vec(),
            },
            Some((b's', t)) => Report {
                status: ReportStatus::Temporary,
                text: t.to_vec(),
            },
            _ => Report {
                status,
                text: text.to_vec(),
            },
        })
        .collect()
}

fn main() -> ExitCode {
    let result = rqmail_control::home().and_then(|home| {
        let owner = std::fs::metadata(home.join("queue"))?.uid();
        let program = match std::env::var_os("QMAILREMOTE") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => home.join("bin/rqmail-remote"),
        };
        // A fresh start forgets which hosts timed out, as qmail-rspawn does: an empty table
        // is what rqmail-remote reads a file of the wrong size as.
        if let Ok(table) = std::fs::OpenOptions::new()
            .write(true)
            .open(home.join("queue/lock/tcpto"))
        {
            let _ = table.set_len(0);
        }
        std::env::set_current_dir(home.join("queue/mess"))?;
        serve(&mut Remote { program }, owner)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            rqmail_log::line(&format!("rqmail-rspawn: fatal: {e}"));
            ExitCode::from(EXIT_TEMPORARY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines_recipient_and_message_reports() {
        let out = b"rok\0hRemote host said: 550 no such user\0sRemote host said: 451 later\0KConnected to 1.2.3.4 and the message was accepted.\0";
        let r = combine(out, 3);
        assert_eq!(
            r[0],
            Report {
                status: ReportStatus::Success,
                text: b"Connected to 1.2.3.4 and the message was accepted.".to_vec()
            }
        );
        assert_eq!(r[1].status, ReportStatus::Permanent);
        assert_eq!(r[1].text, b"Remote host said: 550 no such user");
        assert_eq!(r[2].status, ReportStatus::Temporary);
        let r = combine(b"ZNo host answered. (#4.4.1)\0", 2);
        assert!(r.iter().all(|x| x.status == ReportStatus::Temporary));
        assert_eq!(combine(b"", 1)[0].status, ReportStatus::Temporary);
        assert_eq!(combine(b"Xjunk\0", 1)[0].status, ReportStatus::Temporary);
    }
}
