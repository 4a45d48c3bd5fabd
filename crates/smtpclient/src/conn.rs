//! The connection to the server: plain or TLS over one TCP socket, replies read with a
//! deadline from a bounded buffer, writes with a timeout.

use crate::reply::{self, Parsed, Reply};
use rustls::ClientConnection;
use rustls_pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the connection is no longer usable.
#[derive(Debug)]
pub enum Died {
    /// No reply (or no progress writing) within the stage's timeout.
    Timeout,
    /// The server closed the connection.
    Closed,
    /// The server sent something that is not an SMTP reply.
    Malformed,
    /// A socket or TLS error.
    Io(io::Error),
}

impl std::fmt::Display for Died {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Died::Timeout => write!(f, "timed out"),
            Died::Closed => write!(f, "closed by the server"),
            Died::Malformed => write!(f, "the reply was not SMTP"),
            Died::Io(e) => write!(f, "{e}"),
        }
    }
}

fn io_died(e: io::Error) -> Died {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Died::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Died::Closed,
        _ => Died::Io(e),
    }
}

/// A socket timeout of zero means "none" to the kernel, so the shortest is 1 ms.
fn at_least_a_millisecond(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// One connection.
pub struct Conn {
    sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    /// Wraps a connected socket.
    pub fn new(sock: TcpStream) -> Conn {
        Conn {
            sock,
            tls: None,
            buf: vec![0; 8192],
            start: 0,
            end: 0,
        }
    }

    /// Reads one reply, waiting at most `timeout` for all of it.
    pub fn read_reply(&mut self, timeout: Duration) -> Result<Reply, Died> {
        let deadline = Instant::now() + timeout;
        loop {
            match reply::parse(&self.buf[self.start..self.end]) {
                Parsed::Complete(reply, used) => {
                    self.start += used;
                    return Ok(reply);
                }
                Parsed::Malformed => return Err(Died::Malformed),
                Parsed::Incomplete => self.fill(deadline)?,
            }
        }
    }

    /// Reads more bytes into the buffer (at least one) before `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), Died> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Bounded: a reply longer than MAX_REPLY is refused before the buffer grows more.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Died::Timeout);
            }
            self.sock
                .set_read_timeout(Some(at_least_a_millisecond(left)))
                .map_err(Died::Io)?;
            let Some(tls) = self.tls.as_mut() else {
                match self.sock.read(&mut self.buf[self.end..]) {
                    Ok(0) => return Err(Died::Closed),
                    Ok(n) => {
                        self.end += n;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_died(e)),
                }
            };
            match tls.reader().read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(Died::Closed),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io_died(e)),
            }
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Err(Died::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_died(e)),
            }
            if let Err(e) = tls.process_new_packets() {
                let _ = tls.write_tls(&mut self.sock);
                return Err(Died::Io(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }

    /// Sends `bytes`, each write to the socket allowed `timeout`.
    pub fn send(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), Died> {
        self.sock
            .set_write_timeout(Some(at_least_a_millisecond(timeout)))
            .map_err(Died::Io)?;
        let Some(tls) = self.tls.as_mut() else {
            return self.sock.write_all(bytes).map_err(io_died);
        };
        let mut rest = bytes;
        loop {
            while tls.wants_write() {
                tls.write_tls(&mut self.sock).map_err(io_died)?;
            }
            if rest.is_empty() {
                return Ok(());
            }
            // rustls takes what fits under its buffer limit; the loop sends it and goes on.
            let n = tls.writer().write(rest).map_err(io_died)?;
            rest = &rest[n..];
        }
    }

    /// Throws away whatever the server sent after the reply just read. Used after the 220
    /// to STARTTLS: plaintext the server (or a man in the middle) pipelined behind it must
    /// never be taken as a reply sent inside TLS (CVE-2011-0411, client side).
    pub fn discard_buffered(&mut self) -> usize {
        let n = self.end - self.start;
        self.start = 0;
        self.end = 0;
        n
    }

    /// Runs the TLS handshake as the client over the raw socket.
    pub fn start_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut tls = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        self.sock
            .set_write_timeout(Some(at_least_a_millisecond(timeout)))
            .map_err(|e| e.to_string())?;
        loop {
            while tls.wants_write() {
                tls.write_tls(&mut self.sock)
                    .map_err(|e| Died::Io(e).to_string())?;
            }
            if !tls.is_handshaking() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Died::Timeout.to_string());
            }
            self.sock
                .set_read_timeout(Some(at_least_a_millisecond(left)))
                .map_err(|e| e.to_string())?;
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Err(Died::Closed.to_string()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_died(e).to_string()),
            }
            if let Err(e) = tls.process_new_packets() {
                // Tell the server why (the alert), then give up on this connection.
                let _ = tls.write_tls(&mut self.sock);
                return Err(e.to_string());
            }
        }
        self.tls = Some(Box::new(tls));
        Ok(())
    }

    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384` once TLS is active.
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

    /// Sends QUIT and closes without waiting for the reply (qmail: "waiting for remote
    /// side is just too ridiculous").
    pub fn quit(mut self, timeout: Duration) {
        let _ = self.send(b"QUIT\r\n", timeout);
        self.close();
    }

    /// Closes: a TLS close_notify where TLS is active, then the socket.
    pub fn close(mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            while tls.wants_write() {
                if tls.write_tls(&mut self.sock).is_err() {
                    break;
                }
            }
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}
