//! Messages on the wire for RETR and TOP: stored lines sent with CR LF ends and
//! dot-stuffing, without the whole message or a whole line ever held in memory.

use std::io::{self, Read, Write};

/// Size of the buffer a message is read through.
pub const READ_BUFFER: usize = 64 * 1024;

/// The multi-line terminator (RFC 1939 §3).
pub const END: &[u8] = b".\r\n";

/// Streams the stored message to `out` as RFC 1939 §3 wants it: each line ends in CR LF
/// (a stored LF becomes CR LF; a stored CR LF stays as it is, where qmail-pop3d would send
/// CR CR LF), a line starting with `.` gets one more `.`, and a last line without LF gets
/// CR LF. Other bytes (8-bit, a bare CR) go unchanged. With `body_lines` (TOP), stops after
/// the header, the empty line and that many body lines. The terminator is the caller's.
///
/// Returns the octets of the message sent, dot-stuffing excluded: for a whole message,
/// what [`transmitted_size`] gives and LIST reports.
pub fn send_message(
    message: &mut impl Read,
    out: &mut impl Write,
    body_lines: Option<u64>,
) -> io::Result<u64> {
    let mut encoder = Encoder {
        at_line_start: true,
        line_len: 0,
        ends_in_cr: false,
        in_header: true,
        body_lines_left: body_lines,
        octets: 0,
    };
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let n = match message.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !encoder.feed(&buffer[..n], out)? {
            return Ok(encoder.octets);
        }
    }
    encoder.finish(out)?;
    Ok(encoder.octets)
}

/// The size of the message as [`send_message`] sends it whole: the file size plus one for
/// each LF not preceded by CR, plus two for a last line without LF.
pub fn transmitted_size(message: &mut impl Read) -> io::Result<u64> {
    send_message(message, &mut io::sink(), None)
}

/// State carried from one chunk of the stored message to the next.
struct Encoder {
    at_line_start: bool,
    /// Bytes of the current line so far (for TOP, which needs to see the empty line).
    line_len: u64,
    /// The current line's last stored byte so far is CR.
    ends_in_cr: bool,
    in_header: bool,
    body_lines_left: Option<u64>,
    octets: u64,
}

impl Encoder {
    /// Sends one chunk; false once TOP's line limit is reached.
    fn feed(&mut self, chunk: &[u8], out: &mut impl Write) -> io::Result<bool> {
        let mut rest = chunk;
        while let Some(&first) = rest.first() {
            if self.at_line_start {
                if !self.in_header
                    && let Some(left) = self.body_lines_left.as_mut()
                {
                    if *left == 0 {
                        return Ok(false);
                    }
                    *left -= 1;
                }
                if first == b'.' {
                    out.write_all(b".")?;
                }
                self.at_line_start = false;
                self.line_len = 0;
                self.ends_in_cr = false;
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let text = &rest[..i];
                    if let Some(&last) = text.last() {
                        self.ends_in_cr = last == b'\r';
                    }
                    self.line_len += i as u64;
                    out.write_all(text)?;
                    let end: &[u8] = if self.ends_in_cr { b"\n" } else { b"\r\n" };
                    out.write_all(end)?;
                    self.octets += (i + end.len()) as u64;
                    // The header ends at the first empty line; a stored CR LF one counts.
                    let content = self.line_len - u64::from(self.ends_in_cr);
                    if content == 0 {
                        self.in_header = false;
                    }
                    self.at_line_start = true;
                    rest = &rest[i + 1..];
                }
                None => {
                    out.write_all(rest)?;
                    self.octets += rest.len() as u64;
                    self.line_len += rest.len() as u64;
                    self.ends_in_cr = rest.last() == Some(&b'\r');
                    rest = &[];
                }
            }
        }
        Ok(true)
    }

    /// Ends a last line that had no LF.
    fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.at_line_start {
            out.write_all(b"\r\n")?;
            self.octets += 2;
            self.at_line_start = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads at most `n` bytes per call, to cross chunk boundaries everywhere.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn send(stored: &[u8], lines: Option<u64>) -> Vec<u8> {
        let mut whole = Vec::new();
        let octets = send_message(&mut &stored[..], &mut whole, lines).unwrap();
        let stuffed = whole
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b".."))
            .count() as u64;
        assert_eq!(whole.len() as u64, octets + stuffed);
        for step in 1..4 {
            let mut out = Vec::new();
            let n = send_message(&mut Trickle(stored, step), &mut out, lines).unwrap();
            assert_eq!(out, whole, "chunks of {step}");
            assert_eq!(n, octets);
        }
        whole
    }

    #[test]
    fn lf_becomes_crlf_and_leading_dots_are_doubled() {
        let stored = b"Subject: x\n\n.one\n..two\nthree.\n.\n";
        let out = send(stored, None);
        assert_eq!(
            out,
            b"Subject: x\r\n\r\n..one\r\n...two\r\nthree.\r\n..\r\n"
        );
    }

    #[test]
    fn size_is_what_is_sent_without_the_stuffing() {
        let stored = b"Subject: x\n\n.one\nlast";
        // 21 stored bytes, 3 LFs that gain a CR, and CR LF for the last line.
        assert_eq!(transmitted_size(&mut &stored[..]).unwrap(), 21 + 3 + 2);
        let out = send(stored, None);
        assert_eq!(out, b"Subject: x\r\n\r\n..one\r\nlast\r\n");
        assert_eq!(out.len(), 26 + 1);
    }

    #[test]
    fn stored_crlf_is_not_doubled_and_bare_cr_passes() {
        let stored = b"A: b\r\n\r\nx\ry\r\n8bit \xe9\n";
        let out = send(stored, None);
        assert_eq!(out, b"A: b\r\n\r\nx\ry\r\n8bit \xe9\r\n");
        assert_eq!(
            transmitted_size(&mut &stored[..]).unwrap(),
            out.len() as u64
        );
    }

    #[test]
    fn top_sends_the_header_the_empty_line_and_n_body_lines() {
        let stored = b"A: 1\nB: 2\n\nl1\n.l2\nl3\n";
        assert_eq!(send(stored, Some(0)), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(send(stored, Some(2)), b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n");
        assert_eq!(send(stored, Some(99)), send(stored, None));
        // With CR LF stored, the empty line still ends the header.
        assert_eq!(send(b"A: 1\r\n\r\nl1\r\n", Some(0)), b"A: 1\r\n\r\n");
    }

    #[test]
    fn top_of_a_message_without_body_is_the_whole_message() {
        assert_eq!(send(b"A: 1\nB: 2", Some(0)), b"A: 1\r\nB: 2\r\n");
        assert_eq!(send(b"", Some(0)), b"");
        assert_eq!(send(b"", None), b"");
    }
}
