//! What the session targets share: a scratch directory per fuzzing process, and a client
//! connection whose input is a file (always readable, so nothing can wait on it) and whose
//! output is a file read back after the session.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// A password that no server may ever show: its space and `*` keep it out of an IMAP tag
/// and an SMTP parameter keyword, the only client text these servers echo. The seeds log
/// in with it.
pub const SENTINEL: &[u8] = b"s3cret pw*";

/// This process's scratch directory, `/dev/shm/rqmail-fuzz-NAME-PID` (or under the
/// temporary directory), made empty; those of processes that are gone are removed first
/// (libFuzzer exits without running destructors).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let prefix = format!("rqmail-fuzz-{name}-");
    if let Ok(entries) = fs::read_dir(&base) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if pid.bytes().all(|b| b.is_ascii_digit()) && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create the scratch directory");
    dir
}

/// The client's side of one session: `input` written to `dir/input` and opened for
/// reading, and `dir/output` created empty for the server's replies.
pub fn client_files(dir: &Path, input: &[u8]) -> (File, File) {
    let input_path = dir.join("input");
    fs::write(&input_path, input).expect("write the input file");
    let input = File::open(&input_path).expect("open the input file");
    let output = File::create(dir.join("output")).expect("create the output file");
    (input, output)
}

/// What the server wrote.
pub fn server_output(dir: &Path) -> Vec<u8> {
    fs::read(dir.join("output")).expect("read the output file")
}

/// True if `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The lines of `out`, each without its CRLF; panics at a bare CR or LF, a NUL, or an
/// unterminated last line.
pub fn crlf_lines(out: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            panic!("output not ended by CRLF: {:?}", show(rest));
        };
        assert!(
            lf > 0 && rest[lf - 1] == b'\r',
            "bare LF in {:?}",
            show(&rest[..=lf])
        );
        let line = &rest[..lf - 1];
        assert!(!line.contains(&b'\r'), "bare CR in {:?}", show(line));
        assert!(!line.contains(&0), "NUL in {:?}", show(line));
        lines.push(line);
        rest = &rest[lf + 1..];
    }
    lines
}

/// A prefix of `bytes` for an assertion message.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
}

/// True if `RQMAIL_FUZZ_SHOW` is set: print each session's output.
pub fn show_output() -> bool {
    static SHOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("RQMAIL_FUZZ_SHOW").is_some())
}
