//! Paths of a message's files in each queue directory, and the directory tree itself.

use rqmail_control::SPLIT;
use std::io;
use std::path::{Path, PathBuf};

/// Directories split into `SPLIT` subdirectories by message number.
pub const SPLIT_DIRS: [&str; 4] = ["mess", "info", "local", "remote"];
/// Directories that are not split.
pub const FLAT_DIRS: [&str; 5] = ["pid", "intd", "todo", "bounce", "lock"];

/// A queue directory (`home/queue`).
#[derive(Debug, Clone)]
pub struct Queue {
    root: PathBuf,
}

impl Queue {
    /// The queue of an rqmail home.
    pub fn new(home: &Path) -> Queue {
        Queue {
            root: home.join("queue"),
        }
    }

    /// The queue in the current directory, every path relative to it. A process that has
    /// entered the queue and checked it (rqmail-queue, setuid) then keeps working in the
    /// directory it checked, whatever its path names later: the working directory is held
    /// by the kernel, not looked up again by name.
    pub fn current_dir() -> Queue {
        Queue {
            root: PathBuf::from("."),
        }
    }

    /// The queue directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `dir/N%SPLIT/N` for split directories, `dir/N` for the others.
    pub fn path(&self, dir: &str, n: u64) -> PathBuf {
        if SPLIT_DIRS.contains(&dir) {
            self.root
                .join(dir)
                .join((n % SPLIT).to_string())
                .join(n.to_string())
        } else {
            self.root.join(dir).join(n.to_string())
        }
    }

    /// The path relative to `queue/mess`, as the spawn protocol names a message: `S/N`.
    pub fn mess_name(n: u64) -> String {
        format!("{}/{}", n % SPLIT, n)
    }

    /// The split subdirectory of `dir` that holds message `n`.
    pub fn split_dir(&self, dir: &str, n: u64) -> PathBuf {
        self.root.join(dir).join((n % SPLIT).to_string())
    }

    /// `lock/trigger`, the FIFO that wakes rqmail-send.
    pub fn trigger(&self) -> PathBuf {
        self.root.join("lock/trigger")
    }

    /// Creates the whole tree (without owners: the installer sets those). Existing parts
    /// are left as they are.
    pub fn create(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o750);
        b.create(&self.root)?;
        for dir in SPLIT_DIRS {
            for i in 0..SPLIT {
                b.create(self.root.join(dir).join(i.to_string()))?;
            }
        }
        for dir in FLAT_DIRS {
            b.create(self.root.join(dir))?;
        }
        let trigger = self.trigger();
        if !trigger.exists() {
            nix::unistd::mkfifo(&trigger, nix::sys::stat::Mode::from_bits_truncate(0o622))
                .map_err(io::Error::from)?;
        }
        // mkfifo is subject to the umask; the trigger must be writable by every injector.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&trigger, std::fs::Permissions::from_mode(0o622))?;
        let mutex = self.root.join("lock/sendmutex");
        if !mutex.exists() {
            std::fs::write(&mutex, b"")?;
        }
        Ok(())
    }

    /// Message numbers named in a directory (split or not); names that are not decimal
    /// numbers are skipped, as qmail skips them.
    pub fn list(&self, dir: &str) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        if SPLIT_DIRS.contains(&dir) {
            for i in 0..SPLIT {
                list_numbers(&self.root.join(dir).join(i.to_string()), &mut out)?;
            }
        } else {
            list_numbers(&self.root.join(dir), &mut out)?;
        }
        Ok(out)
    }
}

fn list_numbers(dir: &Path, out: &mut Vec<u64>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str().and_then(parse_number) {
            out.push(n);
        }
    }
    Ok(())
}

/// A message number: decimal digits only, no sign, no leading junk.
pub fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits text0 records (`Xvalue\0` ...) into (type byte, value).
pub fn records(data: &[u8]) -> impl Iterator<Item = (usize, u8, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < data.len() {
            let start = pos;
            let end = data[pos..].iter().position(|&b| b == 0).map(|i| pos + i)?;
            pos = end + 1;
            if end > start {
                return Some((start, data[start], &data[start + 1..end]));
            }
        }
        None
    })
}

/// Opens and fsyncs a directory, making the links created in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_split() {
        let q = Queue::new(Path::new("/h"));
        assert_eq!(q.path("mess", 47), Path::new("/h/queue/mess/1/47"));
        assert_eq!(q.path("todo", 47), Path::new("/h/queue/todo/47"));
        assert_eq!(Queue::mess_name(47), "1/47");
        // rqmail-queue's: relative to the directory it checked, never looked up by name.
        let here = Queue::current_dir();
        assert_eq!(here.path("mess", 47), Path::new("./mess/1/47"));
        assert_eq!(here.trigger(), Path::new("./lock/trigger"));
    }

    #[test]
    fn parses_text0_records_and_numbers() {
        let recs: Vec<_> = records(b"Fa@b\0Tc@d\0\0Te\0").collect();
        assert_eq!(
            recs,
            vec![
                (0, b'F', &b"a@b"[..]),
                (5, b'T', &b"c@d"[..]),
                (11, b'T', &b"e"[..])
            ]
        );
        assert_eq!(parse_number("123"), Some(123));
        assert_eq!(parse_number("12a"), None);
        assert_eq!(parse_number("+1"), None);
    }
}
