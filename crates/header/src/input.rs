//! Reads a locally submitted message: CRLF or LF line ends (stored as LF), optionally
//! sendmail's lone `.` line as the end, the header held in memory (bounded), the body streamed.

use crate::{Error, Field};
use std::io::{self, BufRead, Read, Write};

/// The most header bytes held in memory. Real headers are a few kilobytes; a generous
/// bound still allows a Bcc list of a hundred thousand addresses.
pub const HEADER_LIMIT: usize = 8 << 20;

/// Body bytes copied at a time: long lines are streamed in pieces of this size.
const PIECE: usize = 64 * 1024;

/// At least this much of a line is read, even near the header limit, before deciding whether
/// it is a header line (too long: refused) or the start of the body.
const LINE_PROBE: usize = 1000;

/// The message on its way in. Every line handed out ends in LF, whatever the input used: a
/// CR before LF is dropped, and a last line without LF gets one.
pub struct Input<R> {
    inner: R,
    dot_ends: bool,
    at_line_start: bool,
    ended: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> Input<R> {
    /// Reads from `inner`. With `dot_ends` a line holding only `.` ends the message, as
    /// sendmail does without `-i`; the line itself is not part of the message.
    pub fn new(inner: R, dot_ends: bool) -> Input<R> {
        Input {
            inner,
            dot_ends,
            at_line_start: true,
            ended: false,
            buf: Vec::new(),
        }
    }

    /// The next piece of a line: at most about `max` bytes, never more than one line.
    /// Returns whether the piece ends its line; `None` at the end of the message.
    fn next_piece(&mut self, max: usize) -> io::Result<Option<(&[u8], bool)>> {
        if self.ended {
            return Ok(None);
        }
        let starts_line = self.at_line_start;
        self.buf.clear();
        let n = (&mut self.inner)
            .take(max.max(2) as u64)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            // Lines are always completed below, so the end of input is at a line start.
            self.ended = true;
            return Ok(None);
        }
        let mut ends_line = self.buf.ends_with(b"\n");
        if !ends_line {
            let next = self.inner.fill_buf()?;
            if next.is_empty() {
                // The last line has no LF; a CR there is what is left of a CRLF.
                if self.buf.ends_with(b"\r") {
                    self.buf.pop();
                }
                self.buf.push(b'\n');
                ends_line = true;
            } else if self.buf.ends_with(b"\r") && next[0] == b'\n' {
                // Keep CRLF together even where the piece limit splits it.
                self.inner.consume(1);
                self.buf.push(b'\n');
                ends_line = true;
            }
        }
        if self.buf.ends_with(b"\r\n") {
            let len = self.buf.len();
            self.buf.remove(len - 2);
        }
        if self.dot_ends && starts_line && self.buf == b".\n" {
            self.ended = true;
            return Ok(None);
        }
        self.at_line_start = ends_line;
        Ok(Some((&self.buf, ends_line)))
    }

    /// Appends one line, or its first `max` bytes or so, to `out`. Returns whether the line
    /// is complete; `None` at the end of the message.
    fn read_line(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<Option<bool>> {
        let start = out.len();
        loop {
            let room = max.saturating_sub(out.len() - start);
            if room == 0 {
                return Ok(Some(false));
            }
            match self.next_piece(room)? {
                None => return Ok(if out.len() > start { Some(true) } else { None }),
                Some((piece, ends)) => {
                    out.extend_from_slice(piece);
                    if ends {
                        return Ok(Some(true));
                    }
                }
            }
        }
    }
}

/// How the body begins, after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStart {
    /// An empty line ended the header; the body is the rest of the input.
    Separator,
    /// A line that is not a header field ended the header: it is the first body line (or
    /// the first piece of a very long one), and the empty line before it must be added.
    Line(Vec<u8>),
    /// The message ended inside the header: there is no body.
    End,
}

/// The header fields of a message and how its body begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadHeader {
    /// The fields in order, folded lines joined to their field.
    pub fields: Vec<Field>,
    /// How the body begins.
    pub body: BodyStart,
}

