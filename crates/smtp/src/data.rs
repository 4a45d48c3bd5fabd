//! The DATA decoder. Only CR LF `.` CR LF ends a message; a bare LF or bare CR anywhere
//! stops the transfer (RFC 5321 §2.3.8), so no reading of the stream can ever find a second
//! message inside the first one (SMTP smuggling). Lines are stored with LF endings.

/// What the decoder found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// CRLF.CRLF: the message is complete.
    End,
    /// An LF not preceded by CR.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Middle,
    Dot,
    DotCr,
    Cr,
}

/// Most hops (Received / Delivered-To lines) a message may carry (qmail's limit).
pub const MAX_HOPS: usize = 100;

/// Streams DATA bytes into stored bytes, counting size and hops on the way.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    /// Bytes stored so far (LF line ends, dots unstuffed).
    pub size: u64,
    /// Received/Delivered-To lines seen in the header.
    pub hops: usize,
    in_header: bool,
    line_start: [u8; 9],
    line_len: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::LineStart,
            size: 0,
            hops: 0,
            in_header: true,
            line_start: [0; 9],
            line_len: 0,
        }
    }
}

impl Decoder {
    /// A decoder at the start of a message.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    fn store(&mut self, b: u8, out: &mut Vec<u8>) {
        out.push(b);
        self.size += 1;
        if !self.in_header {
            return;
        }
        if b == b'\n' {
            if self.line_len == 0 {
                self.in_header = false;
            } else {
                let n = self.line_len.min(9);
                let start = &self.line_start[..n];
                if (n >= 8 && start[..8].eq_ignore_ascii_case(b"received"))
                    || (n >= 9 && start.eq_ignore_ascii_case(b"delivered"))
                {
                    self.hops += 1;
                }
            }
            self.line_len = 0;
        } else {
            if self.line_len < 9 {
                self.line_start[self.line_len] = b;
            }
            self.line_len += 1;
        }
    }

    /// Decodes `input`, appending stored bytes to `out`. Returns how many input bytes were
    /// used and the event that stopped decoding, if any; after an event the rest of the
    /// input is not part of the message.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Option<Event>) {
        for (i, &b) in input.iter().enumerate() {
            let used = i + 1;
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::Dot, b'\r') => State::DotCr,
                (State::LineStart | State::Middle, b'\r') => State::Cr,
                (State::LineStart | State::Middle | State::Dot, b'\n') => {
                    return (used, Some(Event::BareLf));
                }
                (State::LineStart | State::Middle | State::Dot, b) => {
                    // At a dot-stuffed line start the leading dot is dropped.
                    self.store(b, out);
                    State::Middle
                }
                (State::DotCr, b'\n') => return (used, Some(Event::End)),
                (State::DotCr | State::Cr, _) if b != b'\n' => {
                    return (used, Some(Event::BareCr));
                }
                (State::Cr, _) => {
                    self.store(b'\n', out);
                    State::LineStart
                }
                (State::DotCr, _) => return (used, Some(Event::BareCr)),
            };
        }
        (input.len(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> (Vec<u8>, Option<Event>, usize) {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let (used, ev) = d.feed(input, &mut out);
        (out, ev, used)
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf_and_unstuffs() {
        let (out, ev, used) = decode(b"a\r\n..b\r\n.\r\nQUIT\r\n");
        assert_eq!((out.as_slice(), ev), (&b"a\n.b\n"[..], Some(Event::End)));
        assert_eq!(used, 11);
        let (out, ev, _) = decode(b".\r\n");
        assert_eq!((out.as_slice(), ev), (&b""[..], Some(Event::End)));
    }

    #[test]
    fn smuggling_probes_stop_the_transfer() {
        for probe in [
            &b"a\n.\nb"[..],
            b"a\r.\rb",
            b"a\n.\r\nb",
            b"a\r\n.\nb",
            b"a\rb",
            b"a\r\n.x\rb",
        ] {
            let (_, ev, _) = decode(probe);
            assert!(
                matches!(ev, Some(Event::BareLf | Event::BareCr)),
                "{probe:?} gave {ev:?}"
            );
        }
    }

    #[test]
    fn works_across_chunk_boundaries() {
        let input = b"Received: x\r\nDelivered-To: y\r\nSubject: z\r\n\r\nReceived: body\r\n.\r\n";
        for split in 0..input.len() {
            let mut d = Decoder::new();
            let mut out = Vec::new();
            let (u1, e1) = d.feed(&input[..split], &mut out);
            assert_eq!((u1, e1), (split, None));
            let (_, e2) = d.feed(&input[split..], &mut out);
            assert_eq!(e2, Some(Event::End));
            assert_eq!(
                out,
                b"Received: x\nDelivered-To: y\nSubject: z\n\nReceived: body\n"
            );
            assert_eq!(d.hops, 2);
            assert_eq!(d.size, out.len() as u64);
        }
    }
}
