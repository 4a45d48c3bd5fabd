//! The spawn side of rqmail-send's delivery protocol (qmail's spawn.c, extended to several
//! recipients per delivery): read requests, start one child each, report every recipient.
//!
//! Request: slot byte, `S/N\0`, `sender\0`, then `recipient\0` for each recipient and an
//! empty `\0` to end the list. Report: the slot byte, then for each recipient in order a
//! status letter (`K` success, `Z` temporary, `D` permanent, `R` interrupted: the delivery
//! was killed from outside before it could finish, and is tried again soon instead of at
//! the next step of the retry schedule), its text and `\0`. The letters are
//! [`ReportStatus`]'s; [`encode_report`] writes a report and [`ReportDecoder`] reads it back,
//! as [`encode_request`] writes a request for the spawn to read.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

pub use rqmail_outcome::ReportStatus;

/// Most bytes of a child's output kept for its report.
pub const REPORT_MAX: usize = 3000;
/// Longest message name accepted (`S/N`).
const MESSAGE_NAME_MAX: usize = 100;
/// Longest request send may write; anything longer means send is broken.
const REQUEST_MAX: usize = 8192;

/// One delivery asked for by rqmail-send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Slot number, echoed in the report.
    pub slot: u8,
    /// The message, as `S/N` relative to `queue/mess`.
    pub message: String,
    /// Envelope sender.
    pub sender: Vec<u8>,
    /// The envelope recipients (one for local deliveries; one domain's for remote ones).
    pub recipients: Vec<Vec<u8>>,
}

/// A delivery's result for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Success, temporary or permanent failure, or interrupted.
    pub status: ReportStatus,
    /// Explanation (no NUL bytes).
    pub text: Vec<u8>,
}

impl Report {
    /// A temporary failure.
    pub fn defer(text: &str) -> Report {
        Report {
            status: ReportStatus::Temporary,
            text: text.as_bytes().to_vec(),
        }
    }
    /// A delivery killed from outside (SIGKILL, SIGTERM, SIGINT, SIGHUP) before it
    /// finished: temporary, and tried again soon, since nothing was wrong with it.
    pub fn interrupted(text: &str) -> Report {
        Report {
            status: ReportStatus::Interrupted,
            text: text.as_bytes().to_vec(),
        }
    }

    /// Whether a child's end was a kill from outside rather than a crash of its own: those
    /// signals are what an admin, a supervisor or the OOM killer send.
    pub fn killed_from_outside(status: &WaitStatus) -> bool {
        use nix::sys::signal::Signal;
        matches!(
            status,
            WaitStatus::Signaled(
                _,
                Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP,
                _
            )
        )
    }

    /// A permanent failure.
    pub fn fail(text: &str) -> Report {
        Report {
            status: ReportStatus::Permanent,
            text: text.as_bytes().to_vec(),
        }
    }
}

