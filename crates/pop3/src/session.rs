//! One session after login: the transaction state (RFC 1939 §5) on a locked maildrop, then
//! the update state (§6) that QUIT alone enters, over any buffered input and output.

use crate::command::{self, Command, LINE_MAX, Number};
use crate::maildrop::{Maildrop, MaildropLock};
use crate::transmit;
use std::io::{self, BufRead, BufReader, Read, Write};

/// What the administrator may change about a session.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Send an empty line before the terminator of RETR and TOP, as qmail-pop3d always
    /// does (a work-around for clients that dropped a message's last line). Off by default:
    /// it adds a line to every message.
    pub extra_blank_line: bool,
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// QUIT: the update state ran.
    Quit,
    /// The client closed the connection: nothing was changed.
    Dropped,
    /// The client was idle too long: nothing was changed.
    TimedOut,
    /// Reading or writing failed before QUIT: nothing was changed.
    Failed(io::Error),
}

/// What a session did, for its log line.
#[derive(Debug)]
pub struct Summary {
    /// How it ended.
    pub end: End,
    /// Messages in the session's snapshot.
    pub messages: usize,
    /// Messages sent whole by RETR (a message retrieved twice counts twice).
    pub retrieved: u64,
    /// Their octets as transmitted, dot-stuffing excluded.
    pub retrieved_octets: u64,
    /// Messages removed by the update state.
    pub deleted: u64,
    /// Messages marked deleted that could not be removed.
    pub not_removed: u64,
    /// Messages that could not be moved from `new/` to `cur/`.
    pub not_moved: u64,
    /// The first failure of the update state.
    pub update_error: Option<io::Error>,
}

/// The transaction state: the snapshot, which messages are marked deleted, and LAST.
pub struct Transaction {
    lock: MaildropLock,
    maildrop: Maildrop,
    deleted: Vec<bool>,
    last: Number,
    options: Options,
    retrieved: u64,
    retrieved_octets: u64,
}

/// The update state: entered by QUIT only, with what the transaction state marked.
struct Update {
    lock: MaildropLock,
    maildrop: Maildrop,
    deleted: Vec<bool>,
}

/// One line from the client.
enum Line {
    /// The line without its LF or CR LF.
    Text(Vec<u8>),
    /// Longer than [`LINE_MAX`]: read to its end and thrown away.
    TooLong,
    /// The client closed the connection (a last line without LF counts as never sent).
    Eof,
}

const CAPABILITIES: &str = "+OK capability list follows\r\n\
    TOP\r\n\
    UIDL\r\n\
    RESP-CODES\r\n\
    PIPELINING\r\n\
    IMPLEMENTATION rqmail\r\n\
    .\r\n";

/// Reads one line of at most [`LINE_MAX`] octets, line end included. Output is flushed
/// only when no input is waiting, i.e. just before a read that may block: the replies to
/// pipelined commands go out together (RFC 2449 §6.6), and never wait on a read.
fn read_line<R: Read>(input: &mut BufReader<R>, output: &mut impl Write) -> io::Result<Line> {
    let mut line = Vec::with_capacity(64);
    let mut total = 0usize;
    loop {
        if input.buffer().is_empty() {
            output.flush()?;
        }
        let available = match input.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        total = total.saturating_add(n);
        // Keep nothing past the limit: an endless line costs time, never memory.
        if total <= LINE_MAX {
            line.extend_from_slice(chunk);
        }
        input.consume(n);
        if complete {
            if total > LINE_MAX {
                return Ok(Line::TooLong);
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Text(line));
        }
    }
}

