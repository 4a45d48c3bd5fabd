//! The queued message (LF line ends) and its wire form: CRLF line ends, dot-stuffing of every
//! line start, a final line end added where missing, and the `.` terminator.
//!
//! SMTP smuggling (spec/smtp.md §9 rule 3): every line break on the wire comes from the
//! encoder, so every line start is seen and stuffed, and no bare CR or bare LF ever leaves.
//! A stored CR directly before a stored LF is taken as part of that line end (CR LF is sent
//! once, not CR CR LF); any other stored CR becomes CR LF and the line it starts is
//! dot-stuffed like every other line. So the stored bytes `CR . CR LF` go out as
//! `CR LF . . CR LF`, never as a premature `CR LF . CR LF`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Size of the chunks the message is read and sent in.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Turns stored message bytes into SMTP DATA bytes, across chunk boundaries.
#[derive(Debug)]
pub struct Encoder {
    at_line_start: bool,
    pending_cr: bool,
    stuffed: u64,
    written: u64,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder at the start of a message.
    pub fn new() -> Encoder {
        Encoder {
            at_line_start: true,
            pending_cr: false,
            stuffed: 0,
            written: 0,
        }
    }

    fn line_end(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.written += 2;
        self.at_line_start = true;
    }

    /// Appends the wire form of `input` (the next stored bytes) to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16 + 4);
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                // Either the CR of a stored CR LF, or a bare CR: both end the line here.
                self.line_end(out);
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.line_end(out),
                _ => {
                    if self.at_line_start && b == b'.' {
                        out.push(b'.');
                        self.stuffed += 1;
                        self.written += 1;
                    }
                    out.push(b);
                    self.written += 1;
                    self.at_line_start = false;
                }
            }
        }
    }

    /// Ends the message: a pending CR becomes a line end, a partial final line gets its
    /// CRLF, then the `.` CRLF terminator.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            self.line_end(out);
        }
        if !self.at_line_start {
            self.line_end(out);
        }
        out.extend_from_slice(b".\r\n");
        self.written += 3;
    }

    /// The message's size as RFC 1870 counts it (CRLF line ends, without stuffed dots and
    /// without the terminator), once `finish` has been called.
    pub fn size(&self) -> u64 {
        self.written.saturating_sub(self.stuffed + 3)
    }
}

/// A queued message, scanned once for what the transaction needs to know about it.
#[derive(Debug)]
pub struct Message {
    file: File,
    size: u64,
    wire_size: u64,
    eight_bit: bool,
    eight_bit_headers: bool,
}