impl Request {
    /// The first recipient (local deliveries have exactly one).
    pub fn recipient(&self) -> &[u8] {
        self.recipients
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What starting a delivery gave.
pub enum Started {
    /// A child is running; its output (stdout and stderr) arrives on `output`.
    Child {
        /// The child's pid, to be reaped when its output ends.
        pid: Pid,
        /// Read end of the child's output pipe.
        output: OwnedFd,
    },
    /// The delivery finished at once (or could not start): one report for every recipient.
    Done(Report),
}

/// What a kind of spawn (local or remote) does per delivery.
pub trait Spawner {
    /// How many deliveries may run at once (sent to rqmail-send at start, at most 255).
    fn slots(&self) -> u8;
    /// Starts one delivery with the opened message file.
    fn start(&mut self, message: File, request: &Request) -> Started;
    /// Turns a finished child's status and output into one report per recipient.
    fn finish(&mut self, status: WaitStatus, output: &[u8], recipients: usize) -> Vec<Report>;
}

struct Running {
    recipients: usize,
    pid: Pid,
    output: File,
    collected: Vec<u8>,
}

/// Most recipients in one request.
const RECIPIENTS_MAX: usize = 1000;

/// Appends a request as it goes on the wire to `out`: the slot byte, the message name, the
/// sender and each recipient, each ended by a NUL, and an empty field to end the list.
pub fn encode_request<'a>(
    out: &mut Vec<u8>,
    slot: u8,
    message: &str,
    sender: &[u8],
    recipients: impl IntoIterator<Item = &'a [u8]>,
) {
    out.push(slot);
    out.extend_from_slice(message.as_bytes());
    out.push(0);
    out.extend_from_slice(sender);
    out.push(0);
    for recipient in recipients {
        out.extend_from_slice(recipient);
        out.push(0);
    }
    out.push(0);
}

/// Parses one complete request from the front of `buf`: slot byte, message name, sender,
/// recipients, empty field. Returns it and its length; `None` until it is all there.
fn parse_request(buf: &[u8]) -> Option<(Request, usize)> {
    let slot = *buf.first()?;
    let mut fields: Vec<&[u8]> = Vec::with_capacity(3);
    let mut pos = 1;
    loop {
        let end = buf[pos..].iter().position(|&b| b == 0)? + pos;
        let field = &buf[pos..end];
        pos = end + 1;
        if fields.len() >= 2 && field.is_empty() {
            break;
        }
        fields.push(field);
        if fields.len() > RECIPIENTS_MAX + 2 {
            break;
        }
    }
    Some((
        Request {
            slot,
            message: String::from_utf8_lossy(fields[0]).into_owned(),
            sender: fields[1].to_vec(),
            recipients: fields[2..].iter().map(|r| r.to_vec()).collect(),
        },
        pos,
    ))
}

/// Checks a request and opens its message: the name must be `digits/digits`, the file a
/// regular file owned by the queue's owner (so nothing else can be passed off as mail).
fn open_message(request: &Request, queue_owner: u32) -> Result<File, Report> {
    let name = &request.message;
    if name.is_empty()
        || name.len() > MESSAGE_NAME_MAX
        || !name.bytes().all(|b| b.is_ascii_digit() || b == b'/')
    {
        return Err(Report::fail("Internal error: bad message name. (#5.3.0)"));
    }
    if request.recipients.is_empty() {
        return Err(Report::fail("Internal error: no recipient. (#5.3.0)"));
    }
    if request.recipients.iter().any(|r| !r.contains(&b'@')) {
        return Err(Report::fail("Recipient has no @ sign. (#5.1.3)"));
    }
    let file =
        File::open(name).map_err(|_| Report::defer("Unable to open message file. (#4.3.0)"))?;
    let meta = file
        .metadata()
        .map_err(|_| Report::defer("Unable to stat message file. (#4.3.0)"))?;
    if !meta.file_type().is_file() || meta.uid() != queue_owner {
        return Err(Report::defer(
            "Message file is not a regular file owned by the queue. (#4.3.0)",
        ));
    }
    Ok(file)
}

/// Writes to fd 1 unbuffered, so each report is one write. std's stdout is line-buffered:
/// a report whose text ends in a newline would go out in two writes and wake rqmail-send
/// twice. (Not a duplicate of fd 1: the delivery children would inherit it.)
struct Reports;

impl Write for Reports {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(nix::unistd::write(io::stdout().as_fd(), buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A slot's report as it goes on the wire: the slot byte, then each recipient's status
/// letter, text and NUL (a NUL inside a text becomes `_`).
pub fn encode_report(slot: u8, reports: &[Report]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.push(slot);
    for report in reports {
        buf.push(report.status.letter());
        buf.extend(report.text.iter().map(|&b| if b == 0 { b'_' } else { b }));
        buf.push(0);
    }
    buf
}

fn write_report(out: &mut impl Write, slot: u8, reports: &[Report]) -> io::Result<()> {
    out.write_all(&encode_report(slot, reports))?;
    out.flush()
}

/// What [`ReportDecoder::next`] took off the front of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole report: one entry per recipient of the slot's delivery, in order; `None`
    /// for an entry whose status byte is no report letter.
    Report {
        /// The slot the report is for.
        slot: u8,
        /// One entry per recipient.
        entries: Vec<Option<Report>>,
    },
    /// A report (of one entry) for a slot with no delivery running; it was dropped.
    UnknownSlot(u8),
    /// A text ran on too long without its NUL; everything buffered was dropped.
    TooLong,
}

/// The reading side of the report protocol (rqmail-send's): bytes in as they arrive,
/// whole reports out.
#[derive(Debug, Clone, Default)]
pub struct ReportDecoder {
    buf: Vec<u8>,
    text_max: usize,
}

impl ReportDecoder {
    /// A decoder that cuts each text at `text_max` bytes, and gives up on (drops) its input
    /// once an unterminated text has more than `2 * text_max + 2` bytes buffered with it.
    pub fn new(text_max: usize) -> ReportDecoder {
        ReportDecoder {
            buf: Vec::new(),
            text_max,
        }
    }

    /// Adds bytes read from a spawn.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next whole report off the input; `None` until one is all there.
    /// `recipients(slot)` is how many entries that slot's report has, `None` if the slot
    /// has no delivery running (its report is then read as one entry and dropped).
    pub fn next(&mut self, recipients: impl FnOnce(u8) -> Option<usize>) -> Option<Decoded> {
        let slot = *self.buf.first()?;
        let expected = recipients(slot);
        let mut entries = Vec::new();
        let mut pos = 1;
        for _ in 0..expected.unwrap_or(1) {
            if pos >= self.buf.len() {
                return None;
            }
            let Some(end) = self.buf[pos + 1..]
                .iter()
                .position(|&b| b == 0)
                .map(|i| i + pos + 1)
            else {
                if self.buf.len() > self.text_max * 2 + 2 {
                    self.buf.clear();
                    return Some(Decoded::TooLong);
                }
                return None;
            };
            let text = &self.buf[pos + 1..end];
            entries.push(
                ReportStatus::from_letter(self.buf[pos]).map(|status| Report {
                    status,
                    text: text[..text.len().min(self.text_max)].to_vec(),
                }),
            );
            pos = end + 1;
        }
        self.buf.drain(..pos);
        Some(match expected {
            Some(_) => Decoded::Report { slot, entries },
            None => Decoded::UnknownSlot(slot),
        })
    }
}

/// One report per recipient: the given one, repeated, or the child's own list padded with
/// temporary failures when it said too little (a recipient is never silently dropped).
fn fit(mut reports: Vec<Report>, recipients: usize) -> Vec<Report> {
    if reports.len() == 1 && recipients > 1 {
        let one = reports.remove(0);
        return vec![one; recipients];
    }
    reports.truncate(recipients);
    while reports.len() < recipients {
        reports.push(Report::defer(
            "Internal error: no report for this recipient. (#4.3.0)",
        ));
    }
    reports
}

/// Serves rqmail-send on fds 0 (requests) and 1 (reports) until it closes fd 0, then
/// waits for running deliveries. The working directory must be `queue/mess`.
pub fn serve(spawner: &mut impl Spawner, queue_owner: u32) -> io::Result<()> {
    let slots = spawner.slots();
    let mut out = Reports;
    out.write_all(&[slots])?;
    let stdin = io::stdin();
    // Read fd 0 directly: a buffered reader could hold requests that poll cannot see.
    let mut input = File::from(stdin.as_fd().try_clone_to_owned()?);
    let mut pending: Vec<u8> = Vec::new();
    let mut running: Vec<Option<Running>> = (0..slots).map(|_| None).collect();
    let mut input_open = true;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !input_open && running.iter().all(Option::is_none) {
            return Ok(());
        }
        let mut fds: Vec<PollFd> = Vec::with_capacity(running.len() + 1);
        let stdin_fd: BorrowedFd = stdin.as_fd();
        if input_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        let mut which = Vec::with_capacity(running.len());
        for (slot, r) in running.iter().enumerate() {
            if let Some(r) = r {
                fds.push(PollFd::new(r.output.as_fd(), PollFlags::POLLIN));
                which.push(slot);
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready = |fd: &PollFd| {
            fd.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let stdin_ready = input_open && ready(&fds[0]);
        let first_child = usize::from(input_open);
        let ready_slots: Vec<usize> = which
            .iter()
            .enumerate()
            .filter(|(i, _)| ready(&fds[first_child + i]))
            .map(|(_, &slot)| slot)
            .collect();
        drop(fds);

        for slot in ready_slots {
            let Some(r) = running[slot].as_mut() else {
                continue;
            };
            match r.output.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let Some(r) = running[slot].take() else {
                        continue;
                    };
                    let status = loop {
                        match waitpid(r.pid, None) {
                            Err(nix::errno::Errno::EINTR) => continue,
                            other => break other,
                        }
                    };
                    let reports = match status {
                        Ok(status) => spawner.finish(status, &r.collected, r.recipients),
                        Err(_) => vec![Report::defer("Unable to wait for the delivery. (#4.3.0)")],
                    };
                    write_report(&mut out, slot as u8, &fit(reports, r.recipients))?;
                }
                Ok(n) => {
                    let room = REPORT_MAX.saturating_sub(r.collected.len());
                    r.collected.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }

        if stdin_ready {
            match input.read(&mut buf) {
                Ok(0) => input_open = false,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            while let Some((request, used)) = parse_request(&pending) {
                pending.drain(..used);
                let slot = request.slot as usize;
                let n = request.recipients.len().max(1);
                if slot >= running.len() || running[slot].is_some() {
                    let report = Report::defer("Internal error: slot in use. (#4.3.0)");
                    write_report(&mut out, request.slot, &fit(vec![report], n))?;
                    continue;
                }
                let started = match open_message(&request, queue_owner) {
                    Ok(file) => spawner.start(file, &request),
                    Err(report) => Started::Done(report),
                };
                match started {
                    Started::Done(report) => {
                        write_report(&mut out, request.slot, &fit(vec![report], n))?
                    }
                    Started::Child { pid, output } => {
                        running[slot] = Some(Running {
                            recipients: n,
                            pid,
                            output: File::from(output),
                            collected: Vec::new(),
                        });
                    }
                }
            }
            if pending.len() > REQUEST_MAX {
                return Err(io::Error::other("request from rqmail-send too long"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_requests_only() {
        assert!(parse_request(b"\x03").is_none());
        assert!(parse_request(b"\x035/28\0a@b\0").is_none());
        assert!(parse_request(b"\x035/28\0a@b\0c@d\0").is_none());
        let (r, used) = parse_request(b"\x035/28\0a@b\0c@d\0\0rest").unwrap();
        assert_eq!((r.slot, r.message.as_str(), used), (3, "5/28", 15));
        assert_eq!(
            (r.sender.as_slice(), r.recipient()),
            (&b"a@b"[..], &b"c@d"[..])
        );
        let (r, _) = parse_request(b"\x00m\0\0x@y\0z@w\0\0").unwrap();
        assert_eq!(r.sender, b"");
        assert_eq!(r.recipients, vec![b"x@y".to_vec(), b"z@w".to_vec()]);
    }

    #[test]
    fn reports_are_slot_status_text_nul() {
        let mut out = Vec::new();
        write_report(&mut out, 7, &[Report::defer("a\0b")]).unwrap();
        assert_eq!(out, b"\x07Za_b\0");
        let mut out = Vec::new();
        write_report(&mut out, 0, &fit(vec![Report::fail("x")], 2)).unwrap();
        assert_eq!(out, b"\x00Dx\0Dx\0");
    }

    #[test]
    fn encoded_requests_parse_back() {
        let recipients = [b"x@y".to_vec(), b"z@w".to_vec()];
        let mut wire = Vec::new();
        encode_request(
            &mut wire,
            4,
            "12/345",
            b"a@b",
            recipients.iter().map(Vec::as_slice),
        );
        encode_request(&mut wire, 5, "1/2", b"", [&b"c@d"[..]]);
        for end in 0..wire.len() {
            let got = parse_request(&wire[..end]).map(|(_, used)| used);
            assert!(got.is_none() || got == Some(21), "{end}: {got:?}");
        }
        let (r, used) = parse_request(&wire).unwrap();
        assert_eq!((r.slot, r.message.as_str(), used), (4, "12/345", 21));
        assert_eq!(
            (r.sender, r.recipients),
            (b"a@b".to_vec(), recipients.to_vec())
        );
        let (r, used) = parse_request(&wire[21..]).unwrap();
        assert_eq!(
            (r.slot, r.message.as_str(), r.recipient()),
            (5, "1/2", &b"c@d"[..])
        );
        assert_eq!((r.sender, 21 + used), (Vec::new(), wire.len()));
    }

    fn report(status: ReportStatus, text: &str) -> Report {
        Report {
            status,
            text: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reports_fed_in_pieces_decode_to_what_was_encoded() {
        let reports: Vec<Report> = ReportStatus::ALL
            .iter()
            .zip(["delivered", "", "no such user\n", "killed"])
            .map(|(&s, t)| report(s, t))
            .collect();
        let wire = encode_report(9, &reports);
        for piece in 1..wire.len() {
            let mut decoder = ReportDecoder::new(100);
            let mut got = None;
            for (i, chunk) in wire.chunks(piece).enumerate() {
                assert_eq!(got, None, "a report before its end, chunk {i}");
                decoder.feed(chunk);
                got = decoder.next(|slot| (slot == 9).then_some(4));
            }
            let entries = reports.iter().cloned().map(Some).collect();
            assert_eq!(got, Some(Decoded::Report { slot: 9, entries }));
            assert_eq!(decoder.next(|_| Some(4)), None);
        }
    }

    #[test]
    fn decoder_drops_unknown_slots_and_marks_unknown_letters() {
        let mut decoder = ReportDecoder::new(4);
        decoder.feed(b"\x05Kok\0\x01Xjunk\0Kdelivered\0");
        assert_eq!(decoder.next(|_| None), Some(Decoded::UnknownSlot(5)));
        let entries = vec![None, Some(report(ReportStatus::Success, "deli"))];
        assert_eq!(
            decoder.next(|_| Some(2)),
            Some(Decoded::Report { slot: 1, entries })
        );
        decoder.feed(b"\x00Zno end in sight");
        assert_eq!(decoder.next(|_| Some(1)), Some(Decoded::TooLong));
        assert_eq!(decoder.next(|_| Some(1)), None);
    }
}
