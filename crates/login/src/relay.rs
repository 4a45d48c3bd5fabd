//! After login: relays bytes both ways between the client (plain or TLS) and the socket of
//! the post-login program, without blocking on either side, until the session ends.
//!
//! Memory stays bounded: the front reads from one side only once what it read before has
//! been passed on to the other (rustls holds at most its own buffer limit besides).

use crate::conn::Parts;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustls::ServerConnection;
use std::fs::File;
use std::io::{self, PipeReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Bytes read from either side at a time.
const CHUNK: usize = 16 * 1024;
/// How long the last replies and TLS's close_notify may take to reach the client.
const LINGER: Duration = Duration::from_secs(10);

/// How a relayed session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The post-login program ended (after QUIT, or on its own).
    SessionEnded,
    /// The client closed the connection or could no longer be written to.
    ClientGone,
    /// Neither side sent anything for the whole timeout.
    Timeout,
    /// The client broke the TLS protocol, or a system call failed.
    Failed(String),
}

fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The relay's state: what each side has sent that the other has not yet taken.
struct Relay {
    input: File,
    output: File,
    tls: Option<ServerConnection>,
    session: UnixStream,
    /// Client to post-login program.
    up: Vec<u8>,
    /// Post-login program to client (plain connections; with TLS it goes into rustls).
    down: Vec<u8>,
    /// The client will send nothing more.
    client_eof: bool,
    /// The TCP connection reached end of file (TLS: rustls still reports what came before).
    tcp_eof: bool,
    /// The post-login program will send nothing more.
    session_eof: bool,
    /// The root half said the post-login program has exited.
    session_over: bool,
    /// The post-login program's input has been shut down.
    shut: bool,
}

/// Relays until the session ends; `first` is what the post-login program already said.
pub fn relay(
    parts: Parts,
    session: UnixStream,
    status: PipeReader,
    first: Vec<u8>,
    timeout: Duration,
) -> End {
    let mut relay = Relay {
        input: parts.input,
        output: parts.output,
        tls: parts.tls,
        session,
        up: parts.pending,
        down: first,
        client_eof: false,
        tcp_eof: false,
        session_eof: false,
        session_over: false,
        shut: false,
    };
    let end = match relay.run(&status, timeout) {
        Ok(end) => end,
        Err(e) => End::Failed(e.to_string()),
    };
    relay.finish();
    end
}

