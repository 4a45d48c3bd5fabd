//! mbox delivery (local-delivery.md §8.1): append under an exclusive flock, mboxrd
//! `>From ` quoting, and on failure truncate back to where the message began.

use crate::{COPY_BUFFER, DeliveryError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait for another program (a mail reader) to release the mbox.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest pause between two tries at the lock.
const LOCK_POLL: Duration = Duration::from_millis(100);

const FROM: &[u8] = b"From ";

/// Adds one `>` to every line that matches `>*From ` (mboxrd quoting), across any split of
/// the input into chunks, and ends the message as mbox needs it.
pub(crate) struct FromQuoter {
    /// Nothing of the current line has been written yet.
    line_start: bool,
    /// `>` characters read at the start of the current line and not yet written.
    pending_gt: usize,
    /// Bytes of `From ` read after them and not yet written.
    matched: usize,
    /// The last byte of the message so far.
    last: Option<u8>,
}

impl FromQuoter {
    pub(crate) fn new() -> FromQuoter {
        FromQuoter {
            line_start: true,
            pending_gt: 0,
            matched: 0,
            last: None,
        }
    }

    fn write_pending(&mut self, out: &mut impl Write) -> io::Result<()> {
        const GTS: [u8; 64] = [b'>'; 64];
        while self.pending_gt > 0 {
            let n = self.pending_gt.min(GTS.len());
            out.write_all(&GTS[..n])?;
            self.pending_gt -= n;
        }
        out.write_all(&FROM[..self.matched])?;
        self.matched = 0;
        Ok(())
    }

    /// Quotes the next chunk of the message into `out`.
    pub(crate) fn push(&mut self, mut data: &[u8], out: &mut impl Write) -> io::Result<()> {
        if let Some(&last) = data.last() {
            self.last = Some(last);
        }
        while let Some(&c) = data.first() {
            if self.line_start {
                if self.matched == 0 && c == b'>' {
                    self.pending_gt += 1;
                    data = &data[1..];
                    continue;
                }
                if c == FROM[self.matched] {
                    self.matched += 1;
                    data = &data[1..];
                    if self.matched == FROM.len() {
                        out.write_all(b">")?;
                        self.write_pending(out)?;
                        self.line_start = false;
                    }
                    continue;
                }
                // Not a From_ line: write what was held back, then c as an ordinary byte.
                self.write_pending(out)?;
                self.line_start = false;
            }
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    out.write_all(&data[..=end])?;
                    data = &data[end + 1..];
                    self.line_start = true;
                }
                None => {
                    out.write_all(data)?;
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Ends the message: the missing LF of an unterminated last line, then the blank line
    /// that separates it from the next message.
    pub(crate) fn finish(mut self, out: &mut impl Write) -> io::Result<()> {
        self.write_pending(out)?;
        if self.last.is_some_and(|b| b != b'\n') {
            out.write_all(b"\n")?;
        }
        out.write_all(b"\n")
    }
}

/// The mbox file, locked if the lock could be taken.
enum Held {
    Locked(Flock<File>),
    /// flock failed for a reason other than contention (e.g. not supported by the
    /// filesystem): qmail-local then delivers unlocked, and so do we.
    Unlocked(File),
}

impl Held {
    fn file(&self) -> &File {
        match self {
            Held::Locked(flock) => flock,
            Held::Unlocked(file) => file,
        }
    }
}

fn temporary(text: String) -> DeliveryError {
    DeliveryError::temporary(text)
}

/// Appends one message to the mbox `path` (created mode 0600 if missing): `ufline` (the
/// `From ` line), `prefix` (Return-Path and Delivered-To lines), the message with `>From `
/// quoting, and a blank line. Waits up to 30 seconds for the lock. On failure the file is
/// cut back to its old length; every failure is temporary.
pub fn deliver_mbox(
    path: &Path,
    ufline: &[u8],
    prefix: &[u8],
    message: &mut (impl Read + Seek),
) -> Result<(), DeliveryError> {
    deliver_mbox_waiting(path, ufline, prefix, message, LOCK_TIMEOUT)
}

pub(crate) fn deliver_mbox_waiting(
    path: &Path,
    ufline: &[u8],
    prefix: &[u8],
    message: &mut (impl Read + Seek),
    timeout: Duration,
) -> Result<(), DeliveryError> {
    message
        .seek(SeekFrom::Start(0))
        .map_err(|e| temporary(format!("Unable to rewind message: {e}. (#4.3.0)")))?;
    // O_NONBLOCK: opening a FIFO someone left in place of the mbox must not hang.
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| temporary(format!("Unable to open {}: {e}. (#4.2.1)", path.display())))?;
    let held = lock(file, timeout)?;
    let mut file = held.file();
    let write_error =
        |e: io::Error| temporary(format!("Unable to write {}: {e}. (#4.3.0)", path.display()));
    let start = file.seek(SeekFrom::End(0)).map_err(write_error)?;
    let result = append(file, ufline, prefix, message, &write_error);
    if result.is_err() && matches!(held, Held::Locked(_)) {
        // Only under the lock: unlocked, someone else may have appended after us.
        let _ = file.set_len(start);
    }
    result
}

fn append(
    file: &File,
    ufline: &[u8],
    prefix: &[u8],
    message: &mut impl Read,
    write_error: &impl Fn(io::Error) -> DeliveryError,
) -> Result<(), DeliveryError> {
    let mut out = io::BufWriter::with_capacity(COPY_BUFFER, file);
    out.write_all(ufline).map_err(write_error)?;
    out.write_all(prefix).map_err(write_error)?;
    let mut quoter = FromQuoter::new();
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        let n = match message.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(temporary(format!("Unable to read message: {e}. (#4.3.0)")));
            }
        };
        quoter.push(&buffer[..n], &mut out).map_err(write_error)?;
    }
    quoter.finish(&mut out).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    drop(out);
    file.sync_all().map_err(write_error)
}

/// Takes an exclusive flock, polling for up to `timeout` while another process holds it.
fn lock(mut file: File, timeout: Duration) -> Result<Held, DeliveryError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(Held::Locked(locked)),
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => file = f,
            Err((f, _)) => return Ok(Held::Unlocked(f)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(temporary(format!(
                "File has been locked for {} seconds straight. (#4.3.0)",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(LOCK_POLL);
    }
}
