//! Passes: a message's channel file opened for delivery when its retry time comes,
//! and closed when every recipient has a result (qmail-send.c's PASSES).

use crate::schedule::{CHANNEL_NAMES, LOCAL, REMOTE, next_retry};
use crate::send::{SLEEP_SYSFAIL, Scheduler, now};
use rqmail_log::line as log;
use rqmail_qfiles::layout::records;
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::time::{Duration, SystemTime};

/// One pass over a message's channel file.
pub(crate) struct Pass {
    pub(crate) id: u64,
    pub(crate) file: File,
    pub(crate) sender: Vec<u8>,
    /// (offset of the record's type byte, recipient) for each record still `T`.
    pub(crate) todo: VecDeque<(u64, Vec<u8>)>,
    pub(crate) outstanding: usize,
    pub(crate) remaining: usize,
    pub(crate) retry: i64,
    pub(crate) dying: bool,
}

impl Scheduler {
    pub(crate) fn start_passes(&mut self, t: i64) {
        for c in [LOCAL, REMOTE] {
            loop {
                let ch = &self.channels[c];
                if ch.busy >= ch.limit || !ch.alive {
                    break;
                }
                // Start a new pass only when the open ones cannot fill the free slots.
                let queued: usize = ch.passes.values().map(|p| p.todo.len()).sum();
                if queued >= ch.limit - ch.busy {
                    break;
                }
                let Some(&Reverse((at, id))) = ch.queue.peek() else {
                    break;
                };
                if at > t {
                    break;
                }
                self.channels[c].queue.pop();
                let Some(msg) = self.messages.get_mut(&id) else {
                    continue;
                };
                if msg.active[c] || !msg.pending[c] {
                    continue;
                }
                match self.open_pass(id, c, t) {
                    Ok(pass) => {
                        if let Some(msg) = self.messages.get_mut(&id) {
                            msg.active[c] = true;
                        }
                        self.channels[c].order.push_back(id);
                        self.channels[c].passes.insert(id, pass);
                        self.maybe_finish_pass(c, id);
                    }
                    Err(e) => {
                        log(&format!(
                            "warning: unable to open {}/{id}: {e}; will retry",
                            CHANNEL_NAMES[c]
                        ));
                        self.channels[c]
                            .queue
                            .push(Reverse((t + SLEEP_SYSFAIL, id)));
                    }
                }
            }
        }
    }

    fn open_pass(&mut self, id: u64, c: usize, t: i64) -> io::Result<Pass> {
        let sender = match self.messages.get(&id).and_then(|m| m.sender.clone()) {
            Some(sender) => sender,
            None => {
                let info = std::fs::read(self.queue.path("info", id))?;
                let sender = records(&info)
                    .find(|(_, k, _)| *k == b'F')
                    .map(|(_, _, v)| v.to_vec())
                    .unwrap_or_default();
                if let Some(msg) = self.messages.get_mut(&id) {
                    msg.sender = Some(sender.clone());
                }
                sender
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.queue.path(CHANNEL_NAMES[c], id))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let todo: VecDeque<(u64, Vec<u8>)> = records(&data)
            .filter(|(_, k, _)| *k == b'T')
            .map(|(off, _, v)| (off as u64, v.to_vec()))
            .collect();
        let birth = self.messages.get(&id).map_or(t, |m| m.birth);
        Ok(Pass {
            id,
            file,
            sender,
            remaining: todo.len(),
            todo,
            outstanding: 0,
            retry: next_retry(birth, t, c),
            dying: t > birth + self.config.queuelifetime,
        })
    }

    pub(crate) fn maybe_finish_pass(&mut self, c: usize, id: u64) {
        let ch = &mut self.channels[c];
        let Some(pass) = ch.passes.get(&id) else {
            return;
        };
        if pass.outstanding > 0 || !pass.todo.is_empty() {
            return;
        }
        let Some(pass) = ch.passes.remove(&id) else {
            return;
        };
        ch.order.retain(|&p| p != id);
        let Some(msg) = self.messages.get_mut(&id) else {
            return;
        };
        msg.active[c] = false;
        if pass.remaining == 0 {
            match std::fs::remove_file(self.queue.path(CHANNEL_NAMES[c], id)) {
                Ok(()) => msg.pending[c] = false,
                Err(e) => {
                    log(&format!(
                        "warning: unable to unlink {}/{id}: {e}",
                        CHANNEL_NAMES[c]
                    ));
                    ch.queue.push(Reverse((now() + SLEEP_SYSFAIL, id)));
                    return;
                }
            }
            if !msg.pending[LOCAL]
                && !msg.pending[REMOTE]
                && !msg.active[LOCAL]
                && !msg.active[REMOTE]
            {
                self.done.push_back((0, id));
            }
        } else {
            // The next attempt's time goes on disk at once, as the channel file's mtime
            // (qmail's way), so that a crash keeps this deferral's schedule; a delivery
            // cut off by a crash before it reported leaves the mtime in the past, and is
            // tried at once after the restart.
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs(pass.retry.max(0) as u64);
            if let Err(e) = pass.file.set_modified(when) {
                log(&format!(
                    "warning: unable to utime {}/{id}: {e}",
                    CHANNEL_NAMES[c]
                ));
            }
            ch.queue.push(Reverse((pass.retry, id)));
        }
    }
}
