//! Arbitrary bytes as a POP3 client's commands to rqmail-pop3d's session after login
//! (`rqmail_pop3::Transaction::serve`: the command parser, STAT, LIST, UIDL, TOP, RETR,
//! DELE, RSET, NOOP, LAST, CAPA, QUIT and its update state) on a small Maildir in
//! `/dev/shm`, rebuilt after every session that reached QUIT. The first byte sets the
//! capacity of the input's buffer (1 to 127 bytes, or 8 KiB), so that lines arrive in
//! pieces; bit 7 turns on the extra blank line before the terminator.
//!
//! No input may panic. The output must be the replies a reading of the input line by line
//! predicts (with `rqmail_pop3::command::parse` and RFC 1939's rules): the greeting, one
//! reply per complete line up to QUIT (`-ERR line too long` past 255 octets with the line
//! end), each `+OK` or `-ERR` and CRLF-ended; LIST, UIDL and CAPA, and RETR and TOP when
//! they answer `+OK`, followed by dot-stuffed lines and a lone `.`, where RETR's lines,
//! without their stuffing dots, add up to the octets it announced; and after QUIT one last
//! reply.
#![no_main]

mod common;

use rqmail_pop3::command::{self, Command, LINE_MAX};
use rqmail_pop3::{End, Options, Transaction};
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// (folder, file name, bytes): dot lines, CR LF and LF ends, no final newline, an empty
/// file, a bare CR, no header end, a name whose UIDL is hashed, a right `,W=` size.
const MESSAGES: &[(&str, &str, &[u8])] = &[
    (
        "cur",
        "1700000001.M1P1Q1.fuzz,W=74:2,S",
        b"From: a@example.org\nSubject: one\n\nbody\n.dot line\n..two dots\n.\nend\n",
    ),
    (
        "new",
        "1700000002.M2P1Q1.fuzz",
        b"Subject: two\r\n\r\nline 1\r\n.\r\nlast line without newline",
    ),
    ("new", "1700000003.M3P1Q1.fuzz", b""),
    (
        "cur",
        "1700000004.M4P1Q1.fuzz:2,",
        b"Subject: header only\rwith a bare CR\nX: y",
    ),
    (
        "new",
        "1700000005.M5 P1Q1.fuzz",
        b"Subject: five\n\n\n\n.\n..\n\xff\x00 8-bit\n",
    ),
];

struct Maildir {
    root: PathBuf,
    /// True once a session has run its update state: rebuild before the next.
    changed: bool,
}

fn build(root: &Path) {
    let _ = fs::remove_dir_all(root);
    for sub in ["", "cur", "new", "tmp"] {
        fs::create_dir(root.join(sub)).expect("make the Maildir");
    }
    for (i, (folder, name, bytes)) in MESSAGES.iter().enumerate() {
        let path = root.join(folder).join(name);
        fs::write(&path, bytes).expect("write a message");
        let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 86_400 * i as u64);
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(mtime))
            .expect("set a message's mtime");
    }
}

fn maildir() -> &'static Mutex<Maildir> {
    static MAILDIR: std::sync::OnceLock<Mutex<Maildir>> = std::sync::OnceLock::new();
    MAILDIR.get_or_init(|| {
        let root = common::scratch_dir("pop3").join("Maildir");
        build(&root);
        Mutex::new(Maildir {
            root,
            changed: false,
        })
    })
}

/// The replies' expected shapes, one per complete input line up to QUIT.
#[derive(Debug)]
enum Expect {
    /// One line, `+OK` or `-ERR`.
    Single,
    /// `+OK` and a multi-line block (LIST, UIDL, CAPA).
    Block,
    /// `+OK` and a block, or `-ERR` alone (RETR when true, TOP).
    MaybeBlock(bool),
    /// `-ERR line too long`.
    TooLong,
}

/// Reads `input` as the session must: lines end at LF, a CR before it is dropped, a line
/// of more than LINE_MAX octets with its end is too long, an unfinished last line is never
/// answered, QUIT ends the commands. True with QUIT.
fn predict(input: &[u8]) -> (Vec<Expect>, bool) {
    let mut expected = Vec::new();
    let mut rest = input;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let mut line = &rest[..lf];
        rest = &rest[lf + 1..];
        if lf + 1 > LINE_MAX {
            expected.push(Expect::TooLong);
            continue;
        }
        if let Some(without_cr) = line.strip_suffix(b"\r") {
            line = without_cr;
        }
        expected.push(match command::parse(line) {
            Ok(Command::Quit) => return (expected, true),
            Ok(Command::List(None) | Command::Uidl(None) | Command::Capa) => Expect::Block,
            Ok(Command::Retr(_)) => Expect::MaybeBlock(true),
            Ok(Command::Top(..)) => Expect::MaybeBlock(false),
            _ => Expect::Single,
        });
    }
    (expected, false)
}

