//! A server's client connection: fds 0 and 1, plain or TLS, with a read timeout, a bounded
//! line reader and output that is flushed only before waiting for input (PIPELINING).

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustls::ServerConnection;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

/// A line read from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line without its CRLF (or bare LF).
    Text(Vec<u8>),
    /// The line was longer than allowed; it was read and thrown away.
    TooLong,
    /// The client closed the connection.
    Eof,
}

/// What the relay takes over once the client has logged in.
pub struct Parts {
    /// The client's input (fd 0).
    pub input: File,
    /// The client's output (fd 1).
    pub output: File,
    /// The TLS session, if there is one.
    pub tls: Option<ServerConnection>,
    /// Bytes the client sent ahead of the login's reply (pipelined commands): they belong
    /// to the post-login program.
    pub pending: Vec<u8>,
}

/// One client connection.
pub struct Conn {
    input: File,
    output: File,
    tls: Option<ServerConnection>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    timeout: Duration,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timeout")
}

/// Waits until `file` is readable, for at most `timeout`.
pub fn wait_readable(file: &impl AsFd, timeout: Duration) -> io::Result<()> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Err(timed_out()),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Conn {
    /// Wraps the two descriptors. Where the output is a socket it gets a send timeout too,
    /// so a client that never reads its replies cannot hold the process forever.
    pub fn new(input: File, output: File, timeout: Duration) -> Conn {
        let tv = nix::sys::time::TimeVal::new(timeout.as_secs().min(i64::MAX as u64) as i64, 0);
        let _ = nix::sys::socket::setsockopt(&output, nix::sys::socket::sockopt::SendTimeout, &tv);
        Conn {
            input,
            output,
            tls: None,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            out: Vec::with_capacity(4096),
            timeout,
        }
    }

    fn wait_readable(&self) -> io::Result<()> {
        wait_readable(&self.input, self.timeout)
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Throws away whatever the client sent ahead (used right after STARTTLS, so that
    /// plaintext pipelined behind it can never be taken as sent inside TLS).
    pub fn discard_buffered(&mut self) -> usize {
        let n = self.end - self.start;
        self.buf.fill(0);
        self.start = 0;
        self.end = 0;
        n
    }

    /// Overwrites the input already consumed (it may have held a password).
    pub fn wipe_consumed(&mut self) {
        self.buf[..self.start].fill(0);
    }

    /// Reads more input (flushing pending output first). Returns 0 at end of input.
    pub fn fill(&mut self) -> io::Result<usize> {
        self.flush()?;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            if let Some(tls) = self.tls.as_mut() {
                match tls.reader().read(&mut self.buf[self.end..]) {
                    Ok(n) => {
                        self.end += n;
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                self.wait_readable()?;
                let tls = self
                    .tls
                    .as_mut()
                    .ok_or_else(|| io::Error::other("no tls"))?;
                if tls.read_tls(&mut self.input)? == 0 {
                    return Ok(0);
                }
                if let Err(e) = tls.process_new_packets() {
                    let _ = tls.write_tls(&mut self.output);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                continue;
            }
            self.wait_readable()?;
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one line of at most `max` bytes (line end excluded). A CR before the LF is
    /// dropped; a longer line is consumed to its end and reported as `TooLong`.
    pub fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut too_long = false;
        loop {
            let data = &self.buf[self.start..self.end];
            if let Some(i) = data.iter().position(|&b| b == b'\n') {
                let mut line = data[..i].to_vec();
                self.start += i + 1;
                if too_long || line.len() > max + 1 {
                    return Ok(Line::TooLong);
                }
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(line));
            }
            if data.len() > max + 1 {
                // Keep reading to the end of this line, but do not keep it.
                too_long = true;
                self.start = self.end;
            }
            if self.fill()? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Queues output; it is sent by `flush`, or before the next read.
    pub fn write(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Sends all queued output.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        match self.tls.as_mut() {
            Some(tls) => {
                tls.writer().write_all(&self.out)?;
                self.out.clear();
                while tls.wants_write() {
                    tls.write_tls(&mut self.output)?;
                }
            }
            None => {
                self.output.write_all(&self.out)?;
                self.out.clear();
            }
        }
        Ok(())
    }

    /// True once TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Runs the TLS handshake as the server, over the raw descriptors.
    pub fn start_tls(&mut self, config: Arc<rustls::ServerConfig>) -> io::Result<()> {
        self.flush()?;
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            while tls.wants_write() {
                tls.write_tls(&mut self.output)?;
            }
            if !tls.is_handshaking() {
                break;
            }
            if tls.wants_read() {
                self.wait_readable()?;
                if tls.read_tls(&mut self.input)? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "eof in handshake",
                    ));
                }
                if let Err(e) = tls.process_new_packets() {
                    let _ = tls.write_tls(&mut self.output);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
        while tls.wants_write() {
            tls.write_tls(&mut self.output)?;
        }
        self.tls = Some(tls);
        Ok(())
    }

    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384`, for the Received line and logs.
    pub fn tls_description(&self) -> Option<String> {
        let tls = self.tls.as_ref()?;
        let version = tls
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let suite = tls
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        Some(format!("{} {}", version.replace("TLSv1_", "TLSv1."), suite))
    }

    /// Sends a TLS close_notify where TLS is active, then flushes.
    pub fn close(&mut self) {
        let _ = self.flush();
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            while tls.wants_write() {
                if tls.write_tls(&mut self.output).is_err() {
                    break;
                }
            }
        }
    }

    /// Hands the connection to the relay: queued output is sent first, and input already
    /// read but not consumed goes along.
    pub fn into_parts(mut self) -> io::Result<Parts> {
        self.flush()?;
        let pending = self.buf[self.start..self.end].to_vec();
        self.buf.fill(0);
        Ok(Parts {
            input: self.input,
            output: self.output,
            tls: self.tls,
            pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_with_input(input: &[u8]) -> Conn {
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(input).unwrap();
        drop(writer);
        let out = File::create("/dev/null").unwrap();
        Conn::new(
            File::from(std::os::fd::OwnedFd::from(reader)),
            out,
            Duration::from_secs(5),
        )
    }

    #[test]
    fn reads_lines_and_reports_overlong_ones_without_keeping_them() {
        let long = vec![b'a'; 300];
        let mut input = b"USER joe\r\nbare lf\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\r\nNOOP\r\nrest");
        let mut conn = conn_with_input(&input);
        assert_eq!(
            conn.read_line(255).unwrap(),
            Line::Text(b"USER joe".to_vec())
        );
        assert_eq!(
            conn.read_line(255).unwrap(),
            Line::Text(b"bare lf".to_vec())
        );
        assert_eq!(conn.read_line(255).unwrap(), Line::TooLong);
        assert_eq!(conn.read_line(255).unwrap(), Line::Text(b"NOOP".to_vec()));
        let parts = conn.into_parts().unwrap();
        assert_eq!(parts.pending, b"rest");
    }

    #[test]
    fn discarding_drops_everything_read_ahead() {
        let mut conn = conn_with_input(b"STLS\r\nUSER x\r\n");
        assert_eq!(conn.read_line(255).unwrap(), Line::Text(b"STLS".to_vec()));
        assert_eq!(conn.discard_buffered(), 8);
        assert_eq!(conn.read_line(255).unwrap(), Line::Eof);
    }
}
