//! Todo: committed envelopes become info/local/remote files, rqmail-clean removes the
//! todo files, and orphans of dead writers are swept (qmail-send.c's TODO and CLEANUP).

use crate::schedule::{CHANNEL_NAMES, LOCAL, REMOTE};
use crate::send::{Message, SLEEP_SYSFAIL, Scheduler, now};
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rqmail_log::{addr, escape, line as log};
use rqmail_qfiles::layout::records;
use rqmail_route::classify;
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Most todo entries preprocessed under one sync.
const TODO_BATCH: usize = 128;
/// Most requests to rqmail-clean awaiting their answers. Each is at most 26 bytes and each
/// answer one, so both directions stay far below the smallest pipe buffer (one page) and
/// neither side can block the other.
const CLEAN_MAX: usize = 128;

/// What a request to rqmail-clean was for, kept until its answer comes.
pub(crate) enum CleanJob {
    /// `todo/N` of a message preprocessed and synced: it enters the channels on `+`.
    Todo(Preprocessed),
    /// `foop/N` of a finished message: only a failure is logged.
    Foop(u64),
    /// `foop/N` of a message whose writer died.
    Orphan(u64),
}

/// The pipes to rqmail-clean with the requests written but not answered yet, in order.
/// Requests are pipelined: the scheduler goes on while rqmail-clean unlinks, instead of
/// waiting for each answer (a round trip through two processes per request).
pub(crate) struct Cleaner {
    pub(crate) to: File,
    pub(crate) from: File,
    pub(crate) pending: VecDeque<CleanJob>,
}

impl Cleaner {
    /// Writes one request, first waiting for an answer when `CLEAN_MAX` are out. Returns
    /// the answers taken meanwhile, with their jobs.
    fn request(&mut self, job: CleanJob) -> io::Result<Vec<(CleanJob, u8)>> {
        let mut answered = Vec::new();
        while self.pending.len() >= CLEAN_MAX {
            answered.extend(self.answers(true)?);
        }
        let mut req = match &job {
            CleanJob::Todo(p) => format!("todo/{}", p.id),
            CleanJob::Foop(id) | CleanJob::Orphan(id) => format!("foop/{id}"),
        }
        .into_bytes();
        req.push(0);
        self.to.write_all(&req)?;
        self.pending.push_back(job);
        Ok(answered)
    }

