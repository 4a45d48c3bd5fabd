//! The client's commands as read off fd 0: lines and literals with bounded sizes and idle
//! timeouts, split into tokens (atoms, strings, parentheses).

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

/// The longest command line (without its literals) we accept.
pub const MAX_LINE: usize = 64 * 1024;
/// The largest literal outside APPEND.
pub const MAX_LITERAL: u64 = 64 * 1024;
/// The largest message APPEND takes.
pub const MAX_APPEND: u64 = 50 * 1024 * 1024;
/// The most a whole command (its lines and literals) may hold outside APPEND's message.
pub const MAX_COMMAND: u64 = 1024 * 1024;

/// Buffered input from the client with a timeout on each wait.
#[derive(Debug)]
pub struct Input {
    fd: File,
    buf: Vec<u8>,
    pos: usize,
    timeout: Duration,
    /// The last bytes of the last line skipped as too long.
    skipped_tail: Vec<u8>,
}

/// How much of a skipped line is kept: enough for a literal's `{n+}`.
const TAIL: usize = 32;

/// Why a command could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client went away, timed out, or reading failed: the session ends.
    Gone(io::Error),
    /// The line was too long (it has been skipped).
    TooLong,
    /// A literal over the limit: synchronizing ones are refused with `NO [TOOBIG]`, and the
    /// client does not send them.
    TooBig {
        /// The command's tag, if the line had one.
        tag: Option<String>,
    },
    /// A non-synchronizing literal over the limit (RFC 7888 §4): its bytes are on their way
    /// and too many to skip, so the session ends after `BAD [TOOBIG]` and `BYE`.
    TooBigNonSync {
        /// The command's tag, if the line had one.
        tag: Option<String>,
    },
}

/// One token of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom (may hold `[...]` sections with spaces and `<...>` partials).
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    /// `(`
    Open,
    /// `)`
    Close,
}

impl Input {
    /// Reads from `fd` (fd 0), giving up after `timeout` without input.
    pub fn new(fd: File, timeout: Duration) -> Input {
        Input {
            fd,
            buf: Vec::new(),
            pos: 0,
            timeout,
            skipped_tail: Vec::new(),
        }
    }

    /// True if input is already buffered.
    pub fn buffered(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The descriptor, for polling.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout")),
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = self.fd.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Reads and throws away what the client is still sending, until it pauses for `quiet`,
    /// closes, or `max` bytes have gone: a session that ends while input is unread would make
    /// the kernel answer the close with a reset, and the client could lose the last
    /// response (the BYE) before reading it.
    pub fn drain(&mut self, max: usize, quiet: Duration) {
        self.buf.clear();
        self.pos = 0;
        let ms = i32::try_from(quiet.as_millis()).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut chunk = [0u8; 16 * 1024];
        let mut gone = 0;
        while gone < max {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => return,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
            match self.fd.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => gone += n,
            }
        }
    }