/// One CRLF line from `out` at `*pos`, without its CRLF.
fn line<'a>(out: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let rest = &out[*pos..];
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        panic!(
            "output at {} not ended by LF: {:?}",
            *pos,
            common::show(rest)
        );
    };
    assert!(
        lf > 0 && rest[lf - 1] == b'\r',
        "LF without CR at {}",
        *pos + lf
    );
    *pos += lf + 1;
    &rest[..lf - 1]
}

/// A status line: `+OK` or `-ERR`, without another CR and without NUL.
fn status<'a>(out: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let text = line(out, pos);
    assert!(
        text.starts_with(b"+OK") || text.starts_with(b"-ERR "),
        "not a status line: {:?}",
        common::show(text)
    );
    assert!(
        !text.contains(&b'\r') && !text.contains(&0),
        "{:?}",
        common::show(text)
    );
    text
}

/// A multi-line block up to its lone dot; returns the octets of its lines, stuffing dots
/// excluded. A message may hold a bare CR, so only the line ends are checked.
fn block(out: &[u8], pos: &mut usize) -> u64 {
    let mut octets = 0;
    loop {
        let text = line(out, pos);
        if text == b"." {
            return octets;
        }
        let text = match text.strip_prefix(b".") {
            Some(unstuffed) => {
                assert!(unstuffed.starts_with(b"."), "a dot line not stuffed");
                unstuffed
            }
            None => text,
        };
        octets += text.len() as u64 + 2;
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let capacity = match first & 0x7f {
        0x7f => 8192,
        n => usize::from(n) + 1,
    };
    let options = Options {
        extra_blank_line: first & 0x80 != 0,
    };
    let mut maildir = maildir().lock().unwrap();
    if maildir.changed {
        build(&maildir.root);
        maildir.changed = false;
    }
    let (lock, maildrop) =
        rqmail_pop3::open_maildrop(&maildir.root, SystemTime::now()).expect("open the maildrop");
    let mut reader = BufReader::with_capacity(capacity, input);
    let mut out = Vec::new();
    let summary = Transaction::new(lock, maildrop, options.clone()).serve(&mut reader, &mut out);
    if common::show_output() {
        eprintln!("{:?}\n{}", summary.end, String::from_utf8_lossy(&out));
    }
    let quit = matches!(summary.end, End::Quit);
    maildir.changed |= quit;

    let (expected, predicted_quit) = predict(input);
    assert_eq!(
        quit, predicted_quit,
        "QUIT seen {quit}, expected {predicted_quit}"
    );
    assert!(
        !matches!(summary.end, End::TimedOut | End::Failed(_)),
        "{:?}",
        summary.end
    );
    let mut pos = 0;
    let greeting = status(&out, &mut pos);
    assert_eq!(
        greeting,
        format!("+OK maildrop has {} messages", MESSAGES.len()).as_bytes()
    );
    for expect in &expected {
        let reply = status(&out, &mut pos);
        match expect {
            Expect::Single => {}
            Expect::TooLong => assert_eq!(reply, b"-ERR line too long"),
            Expect::Block => {
                assert!(
                    reply.starts_with(b"+OK"),
                    "{expect:?}: {:?}",
                    common::show(reply)
                );
                block(&out, &mut pos);
            }
            Expect::MaybeBlock(retr) => {
                if reply.starts_with(b"+OK") {
                    let octets =
                        block(&out, &mut pos) - if options.extra_blank_line { 2 } else { 0 };
                    if *retr {
                        let announced = format!("+OK {octets} octets");
                        assert_eq!(reply, announced.as_bytes(), "RETR's size");
                    }
                }
            }
        }
    }
    if quit {
        let last = status(&out, &mut pos);
        assert!(last == b"+OK bye" || last.starts_with(b"-ERR [SYS/TEMP]"));
    }
    assert_eq!(
        pos,
        out.len(),
        "output after the last reply: {:?}",
        common::show(&out[pos..])
    );
});
