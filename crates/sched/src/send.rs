//! The scheduler's event loop: one thread, one poll over the trigger FIFO, the spawns'
//! report pipes and a signalfd; todo entries are preprocessed in batches with one sync.

use crate::bounce;
use crate::config::Config;
use crate::schedule::{CHANNEL_NAMES, LOCAL, REMOTE, next_retry};
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rqmail_control::Control;
use rqmail_log::{addr, escape, line as log};
use rqmail_qfiles::Queue;
use rqmail_qfiles::layout::records;
use rqmail_route::{classify, strip_virtual_prefix};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Rescan `todo/` at least this often even without a trigger (qmail's SLEEP_TODO).
const SLEEP_TODO: i64 = 1500;
/// Retry delay after a local system error (qmail's SLEEP_SYSFAIL).
const SLEEP_SYSFAIL: i64 = 123;
/// Interval between scans of `mess/` for files left by writers that died.
const SLEEP_CLEANUP: i64 = 3600;
/// Cap on one delivery report from a spawn.
const REPORT_MAX: usize = 10_000;
/// Most todo entries preprocessed under one sync.
const TODO_BATCH: usize = 128;
/// Most requests to rqmail-clean awaiting their answers. Each is at most 26 bytes and each
/// answer one, so both directions stay far below the smallest pipe buffer (one page) and
/// neither side can block the other.
const CLEAN_MAX: usize = 128;

/// One recipient's entry in a spawn's report: its status byte and text.
type Entry = (u8, Vec<u8>);

/// The pipes rqmail-send talks through, set up by rqmail-start.
pub struct Pipes {
    /// Requests to each spawn (local, remote).
    pub to_spawn: [OwnedFd; 2],
    /// Reports from each spawn.
    pub from_spawn: [OwnedFd; 2],
    /// Requests to rqmail-clean.
    pub to_clean: OwnedFd,
    /// Answers from rqmail-clean.
    pub from_clean: OwnedFd,
}

fn now() -> i64 {
    rqmail_date::now()
}

fn mtime(meta: &std::fs::Metadata) -> i64 {
    meta.mtime()
}

/// What the scheduler knows of one preprocessed message.
struct Message {
    /// Birth: the mtime of `info/N`.
    birth: i64,
    /// The channel file exists and still has recipients to do.
    pending: [bool; 2],
    /// A pass is open on the channel.
    active: [bool; 2],
    /// The sender recorded in `info/N`, once known (each pass needs it).
    sender: Option<Vec<u8>>,
    /// `bounce/N` may exist: a permanent failure was recorded, or the message was found
    /// in the queue at start-up.
    bounce: bool,
}

/// One pass over a message's channel file.
struct Pass {
    id: u64,
    file: File,
    sender: Vec<u8>,
    /// (offset of the record's type byte, recipient) for each record still `T`.
    todo: VecDeque<(u64, Vec<u8>)>,
    outstanding: usize,
    remaining: usize,
    retry: i64,
    dying: bool,
}

/// A delivery running in a spawn slot.
struct Job {
    delivery: u64,
    pass: u64,
    /// (offset of the record, recipient) for each recipient of this delivery.
    items: Vec<(u64, Vec<u8>)>,
}

/// Seconds before a delivery killed from outside (a spawn's `R` report) is tried again.
const RETRY_INTERRUPTED: i64 = 10;

/// Most recipients handed to one remote delivery (one SMTP transaction).
const REMOTE_BATCH: usize = 100;

/// The domain of an address, lowercase, for grouping remote recipients.
fn domain_key(recipient: &[u8]) -> Vec<u8> {
    let at = recipient
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(recipient.len(), |i| i + 1);
    recipient[at..].to_ascii_lowercase()
}

/// The spawn side of one channel.
struct Channel {
    to: File,
    from: File,
    outbuf: Vec<u8>,
    inbuf: Vec<u8>,
    slots: Vec<Option<Job>>,
    limit: usize,
    busy: usize,
    queue: BinaryHeap<Reverse<(i64, u64)>>,
    passes: HashMap<u64, Pass>,
    /// Passes in the order they may take slots.
    order: VecDeque<u64>,
    alive: bool,
}

/// What a request to rqmail-clean was for, kept until its answer comes.
enum CleanJob {
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
struct Cleaner {
    to: File,
    from: File,
    pending: VecDeque<CleanJob>,
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

/// rqmail-send's whole state.
pub struct Scheduler {
    home: PathBuf,
    control: Control,
    queue: Queue,
    config: Config,
    channels: [Channel; 2],
    cleaner: Cleaner,
    messages: HashMap<u64, Message>,
    todo: VecDeque<u64>,
    todo_seen: HashSet<u64>,
    done: VecDeque<(i64, u64)>,
    next_delivery: u64,
    trigger: File,
    signals: SignalFd,
    last_todo_scan: i64,
    last_cleanup: i64,
    exiting: bool,
    todo_retry_at: i64,
}

fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<()> {
    file.read_exact(buf)
}

impl Scheduler {
    /// Takes the send mutex, reads each spawn's slot count, and loads the queue.
    pub fn start(home: &Path, pipes: Pipes, signals: SigSet) -> io::Result<Scheduler> {
        let control = Control::new(home);
        let config =
            Config::load(&control).map_err(|e| io::Error::other(format!("cannot start: {e}")))?;
        let queue = Queue::new(home);
        let mutex = File::open(queue.root().join("lock/sendmutex"))?;
        let mutex = Flock::lock(mutex, FlockArg::LockExclusiveNonblock).map_err(|_| {
            io::Error::other("cannot start: another rqmail-send holds lock/sendmutex")
        })?;
        // The lock lasts as long as the process; leak the guard on purpose.
        std::mem::forget(mutex);
        let [to_local, to_remote] = pipes.to_spawn;
        let [from_local, from_remote] = pipes.from_spawn;
        let mut channels = [
            Self::channel(
                File::from(to_local),
                File::from(from_local),
                config.concurrency[LOCAL],
            )?,
            Self::channel(
                File::from(to_remote),
                File::from(from_remote),
                config.concurrency[REMOTE],
            )?,
        ];
        for ch in &mut channels {
            set_nonblocking(&ch.to)?;
            set_nonblocking(&ch.from)?;
        }
        set_nonblocking(&pipes.from_clean)?;
        // O_RDWR keeps a writer open ourselves, so the FIFO never reports hang-up.
        let trigger = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(queue.trigger())?;
        let signals =
            SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let mut s = Scheduler {
            home: home.to_path_buf(),
            control,
            queue,
            config,
            channels,
            cleaner: Cleaner {
                to: File::from(pipes.to_clean),
                from: File::from(pipes.from_clean),
                pending: VecDeque::new(),
            },
            messages: HashMap::new(),
            todo: VecDeque::new(),
            todo_seen: HashSet::new(),
            done: VecDeque::new(),
            next_delivery: 1,
            trigger,
            signals,
            last_todo_scan: i64::MIN,
            last_cleanup: i64::MIN,
            exiting: false,
            todo_retry_at: i64::MAX,
        };
        s.scan_info()?;
        Ok(s)
    }

    fn channel(to: File, mut from: File, limit: usize) -> io::Result<Channel> {
        // The spawn announces its own slot limit in one byte; the lower limit wins.
        let mut byte = [0u8];
        read_full(&mut from, &mut byte).map_err(|e| {
            io::Error::other(format!("cannot start: spawn did not announce slots: {e}"))
        })?;
        let limit = limit.min(byte[0] as usize);
        Ok(Channel {
            to,
            from,
            outbuf: Vec::new(),
            inbuf: Vec::new(),
            slots: (0..byte[0]).map(|_| None).collect(),
            limit,
            busy: 0,
            queue: BinaryHeap::new(),
            passes: HashMap::new(),
            order: VecDeque::new(),
            alive: true,
        })
    }

    /// Registers every preprocessed message (`info/N` without `todo/N`).
    fn scan_info(&mut self) -> io::Result<()> {
        for id in self.queue.list("info")? {
            if self.queue.path("todo", id).exists() {
                continue; // preprocessing was interrupted; the todo scan redoes it
            }
            let Ok(info) = std::fs::metadata(self.queue.path("info", id)) else {
                continue;
            };
            let mut msg = Message {
                birth: mtime(&info),
                pending: [false; 2],
                active: [false; 2],
                sender: None,
                bounce: true,
            };
            for c in [LOCAL, REMOTE] {
                if let Ok(meta) = std::fs::metadata(self.queue.path(CHANNEL_NAMES[c], id)) {
                    msg.pending[c] = true;
                    self.channels[c].queue.push(Reverse((mtime(&meta), id)));
                }
            }
            if !msg.pending[LOCAL] && !msg.pending[REMOTE] {
                self.done.push_back((0, id));
            }
            self.messages.insert(id, msg);
        }
        Ok(())
    }

    /// Runs until TERM (after in-flight deliveries end) or until a spawn is lost.
    pub fn run(&mut self) -> io::Result<()> {
        self.log_status();
        loop {
            let t = now();
            if !self.exiting {
                if t >= self.last_cleanup.saturating_add(SLEEP_CLEANUP) {
                    self.last_cleanup = t;
                    self.cleanup_orphans();
                }
                if t >= self.last_todo_scan.saturating_add(SLEEP_TODO) || t >= self.todo_retry_at {
                    self.scan_todo();
                }
                self.preprocess_batch();
                self.start_passes(t);
                self.dispatch();
                self.finish_done(t);
            }
            for c in [LOCAL, REMOTE] {
                self.flush_requests(c)?;
            }
            if self.exiting && self.channels.iter().all(|c| c.busy == 0) {
                self.take_clean_answers(true);
                self.save_schedule();
                log("status: exiting");
                return Ok(());
            }
            if self.channels.iter().any(|c| !c.alive) {
                if self.channels.iter().all(|c| c.busy == 0 || !c.alive) {
                    self.take_clean_answers(true);
                    self.save_schedule();
                    return Err(io::Error::other(
                        "alert: lost connection to a spawn, exiting",
                    ));
                }
                self.exiting = true;
            }
            self.wait(self.timeout(now()))?;
        }
    }

    fn timeout(&self, t: i64) -> PollTimeout {
        if self.exiting {
            return PollTimeout::from(1000u16);
        }
        if !self.todo.is_empty() || self.done.iter().any(|&(at, _)| at <= t) {
            return PollTimeout::ZERO;
        }
        let mut next = self
            .last_todo_scan
            .saturating_add(SLEEP_TODO)
            .min(self.todo_retry_at);
        next = next.min(self.last_cleanup.saturating_add(SLEEP_CLEANUP));
        for (c, ch) in self.channels.iter().enumerate() {
            if ch.busy < ch.limit
                && let Some(Reverse((at, _))) = ch.queue.peek()
            {
                next = next.min(*at);
            }
            let _ = c;
        }
        if let Some(&(at, _)) = self.done.iter().min() {
            next = next.min(at);
        }
        let secs = (next - t).clamp(0, 3600);
        // A second of fuzz, as qmail's SLEEP_FUZZ, so a retry time is surely past.
        PollTimeout::try_from(Duration::from_secs(secs as u64 + 1)).unwrap_or(PollTimeout::MAX)
    }

    fn wait(&mut self, timeout: PollTimeout) -> io::Result<()> {
        let mut fds = vec![
            PollFd::new(self.trigger.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
        ];
        for ch in &self.channels {
            let mut flags = PollFlags::POLLIN;
            if !ch.outbuf.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(ch.from.as_fd(), flags));
        }
        if !self.cleaner.pending.is_empty() {
            fds.push(PollFd::new(self.cleaner.from.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(0) => return Ok(()),
            Ok(_) => {}
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let trigger = ready(&fds[0]);
        let signal = ready(&fds[1]);
        let reports = [ready(&fds[2]), ready(&fds[3])];
        let answers = fds.get(4).is_some_and(ready);
        drop(fds);
        if answers {
            self.take_clean_answers(false);
        }
        if trigger {
            let mut buf = [0u8; 256];
            while matches!(self.trigger.read(&mut buf), Ok(n) if n > 0) {}
            self.scan_todo();
        }
        if signal {
            self.handle_signals();
        }
        for c in [LOCAL, REMOTE] {
            if reports[c] {
                self.read_reports(c);
            }
        }
        Ok(())
    }

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGTERM) => self.exiting = true,
                Ok(Signal::SIGALRM) => {
                    for ch in &mut self.channels {
                        let entries: Vec<_> = ch
                            .queue
                            .drain()
                            .map(|Reverse((_, id))| Reverse((0, id)))
                            .collect();
                        ch.queue.extend(entries);
                    }
                    self.todo_retry_at = 0;
                    log("status: retrying all deliveries now (ALRM)");
                }
                Ok(Signal::SIGHUP) => match self.config.routing.reload_domains(&self.control) {
                    Ok(()) => {
                        log("status: reread locals and virtualdomains (HUP)");
                    }
                    Err(e) => log(&format!(
                        "alert: unable to reread controls, keeping the old ones: {e}"
                    )),
                },
                _ => {}
            }
        }
    }

    fn log_status(&self) {
        log(&format!(
            "status: local {}/{} remote {}/{}{}",
            self.channels[LOCAL].busy,
            self.channels[LOCAL].limit,
            self.channels[REMOTE].busy,
            self.channels[REMOTE].limit,
            if self.exiting { " exitasap" } else { "" }
        ));
    }

    // ---- todo: committed envelopes become info/local/remote files ----

    fn scan_todo(&mut self) {
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
    fn preprocess_batch(&mut self) {
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
    fn clean(&mut self, job: CleanJob) {
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
    fn take_clean_answers(&mut self, all: bool) {
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
    fn cleanup_orphans(&mut self) {
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

    // ---- passes and deliveries ----

    fn start_passes(&mut self, t: i64) {
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

    fn dispatch(&mut self) {
        for c in [LOCAL, REMOTE] {
            let ch = &mut self.channels[c];
            if !ch.alive {
                continue;
            }
            let mut idx = 0;
            while ch.busy < ch.limit && idx < ch.order.len() {
                let id = ch.order[idx];
                let Some(pass) = ch.passes.get_mut(&id) else {
                    idx += 1;
                    continue;
                };
                let Some(first) = pass.todo.pop_front() else {
                    idx += 1;
                    continue;
                };
                let Some(slot) = ch.slots.iter().position(Option::is_none) else {
                    pass.todo.push_front(first);
                    break;
                };
                let sender = spawn_sender(&pass.sender, &first.1);
                let mut items = vec![first];
                // One SMTP transaction per destination domain: the other recipients at the
                // same domain go along (not with VERP, whose sender differs per recipient).
                if c == REMOTE && !pass.sender.ends_with(b"-@[]") {
                    let domain = domain_key(&items[0].1);
                    let mut rest = VecDeque::with_capacity(pass.todo.len());
                    while let Some(item) = pass.todo.pop_front() {
                        if items.len() < REMOTE_BATCH && domain_key(&item.1) == domain {
                            items.push(item);
                        } else {
                            rest.push_back(item);
                        }
                    }
                    pass.todo = rest;
                }
                pass.outstanding += 1;
                let delivery = self.next_delivery;
                self.next_delivery += 1;
                ch.outbuf.push(slot as u8);
                ch.outbuf.extend_from_slice(Queue::mess_name(id).as_bytes());
                ch.outbuf.push(0);
                ch.outbuf.extend_from_slice(&sender);
                ch.outbuf.push(0);
                for (_, recipient) in &items {
                    log(&format!(
                        "starting delivery {delivery}: msg {id} to {} {}",
                        CHANNEL_NAMES[c],
                        addr(recipient)
                    ));
                    ch.outbuf.extend_from_slice(recipient);
                    ch.outbuf.push(0);
                }
                ch.outbuf.push(0);
                ch.slots[slot] = Some(Job {
                    delivery,
                    pass: id,
                    items,
                });
                ch.busy += 1;
            }
        }
    }

    fn flush_requests(&mut self, c: usize) -> io::Result<()> {
        let ch = &mut self.channels[c];
        while !ch.outbuf.is_empty() && ch.alive {
            match ch.to.write(&ch.outbuf) {
                Ok(n) => {
                    ch.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log(&format!(
                        "alert: lost connection to {}spawn: {e}",
                        &CHANNEL_NAMES[c][..1]
                    ));
                    ch.alive = false;
                }
            }
        }
        Ok(())
    }

    fn read_reports(&mut self, c: usize) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.channels[c].from.read(&mut buf) {
                Ok(0) => {
                    log(&format!(
                        "alert: lost connection to {}spawn",
                        if c == LOCAL { "l" } else { "r" }
                    ));
                    self.channels[c].alive = false;
                    // Deliveries still out will never report. They were cut off, not tried
                    // and refused: their messages go back to the front of the schedule, to
                    // be tried again at once when rqmail-send runs again, not after the
                    // next step of the retry schedule (as Postfix returns its active queue
                    // to incoming at a restart).
                    let slots: Vec<usize> = (0..self.channels[c].slots.len())
                        .filter(|&s| self.channels[c].slots[s].is_some())
                        .collect();
                    let t = now();
                    for s in slots {
                        let Some(job) = self.channels[c].slots[s].as_ref() else {
                            continue;
                        };
                        let n = job.items.len();
                        if let Some(pass) = self.channels[c].passes.get_mut(&job.pass) {
                            pass.retry = pass.retry.min(t);
                            pass.dying = false;
                        }
                        let lost = vec![
                            (
                                b'Z',
                                b"lost connection to the spawn; will be tried again at once"
                                    .to_vec()
                            );
                            n
                        ];
                        self.results(c, s, lost);
                    }
                    return;
                }
                Ok(n) => self.channels[c].inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        while let Some((slot, entries)) = self.next_report(c) {
            self.results(c, slot, entries);
        }
    }

    /// Takes one complete report off the channel's input: the slot byte, then one
    /// `status text NUL` entry per recipient of that slot's delivery. `None` until a whole
    /// report is there.
    fn next_report(&mut self, c: usize) -> Option<(usize, Vec<Entry>)> {
        loop {
            let ch = &mut self.channels[c];
            let slot = *ch.inbuf.first()? as usize;
            let expected = ch
                .slots
                .get(slot)
                .and_then(|j| j.as_ref())
                .map(|j| j.items.len());
            let mut entries = Vec::new();
            let mut pos = 1;
            for _ in 0..expected.unwrap_or(1) {
                if pos >= ch.inbuf.len() {
                    return None;
                }
                let Some(end) = ch.inbuf[pos + 1..]
                    .iter()
                    .position(|&b| b == 0)
                    .map(|i| i + pos + 1)
                else {
                    if ch.inbuf.len() > REPORT_MAX * 2 + 2 {
                        log("warning: delivery report too long, will defer");
                        ch.inbuf.clear();
                    }
                    return None;
                };
                let text = &ch.inbuf[pos + 1..end];
                entries.push((ch.inbuf[pos], text[..text.len().min(REPORT_MAX)].to_vec()));
                pos = end + 1;
            }
            ch.inbuf.drain(..pos);
            if expected.is_none() {
                log("warning: internal error: delivery report out of range");
                continue;
            }
            return Some((slot, entries));
        }
    }

    fn results(&mut self, c: usize, slot: usize, entries: Vec<Entry>) {
        let ch = &mut self.channels[c];
        let Some(job) = ch.slots[slot].take() else {
            return;
        };
        ch.busy -= 1;
        let d = job.delivery;
        let Some(pass) = ch.passes.get_mut(&job.pass) else {
            return;
        };
        pass.outstanding -= 1;
        for ((offset, recipient), (status, text)) in job.items.iter().zip(entries) {
            let status = if matches!(status, b'Z' | b'R') && pass.dying {
                b'X'
            } else {
                status
            };
            match status {
                b'K' => {
                    log(&format!("delivery {d}: success: {}", escape(&text, true)));
                    mark_done(pass, *offset);
                }
                b'D' | b'X' => {
                    let mut report = text;
                    if status == b'X' {
                        if !report.ends_with(b"\n") && !report.is_empty() {
                            report.push(b'\n');
                        }
                        report.extend_from_slice(
                            b"I'm not going to try again; this message has been in the queue too long.",
                        );
                    }
                    let shown = if c == LOCAL {
                        strip_virtual_prefix(&self.config.routing, recipient)
                    } else {
                        recipient.clone()
                    };
                    let paragraph = bounce::paragraph(&shown, &report);
                    if let Some(msg) = self.messages.get_mut(&job.pass) {
                        msg.bounce = true;
                    }
                    match append_bounce(&self.queue.path("bounce", job.pass), &paragraph) {
                        Ok(()) => {
                            log(&format!("delivery {d}: failure: {}", escape(&report, true)));
                            mark_done(pass, *offset);
                        }
                        Err(e) => log(&format!(
                            "alert: unable to append to bounce message: {e}; delivery {d} will be retried"
                        )),
                    }
                }
                b'Z' => log(&format!("delivery {d}: deferral: {}", escape(&text, true))),
                b'R' => {
                    // Killed from outside, not refused: soon again, not at the schedule's
                    // next step (a floor, so that something killing every try is no loop).
                    pass.retry = pass.retry.min(now() + RETRY_INTERRUPTED);
                    log(&format!("delivery {d}: deferral: {}", escape(&text, true)));
                }
                _ => log(&format!("delivery {d}: report mangled, will defer")),
            }
        }
        let id = job.pass;
        self.maybe_finish_pass(c, id);
    }

    fn maybe_finish_pass(&mut self, c: usize, id: u64) {
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

    // ---- finishing messages ----

    fn finish_done(&mut self, t: i64) {
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

    /// Saves each pending message's next attempt as its channel file's mtime, so the
    /// schedule survives a restart.
    fn save_schedule(&mut self) {
        for c in [LOCAL, REMOTE] {
            for Reverse((at, id)) in self.channels[c].queue.iter() {
                let when = SystemTime::UNIX_EPOCH + Duration::from_secs((*at).max(0) as u64);
                let path = self.queue.path(CHANNEL_NAMES[c], *id);
                if let Ok(f) = OpenOptions::new().write(true).open(&path)
                    && let Err(e) = f.set_modified(when)
                {
                    log(&format!("warning: unable to utime {}: {e}", path.display()));
                }
            }
        }
        let _ = UNIX_EPOCH;
    }
}

struct Preprocessed {
    id: u64,
    channels: [bool; 2],
    sender: Vec<u8>,
}

/// Marks a recipient finished: its record's `T` becomes `D` in place. A failed mark only
/// means the delivery will be repeated.
fn mark_done(pass: &mut Pass, offset: u64) {
    match pass.file.write_all_at(b"D", offset) {
        Ok(()) => pass.remaining = pass.remaining.saturating_sub(1),
        Err(e) => log(&format!(
            "warning: trouble marking msg {} done: {e}; delivery will be repeated",
            pass.id
        )),
    }
}

/// Appends a paragraph to `bounce/N` and makes it durable before the recipient is marked.
fn append_bounce(path: &Path, paragraph: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(paragraph)?;
    f.sync_data()
}

/// The sender handed to a spawn: a VERP request `prefix-@host-@[]` becomes
/// `prefix-box=rhost@host` for recipient `box@rhost`.
pub fn spawn_sender(sender: &[u8], recipient: &[u8]) -> Vec<u8> {
    let Some(base) = sender.strip_suffix(b"-@[]") else {
        return sender.to_vec();
    };
    let Some(at) = base.iter().rposition(|&b| b == b'@') else {
        return sender.to_vec();
    };
    let (prefix, host) = (&base[..at], &base[at + 1..]);
    let mut out = prefix.to_vec();
    match recipient.iter().rposition(|&b| b == b'@') {
        Some(r) => {
            out.extend_from_slice(&recipient[..r]);
            out.push(b'=');
            out.extend_from_slice(&recipient[r + 1..]);
        }
        None => out.extend_from_slice(recipient),
    }
    out.push(b'@');
    out.extend_from_slice(host);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verp_senders_name_each_recipient() {
        assert_eq!(
            spawn_sender(b"list-owner-@lists.org-@[]", b"joe@far.net"),
            b"list-owner-joe=far.net@lists.org"
        );
        assert_eq!(spawn_sender(b"a@b", b"c@d"), b"a@b");
        assert_eq!(spawn_sender(b"", b"c@d"), b"");
    }
}
