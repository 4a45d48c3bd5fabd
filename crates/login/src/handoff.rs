//! The channel between rqmail-login's two halves and its wire format: the front sends
//! `user\0password\0` up a pipe; a refusal comes back as one status byte, a login as output.
//! For IMAP the message is `user\0password\0tag\0`: the post-login program answers the
//! login command itself, so the root half gives it the command's tag (`IMAPLOGINTAG`).
//!
//! The root half answers each message in one of two ways. A failure is one byte on the
//! status pipe ([`REFUSED`] or [`TEMPORARY`]). A success is not reported at all: the
//! post-login program (rqmail-pop3d, running as the user) writes its first reply on the
//! session socket, and the front takes any byte there as the login having worked. Once
//! the session runs, the status pipe becoming readable (a byte, or end of file when the
//! root half exits) means the post-login program has ended.

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::{self, PipeReader, PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Most bytes of `user\0password\0`: with the empty timestamp the root half appends,
/// checkpassword gets at most the 512 its interface allows.
pub const MAX_CREDENTIALS: usize = 511;
/// Longest IMAP tag the front passes on (and the root half accepts).
pub const MAX_TAG: usize = 64;
/// Login attempts per connection; both halves count them.
pub const MAX_ATTEMPTS: u32 = 3;
/// Status byte: checkpassword refused the login (wrong user or password).
pub const REFUSED: u8 = b'F';
/// Status byte: checkpassword could not decide (exit 111 or 2, crashed, or not runnable).
pub const TEMPORARY: u8 = b'T';

/// Bytes that held a password: overwritten when dropped.
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
}

impl std::ops::Deref for Secret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the writes from being optimised away as dead stores.
        std::hint::black_box(&mut self.0);
    }
}

/// True for an IMAP tag both halves accept: 1 to [`MAX_TAG`] ASTRING-CHARs other than
/// `+` (RFC 3501 §9): printable ASCII without space, `(`, `)`, `{`, `%`, `*`, `"` or `\\`.
pub fn valid_tag(tag: &[u8]) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b))
}

/// A login name and password, already in the wire format.
pub struct Credentials {
    message: Secret,
    user_len: usize,
}

impl Credentials {
    /// `None` if either is empty, holds a NUL, or together they exceed [`MAX_CREDENTIALS`].
    pub fn new(user: &[u8], password: &[u8]) -> Option<Credentials> {
        if user.is_empty() || password.is_empty() || user.contains(&0) || password.contains(&0) {
            return None;
        }
        if user.len() + password.len() + 2 > MAX_CREDENTIALS {
            return None;
        }
        let mut message = Vec::with_capacity(user.len() + password.len() + 2);
        message.extend_from_slice(user);
        message.push(0);
        message.extend_from_slice(password);
        message.push(0);
        Some(Credentials {
            message: Secret(message),
            user_len: user.len(),
        })
    }

    /// IMAP's form, `user\0password\0tag\0`; `None` also for a tag [`valid_tag`] refuses.
    pub fn with_tag(user: &[u8], password: &[u8], tag: &[u8]) -> Option<Credentials> {
        if !valid_tag(tag) {
            return None;
        }
        let mut credentials = Credentials::new(user, password)?;
        credentials.message.0.extend_from_slice(tag);
        credentials.message.0.push(0);
        Some(credentials)
    }

    /// The login name.
    pub fn user(&self) -> &[u8] {
        &self.message[..self.user_len]
    }
}

/// What became of one attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Logged in: the post-login program's first output (its reply to PASS or AUTH).
    Accepted(Vec<u8>),
    /// Wrong user or password.
    Refused,
    /// checkpassword could not decide; the client may retry later.
    Temporary,
    /// The root half went away, or the post-login program ended without a word.
    Gone,
}

/// The front's ends of the channel.
pub struct Handoff {
    credentials: PipeWriter,
    status: PipeReader,
    session: UnixStream,
}

/// The root half's ends of the channel.
pub struct RootEnds {
    /// Where credentials arrive.
    pub credentials: PipeReader,
    /// Where failures are reported.
    pub status: PipeWriter,
    /// The post-login program's stdin and stdout.
    pub session: UnixStream,
}

/// Makes the two pipes and the socket pair (all close-on-exec), before the fork.
pub fn channel() -> io::Result<(Handoff, RootEnds)> {
    let (credentials_read, credentials_write) = io::pipe()?;
    let (status_read, status_write) = io::pipe()?;
    let (front, root) = UnixStream::pair()?;
    Ok((
        Handoff {
            credentials: credentials_write,
            status: status_read,
            session: front,
        },
        RootEnds {
            credentials: credentials_read,
            status: status_write,
            session: root,
        },
    ))
}