fn reply(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.write_all(b"\r\n")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Transaction {
    /// The transaction state on `maildrop`, whose `lock` it holds until the update is done.
    pub fn new(lock: MaildropLock, maildrop: Maildrop, options: Options) -> Transaction {
        Transaction {
            deleted: vec![false; maildrop.len()],
            lock,
            maildrop,
            last: 0,
            options,
            retrieved: 0,
            retrieved_octets: 0,
        }
    }

    /// Runs the session: sends `+OK` with the message count (qmail-pop3d's answer to the
    /// client's PASS), serves commands until QUIT, end of input or an error, and runs the
    /// update state after QUIT only. Output is flushed before this returns.
    pub fn serve<R: Read, W: Write>(mut self, input: &mut BufReader<R>, output: &mut W) -> Summary {
        let result = self.converse(input, output);
        let mut summary = Summary {
            end: End::Quit,
            messages: self.maildrop.len(),
            retrieved: self.retrieved,
            retrieved_octets: self.retrieved_octets,
            deleted: 0,
            not_removed: 0,
            not_moved: 0,
            update_error: None,
        };
        match result {
            Ok(true) => {
                let update = Update {
                    lock: self.lock,
                    maildrop: self.maildrop,
                    deleted: self.deleted,
                };
                update.commit(&mut summary);
                // RFC 1939 §6: -ERR if some deleted messages were not removed; the others
                // were, and the undeleted ones moved, all the same.
                let text = if summary.not_removed > 0 {
                    "-ERR [SYS/TEMP] some deleted messages were not removed"
                } else {
                    "+OK bye"
                };
                // The update is done whether or not the client hears about it.
                let _ = reply(output, text).and_then(|()| output.flush());
            }
            Ok(false) => summary.end = End::Dropped,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => summary.end = End::TimedOut,
            Err(e) => {
                let _ = output.flush();
                summary.end = End::Failed(e);
            }
        }
        summary
    }

    /// The command loop; true on QUIT, false at end of input.
    fn converse<R: Read>(
        &mut self,
        input: &mut BufReader<R>,
        output: &mut impl Write,
    ) -> io::Result<bool> {
        let n = self.maildrop.len();
        reply(
            output,
            &format!("+OK maildrop has {n} message{}", plural(n)),
        )?;
        loop {
            let line = match read_line(input, output)? {
                Line::Text(line) => line,
                Line::TooLong => {
                    reply(output, "-ERR line too long")?;
                    continue;
                }
                Line::Eof => return Ok(false),
            };
            match command::parse(&line) {
                Ok(Command::Quit) => return Ok(true),
                Ok(command) => self.execute(command, output)?,
                Err(e) => reply(output, e.reply())?,
            }
        }
    }

    /// The index of message `number`, or the reply refusing it.
    fn index(&self, number: Number) -> Result<usize, String> {
        let index = number
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.maildrop.len())
            .ok_or_else(|| "-ERR no such message".to_string())?;
        if self.deleted[index] {
            return Err(format!("-ERR message {number} already deleted"));
        }
        Ok(index)
    }

    /// The undeleted messages' count and total size.
    fn totals(&mut self) -> (usize, u64) {
        let mut count = 0;
        let mut octets = 0;
        for i in 0..self.maildrop.len() {
            if !self.deleted[i] {
                count += 1;
                octets += self.maildrop.size(i);
            }
        }
        (count, octets)
    }

    fn execute(&mut self, command: Command, out: &mut impl Write) -> io::Result<()> {
        match command {
            // RFC 1939 §5: only undeleted messages count (qmail-pop3d counts them all).
            Command::Stat => {
                let (count, octets) = self.totals();
                reply(out, &format!("+OK {count} {octets}"))
            }
            Command::List(None) => {
                let (count, octets) = self.totals();
                reply(
                    out,
                    &format!("+OK {count} message{} ({octets} octets)", plural(count)),
                )?;
                for i in 0..self.maildrop.len() {
                    if !self.deleted[i] {
                        let size = self.maildrop.size(i);
                        reply(out, &format!("{} {size}", i + 1))?;
                    }
                }
                reply(out, ".")
            }
            Command::List(Some(number)) => match self.index(number) {
                Ok(i) => {
                    let size = self.maildrop.size(i);
                    reply(out, &format!("+OK {number} {size}"))
                }
                Err(refusal) => reply(out, &refusal),
            },
            Command::Uidl(None) => {
                reply(out, "+OK unique-id listing follows")?;
                for i in 0..self.maildrop.len() {
                    if !self.deleted[i] {
                        reply(out, &format!("{} {}", i + 1, self.maildrop.uid(i)))?;
                    }
                }
                reply(out, ".")
            }
            Command::Uidl(Some(number)) => match self.index(number) {
                Ok(i) => reply(out, &format!("+OK {number} {}", self.maildrop.uid(i))),
                Err(refusal) => reply(out, &refusal),
            },
            Command::Top(number, lines) => self.send(number, Some(lines), out),
            Command::Retr(number) => self.send(number, None, out),
            Command::Dele(number) => match self.index(number) {
                Ok(i) => {
                    self.deleted[i] = true;
                    self.last = self.last.max(number);
                    reply(out, &format!("+OK message {number} deleted"))
                }
                Err(refusal) => reply(out, &refusal),
            },
            Command::Rset => {
                self.deleted.fill(false);
                self.last = 0;
                let n = self.maildrop.len();
                reply(out, &format!("+OK maildrop has {n} message{}", plural(n)))
            }
            Command::Noop => reply(out, "+OK"),
            Command::Last => reply(out, &format!("+OK {}", self.last)),
            Command::Capa => out.write_all(CAPABILITIES.as_bytes()),
            // The command loop takes QUIT to the update state before it gets here.
            Command::Quit => reply(out, "+OK"),
        }
    }

    /// RETR (`body_lines` None) and TOP. A message another program removed since the scan
    /// gets `-ERR no such message`; one that fails while being sent ends the session, since
    /// the client cannot tell a cut message from a whole one.
    fn send(
        &mut self,
        number: Number,
        body_lines: Option<u64>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let i = match self.index(number) {
            Ok(i) => i,
            Err(refusal) => return reply(out, &refusal),
        };
        let size = body_lines.is_none().then(|| self.maildrop.size(i));
        let mut file = match self.maildrop.open(i) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return reply(out, "-ERR no such message");
            }
            Err(_) => return reply(out, "-ERR [SYS/TEMP] unable to open that message"),
        };
        match size {
            Some(size) => reply(out, &format!("+OK {size} octets"))?,
            None => reply(out, "+OK top of message follows")?,
        }
        let octets = transmit::send_message(&mut file, out, body_lines)?;
        if self.options.extra_blank_line {
            out.write_all(b"\r\n")?;
        }
        out.write_all(transmit::END)?;
        if body_lines.is_none() {
            self.retrieved += 1;
            self.retrieved_octets += octets;
        }
        Ok(())
    }
}