impl Relay {
    fn run(&mut self, status: &PipeReader, timeout: Duration) -> io::Result<End> {
        for fd in [
            self.input.as_fd(),
            self.output.as_fd(),
            self.session.as_fd(),
        ] {
            set_nonblocking(&fd)?;
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            self.shuffle(&mut buf)?;
            if self.session_eof && !self.client_output_pending() {
                return Ok(if self.client_eof {
                    End::ClientGone
                } else {
                    End::SessionEnded
                });
            }
            let client_in = !self.tcp_eof && !self.client_eof && self.up.is_empty();
            let client_out = self.client_output_pending();
            let session_in = !self.session_eof && self.down.is_empty();
            let session_out = !self.up.is_empty();
            let mut fds = Vec::with_capacity(4);
            let mut slots = [None; 4];
            for (slot, (wanted, fd, flags)) in [
                (client_in, self.input.as_fd(), PollFlags::POLLIN),
                (client_out, self.output.as_fd(), PollFlags::POLLOUT),
                (
                    session_in || session_out,
                    self.session.as_fd(),
                    (if session_in {
                        PollFlags::POLLIN
                    } else {
                        PollFlags::empty()
                    }) | (if session_out {
                        PollFlags::POLLOUT
                    } else {
                        PollFlags::empty()
                    }),
                ),
                (!self.session_over, status.as_fd(), PollFlags::POLLIN),
            ]
            .into_iter()
            .enumerate()
            {
                if wanted {
                    slots[slot] = Some(fds.len());
                    fds.push(PollFd::new(fd, flags));
                }
            }
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => return Ok(End::Timeout),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<bool> = slots
                .iter()
                .map(|s| s.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty())))
                .collect();
            drop(fds);
            if ready[3] {
                // The program has exited: what it wrote is all in the socket already.
                self.session_over = true;
            }
            if ready[0] {
                self.read_client(&mut buf)?;
            }
            if ready[1] && self.write_client().is_err() {
                return Ok(End::ClientGone);
            }
            if ready[2] {
                if session_in {
                    self.read_session(&mut buf);
                }
                if session_out {
                    self.write_session();
                }
            }
            if self.client_eof && self.session_eof {
                return Ok(End::ClientGone);
            }
        }
    }

    /// Moves data between the buffers and rustls without waiting: TLS plaintext into `up`,
    /// `down` into TLS; shuts the program's input once the client has finished.
    fn shuffle(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            while !self.client_eof && self.up.len() < CHUNK {
                match tls.reader().read(buf) {
                    Ok(0) => self.client_eof = true,
                    Ok(n) => self.up.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Closed without close_notify: the same end for the session.
                    Err(_) => self.client_eof = true,
                }
            }
            if !self.down.is_empty() {
                // rustls takes what fits under its buffer limit; the rest waits.
                let n = tls.writer().write(&self.down)?;
                self.down.drain(..n);
            }
        }
        if self.session_over && !self.session_eof && self.down.is_empty() {
            // No need to wait: the program is gone, so nothing more can arrive.
            self.read_session(buf);
            if self.down.is_empty() {
                self.session_eof = true;
            }
        }
        if self.client_eof && self.up.is_empty() && !self.shut {
            let _ = self.session.shutdown(std::net::Shutdown::Write);
            self.shut = true;
        }
        Ok(())
    }

    fn client_output_pending(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.wants_write() || !self.down.is_empty(),
            None => !self.down.is_empty(),
        }
    }

    fn read_client(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => match tls.read_tls(&mut self.input) {
                Ok(0) => self.tcp_eof = true,
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Tell the client why (an alert), then give up.
                        let _ = tls.write_tls(&mut self.output);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if would_block(&e) => {}
                Err(_) => self.tcp_eof = true,
            },
            None => match self.input.read(buf) {
                Ok(0) => self.client_eof = true,
                Ok(n) => self.up.extend_from_slice(&buf[..n]),
                Err(e) if would_block(&e) => {}
                Err(_) => self.client_eof = true,
            },
        }
        Ok(())
    }

    fn write_client(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => {
                while tls.wants_write() {
                    match tls.write_tls(&mut self.output) {
                        Ok(_) => {}
                        Err(e) if would_block(&e) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            None => match self.output.write(&self.down) {
                Ok(n) => {
                    self.down.drain(..n);
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            },
        }
        Ok(())
    }

    fn read_session(&mut self, buf: &mut [u8]) {
        match self.session.read(buf) {
            Ok(0) => self.session_eof = true,
            Ok(n) => self.down.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => {}
            Err(_) => self.session_eof = true,
        }
    }

    fn write_session(&mut self) {
        match self.session.write(&self.up) {
            Ok(n) => {
                self.up.drain(..n);
            }
            Err(e) if would_block(&e) => {}
            // The program stopped reading (it exited or closed its input): whatever the
            // client sends now has nowhere to go.
            Err(_) => {
                self.up.clear();
                self.session_eof = true;
            }
        }
    }

    /// Sends what is still queued for the client and TLS's close_notify, waiting at most
    /// [`LINGER`] for a slow client.
    fn finish(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            if !self.down.is_empty()
                && let Ok(n) = tls.writer().write(&self.down)
            {
                self.down.drain(..n);
            }
            tls.send_close_notify();
        }
        let deadline = Instant::now() + LINGER;
        while self.client_output_pending() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let mut fds = [PollFd::new(self.output.as_fd(), PollFlags::POLLOUT)];
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => return,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
            if self.write_client().is_err() {
                return;
            }
            if let Some(tls) = self.tls.as_mut()
                && !self.down.is_empty()
                && let Ok(n) = tls.writer().write(&self.down)
            {
                self.down.drain(..n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    /// The client as a socket pair: the relay gets one end as fd 0 and fd 1.
    fn client() -> (UnixStream, Parts) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fd = OwnedFd::from(theirs);
        let parts = Parts {
            input: File::from(fd.try_clone().unwrap()),
            output: File::from(fd),
            tls: None,
            pending: b"STAT\r\n".to_vec(),
        };
        (ours, parts)
    }

    #[test]
    fn relays_both_ways_until_the_program_ends() {
        let (mut client, parts) = client();
        let (session, mut program) = UnixStream::pair().unwrap();
        let (status, status_write) = io::pipe().unwrap();
        let handle = std::thread::spawn(move || {
            relay(
                parts,
                session,
                status,
                b"+OK hi\r\n".to_vec(),
                Duration::from_secs(10),
            )
        });
        // What the client pipelined behind PASS reaches the program first.
        let mut got = [0u8; 6];
        program.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"STAT\r\n");
        // A large reply passes through intact, without the relay holding it all.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let mut program = program.try_clone().unwrap();
            let big = big.clone();
            std::thread::spawn(move || {
                program.write_all(&big).unwrap();
            })
        };
        let mut received = vec![0u8; 8 + big.len()];
        client.read_exact(&mut received).unwrap();
        writer.join().unwrap();
        assert_eq!(&received[..8], b"+OK hi\r\n");
        assert!(received[8..] == big[..]);
        client.write_all(b"QUIT\r\n").unwrap();
        let mut got = [0u8; 6];
        program.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"QUIT\r\n");
        program.write_all(b"+OK bye\r\n").unwrap();
        drop(program);
        drop(status_write);
        assert_eq!(handle.join().unwrap(), End::SessionEnded);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"+OK bye\r\n");
    }

    #[test]
    fn a_status_byte_ends_the_session_even_while_the_socket_stays_open() {
        let (mut client, parts) = client();
        let (session, program) = UnixStream::pair().unwrap();
        let (status, mut status_write) = io::pipe().unwrap();
        let handle = std::thread::spawn(move || {
            relay(
                parts,
                session,
                status,
                b"-ERR no maildir\r\n".to_vec(),
                Duration::from_secs(10),
            )
        });
        status_write.write_all(b"F").unwrap();
        assert_eq!(handle.join().unwrap(), End::SessionEnded);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"-ERR no maildir\r\n");
        drop(program);
    }

    #[test]
    fn the_client_leaving_shuts_the_programs_input() {
        let (client, parts) = client();
        let (session, mut program) = UnixStream::pair().unwrap();
        let (status, status_write) = io::pipe().unwrap();
        let handle = std::thread::spawn(move || {
            relay(parts, session, status, Vec::new(), Duration::from_secs(10))
        });
        drop(client);
        let mut input = Vec::new();
        program.read_to_end(&mut input).unwrap();
        assert_eq!(input, b"STAT\r\n");
        drop(program);
        assert_eq!(handle.join().unwrap(), End::ClientGone);
        drop(status_write);
    }

    #[test]
    fn an_idle_session_times_out() {
        let (_client, parts) = client();
        let (session, _program) = UnixStream::pair().unwrap();
        let (status, _status_write) = io::pipe().unwrap();
        let end = relay(
            parts,
            session,
            status,
            Vec::new(),
            Duration::from_millis(200),
        );
        assert_eq!(end, End::Timeout);
    }
}