impl Handoff {
    /// Sends one attempt to the root half and waits (at most `timeout`) for its outcome.
    pub fn attempt(&mut self, credentials: Credentials, timeout: Duration) -> io::Result<Verdict> {
        // One write of at most 511 + 65 bytes: atomic on a pipe (PIPE_BUF is at least 512
        // by POSIX, 4096 on Linux), so the root half reads it whole.
        match self.credentials.write_all(&credentials.message) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Verdict::Gone),
            Err(e) => return Err(e),
        }
        drop(credentials);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer to login",
                ));
            }
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [
                PollFd::new(self.session.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.status.as_fd(), PollFlags::POLLIN),
            ];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            let (session_ready, status_ready) = (ready(&fds[0]), ready(&fds[1]));
            // Output from the session wins over a status byte: a post-login program that
            // replied and then failed at once has still answered the client.
            if session_ready {
                let mut first = vec![0; 4096];
                let n = loop {
                    match self.session.read(&mut first) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                if n > 0 {
                    first.truncate(n);
                    return Ok(Verdict::Accepted(first));
                }
                // End of file: the root half has exited, after writing its last status
                // byte (if any); the read below returns at once.
            }
            if session_ready || status_ready {
                let mut byte = [0u8; 1];
                return Ok(match self.status.read(&mut byte)? {
                    0 => Verdict::Gone,
                    _ if byte[0] == REFUSED => Verdict::Refused,
                    _ => Verdict::Temporary,
                });
            }
        }
    }

    /// The session socket and the status pipe, for the relay.
    pub fn into_session(self) -> (UnixStream, PipeReader) {
        (self.session, self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_checked_for_emptiness_nuls_and_length() {
        let c = Credentials::new(b"joe", b"secret").unwrap();
        assert_eq!(c.user(), b"joe");
        assert_eq!(&*c.message, b"joe\0secret\0");
        assert!(Credentials::new(b"", b"secret").is_none());
        assert!(Credentials::new(b"joe", b"").is_none());
        assert!(Credentials::new(b"jo\0e", b"secret").is_none());
        assert!(Credentials::new(b"joe", b"sec\0ret").is_none());
        let long = vec![b'p'; MAX_CREDENTIALS - 5];
        assert!(Credentials::new(b"joe", &long).is_some());
        assert!(Credentials::new(b"joe", &long[..long.len() - 1]).is_some());
        let longer = vec![b'p'; MAX_CREDENTIALS - 4];
        assert!(Credentials::new(b"joe", &longer).is_none());
    }

    #[test]
    fn imap_credentials_carry_a_valid_tag() {
        let c = Credentials::with_tag(b"joe", b"secret", b"a001").unwrap();
        assert_eq!(&*c.message, b"joe\0secret\0a001\0");
        assert_eq!(c.user(), b"joe");
        assert!(valid_tag(b"A]1.x"));
        for bad in [
            &b""[..],
            b"a+",
            b"a b",
            b"a{",
            b"a\"",
            b"a\\",
            b"a*",
            b"a\0",
            b"\xc3\xa9",
        ] {
            assert!(!valid_tag(bad), "{bad:?}");
            assert!(Credentials::with_tag(b"joe", b"secret", bad).is_none());
        }
        assert!(valid_tag(&[b't'; MAX_TAG]));
        assert!(!valid_tag(&[b't'; MAX_TAG + 1]));
        assert!(Credentials::with_tag(b"", b"secret", b"a").is_none());
    }

    #[test]
    fn session_output_means_success_and_a_status_byte_failure() {
        let (mut front, root) = channel().unwrap();
        let RootEnds {
            mut credentials,
            mut status,
            mut session,
        } = root;
        let timeout = Duration::from_secs(5);
        status.write_all(&[REFUSED]).unwrap();
        let c = Credentials::new(b"joe", b"wrong").unwrap();
        assert_eq!(front.attempt(c, timeout).unwrap(), Verdict::Refused);
        let mut got = [0u8; 64];
        let n = credentials.read(&mut got).unwrap();
        assert_eq!(&got[..n], b"joe\0wrong\0");
        status.write_all(&[TEMPORARY]).unwrap();
        let c = Credentials::new(b"joe", b"secret").unwrap();
        assert_eq!(front.attempt(c, timeout).unwrap(), Verdict::Temporary);
        session.write_all(b"+OK \r\n").unwrap();
        status.write_all(&[REFUSED]).unwrap();
        let c = Credentials::new(b"joe", b"secret").unwrap();
        assert_eq!(
            front.attempt(c, timeout).unwrap(),
            Verdict::Accepted(b"+OK \r\n".to_vec())
        );
        // The refusal still unread above, then the root half's exit: the byte counts.
        drop((status, session));
        let c = Credentials::new(b"joe", b"secret").unwrap();
        assert_eq!(front.attempt(c, timeout).unwrap(), Verdict::Refused);
        let c = Credentials::new(b"joe", b"secret").unwrap();
        assert_eq!(front.attempt(c, timeout).unwrap(), Verdict::Gone);
    }
}
