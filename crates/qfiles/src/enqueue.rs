//! The durable enqueue of rqmail-queue: qmail-queue's exact sequence of creates, writes,
//! fsyncs and links, plus a lock that tells the cleaner whether the writer is still alive.

use crate::layout::{Queue, sync_dir};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// Longest address accepted in the envelope, as qmail-queue: 1002 bytes and its NUL.
pub const MAX_ADDRESS: usize = 1002;

/// Free space a message must leave on the queue's filesystem. rqmail-send needs room for
/// `info/` and channel files to take a message from todo/, and bounces need room too:
/// a queue filled to the last block would accept mail it cannot then process.
pub const QUEUE_RESERVE: u64 = 256 * 1024;

/// Why an enqueue failed; each maps to one of qmail-queue's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 11: an envelope address is too long (permanent).
    AddressTooLong,
    /// 53: a write or fsync failed (disk full).
    Write,
    /// 54: the message or envelope could not be read (or ended early).
    Read,
    /// 62: trouble with `queue/`.
    QueueDir,
    /// 63: trouble with `queue/pid`.
    PidDir,
    /// 64: trouble with `queue/mess`.
    MessDir,
    /// 65: trouble with `queue/intd`.
    IntdDir,
    /// 66: trouble with `queue/todo`.
    TodoDir,
    /// 91: the envelope is not in the text0 format.
    EnvelopeFormat,
}

impl Failure {
    /// qmail-queue's exit code for this failure.
    pub fn exit_code(self) -> u8 {
        match self {
            Failure::AddressTooLong => 11,
            Failure::Write => 53,
            Failure::Read => 54,
            Failure::QueueDir => 62,
            Failure::PidDir => 63,
            Failure::MessDir => 64,
            Failure::IntdDir => 65,
            Failure::TodoDir => 66,
            Failure::EnvelopeFormat => 91,
        }
    }
}

/// What rqmail-queue knows about its caller, recorded in the envelope and Received line.
pub struct Caller {
    /// Real uid of the process that ran rqmail-queue.
    pub uid: u32,
    /// rqmail-queue's pid.
    pub pid: u32,
    /// `by uid N`, `from network`, `by alias` or `for bounce`.
    pub invoked: String,
    /// Seconds since the epoch at start.
    pub start: i64,
}

impl Caller {
    /// The `Received:` line rqmail-queue puts on top of every message.
    pub fn received_line(&self) -> String {
        format!(
            "Received: (rqmail {} invoked {}); {}\n",
            self.pid,
            self.invoked,
            rqmail_date::Utc::from_unix(self.start).received()
        )
    }
}

/// Removes the half-made message on failure, unless disarmed after the commit.
struct Cleanup {
    mess: Option<PathBuf>,
    intd: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Truncate first: if the unlink fails, at least no partial body lingers.
        for path in [self.intd.take(), self.mess.take()].into_iter().flatten() {
            let _ = OpenOptions::new().write(true).truncate(true).open(&path);
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Queues one message: the body from `message`, the envelope (`F`sender`\0` then
/// `T`recipient`\0`... then `\0`) from `envelope`. Returns the message number.
///
/// Order (the commit point is the link into `todo/`): create `pid/` file and lock it, link
/// it to `mess/S/N`, write the Received line and body, fsync it and its directory, write
/// `intd/N`, fsync it, link it to `todo/N`, fsync `todo/`, pull the trigger.
pub fn enqueue(
    queue: &Queue,
    caller: &Caller,
    message: impl Read,
    envelope: impl Read,
) -> Result<u64, Failure> {
    let root = queue.root();
    if !root.is_dir() {
        return Err(Failure::QueueDir);
    }
    let (file, pid_path) = create_pid_file(queue, caller)?;
    // The lock lives as long as this process: the cleaner treats an unlocked message
    // without todo/ or info/ as the leftover of a writer that died.
    let file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| Failure::PidDir)?;
    let n = file.metadata().map_err(|_| Failure::PidDir)?.ino();
    let mess = queue.path("mess", n);
    if std::fs::hard_link(&pid_path, &mess).is_err() {
        let _ = std::fs::remove_file(&pid_path);
        return Err(Failure::MessDir);
    }
    let mut cleanup = Cleanup {
        mess: Some(mess),
        intd: None,
    };
    std::fs::remove_file(&pid_path).map_err(|_| Failure::PidDir)?;

    let mut out = io::BufWriter::with_capacity(64 * 1024, &*file);
    out.write_all(caller.received_line().as_bytes())
        .map_err(|_| Failure::Write)?;
    copy(message, &mut out)?;
    out.flush().map_err(|_| Failure::Write)?;
    drop(out);
    file.sync_all().map_err(|_| Failure::Write)?;
    if free_space(root).is_some_and(|free| free < QUEUE_RESERVE) {
        return Err(Failure::Write);
    }
    sync_dir(&queue.split_dir("mess", n)).map_err(|_| Failure::Write)?;

    let intd_path = queue.path("intd", n);
    let intd = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&intd_path)
        .map_err(|_| Failure::IntdDir)?;
    cleanup.intd = Some(intd_path.clone());
    let mut out = io::BufWriter::new(&intd);
    write!(out, "u{}\0p{}\0", caller.uid, caller.pid).map_err(|_| Failure::Write)?;
    copy_envelope(envelope, &mut out)?;
    out.flush().map_err(|_| Failure::Write)?;
    drop(out);
    intd.sync_all().map_err(|_| Failure::Write)?;
    std::fs::hard_link(&intd_path, queue.path("todo", n)).map_err(|_| Failure::TodoDir)?;
    // Committed: from here the message belongs to rqmail-send, whatever happens.
    cleanup.intd = None;
    cleanup.mess = None;
    sync_dir(&root.join("todo")).map_err(|_| Failure::Write)?;
    pull_trigger(queue);
    Ok(n)
}

/// Bytes available to unprivileged writers on the filesystem holding `dir`.
fn free_space(dir: &std::path::Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(st.blocks_available() * st.fragment_size())
}

fn create_pid_file(queue: &Queue, caller: &Caller) -> Result<(File, PathBuf), Failure> {
    for seq in 1..=9 {
        let path = queue
            .root()
            .join("pid")
            .join(format!("{}.{}.{}", caller.pid, caller.start, seq));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => return Err(Failure::PidDir),
        }
    }
    Err(Failure::PidDir)
}

