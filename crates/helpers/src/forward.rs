//! forward's and condredirect's way into the queue: `$DTLINE` and the message, to new
//! recipients, through rqmail-queue (or `$QMAILQUEUE`) as qmail-local forwards.

use crate::{EXIT_PERMANENT, EXIT_TEMPORARY, Exit};
use rqmail_qfiles::client::Submission;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes moved to the queue program at a time.
const BUFFER: usize = 64 * 1024;

/// An environment variable qmail-local sets, as bytes; `None` if unset.
pub fn env(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(|v| v.as_bytes().to_vec())
}

/// The environment variables a forward needs, or the exit qmail's helpers give when one is
/// missing (100: they only make sense in a delivery).
pub fn required_env(helper: &str, name: &str) -> Result<Vec<u8>, Exit> {
    env(name)
        .ok_or_else(|| Exit::saying(EXIT_PERMANENT, format!("{helper}: fatal: {name} not set")))
}

/// Queues `dtline` followed by the rest of `input` (from where it stands) for `recipients`
/// with envelope sender `sender`, in the queue of `home`; returns the queue program's pid
/// (the qp qmail prints). The queue's refusal is permanent (100) or temporary (111) as
/// rqmail-queue's exit code says; a read error is temporary, and nothing is queued then.
pub fn forward(
    helper: &str,
    home: &Path,
    sender: &[u8],
    dtline: &[u8],
    recipients: &[&[u8]],
    input: &mut dyn Read,
) -> Result<u32, Exit> {
    let fatal = |code: u8, text: String| Exit::saying(code, format!("{helper}: fatal: {text}"));
    let mut sub = Submission::start(home)
        .map_err(|e| fatal(EXIT_TEMPORARY, format!("unable to run the queue: {e}")))?;
    sub.write_body(dtline);
    let mut buf = vec![0u8; BUFFER];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sub.write_body(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Dropping the submission closes the envelope unwritten: nothing is queued.
            Err(e) => {
                return Err(fatal(
                    EXIT_TEMPORARY,
                    format!("unable to read message: {e}"),
                ));
            }
        }
    }
    sub.finish(sender, recipients).map_err(|f| {
        let code = if f.permanent {
            EXIT_PERMANENT
        } else {
            EXIT_TEMPORARY
        };
        fatal(code, f.text)
    })
}

/// Arguments as the byte strings an envelope holds.
pub fn addresses(args: &[std::ffi::OsString]) -> Vec<&[u8]> {
    args.iter().map(|a| OsStr::as_bytes(a)).collect()
}

/// The rqmail home whose queue takes the message: the parent of the `bin/` this program
/// was started from (so `PREFIX/bin/forward` forwards into PREFIX's queue).
pub fn home(helper: &str) -> Result<std::path::PathBuf, Exit> {
    rqmail_control::home().map_err(|e| {
        Exit::saying(
            EXIT_TEMPORARY,
            format!("{helper}: fatal: unable to find the rqmail home: {e}"),
        )
    })
}