impl Message {
    /// Reads the whole message once (from offset 0) to learn its size on the wire and
    /// whether it holds 8-bit bytes, in its header or anywhere.
    pub fn new(mut file: File) -> io::Result<Message> {
        file.seek(SeekFrom::Start(0))?;
        let mut encoder = Encoder::new();
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK * 2);
        let mut size = 0u64;
        let mut eight_bit = false;
        let mut eight_bit_headers = false;
        // The header ends at the first empty line; `previous` is the byte before, LF at start.
        let mut in_header = true;
        let mut previous = b'\n';
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = &buf[..n];
            size += n as u64;
            if chunk.iter().any(|&b| b >= 0x80) {
                eight_bit = true;
            }
            if in_header {
                for &b in chunk {
                    if b == b'\n' && previous == b'\n' {
                        in_header = false;
                        break;
                    }
                    if b >= 0x80 {
                        eight_bit_headers = true;
                    }
                    previous = b;
                }
            }
            out.clear();
            encoder.encode(chunk, &mut out);
        }
        out.clear();
        encoder.finish(&mut out);
        file.seek(SeekFrom::Start(0))?;
        Ok(Message {
            file,
            size,
            wire_size: encoder.size(),
            eight_bit,
            eight_bit_headers,
        })
    }

    /// The stored size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size on the wire as SIZE= counts it (RFC 1870 §3: CRLF line ends, no stuffing).
    pub fn wire_size(&self) -> u64 {
        self.wire_size
    }

    /// True if any byte is 8-bit (then BODY=8BITMIME is needed).
    pub fn eight_bit(&self) -> bool {
        self.eight_bit
    }

    /// True if the header section holds 8-bit bytes (UTF-8 headers want SMTPUTF8).
    pub fn eight_bit_headers(&self) -> bool {
        self.eight_bit_headers
    }

    /// The file, rewound to its start.
    pub(crate) fn rewound(&mut self) -> io::Result<&mut File> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(&mut self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(stored: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        e.encode(stored, &mut out);
        e.finish(&mut out);
        out
    }

    fn wire_bytewise(stored: &[u8]) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        for b in stored {
            e.encode(std::slice::from_ref(b), &mut out);
        }
        e.finish(&mut out);
        (out, e.size())
    }

    #[test]
    fn turns_lf_into_crlf_and_stuffs_leading_dots() {
        assert_eq!(
            wire(b"a\n.b\n..c\n.\nd.\n"),
            b"a\r\n..b\r\n...c\r\n..\r\nd.\r\n.\r\n"
        );
    }

    #[test]
    fn adds_the_missing_final_line_end() {
        assert_eq!(wire(b"a\nlast"), b"a\r\nlast\r\n.\r\n");
        assert_eq!(wire(b"a\n.last"), b"a\r\n..last\r\n.\r\n");
        assert_eq!(wire(b""), b".\r\n");
    }

    #[test]
    fn sends_stored_crlf_once_and_bare_cr_as_a_stuffed_line_end() {
        assert_eq!(wire(b"a\r\nb\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(wire(b"a\rb\n"), b"a\r\nb\r\n.\r\n");
        // The smuggling case of spec §9: stored CR . CR LF must not become CRLF.CRLF.
        assert_eq!(
            wire(b"x\r.\r\nMAIL FROM:<a>\n"),
            b"x\r\n..\r\nMAIL FROM:<a>\r\n.\r\n"
        );
        assert_eq!(wire(b"x\r\r\n"), b"x\r\n\r\n.\r\n");
        assert_eq!(wire(b"x\r"), b"x\r\n.\r\n");
        assert_eq!(wire(b".\r"), b"..\r\n.\r\n");
    }

    #[test]
    fn never_emits_bare_cr_lf_or_an_early_terminator() {
        let inputs: &[&[u8]] = &[
            b"\n.\n",
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\r\n.\r",
            b".\r.\n.",
            b"\r\r\n\n\r",
        ];
        for input in inputs {
            let out = wire(input);
            for (i, &b) in out.iter().enumerate() {
                if b == b'\r' {
                    assert_eq!(out.get(i + 1), Some(&b'\n'), "{input:?} -> {out:?}");
                }
                if b == b'\n' {
                    assert!(i > 0 && out[i - 1] == b'\r', "{input:?} -> {out:?}");
                }
            }
            let body = &out[..out.len() - 3];
            assert!(
                !body.windows(5).any(|w| w == b"\r\n.\r\n") && !body.starts_with(b".\r\n"),
                "{input:?} -> {out:?}"
            );
        }
    }

    #[test]
    fn chunk_boundaries_do_not_change_the_output_and_size_counts_crlf() {
        for input in [&b"a\r\n.b\rc\n.d"[..], b"\r\r.\r\n", b"..\n\n."] {
            let (out, size) = wire_bytewise(input);
            assert_eq!(out, wire(input));
            let stuffed = out.len() as u64 - 3 - size;
            let lines_starting_with_dot = out
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b".."))
                .count() as u64;
            assert_eq!(stuffed, lines_starting_with_dot, "{input:?}");
        }
        let (_, size) = wire_bytewise(b"ab\ncd");
        assert_eq!(size, 8);
    }

    #[test]
    fn scans_size_and_eight_bit_parts() {
        let dir =
            std::env::temp_dir().join(format!("rqmail-smtpclient-msg-{}", std::process::id()));
        std::fs::write(&dir, "Subject: caf\u{e9}\n\nbody\n").unwrap();
        let m = Message::new(File::open(&dir).unwrap()).unwrap();
        assert!(m.eight_bit() && m.eight_bit_headers());
        assert_eq!(m.size(), 21);
        assert_eq!(m.wire_size(), 24);
        std::fs::write(&dir, "Subject: x\n\ncaf\u{e9}\n").unwrap();
        let m = Message::new(File::open(&dir).unwrap()).unwrap();
        assert!(m.eight_bit() && !m.eight_bit_headers());
        std::fs::write(&dir, "Subject: x\n\nplain\n").unwrap();
        let m = Message::new(File::open(&dir).unwrap()).unwrap();
        assert!(!m.eight_bit() && !m.eight_bit_headers());
        std::fs::remove_file(&dir).unwrap();
    }
}
