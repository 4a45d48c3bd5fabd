//! Arbitrary bytes as an IMAP client's commands to rqmail-imapd's session (reader, parser,
//! dispatcher), on a small Maildir++ recreated before each input so that APPEND, EXPUNGE,
//! DELETE, RENAME and STORE cannot make one run depend on the ones before it.
//!
//! The first byte chooses (odd: yes) whether `1 SELECT INBOX` comes first, so the selected
//! state is reached often; the rest is the client's input, read from a file so that the
//! session sees its end. The session must end without panicking and without waiting for
//! input (a file is always readable, so a timeout means something waited). Its output must
//! be IMAP responses: each ended by CRLF, with no other CR or LF and no NUL outside `{n}`
//! literals, every literal complete, every tagged status OK, NO or BAD, and no response
//! without a literal longer than 4 KiB plus 32 bytes per input byte (FETCH FAST repeated in
//! one command is the largest honest growth, about 20 to 1).
#![no_main]

use rqmail_imap::index::INDEX;
use rqmail_imap::store;
use rqmail_imap::{End, Input, Session};
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SELECT: &[u8] = b"1 SELECT INBOX\r\n";

/// The Maildir as built once: directories and files (with contents and mtimes), in an
/// order that creates each parent before its children.
struct Snapshot {
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>, SystemTime)>,
}

/// This process's scratch directory, where the Maildir and the input file live.
struct Scratch {
    maildir: PathBuf,
    input: PathBuf,
    snapshot: Snapshot,
}

/// Messages of INBOX and Sub: (folder, sub/unique, info letters, bytes). LF and CRLF line
/// ends, a folded header, no body, no final newline, 8-bit text, an empty file.
const MESSAGES: &[(&str, &str, &str, &[u8])] = &[
    (
        "",
        "cur/1700000001.M1P1Q1.fuzz",
        "S",
        b"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: hello\n world\n\
          Date: Tue, 14 Nov 2023 22:13:21 +0000\nMessage-ID: <1@example.org>\n\nHello Bob.\n",
    ),
    (
        "",
        "cur/1700000002.M2P1Q1.fuzz",
        "FRS",
        b"From: bob@example.org\r\nTo: alice@example.org\r\nCc: carol@example.org\r\n\
          Subject: Re: hello\r\n\r\nHi Alice.\r\n\r\n-- \r\nBob\r\n",
    ),
    (
        "",
        "cur/1700000003.M3P1Q1.fuzz",
        "T",
        b"From: spam@example.net\nSubject: deleted, header only",
    ),
    (
        "",
        "new/1700000004.M4P1Q1.fuzz",
        "",
        b"From: carol@example.org\nTo: bob@example.org\nSubject: =?UTF-8?Q?caf=C3=A9?=\n\
          MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
          Content-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9 \xff\x00 bytes\n",
    ),
    ("", "new/1700000005.M5P1Q1.fuzz", "", b""),
    (
        ".Sub",
        "cur/1700000006.M6P1Q1.fuzz",
        "DS",
        b"From: bob@example.org\nSubject: draft\n\nunfinished\n",
    ),
    (
        ".Sub",
        "new/1700000007.M7P1Q1.fuzz",
        "",
        b"Subject: in Sub\n\nbody\n",
    ),
];

/// UIDVALIDITY of every folder, fixed so that runs of one input give the same output.
const VALIDITY: u32 = 1_700_000_000;

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        remove_stale(&base);
        let dir = base.join(format!("rqmail-fuzz-imap-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).expect("create the scratch directory");
        let maildir = dir.join("Maildir");
        build_maildir(&maildir).expect("build the Maildir");
        let snapshot = take_snapshot(&maildir).expect("read the Maildir back");
        Scratch {
            maildir,
            input: dir.join("input"),
            snapshot,
        }
    })
}

/// Removes the scratch directories of fuzzing processes that are gone (libFuzzer exits
/// without running destructors, so each process leaves its own behind).
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("rqmail-fuzz-imap-"))
        else {
            continue;
        };
        if pid.bytes().all(|b| b.is_ascii_digit()) && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// INBOX with messages in cur/ (with flags) and new/, the SPECIAL-USE folders, `Sub` with
/// two messages and an empty `Sub.Child`, each with an index.
fn build_maildir(root: &Path) -> io::Result<()> {
    for sub in ["", "cur", "new", "tmp"] {
        fs::create_dir(root.join(sub))?;
    }
    store::make_special_folders(root)?;
    store::create(root, "Sub.Child")?;
    // (folder directory, index records `UID MODSEQ MTIME FLAGS UNIQUE`).
    let mut uids: Vec<(String, Vec<String>)> = Vec::new();
    for name in store::list_folders(root)? {
        let dir = if name == "INBOX" {
            String::new()
        } else {
            format!(".{name}")
        };
        uids.push((dir, Vec::new()));
    }
    for (i, (folder, file, flags, bytes)) in MESSAGES.iter().enumerate() {
        // Sizes in the name for some (the `,S=` `,W=` of rqmail's own deliveries), not all.
        let mut name = file.to_string();
        if i % 2 == 0 {
            let wire = store::wire_size_of(bytes);
            name.push_str(&format!(",S={},W={wire}", bytes.len()));
        }
        let unique = name.split_once('/').map_or("", |(_, u)| u).to_string();
        if name.starts_with("cur/") {
            name.push_str(&format!(":2,{flags}"));
        }
        let path = root.join(folder).join(&name);
        fs::write(&path, bytes)?;
        let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 86_400 * i as u64);
        File::options().write(true).open(&path)?.set_modified(mtime)?;
        if let Some((_, list)) = uids.iter_mut().find(|(d, _)| d == folder) {
            let uid = list.len() + 1;
            let secs = 1_700_000_000 + 86_400 * i as u64;
            let letters = if flags.is_empty() { "-" } else { flags };
            list.push(format!("{uid} {uid} {secs} {letters} {unique}"));
        }
    }
    // The index's format is in rqmail_imap::index's doc: `rqmail-index 1 UIDVALIDITY`,
    // `N UIDNEXT HIGHESTMODSEQ`, `+ UID MODSEQ MTIME FLAGS UNIQUE`.
    for (dir, records) in &uids {
        let n = records.len();
        let mut text = format!("rqmail-index 1 {VALIDITY}\nN {} {}\n", n + 1, n.max(1));
        for r in records {
            text.push_str(&format!("+ {r}\n"));
        }
        fs::write(root.join(dir).join(INDEX), text)?;
    }
    Ok(())
}

