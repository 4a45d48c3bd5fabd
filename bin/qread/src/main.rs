//! rqmail-qread: lists queued messages with their senders and pending recipients.
#![forbid(unsafe_code)]

use rqmail_outcome::EXIT_TEMPORARY;
use std::process::ExitCode;

fn main() -> ExitCode {
    let result = rqmail_control::home().and_then(|home| {
        let queue = rqmail_qfiles::Queue::new(&home);
        rqmail_qfiles::inspect::read(&queue, &mut std::io::stdout().lock())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            rqmail_log::line(&format!(
                "rqmail-qread: fatal: unable to read the queue: {e}"
            ));
            ExitCode::from(EXIT_TEMPORARY)
        }
    }
}
