//! What rqmail-inject and sendmail share once a message's header is fixed up: handing it to
//! rqmail-queue (header, streamed body, envelope), and the two ways that can fail.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use rqmail_header::{Input, Message, copy_body};
use rqmail_qfiles::client::Submission;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

/// Bytes moved to the queue program (or to stdout) at a time.
pub const BUFFER: usize = 64 * 1024;

/// Why a message was not queued; each maps to one exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// 100: bad usage, a bad address or message, or the queue refuses the message.
    Permanent(String),
    /// 111: try again later.
    Temporary(String),
}

impl From<rqmail_header::Error> for Failure {
    fn from(e: rqmail_header::Error) -> Failure {
        if e.is_permanent() {
            Failure::Permanent(e.to_string())
        } else {
            Failure::Temporary(e.to_string())
        }
    }
}

/// Queues the message: the header, then the body streamed from `input`, then the envelope.
pub fn queue<R: BufRead>(
    home: &Path,
    message: &Message,
    input: &mut Input<R>,
) -> Result<(), Failure> {
    if message.recipients.is_empty() {
        return Err(Failure::Permanent("no recipients".to_string()));
    }
    let mut submission = Submission::start(home)
        .map_err(|e| Failure::Temporary(format!("unable to run the queue program: {e}")))?;
    {
        let mut out = BufWriter::with_capacity(BUFFER, &mut submission);
        // Writes to a submission never fail; a read error drops the submission, which makes
        // the queue program exit without queueing anything.
        let _ = out.write_all(&message.header);
        copy_body(input, &message.body, &mut out)?;
        let _ = out.flush();
    }
    let recipients: Vec<&[u8]> = message.recipients.iter().map(Vec::as_slice).collect();
    match submission.finish(&message.sender, &recipients) {
        Ok(_) => Ok(()),
        Err(f) if f.permanent => Err(Failure::Permanent(f.text)),
        Err(f) => Err(Failure::Temporary(f.text)),
    }
}