/// Reads the header: the lines up to the first empty line, or up to the first line that is
/// neither a field nor a continuation (qmail-inject's rule). A leading `From ` line (an
/// mbox separator) is kept as the field `MBOX-Line: From ...`, as qmail-inject does.
pub fn read_header<R: BufRead>(input: &mut Input<R>) -> Result<ReadHeader, Error> {
    let mut fields: Vec<Field> = Vec::new();
    let mut size = 0;
    let mut line = Vec::new();
    let done = |fields, body| Ok(ReadHeader { fields, body });
    loop {
        line.clear();
        let max = HEADER_LIMIT.saturating_sub(size).max(LINE_PROBE);
        let Some(complete) = input.read_line(&mut line, max).map_err(Error::Read)? else {
            return done(fields, BodyStart::End);
        };
        if line == b"\n" {
            return done(fields, BodyStart::Separator);
        }
        size += line.len();
        let continuation = matches!(line[0], b' ' | b'\t');
        let field = if continuation {
            None
        } else if line.starts_with(b"From ") {
            Field::start(&[b"MBOX-Line: ".as_slice(), &line].concat())
        } else {
            Field::start(&line)
        };
        let is_header = field.is_some() || (continuation && !fields.is_empty());
        if !is_header {
            return done(fields, BodyStart::Line(line));
        }
        if !complete || size > HEADER_LIMIT {
            return Err(Error::HeaderTooLarge);
        }
        match (field, fields.last_mut()) {
            (Some(f), _) => fields.push(f),
            (None, Some(last)) => last.append(&line),
            (None, None) => {} // not a header line: returned as the body above
        }
    }
}