    /// One line without its CRLF (or LF); `Ok(None)` if it was longer than `max` (skipped:
    /// its last bytes are kept in `skipped_tail`, to tell whether a literal follows).
    pub fn line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut too_long = false;
        self.skipped_tail.clear();
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let end = self.pos + i;
                let mut line = self.buf[self.pos..end].to_vec();
                self.pos = end + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if too_long || line.len() > max {
                    self.skipped_tail.extend_from_slice(&line);
                    let cut = self.skipped_tail.len().saturating_sub(TAIL);
                    self.skipped_tail.drain(..cut);
                    return Ok(None);
                }
                return Ok(Some(line));
            }
            if self.buf.len() - self.pos > max {
                too_long = true;
                let from = self.buf.len().saturating_sub(TAIL).max(self.pos);
                self.skipped_tail.extend_from_slice(&self.buf[from..]);
                let cut = self.skipped_tail.len().saturating_sub(TAIL);
                self.skipped_tail.drain(..cut);
                self.pos = self.buf.len();
            }
            self.fill()?;
        }
    }

    /// Exactly `n` bytes.
    pub fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            self.fill()?;
        }
        let bytes = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(bytes)
    }

    /// Reads one command: the line and its literals, sending `+` for synchronizing ones.
    pub fn command(&mut self, out: &mut impl Write) -> Result<Vec<Token>, ReadError> {
        let mut tokens = Vec::new();
        // Lines ending in literals may go on and on: the command as a whole is bounded too.
        let mut total: u64 = 0;
        loop {
            let line = self.line(MAX_LINE).map_err(ReadError::Gone)?;
            let Some(line) = line else {
                // The bytes of a non-synchronizing literal at the end of the skipped line
                // are on their way: they must not be read as commands.
                if let (_, Some((_, false))) = split_literal(&self.skipped_tail) {
                    return Err(ReadError::TooBigNonSync { tag: None });
                }
                return Err(ReadError::TooLong);
            };
            total += line.len() as u64;
            let (text, literal) = split_literal(&line);
            tokenize(text, &mut tokens);
            if total > MAX_COMMAND {
                let tag = match tokens.first() {
                    Some(Token::Atom(t)) => Some(t.clone()),
                    _ => None,
                };
                return Err(match literal {
                    Some((_, false)) => ReadError::TooBigNonSync { tag },
                    _ => ReadError::TooLong,
                });
            }
            let Some((size, sync)) = literal else {
                return Ok(tokens);
            };
            let limit = match tokens.get(1) {
                Some(Token::Atom(a)) if a.eq_ignore_ascii_case("APPEND") => MAX_APPEND,
                _ => MAX_LITERAL,
            };
            let whole = match tokens.get(1) {
                Some(Token::Atom(a)) if a.eq_ignore_ascii_case("APPEND") => {
                    MAX_APPEND + MAX_COMMAND
                }
                _ => MAX_COMMAND,
            };
            if size > limit || total + size > whole {
                let tag = match tokens.first() {
                    Some(Token::Atom(t)) => Some(t.clone()),
                    _ => None,
                };
                if !sync {
                    return Err(ReadError::TooBigNonSync { tag });
                }
                return Err(ReadError::TooBig { tag });
            }
            if sync {
                out.write_all(b"+ go ahead\r\n")
                    .and_then(|()| out.flush())
                    .map_err(ReadError::Gone)?;
            }
            // size <= MAX_APPEND, so it fits in usize.
            let bytes = self.exact(size as usize).map_err(ReadError::Gone)?;
            total += size;
            tokens.push(Token::Str(bytes));
        }
    }
}

/// Splits a trailing `{n}` or `{n+}` off a line: (text before it, (n, synchronizing)).
fn split_literal(line: &[u8]) -> (&[u8], Option<(u64, bool)>) {
    if line.last() != Some(&b'}') {
        return (line, None);
    }
    let Some(open) = line.iter().rposition(|&b| b == b'{') else {
        return (line, None);
    };
    let inner = &line[open + 1..line.len() - 1];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return (line, None);
    }
    // Leading zeros are allowed (number = 1*DIGIT); a number too large for u64 is a
    // literal over every limit, never text.
    let first = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    let significant = &digits[first..];
    let n = if significant.len() > 19 {
        u64::MAX
    } else {
        significant
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'))
    };
    (&line[..open], Some((n, sync)))
}

/// Splits command text into tokens. `[...]` inside an atom may hold spaces and parentheses.
pub fn tokenize(text: &[u8], tokens: &mut Vec<Token>) {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b' ' => i += 1,
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            b')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    if text[i] == b'\\' && i + 1 < text.len() {
                        i += 1;
                    }
                    s.push(text[i]);
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Str(s));
            }
            _ => {
                let start = i;
                let mut depth = 0;
                while i < text.len() {
                    let b = text[i];
                    if depth == 0 && (b == b' ' || b == b'(' || b == b')') {
                        break;
                    }
                    if b == b'[' {
                        depth += 1;
                    } else if b == b']' && depth > 0 {
                        depth -= 1;
                    }
                    i += 1;
                }
                tokens.push(Token::Atom(
                    String::from_utf8_lossy(&text[start..i]).into_owned(),
                ));
            }
        }
    }
}

