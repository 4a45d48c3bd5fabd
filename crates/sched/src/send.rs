//! The scheduler's event loop: one thread, one poll over the trigger FIFO, the spawns'
//! report pipes and a signalfd; todo entries are preprocessed in batches with one sync.

use crate::config::Config;
use crate::deliveries::{Channel, REPORT_MAX};
use crate::schedule::{CHANNEL_NAMES, LOCAL, REMOTE};
use crate::todo::Cleaner;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rqmail_control::Control;
use rqmail_log::line as log;
use rqmail_qfiles::Queue;
use rqmail_spawn::ReportDecoder;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::deliveries::spawn_sender;

/// Rescan `todo/` at least this often even without a trigger (qmail's SLEEP_TODO).
const SLEEP_TODO: i64 = 1500;
/// Retry delay after a local system error (qmail's SLEEP_SYSFAIL).
pub(crate) const SLEEP_SYSFAIL: i64 = 123;
/// Interval between scans of `mess/` for files left by writers that died.
const SLEEP_CLEANUP: i64 = 3600;

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

pub(crate) fn now() -> i64 {
    rqmail_date::now()
}

pub(crate) fn mtime(meta: &std::fs::Metadata) -> i64 {
    meta.mtime()
}

/// What the scheduler knows of one preprocessed message.
pub(crate) struct Message {
    /// Birth: the mtime of `info/N`.
    pub(crate) birth: i64,
    /// The channel file exists and still has recipients to do.
    pub(crate) pending: [bool; 2],
    /// A pass is open on the channel.
    pub(crate) active: [bool; 2],
    /// The sender recorded in `info/N`, once known (each pass needs it).
    pub(crate) sender: Option<Vec<u8>>,
    /// `bounce/N` may exist: a permanent failure was recorded, or the message was found
    /// in the queue at start-up.
    pub(crate) bounce: bool,
}

/// rqmail-send's whole state.
pub struct Scheduler {
    pub(crate) home: PathBuf,
    pub(crate) control: Control,
    pub(crate) queue: Queue,
    pub(crate) config: Config,
    pub(crate) channels: [Channel; 2],
    pub(crate) cleaner: Cleaner,
    pub(crate) messages: HashMap<u64, Message>,
    pub(crate) todo: VecDeque<u64>,
    pub(crate) todo_seen: HashSet<u64>,
    pub(crate) done: VecDeque<(i64, u64)>,
    pub(crate) next_delivery: u64,
    pub(crate) trigger: File,
    pub(crate) signals: SignalFd,
    pub(crate) last_todo_scan: i64,
    pub(crate) last_cleanup: i64,
    pub(crate) exiting: bool,
    pub(crate) todo_retry_at: i64,
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
            reports: ReportDecoder::new(REPORT_MAX),
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