fn copy(mut from: impl Read, to: &mut impl Write) -> Result<(), Failure> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Failure::Read),
        };
        to.write_all(&buf[..n]).map_err(|_| Failure::Write)?;
    }
}

/// Copies the envelope, checking its shape: `F` first, then `T` records, then an empty
/// record. EOF anywhere before that final NUL means the writer died: nothing is queued.
fn copy_envelope(envelope: impl Read, to: &mut impl Write) -> Result<(), Failure> {
    let mut input = BufReader::new(envelope);
    let mut first = true;
    loop {
        let kind = read_byte(&mut input)?;
        if kind == 0 && !first {
            return Ok(());
        }
        if (first && kind != b'F') || (!first && kind != b'T') {
            return Err(Failure::EnvelopeFormat);
        }
        first = false;
        to.write_all(&[kind]).map_err(|_| Failure::Write)?;
        let mut len = 0;
        loop {
            let buf = input.fill_buf().map_err(|_| Failure::Read)?;
            if buf.is_empty() {
                return Err(Failure::Read);
            }
            let (take, done) = match buf.iter().position(|&b| b == 0) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            len += take - usize::from(done);
            if len > MAX_ADDRESS {
                return Err(Failure::AddressTooLong);
            }
            to.write_all(&buf[..take]).map_err(|_| Failure::Write)?;
            input.consume(take);
            if done {
                break;
            }
        }
    }
}

fn read_byte(input: &mut impl BufRead) -> Result<u8, Failure> {
    let buf = input.fill_buf().map_err(|_| Failure::Read)?;
    let Some(&b) = buf.first() else {
        return Err(Failure::Read);
    };
    input.consume(1);
    Ok(b)
}

/// Wakes rqmail-send: one byte into the FIFO, never blocking; errors do not matter
/// (send rescans `todo/` on its own schedule too).
pub fn pull_trigger(queue: &Queue) {
    if let Ok(mut fifo) = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(queue.trigger())
    {
        let _ = fifo.write(&[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope_result(env: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        copy_envelope(env, &mut out).map(|()| out)
    }

    #[test]
    fn accepts_a_well_formed_envelope() {
        assert_eq!(
            envelope_result(b"Fa@b\0Tc@d\0Te@f\0\0").unwrap(),
            b"Fa@b\0Tc@d\0Te@f\0"
        );
        assert_eq!(envelope_result(b"F\0\0").unwrap(), b"F\0");
    }

    #[test]
    fn refuses_envelopes_that_end_early_or_are_malformed() {
        assert_eq!(envelope_result(b"Fa@b\0Tc@d\0"), Err(Failure::Read));
        assert_eq!(envelope_result(b"Fa@b"), Err(Failure::Read));
        assert_eq!(envelope_result(b"Ta@b\0\0"), Err(Failure::EnvelopeFormat));
        assert_eq!(envelope_result(b"Fa\0Xb\0\0"), Err(Failure::EnvelopeFormat));
        let mut long = b"F".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_ADDRESS + 1));
        long.extend_from_slice(b"\0\0");
        assert_eq!(envelope_result(&long), Err(Failure::AddressTooLong));
        let mut ok = b"F".to_vec();
        ok.extend(std::iter::repeat_n(b'a', MAX_ADDRESS));
        ok.extend_from_slice(b"\0\0");
        assert!(envelope_result(&ok).is_ok());
    }
}
