//! Finishing messages: bounces sent for recorded failures, then the message's files
//! removed (qmail-send.c's BOUNCES and message completion).

use crate::bounce;
use crate::send::{SLEEP_SYSFAIL, Scheduler, now};
use crate::todo::CleanJob;
use rqmail_log::line as log;
use rqmail_qfiles::layout::records;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

impl Scheduler {
    pub(crate) fn finish_done(&mut self, t: i64) {
        let n = self.done.len();
        for _ in 0..n {
            let Some((at, id)) = self.done.pop_front() else {
                break;
            };
            if at > t {
                self.done.push_back((at, id));
                continue;
            }
            if let Err(e) = self.finish_message(id) {
                log(&format!(
                    "warning: trouble finishing msg {id}: {e}; will retry"
                ));
                self.done.push_back((t + SLEEP_SYSFAIL, id));
            }
        }
    }

    fn finish_message(&mut self, id: u64) -> io::Result<()> {
        let bounce_path = self.queue.path("bounce", id);
        // Only a message that recorded a failure (or came from before a restart) can have
        // a bounce file: the others are spared the look.
        if self.messages.get(&id).is_none_or(|m| m.bounce) {
            match std::fs::read(&bounce_path) {
                Ok(failures) => {
                    self.send_bounce(id, &failures)?;
                    std::fs::remove_file(&bounce_path)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        log(&format!("end msg {id}"));
        // Space or inodes were just freed: todo entries that failed to preprocess (a full
        // disk, most likely) are worth another try now rather than in two minutes.
        if self.todo_retry_at != i64::MAX {
            self.todo_retry_at = now();
        }
        match std::fs::remove_file(self.queue.path("info", id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.messages.remove(&id);
        self.clean(CleanJob::Foop(id));
        Ok(())
    }

    fn send_bounce(&mut self, id: u64, failures: &[u8]) -> io::Result<()> {
        let info = std::fs::read(self.queue.path("info", id))?;
        let sender = records(&info)
            .find(|(_, k, _)| *k == b'F')
            .map(|(_, _, v)| v.to_vec())
            .unwrap_or_default();
        let (env_sender, to, double): (&[u8], Vec<u8>, bool) =
            match bounce::kind(&self.config, &sender) {
                bounce::BounceKind::Triple => {
                    log(&format!("triple bounce: discarding bounce/{id}"));
                    return Ok(());
                }
                bounce::BounceKind::Double { to } => (b"#@[]", to, true),
                bounce::BounceKind::Single { to } => (b"", to, false),
            };
        let mut mess = File::open(self.queue.path("mess", id))?;
        let size = mess.metadata()?.len();
        mess.seek(SeekFrom::Start(0))?;
        let message = bounce::message(
            &self.config,
            &sender,
            double,
            failures,
            &mut mess,
            size,
            now(),
        )?;
        match rqmail_qfiles::client::queue_message(&self.home, &message, env_sender, &[&to]) {
            Ok(qp) => {
                log(&format!("bounce msg {id} qp {qp}"));
                Ok(())
            }
            Err(f) => Err(io::Error::other(format!(
                "trouble injecting bounce message: {f}"
            ))),
        }
    }
}

/// Appends a paragraph to `bounce/N` and makes it durable before the recipient is marked.
pub(crate) fn append_bounce(path: &Path, paragraph: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(paragraph)?;
    f.sync_data()
}
