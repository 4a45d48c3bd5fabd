//! Finds the rqmail home directory and reads control files the way qmail does:
//! single-line files, integer files and list files, with defaults taken from `me`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io;
use std::path::{Path, PathBuf};

/// Number of split subdirectories in the queue (qmail's `conf-split`).
pub const SPLIT: u64 = 23;

/// The rqmail home of the running program: the parent of the `bin/` directory that holds
/// the executable. It comes from the kernel (`/proc/self/exe`), never from the environment,
/// so a setuid program cannot be pointed at another queue.
pub fn home() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .ok_or_else(|| io::Error::other("executable has no parent directory"))?;
    let home = bin
        .parent()
        .ok_or_else(|| io::Error::other("bin directory has no parent"))?;
    Ok(home.to_path_buf())
}

/// The control files of one rqmail home.
#[derive(Debug, Clone)]
pub struct Control {
    dir: PathBuf,
}

/// Strips the trailing spaces, tabs and CR that qmail strips from control lines.
fn trim_end(line: &str) -> &str {
    line.trim_end_matches([' ', '\t', '\r'])
}

impl Control {
    /// Control files in `home/control`.
    pub fn new(home: &Path) -> Control {
        Control {
            dir: home.join("control"),
        }
    }

    /// The directory holding the control files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads a whole file; `Ok(None)` if it does not exist. Any other error is returned:
    /// an existing but unreadable file is never taken as "use the default".
    pub fn read(&self, name: &str) -> io::Result<Option<String>> {
        match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("unable to read control/{name}: {e}"),
            )),
        }
    }

    /// The first line of a single-line file, trailing blanks stripped; `None` if missing.
    pub fn line(&self, name: &str) -> io::Result<Option<String>> {
        Ok(self
            .read(name)?
            .map(|text| trim_end(text.split('\n').next().unwrap_or("")).to_string()))
    }

    /// `me`, the host's fully qualified name, if configured.
    pub fn me(&self) -> io::Result<Option<String>> {
        self.line("me")
    }

    /// A single-line file whose default is `me`, else the literal `fallback`.
    pub fn line_or_me(&self, name: &str, fallback: &str) -> io::Result<String> {
        if let Some(v) = self.line(name)? {
            return Ok(v);
        }
        Ok(self.me()?.unwrap_or_else(|| fallback.to_string()))
    }

    /// A single-line file with a literal default.
    pub fn line_or(&self, name: &str, default: &str) -> io::Result<String> {
        Ok(self.line(name)?.unwrap_or_else(|| default.to_string()))
    }

    /// An integer file: the leading decimal digits of the first line; the default if the
    /// file is missing or does not start with a digit.
    pub fn int(&self, name: &str, default: u64) -> io::Result<u64> {
        let Some(line) = self.line(name)? else {
            return Ok(default);
        };
        let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
        Ok(digits.parse().unwrap_or(default))
    }

    /// A list file: one entry per line, blank lines and `#` comments skipped; `None` if the
    /// file does not exist (which differs from an empty list for `locals`).
    pub fn list(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        Ok(self.read(name)?.map(|text| parse_list(&text)))
    }
}

/// Splits list-file text into its entries.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split('\n')
        .map(trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control_with(files: &[(&str, &str)]) -> (Control, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "rqmail-control-test-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("control")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join("control").join(name), text).unwrap();
        }
        (Control::new(&dir), dir)
    }

    #[test]
    fn reads_lines_ints_and_lists_as_qmail_does() {
        let (c, dir) = control_with(&[
            ("me", "mail.example.com \t\nignored\n"),
            ("concurrencylocal", "25x\n"),
            ("queuelifetime", "abc\n"),
            ("locals", "# comment\nexample.com  \n\nlocalhost\n"),
        ]);
        assert_eq!(c.me().unwrap().as_deref(), Some("mail.example.com"));
        assert_eq!(c.int("concurrencylocal", 10).unwrap(), 25);
        assert_eq!(c.int("queuelifetime", 604800).unwrap(), 604800);
        assert_eq!(c.int("missing", 7).unwrap(), 7);
        assert_eq!(
            c.list("locals").unwrap().unwrap(),
            vec!["example.com", "localhost"]
        );
        assert_eq!(c.list("virtualdomains").unwrap(), None);
        assert_eq!(
            c.line_or_me("bouncehost", "bouncehost").unwrap(),
            "mail.example.com"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