impl Update {
    /// Removes the messages marked deleted and moves the others that are still in `new/` to
    /// `cur/`, carrying on past failures; a message already gone counts as removed. The
    /// lock is released before the reply, so a client that reconnects as soon as it reads
    /// it finds the mailbox free.
    fn commit(mut self, summary: &mut Summary) {
        for i in 0..self.maildrop.len() {
            if self.deleted[i] {
                match self.maildrop.remove(i) {
                    Ok(()) => summary.deleted += 1,
                    Err(e) => {
                        summary.not_removed += 1;
                        summary.update_error.get_or_insert(e);
                    }
                }
            } else if let Err(e) = self.maildrop.move_to_cur(i) {
                // As in qmail-pop3d, only a log line: the message stays in new/, unharmed.
                summary.not_moved += 1;
                summary.update_error.get_or_insert(e);
            }
        }
        drop(self.lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildrop;
    use std::fs::{self, File, FileTimes};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "rqmail-pop3-session-{name}-{}-{n}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            for sub in ["tmp", "new", "cur"] {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }
            Scratch(dir)
        }

        fn put(&self, folder: &str, name: &str, body: &[u8], mtime: u64) {
            let path = self.0.join(folder).join(name);
            fs::write(&path, body).unwrap();
            let t = UNIX_EPOCH + Duration::from_secs(mtime);
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_times(FileTimes::new().set_modified(t))
                .unwrap();
        }

        fn files(&self, folder: &str) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(self.0.join(folder))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const ONE: &[u8] = b"Subject: one\n\nhello\n.dot\n";
    const TWO: &[u8] = b"Subject: two\n\nbody";

    fn mailbox(name: &str) -> Scratch {
        let s = Scratch::new(name);
        s.put("new", "1000.a", ONE, 1000);
        s.put("cur", "2000.b:2,S", TWO, 2000);
        s
    }

    fn session_with(root: &Path, input: &[u8], options: Options) -> (String, Summary) {
        let (lock, maildrop) =
            crate::open_maildrop(root, SystemTime::now()).expect("open maildrop");
        let mut output = Vec::new();
        let summary = Transaction::new(lock, maildrop, options)
            .serve(&mut BufReader::new(input), &mut output);
        (String::from_utf8(output).unwrap(), summary)
    }

    fn session(root: &Path, input: &[u8]) -> (String, Summary) {
        session_with(root, input, Options::default())
    }

    /// The replies after the greeting.
    fn replies(output: &str) -> &str {
        output.split_once("\r\n").unwrap().1
    }

    #[test]
    fn greets_with_the_count_and_lists_sizes_as_transmitted() {
        let s = mailbox("list");
        let (out, summary) = session(&s.0, b"STAT\r\nLIST\r\nLIST 2\r\nQUIT\r\n");
        assert_eq!(
            out,
            "+OK maildrop has 2 messages\r\n\
             +OK 2 51\r\n\
             +OK 2 messages (51 octets)\r\n1 29\r\n2 22\r\n.\r\n\
             +OK 2 22\r\n\
             +OK bye\r\n"
        );
        assert!(matches!(summary.end, End::Quit));
    }

    #[test]
    fn retr_is_crlf_and_dot_stuffed_and_matches_list() {
        let s = mailbox("retr");
        let (out, summary) = session(&s.0, b"RETR 1\r\nRETR 2\r\n");
        assert_eq!(
            replies(&out),
            "+OK 29 octets\r\nSubject: one\r\n\r\nhello\r\n..dot\r\n.\r\n\
             +OK 22 octets\r\nSubject: two\r\n\r\nbody\r\n.\r\n"
        );
        assert_eq!(summary.retrieved, 2);
        assert_eq!(summary.retrieved_octets, 51);
        assert!(matches!(summary.end, End::Dropped));
    }

    #[test]
    fn the_extra_blank_line_is_an_option() {
        let s = mailbox("blank");
        let options = Options {
            extra_blank_line: true,
        };
        let (out, _) = session_with(&s.0, b"RETR 2\r\nTOP 1 0\r\n", options);
        assert_eq!(
            replies(&out),
            "+OK 22 octets\r\nSubject: two\r\n\r\nbody\r\n\r\n.\r\n\
             +OK top of message follows\r\nSubject: one\r\n\r\n\r\n.\r\n"
        );
    }

    #[test]
    fn top_sends_the_header_and_n_lines() {
        let s = mailbox("top");
        let (out, _) = session(&s.0, b"TOP 1 0\r\nTOP 1 1\r\nTOP 1\r\n");
        assert_eq!(
            replies(&out),
            "+OK top of message follows\r\nSubject: one\r\n\r\n.\r\n\
             +OK top of message follows\r\nSubject: one\r\n\r\nhello\r\n.\r\n\
             -ERR syntax error\r\n"
        );
    }

    #[test]
    fn uidl_is_the_unique_name() {
        let s = mailbox("uidl");
        let (out, _) = session(&s.0, b"UIDL\r\nUIDL 2\r\n");
        assert_eq!(
            replies(&out),
            "+OK unique-id listing follows\r\n1 1000.a\r\n2 2000.b\r\n.\r\n+OK 2 2000.b\r\n"
        );
    }

    #[test]
    fn dele_hides_the_message_and_only_quit_removes_it() {
        let s = mailbox("dele");
        let (out, _) = session(
            &s.0,
            b"DELE 1\r\nDELE 1\r\nRETR 1\r\nLIST 1\r\nSTAT\r\nLIST\r\nUIDL\r\nLAST\r\n",
        );
        assert_eq!(
            replies(&out),
            "+OK message 1 deleted\r\n\
             -ERR message 1 already deleted\r\n\
             -ERR message 1 already deleted\r\n\
             -ERR message 1 already deleted\r\n\
             +OK 1 22\r\n\
             +OK 1 message (22 octets)\r\n2 22\r\n.\r\n\
             +OK unique-id listing follows\r\n2 2000.b\r\n.\r\n\
             +OK 1\r\n"
        );
        // The connection dropped without QUIT: nothing changed.
        assert_eq!(s.files("new"), ["1000.a"]);
        let (out, summary) = session(&s.0, b"DELE 1\r\nQUIT\r\n");
        assert!(out.ends_with("+OK bye\r\n"), "{out}");
        assert_eq!(summary.deleted, 1);
        assert!(s.files("new").is_empty());
        assert_eq!(s.files("cur"), ["2000.b:2,S"]);
    }

    #[test]
    fn quit_moves_undeleted_new_messages_to_cur() {
        let s = mailbox("move");
        let (_, summary) = session(&s.0, b"QUIT\r\n");
        assert_eq!(summary.deleted, 0);
        assert!(s.files("new").is_empty());
        assert_eq!(s.files("cur"), ["1000.a:2,", "2000.b:2,S"]);
        // The UIDs do not change with the move.
        let (out, _) = session(&s.0, b"UIDL\r\n");
        assert!(
            replies(&out).starts_with("+OK unique-id listing follows\r\n1 1000.a\r\n2 2000.b\r\n")
        );
    }

    #[test]
    fn rset_unmarks_everything() {
        let s = mailbox("rset");
        let (out, _) = session(
            &s.0,
            b"DELE 1\r\nDELE 2\r\nLAST\r\nRSET\r\nLAST\r\nSTAT\r\nQUIT\r\n",
        );
        assert_eq!(
            replies(&out),
            "+OK message 1 deleted\r\n+OK message 2 deleted\r\n+OK 2\r\n\
             +OK maildrop has 2 messages\r\n+OK 0\r\n+OK 2 51\r\n+OK bye\r\n"
        );
        assert_eq!(s.files("cur").len(), 2);
    }

    #[test]
    fn message_number_errors() {
        let s = mailbox("numbers");
        let (out, _) = session(
            &s.0,
            b"RETR 0\r\nRETR 3\r\nLIST 99999999999999999999999\r\nDELE x\r\n",
        );
        assert_eq!(
            replies(&out),
            "-ERR messages are numbered from 1\r\n-ERR no such message\r\n\
             -ERR no such message\r\n-ERR syntax error\r\n"
        );
    }

    #[test]
    fn a_message_that_vanished_is_no_such_message_and_ignored_at_quit() {
        let s = mailbox("vanished");
        let (lock, maildrop) = crate::open_maildrop(&s.0, SystemTime::now()).unwrap();
        fs::remove_file(s.0.join("new/1000.a")).unwrap();
        fs::remove_file(s.0.join("cur/2000.b:2,S")).unwrap();
        let mut output = Vec::new();
        let summary = Transaction::new(lock, maildrop, Options::default()).serve(
            &mut BufReader::new(&b"RETR 1\r\nTOP 1 0\r\nDELE 2\r\nQUIT\r\n"[..]),
            &mut output,
        );
        assert_eq!(
            replies(&String::from_utf8(output).unwrap()),
            "-ERR no such message\r\n-ERR no such message\r\n+OK message 2 deleted\r\n+OK bye\r\n"
        );
        assert_eq!(summary.not_removed, 0);
        assert!(summary.update_error.is_none());
    }

    #[test]
    fn overlong_lines_get_an_error_and_the_session_goes_on() {
        let s = mailbox("long");
        let mut input = b"NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 300));
        input.extend_from_slice(b"\r\nNOOP\r\n");
        // 253 octets and CR LF is the longest line allowed.
        input.extend_from_slice(format!("LIST {}\r\n", "1".repeat(248)).as_bytes());
        let (out, _) = session(&s.0, &input);
        assert_eq!(
            replies(&out),
            "-ERR line too long\r\n+OK\r\n-ERR no such message\r\n"
        );
        let (out, _) = session(&s.0, format!("LIST {}\r\n", "1".repeat(249)).as_bytes());
        assert_eq!(replies(&out), "-ERR line too long\r\n");
    }

    #[test]
    fn unknown_and_authorization_commands_get_err() {
        let s = mailbox("unknown");
        let (out, _) = session(&s.0, b"XTND\r\n\r\nUSER bob\r\nSTLS\r\nnoop\r\n");
        assert_eq!(
            replies(&out),
            "-ERR unknown command\r\n-ERR unknown command\r\n\
             -ERR already authenticated\r\n-ERR already authenticated\r\n+OK\r\n"
        );
    }

    #[test]
    fn capa_lists_the_capabilities() {
        let s = mailbox("capa");
        let (out, _) = session(&s.0, b"CAPA\r\n");
        assert_eq!(
            replies(&out),
            "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n\
             IMPLEMENTATION rqmail\r\n.\r\n"
        );
    }

    #[test]
    fn bare_lf_commands_work_and_a_last_line_without_lf_is_not_run() {
        let s = mailbox("lf");
        let (out, summary) = session(&s.0, b"NOOP\nDELE 1\nQUIT");
        assert_eq!(replies(&out), "+OK\r\n+OK message 1 deleted\r\n");
        assert!(matches!(summary.end, End::Dropped));
        assert_eq!(s.files("new"), ["1000.a"]);
    }

    /// Input that hands over one chunk per read, and records each flush of the output.
    struct Script {
        chunks: Vec<&'static [u8]>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.chunks.is_empty() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "idle"));
            }
            let chunk = self.chunks.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[derive(Default)]
    struct Flushes {
        pending: Vec<u8>,
        sent: Vec<String>,
    }

    impl Write for Flushes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.pending.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            if !self.pending.is_empty() {
                self.sent
                    .push(String::from_utf8(std::mem::take(&mut self.pending)).unwrap());
            }
            Ok(())
        }
    }

    #[test]
    fn pipelined_replies_are_flushed_together_before_waiting() {
        let s = mailbox("pipelining");
        let (lock, maildrop) = crate::open_maildrop(&s.0, SystemTime::now()).unwrap();
        let mut out = Flushes::default();
        let input = Script {
            chunks: vec![b"NOOP\r\nLAST\r\nNO", b"OP\r\n", b"DELE 1\r\n"],
        };
        let summary = Transaction::new(lock, maildrop, Options::default())
            .serve(&mut BufReader::new(input), &mut out);
        assert_eq!(
            out.sent,
            [
                "+OK maildrop has 2 messages\r\n",
                "+OK\r\n+OK 0\r\n",
                "+OK\r\n",
                "+OK message 1 deleted\r\n"
            ]
        );
        // The idle timeout ends the session without an update.
        assert!(matches!(summary.end, End::TimedOut));
        assert_eq!(s.files("new"), ["1000.a"]);
    }

    #[test]
    fn a_second_session_finds_the_mailbox_in_use() {
        let s = mailbox("inuse");
        let (_lock, _maildrop) = crate::open_maildrop(&s.0, SystemTime::now()).unwrap();
        let e = crate::open_maildrop(&s.0, SystemTime::now()).unwrap_err();
        assert_eq!(e.reply(), "-ERR [IN-USE] mailbox in use");
        assert!(maildrop::lock(&s.0).is_err());
    }

    #[test]
    fn the_lock_is_free_once_quit_has_updated() {
        let s = mailbox("unlock");
        let (_, summary) = session(&s.0, b"QUIT\r\n");
        assert!(matches!(summary.end, End::Quit));
        assert!(maildrop::lock(&s.0).is_ok());
    }
}
