//! Timeouts on a session's descriptors (rqmail-pop3d, rqmail-imapd): input whose reads give
//! up after an idle timeout, and output that gives up on a client that stops reading.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::Duration;

/// A descriptor read with a timeout: a read that waits longer fails with `TimedOut`.
#[derive(Debug)]
pub struct TimedInput {
    fd: File,
    timeout: Duration,
}

impl TimedInput {
    /// Wraps `fd` (fd 0 for a session).
    pub fn new(fd: File, timeout: Duration) -> TimedInput {
        TimedInput { fd, timeout }
    }
}

impl Read for TimedInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("idle for {} seconds", self.timeout.as_secs()),
                    ));
                }
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.fd.read(buf)
    }
}

/// Where `output` is a socket, makes a write that cannot progress for `timeout` fail
/// instead of blocking forever. Anything else (a pipe, a file in tests) is left as it is.
pub fn set_send_timeout(output: &File, timeout: Duration) {
    let secs = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
    let tv = nix::sys::time::TimeVal::new(secs, 0);
    let _ = nix::sys::socket::setsockopt(output, nix::sys::socket::sockopt::SendTimeout, &tv);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    #[test]
    fn a_silent_peer_times_out_and_data_is_read() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut input = TimedInput::new(File::from(r), Duration::from_millis(100));
        let mut buf = [0u8; 8];
        let start = Instant::now();
        let e = input.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(100));
        let mut w = File::from(w);
        w.write_all(b"hi").unwrap();
        assert_eq!(input.read(&mut buf).unwrap(), 2);
        drop(w);
        assert_eq!(input.read(&mut buf).unwrap(), 0, "end of input");
    }
}