/// Writes the empty line that ends the header and then the body, streamed from `input`.
pub fn copy_body<R: BufRead, W: Write>(
    input: &mut Input<R>,
    start: &BodyStart,
    out: &mut W,
) -> Result<(), Error> {
    out.write_all(b"\n").map_err(Error::Write)?;
    match start {
        BodyStart::End => return Ok(()),
        BodyStart::Line(line) => out.write_all(line).map_err(Error::Write)?,
        BodyStart::Separator => {}
    }
    while let Some((piece, _)) = input.next_piece(PIECE).map_err(Error::Read)? {
        out.write_all(piece).map_err(Error::Write)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a whole message: the header field texts, how the body starts, and the copied body.
    fn read(input: &[u8], dot_ends: bool) -> (Vec<String>, BodyStart, String) {
        let mut input = Input::new(input, dot_ends);
        let header = read_header(&mut input).unwrap();
        let mut body = Vec::new();
        copy_body(&mut input, &header.body, &mut body).unwrap();
        let fields = header
            .fields
            .iter()
            .map(|f| String::from_utf8(f.text().to_vec()).unwrap())
            .collect();
        (fields, header.body, String::from_utf8(body).unwrap())
    }

    #[test]
    fn header_ends_at_the_first_empty_line() {
        let (fields, start, body) = read(b"To: a@b\nSubject: hi\n\nbody\n\nmore\n", false);
        assert_eq!(fields, ["To: a@b\n", "Subject: hi\n"]);
        assert_eq!(start, BodyStart::Separator);
        assert_eq!(body, "\nbody\n\nmore\n");
    }

    #[test]
    fn folded_lines_belong_to_the_previous_field() {
        let (fields, _, _) = read(b"To: a@b,\n  c@d,\n\te@f\nSubject: x\n\n", false);
        assert_eq!(fields, ["To: a@b,\n  c@d,\n\te@f\n", "Subject: x\n"]);
    }

    #[test]
    fn crlf_input_is_stored_with_lf() {
        let (fields, start, body) = read(
            b"To: a@b,\r\n c@d\r\nX: y\r\n\r\nline\r\nbare\rcr\r\n",
            false,
        );
        assert_eq!(fields, ["To: a@b,\n c@d\n", "X: y\n"]);
        assert_eq!(start, BodyStart::Separator);
        assert_eq!(body, "\nline\nbare\rcr\n");
    }

    #[test]
    fn a_line_that_is_not_a_field_starts_the_body_after_an_added_empty_line() {
        let (fields, start, body) = read(b"Subject: x\nhello world\nmore\n", false);
        assert_eq!(fields, ["Subject: x\n"]);
        assert_eq!(start, BodyStart::Line(b"hello world\n".to_vec()));
        assert_eq!(body, "\nhello world\nmore\n");
        let (fields, _, body) = read(b"just text\n", false);
        assert!(fields.is_empty());
        assert_eq!(body, "\njust text\n");
    }

    #[test]
    fn a_continuation_before_any_field_is_body() {
        let (fields, _, body) = read(b" indented\nTo: a@b\n", false);
        assert!(fields.is_empty());
        assert_eq!(body, "\n indented\nTo: a@b\n");
    }

    #[test]
    fn message_without_body_or_final_newline() {
        let (fields, start, body) = read(b"Subject: x\r\nTo: a@b", false);
        assert_eq!(fields, ["Subject: x\n", "To: a@b\n"]);
        assert_eq!(start, BodyStart::End);
        assert_eq!(body, "\n");
        let (_, _, body) = read(b"X: y\n\nlast line", false);
        assert_eq!(body, "\nlast line\n");
        let (fields, start, body) = read(b"", false);
        assert!(fields.is_empty());
        assert_eq!((start, body.as_str()), (BodyStart::End, "\n"));
    }

    #[test]
    fn mbox_from_line_is_kept_as_a_field() {
        let (fields, _, _) = read(b"From joe Mon Jan  1 00:00:00 2024\nTo: a@b\n\n", false);
        assert_eq!(
            fields,
            [
                "MBOX-Line: From joe Mon Jan  1 00:00:00 2024\n",
                "To: a@b\n"
            ]
        );
    }

    #[test]
    fn lone_dot_ends_the_message_only_when_asked() {
        let msg = b"To: a@b\n\none\n.\ntwo\n";
        assert_eq!(read(msg, true).2, "\none\n");
        assert_eq!(read(msg, false).2, "\none\n.\ntwo\n");
        assert_eq!(read(b"To: a@b\n\none\r\n.\r\ntwo\r\n", true).2, "\none\n");
        assert_eq!(read(b"To: a@b\n\none\n.", true).2, "\none\n");
        // Only a dot alone: dots starting longer lines stay, and are not unstuffed.
        assert_eq!(read(b"X: y\n\n..\n.x\n", true).2, "\n..\n.x\n");
        // A dot line inside the header ends the message there.
        let (fields, start, body) = read(b"To: a@b\n.\nSubject: x\n", true);
        assert_eq!(fields, ["To: a@b\n"]);
        assert_eq!((start, body.as_str()), (BodyStart::End, "\n"));
    }

    #[test]
    fn long_body_lines_are_streamed_in_pieces_without_splitting_crlf() {
        let mut msg = b"X: y\n\n".to_vec();
        let mut long = vec![b'a'; PIECE - 1];
        long.extend_from_slice(b"\r\n.\r\n");
        msg.extend_from_slice(&long);
        msg.extend_from_slice(b"after\n");
        let mut input = Input::new(msg.as_slice(), true);
        let header = read_header(&mut input).unwrap();
        let mut body = Vec::new();
        copy_body(&mut input, &header.body, &mut body).unwrap();
        let mut expected = vec![b'\n'];
        expected.extend_from_slice(&vec![b'a'; PIECE - 1]);
        expected.push(b'\n');
        assert_eq!(body, expected);
    }

    #[test]
    fn a_dot_after_a_partial_line_does_not_end_the_message() {
        let mut msg = b"X: y\n\n".to_vec();
        msg.extend_from_slice(&vec![b'a'; PIECE]);
        msg.extend_from_slice(b".\nz\n");
        let mut input = Input::new(msg.as_slice(), true);
        let header = read_header(&mut input).unwrap();
        let mut body = Vec::new();
        copy_body(&mut input, &header.body, &mut body).unwrap();
        assert!(body.ends_with(b"a.\nz\n"));
    }

    #[test]
    fn oversized_header_is_refused() {
        let mut msg = b"To: ".to_vec();
        msg.extend_from_slice(&vec![b'x'; HEADER_LIMIT]);
        msg.extend_from_slice(b"\n\nbody\n");
        let mut input = Input::new(msg.as_slice(), false);
        assert!(matches!(
            read_header(&mut input),
            Err(Error::HeaderTooLarge)
        ));
        let mut msg = Vec::new();
        for _ in 0..HEADER_LIMIT / 16 + 1 {
            msg.extend_from_slice(b"X-Field: 456789\n");
        }
        let mut input = Input::new(msg.as_slice(), false);
        assert!(matches!(
            read_header(&mut input),
            Err(Error::HeaderTooLarge)
        ));
    }

    #[test]
    fn a_long_first_line_without_a_colon_is_body() {
        let mut msg = vec![b'x'; 3 * LINE_PROBE];
        msg.extend_from_slice(b"\nnext\n");
        let (fields, start, body) = read(&msg, false);
        assert!(fields.is_empty());
        assert!(matches!(start, BodyStart::Line(_)));
        assert_eq!(body.len(), 1 + msg.len());
    }
}
