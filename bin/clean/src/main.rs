//! rqmail-clean: unlinks queue files for rqmail-send, which may not write them itself.
//! Requests `todo/N\0` and `foop/N\0` on fd 0; one byte back on fd 1: `+`, `!` or `x`.
#![forbid(unsafe_code)]

use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_qfiles::Queue;
use rqmail_qfiles::layout::parse_number;
use std::io::{self, BufRead, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// A `pid/` file this old belongs to a writer that is certainly gone (qmail's 36 hours:
/// longer than rqmail-queue's 24-hour watchdog).
const OSSIFIED: Duration = Duration::from_secs(129_600);
/// An unlocked `pid/` file older than this was left by a writer killed mid-way.
const ABANDONED: Duration = Duration::from_secs(60);
/// Scan `pid/` every this many requests.
const SCAN_EVERY: u32 = 30;

/// Removes a file; a file already gone is fine.
fn unlink(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn answer(queue: &Queue, request: &[u8]) -> u8 {
    // 7..100 bytes with the NUL, a known prefix, then a decimal number.
    if request.len() < 6 || request.len() > 99 {
        return b'x';
    }
    let Ok(text) = std::str::from_utf8(request) else {
        return b'x';
    };
    let (kind, number) = text.split_at(5);
    let Some(n) = parse_number(number) else {
        return b'x';
    };
    let result = match kind {
        "foop/" => unlink(&queue.path("intd", n)).and_then(|()| unlink(&queue.path("mess", n))),
        "todo/" => unlink(&queue.path("intd", n)).and_then(|()| unlink(&queue.path("todo", n))),
        _ => return b'x',
    };
    if result.is_ok() { b'+' } else { b'!' }
}

/// Removes `pid/` files that no live rqmail-queue holds: unlocked and a minute old, or
/// older than any writer could live.
fn scan_pid(queue: &Queue) {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(dir) = std::fs::read_dir(queue.root().join("pid")) else {
        return;
    };
    let now = SystemTime::now();
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let abandoned = age > ABANDONED
            && std::fs::File::open(&path)
                .ok()
                .map(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok())
                .unwrap_or(false);
        if abandoned || age > OSSIFIED {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn main() -> ExitCode {
    let home = match rqmail_control::home() {
        Ok(h) => h,
        Err(e) => {
            rqmail_log::line(&format!("rqmail-clean: fatal: unable to find home: {e}"));
            return ExitCode::from(EXIT_TEMPORARY);
        }
    };
    let queue = Queue::new(&home);
    scan_pid(&queue);
    // fd 0 through a buffer of our own, to see whether more requests are already waiting.
    let mut input = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => io::BufReader::new(std::fs::File::from(fd)),
        Err(_) => return ExitCode::from(EXIT_TEMPORARY),
    };
    let mut output = io::stdout().lock();
    let mut request = Vec::with_capacity(128);
    let mut count = 0u32;
    loop {
        request.clear();
        // Requests are bounded: anything past 100 bytes is answered `x` when its NUL comes.
        match io::Read::take(&mut input, 4096).read_until(0, &mut request) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(_) => return ExitCode::from(EXIT_TEMPORARY),
        }
        if request.last() != Some(&0) {
            if request.len() < 4096 {
                return ExitCode::SUCCESS; // EOF inside a request: send is gone
            }
            let _ = input.skip_until(0);
            request.clear();
            request.push(b'!');
        } else {
            request.pop();
        }
        let reply = answer(&queue, &request);
        // rqmail-send may send many requests at once: their answers go out together, when
        // no whole request is left in the buffer (so always before a read that may wait).
        let written = output.write_all(&[reply]).and_then(|()| {
            if !input.buffer().contains(&0) {
                output.flush()
            } else {
                Ok(())
            }
        });
        if written.is_err() {
            return ExitCode::SUCCESS;
        }
        count += 1;
        if count.is_multiple_of(SCAN_EVERY) {
            let _ = output.flush();
            scan_pid(&queue);
        }
    }
}