/// Waits up to `timeout` for input from the client or for `other` to become readable;
/// returns (client ready, other ready).
pub fn wait_either(
    input: &Input,
    other: BorrowedFd<'_>,
    timeout: Duration,
) -> io::Result<(bool, bool)> {
    if input.buffered() {
        return Ok((true, false));
    }
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut fds = [
        PollFd::new(input.fd(), PollFlags::POLLIN),
        PollFd::new(other, PollFlags::POLLIN),
    ];
    match poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok((false, false)),
        Err(e) => return Err(e.into()),
    }
    let ready = |f: &PollFd| {
        f.revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
        })
    };
    Ok((ready(&fds[0]), ready(&fds[1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_sections_whole() {
        let mut t = Vec::new();
        tokenize(
            b"a1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.10>) \"x\\\"y\"",
            &mut t,
        );
        assert_eq!(
            t,
            vec![
                Token::Atom("a1".into()),
                Token::Atom("FETCH".into()),
                Token::Atom("1:*".into()),
                Token::Open,
                Token::Atom("FLAGS".into()),
                Token::Atom("BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.10>".into()),
                Token::Close,
                Token::Str(b"x\"y".to_vec()),
            ]
        );
    }

    #[test]
    fn literal_markers_are_split_off() {
        assert_eq!(
            split_literal(b"a APPEND x {12}"),
            (&b"a APPEND x "[..], Some((12, true)))
        );
        assert_eq!(
            split_literal(b"a APPEND x {3+}"),
            (&b"a APPEND x "[..], Some((3, false)))
        );
        assert_eq!(split_literal(b"a NOOP {x}"), (&b"a NOOP {x}"[..], None));
        assert_eq!(
            split_literal(b"a NOOP {0000000000000000000010+}"),
            (&b"a NOOP "[..], Some((10, false)))
        );
        assert_eq!(
            split_literal(b"a NOOP {123456789012345678901234}"),
            (&b"a NOOP "[..], Some((u64::MAX, true)))
        );
    }

    /// An `Input` reading `bytes` (written from another thread into a socket pair).
    fn input_of(bytes: Vec<u8>) -> Input {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let _ = b.write_all(&bytes);
        });
        Input::new(
            File::from(std::os::fd::OwnedFd::from(a)),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn a_non_synchronizing_literal_past_the_command_limit_ends_the_session() {
        let mut data = b"a1 SEARCH".to_vec();
        for _ in 0..16 {
            data.extend_from_slice(b" TEXT {65000+}\r\n");
            data.extend(std::iter::repeat_n(b'x', 65000));
        }
        data.extend_from_slice(b" TEXT ");
        data.extend(std::iter::repeat_n(b'y', 60000));
        data.extend_from_slice(b" {10+}\r\nzz1 NOOP\r\n");
        let mut out = Vec::new();
        match input_of(data).command(&mut out) {
            Err(ReadError::TooBigNonSync { tag }) => assert_eq!(tag.as_deref(), Some("a1")),
            other => panic!("{other:?}"),
        }
        // A line too long to keep, ending in {n+}.
        let mut data = b"a2 NOOP ".to_vec();
        data.extend(std::iter::repeat_n(b'x', 70000));
        data.extend_from_slice(b" {10+}\r\nzz2 NOOP\r\n");
        match input_of(data).command(&mut out) {
            Err(ReadError::TooBigNonSync { tag: None }) => {}
            other => panic!("{other:?}"),
        }
        // Too long, without a literal: skipped, and the next command is read.
        let mut data = b"a3 NOOP ".to_vec();
        data.extend(std::iter::repeat_n(b'x', 70000));
        data.extend_from_slice(b"\r\na4 NOOP\r\n");
        let mut input = input_of(data);
        assert!(matches!(input.command(&mut out), Err(ReadError::TooLong)));
        assert_eq!(
            input.command(&mut out).unwrap()[0],
            Token::Atom("a4".into())
        );
    }
}
