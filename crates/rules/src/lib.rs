//! ucspi-tcp's access rules: the tcprules text, its compiled CDB (byte for byte what
//! tcprules writes) and tcpserver's lookup of a client in it.
//!
//! IPv6 follows the ucspi-tcp IPv6 patch: a client's address is written as inet_ntop
//! prints it (lowercase, compressed: `2001:db8::1`; IPv4-mapped clients are plain IPv4),
//! rules name it the same way, and prefix rules end in `:` (`2001:db8:` matches
//! `2001:db8:…`; `2001:db8::` only addresses that print with `::` right there). In the text,
//! ADDRESS ends at the first `:` followed by `allow` or `deny`. Ranges are IPv4 only.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cdb;
pub mod lookup;
pub mod parse;

pub use cdb::{Cdb, WriteError, write_cdb};
pub use lookup::{Client, Decision, format_ipv6, ip_text, lookup};
pub use parse::{Action, ParseError, Rule, parse};

use std::fmt;
use std::path::Path;

/// Why a rules text was not compiled; in every case the old CDB is left as it was.
#[derive(Debug)]
pub enum CompileError {
    /// A line tcprules refuses (exit 100).
    Parse(ParseError),
    /// The CDB could not be written (exit 111).
    Write(WriteError),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Parse(e) => e.fmt(f),
            CompileError::Write(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CompileError {}

/// What tcprules does: parses `text` and, only if every line is good, writes `tmp` and
/// renames it over `cdb`.
pub fn compile(text: &[u8], cdb: &Path, tmp: &Path) -> Result<(), CompileError> {
    let rules = parse(text).map_err(CompileError::Parse)?;
    write_cdb(cdb, tmp, &rules).map_err(CompileError::Write)
}

/// The fuzz target's work on one input (`fuzz/fuzz_targets/rules.rs`, and the corpus test):
/// parse it as rules text and compute each rule's keys and data; then read it as a CDB and
/// look a client up in it. Any panic is a bug.
#[doc(hidden)]
pub fn fuzz_one(input: &[u8]) {
    if let Ok(rules) = parse(input) {
        for rule in &rules {
            let _ = rule.keys();
            let _ = rule.data();
        }
    }
    if let Ok(db) = Cdb::from_bytes(input.to_vec()) {
        let client = Client {
            ip: b"1.2.3.4",
            host: Some(b"a.example.com"),
            info: Some(b"joe"),
        };
        let _ = lookup(&db, &client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed fuzz corpus, run as a plain test so every build checks it without
    /// cargo-fuzz.
    #[test]
    fn fuzz_corpus_parses_without_panicking() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/rules");
        let mut count = 0;
        for entry in std::fs::read_dir(&corpus).expect("fuzz/corpus/rules") {
            let input = std::fs::read(entry.unwrap().path()).unwrap();
            fuzz_one(&input);
            count += 1;
        }
        assert!(count > 0, "empty corpus");
    }

    #[test]
    fn compile_refuses_a_bad_line_and_keeps_the_old_cdb() {
        let dir = std::env::temp_dir().join(format!("rqmail-rules-compile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cdb = dir.join("rules.cdb");
        let tmp = dir.join("rules.tmp");
        compile(b"127.:allow\n", &cdb, &tmp).unwrap();
        let before = std::fs::read(&cdb).unwrap();
        let err = compile(b"127.:allow\n10.:bogus\n", &cdb, &tmp).unwrap_err();
        assert!(matches!(
            err,
            CompileError::Parse(ParseError { line: 2, .. })
        ));
        assert_eq!(std::fs::read(&cdb).unwrap(), before);
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