fn take_snapshot(root: &Path) -> io::Result<Snapshot> {
    let mut snapshot = Snapshot {
        dirs: vec![PathBuf::new()],
        files: Vec::new(),
    };
    let mut i = 0;
    while i < snapshot.dirs.len() {
        let rel = snapshot.dirs[i].clone();
        let mut entries: Vec<_> = fs::read_dir(root.join(&rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                snapshot.dirs.push(path);
            } else {
                snapshot
                    .files
                    .push((path, fs::read(entry.path())?, meta.modified()?));
            }
        }
        i += 1;
    }
    Ok(snapshot)
}

fn restore(root: &Path, snapshot: &Snapshot) -> io::Result<()> {
    match fs::remove_dir_all(root) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for dir in &snapshot.dirs {
        fs::create_dir(root.join(dir))?;
    }
    for (path, bytes, mtime) in &snapshot.files {
        let path = root.join(path);
        fs::write(&path, bytes)?;
        File::options().write(true).open(&path)?.set_modified(*mtime)?;
    }
    Ok(())
}

/// `n` if `text` ends with a literal marker `{n}`.
fn literal_size(text: &[u8]) -> Option<usize> {
    let inner = text.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Checks that `out` is a sequence of well-formed responses (see the module doc).
fn check_output(out: &[u8], longest: usize) {
    let mut i = 0;
    while i < out.len() {
        let start = i;
        let mut text_len = 0;
        let mut has_literal = false;
        let mut first_piece: &[u8] = &[];
        // One response: text, then for each literal marker the literal and more text.
        loop {
            let Some(lf) = out[i..].iter().position(|&b| b == b'\n').map(|p| i + p) else {
                panic!("response at {start} not ended by CRLF: {:?}", show(&out[start..]));
            };
            assert!(
                lf > i && out[lf - 1] == b'\r',
                "bare LF at {lf} in {:?}",
                show(&out[start..=lf])
            );
            let piece = &out[i..lf - 1];
            assert!(
                !piece.contains(&b'\r'),
                "bare CR in response {:?}",
                show(&out[start..=lf])
            );
            assert!(
                !piece.contains(&0),
                "NUL outside a literal in response {:?}",
                show(&out[start..=lf])
            );
            if i == start {
                first_piece = piece;
            }
            text_len += piece.len();
            i = lf + 1;
            let Some(n) = literal_size(piece) else {
                break;
            };
            assert!(
                out.len() - i >= n,
                "literal of {n} bytes at {i} runs past the end ({} left)",
                out.len() - i
            );
            i += n;
            has_literal = true;
        }
        assert!(
            has_literal || text_len <= longest,
            "response of {text_len} bytes (bound {longest}) at {start}: {:?}",
            show(&out[start..i])
        );
        if first_piece.starts_with(b"* ") || first_piece.starts_with(b"+ ") {
            continue;
        }
        let mut words = first_piece.splitn(3, |&b| b == b' ');
        let tag = words.next().unwrap_or_default();
        let status = words.next().unwrap_or_default();
        assert!(!tag.is_empty(), "empty tag in {:?}", show(first_piece));
        assert!(
            matches!(status, b"OK" | b"NO" | b"BAD"),
            "tagged status {:?} in {:?}",
            show(status),
            show(first_piece)
        );
    }
}

/// A prefix of `bytes` for an assertion message.
fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(300)];
    String::from_utf8_lossy(cut).into_owned()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&first, commands)) = data.split_first() else {
        return;
    };
    let scratch = scratch();
    let mut input_bytes = Vec::with_capacity(SELECT.len() + commands.len());
    if first & 1 == 1 {
        input_bytes.extend_from_slice(SELECT);
    }
    input_bytes.extend_from_slice(commands);
    fs::write(&scratch.input, &input_bytes).expect("write the input file");
    restore(&scratch.maildir, &scratch.snapshot).expect("recreate the Maildir");

    let file = File::open(&scratch.input).expect("open the input file");
    // A regular file is always readable, so this timeout never runs out unless something
    // polls a descriptor other than the input's: that is checked below.
    let mut input = Input::new(file, Duration::from_secs(1));
    let mut out = Vec::new();
    let end = {
        let mut session = Session::new(scratch.maildir.clone(), &mut out);
        session.greet(None).expect("greet into a Vec");
        session.serve(&mut input)
    };
    if let End::Dropped(e) = &end {
        assert_ne!(e.kind(), ErrorKind::TimedOut, "the session waited: {e}");
    }
    if show_output() {
        eprintln!("{end:?}\n{}", String::from_utf8_lossy(&out));
    }
    check_output(&out, 4096 + 32 * input_bytes.len());
});

/// True if `RQMAIL_FUZZ_SHOW` is set: print each session's output (to write seeds, or to
/// see what a crashing input did).
fn show_output() -> bool {
    static SHOW: OnceLock<bool> = OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("RQMAIL_FUZZ_SHOW").is_some())
}