    /// The answers that have arrived (at least one if `block` and any is due), matched
    /// with their requests in order.
    fn answers(&mut self, block: bool) -> io::Result<Vec<(CleanJob, u8)>> {
        let mut out = Vec::new();
        if self.pending.is_empty() {
            return Ok(out);
        }
        if block {
            let mut fds = [PollFd::new(self.from.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut buf = [0u8; CLEAN_MAX];
        let n = match self.from.read(&mut buf[..self.pending.len()]) {
            Ok(0) => return Err(io::Error::other("rqmail-clean closed its pipe")),
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                0
            }
            Err(e) => return Err(e),
        };
        for &answer in &buf[..n] {
            if let Some(job) = self.pending.pop_front() {
                out.push((job, answer));
            }
        }
        Ok(out)
    }
}

pub(crate) struct Preprocessed {
    id: u64,
    channels: [bool; 2],
    sender: Vec<u8>,
}

impl Scheduler {
    pub(crate) fn scan_todo(&mut self) {
        self.last_todo_scan = now();
        self.todo_retry_at = i64::MAX;
        match self.queue.list("todo") {
            Ok(mut ids) => {
                ids.sort_unstable();
                for id in ids {
                    if self.todo_seen.insert(id) {
                        self.todo.push_back(id);
                    }
                }
            }
            Err(e) => {
                log(&format!("alert: unable to opendir todo: {e}"));
                self.todo_retry_at = now() + 10;
            }
        }
    }

    /// Preprocesses a batch of todo entries under one filesystem sync, then asks
    /// rqmail-clean to remove their todo files: the sync must come first, or a crash could
    /// lose both the envelope and its replacement.
    pub(crate) fn preprocess_batch(&mut self) {
        if self.todo.is_empty() {
            return;
        }
        let mut made = Vec::new();
        while made.len() < TODO_BATCH {
            let Some(id) = self.todo.pop_front() else {
                break;
            };
            match self.preprocess(id) {
                Ok(p) => made.push(p),
                Err(e) => {
                    log(&format!(
                        "warning: trouble preprocessing todo/{id}: {e}; will retry"
                    ));
                    self.todo_seen.remove(&id);
                    self.todo_retry_at = self.todo_retry_at.min(now() + SLEEP_SYSFAIL);
                }
            }
        }
        if made.is_empty() {
            return;
        }
        // One sync for the whole batch: concurrent flushes merge, serial fsyncs do not.
        let synced = File::open(self.queue.root())
            .and_then(|dir| nix::unistd::syncfs(&dir).map_err(io::Error::from));
        if let Err(e) = synced {
            log(&format!(
                "warning: unable to sync the queue: {e}; will retry"
            ));
            for p in made {
                self.todo_seen.remove(&p.id);
            }
            self.todo_retry_at = now() + SLEEP_SYSFAIL;
            return;
        }
        // Each stays in todo_seen until rqmail-clean answers, so no scan takes it again.
        for p in made {
            self.clean(CleanJob::Todo(p));
        }
    }

    /// Sends one request to rqmail-clean; its answer is handled when it comes.
    pub(crate) fn clean(&mut self, job: CleanJob) {
        match self.cleaner.request(job) {
            Ok(answered) => self.cleaned(answered),
            Err(e) => {
                // The request was not written; it is as if rqmail-clean refused it.
                log(&format!("warning: unable to talk to qmail-clean: {e}"));
                self.fail_cleaning();
            }
        }
    }

    /// Handles the answers rqmail-clean has given so far, waiting for all if `all`.
    pub(crate) fn take_clean_answers(&mut self, all: bool) {
        loop {
            match self.cleaner.answers(all) {
                Ok(answered) => {
                    let got = !answered.is_empty();
                    self.cleaned(answered);
                    if !all || !got || self.cleaner.pending.is_empty() {
                        return;
                    }
                }
                Err(e) => {
                    log(&format!("warning: unable to talk to qmail-clean: {e}"));
                    self.fail_cleaning();
                    return;
                }
            }
        }
    }

    /// rqmail-clean is gone: every request still out failed.
    fn fail_cleaning(&mut self) {
        let failed: Vec<_> = self.cleaner.pending.drain(..).map(|j| (j, b'!')).collect();
        self.cleaned(failed);
    }

    fn cleaned(&mut self, answered: Vec<(CleanJob, u8)>) {
        for (job, answer) in answered {
            let why = match answer {
                b'+' => None,
                b'!' => Some("unlink failed"),
                _ => Some("request refused"),
            };
            match job {
                CleanJob::Todo(p) => {
                    self.todo_seen.remove(&p.id);
                    if let Some(e) = why {
                        log(&format!(
                            "warning: qmail-clean unable to clean up todo/{}: {e}",
                            p.id
                        ));
                        self.todo_retry_at = now() + SLEEP_SYSFAIL;
                        continue;
                    }
                    self.register(p);
                }
                CleanJob::Foop(id) => {
                    if let Some(e) = why {
                        log(&format!(
                            "warning: qmail-clean unable to clean up mess/{id}: {e}"
                        ));
                    }
                }
                CleanJob::Orphan(id) => match why {
                    None => log(&format!(
                        "status: removed mess/{id}, left by a writer that died"
                    )),
                    Some(e) => log(&format!("warning: unable to remove orphan mess/{id}: {e}")),
                },
            }
        }
    }

    /// Enters a preprocessed message, its todo file gone, in its channels' queues.
    fn register(&mut self, p: Preprocessed) {
        let birth = now();
        let msg = Message {
            birth,
            pending: p.channels,
            active: [false; 2],
            sender: Some(p.sender),
            bounce: false,
        };
        for c in [LOCAL, REMOTE] {
            if p.channels[c] {
                self.channels[c].queue.push(Reverse((birth, p.id)));
            }
        }
        if !p.channels[LOCAL] && !p.channels[REMOTE] {
            self.done.push_back((0, p.id));
        }
        self.messages.insert(p.id, msg);
    }

    fn preprocess(&mut self, id: u64) -> io::Result<Preprocessed> {
        let todo = std::fs::read(self.queue.path("todo", id))?;
        let bytes = std::fs::metadata(self.queue.path("mess", id))?.len();
        for dir in ["local", "remote", "info"] {
            match std::fs::remove_file(self.queue.path(dir, id)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let create = |path: PathBuf| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        };
        let mut info = create(self.queue.path("info", id))?;
        log(&format!("new msg {id}"));
        let (mut uid, mut pid) = (&b"?"[..], &b"?"[..]);
        let mut channel_data: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut sender = None;
        for (_, kind, value) in records(&todo) {
            match kind {
                b'u' => uid = value,
                b'p' => pid = value,
                b'F' if sender.is_none() => {
                    sender = Some(value.to_vec());
                    let mut rec = b"F".to_vec();
                    rec.extend_from_slice(value);
                    rec.push(0);
                    info.write_all(&rec)?;
                    log(&format!(
                        "info msg {id}: bytes {bytes} from <{}> qp {} uid {}",
                        addr(value),
                        escape(pid, false),
                        escape(uid, false)
                    ));
                }
                b'T' => {
                    let (c, address) = classify(&self.config.routing, value);
                    channel_data[c].push(b'T');
                    channel_data[c].extend_from_slice(&address);
                    channel_data[c].push(0);
                }
                _ => return Err(io::Error::other("unknown record type in todo file")),
            }
        }
        let Some(sender) = sender else {
            return Err(io::Error::other("todo file has no sender"));
        };
        let mut channels = [false; 2];
        for c in [LOCAL, REMOTE] {
            if !channel_data[c].is_empty() {
                create(self.queue.path(CHANNEL_NAMES[c], id))?.write_all(&channel_data[c])?;
                channels[c] = true;
            }
        }
        Ok(Preprocessed {
            id,
            channels,
            sender,
        })
    }

    /// Removes messages whose writer died before committing them: `mess/N` with no
    /// `todo/N`, no `info/N`, and no live rqmail-queue holding its lock.
    pub(crate) fn cleanup_orphans(&mut self) {
        let Ok(ids) = self.queue.list("mess") else {
            return;
        };
        for id in ids {
            if self.messages.contains_key(&id) || self.todo_seen.contains(&id) {
                continue;
            }
            // Lock first, then look: once the lock is ours the writer is gone, so what
            // it committed (todo/N) is already visible.
            let Ok(file) = File::open(self.queue.path("mess", id)) else {
                continue;
            };
            let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            if self.queue.path("todo", id).exists() || self.queue.path("info", id).exists() {
                continue;
            }
            self.clean(CleanJob::Orphan(id));
        }
    }
}
