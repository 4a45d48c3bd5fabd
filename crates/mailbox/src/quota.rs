//! Maildir++ quotas: the `maildirsize` file at the top of a Maildir. Its first line is the
//! quota (`10000S` for bytes, `100C` for messages, or both: `10000S,100C`); each further
//! line is `BYTES COUNT`, a change to add up, and the count covers the Maildir and its
//! Maildir++ folders. Deliveries (rqmail-vdeliver) and
//! IMAP (rqmail-imapd: APPEND, COPY, EXPUNGE) append to it.
//! It is recomputed from the Maildir when missing, when its quota line is not the current
//! quota, when it grows past 5120 bytes, and before a message is refused (so mail removed
//! by hand or by a POP3 client that does not update it frees room at once).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The file's name in the Maildir.
pub const FILE: &str = "maildirsize";
/// Larger than this, the file is rewritten with one total line (Maildir++'s rule).
const MAX_SIZE: u64 = 5120;

/// The size of a message file: `S=` in its name, else from stat.
fn message_size(dir: &Path, name: &str) -> Option<u64> {
    let info = name.split_once(':').map_or(name, |(base, _)| base);
    for part in info.split(',') {
        if let Some(s) = part.strip_prefix("S=")
            && let Ok(n) = s.parse()
        {
            return Some(n);
        }
    }
    std::fs::metadata(dir.join(name)).ok().map(|m| m.len())
}

/// Bytes and messages in `new/` and `cur/` of the Maildir and of each Maildir++ folder.
pub fn scan(maildir: &Path) -> io::Result<(u64, u64)> {
    let mut dirs = vec![maildir.join("new"), maildir.join("cur")];
    for entry in std::fs::read_dir(maildir)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_folder = name
            .to_str()
            .is_some_and(|n| n.len() > 1 && n.starts_with('.') && n != "..");
        if is_folder && entry.path().join("cur").is_dir() {
            dirs.push(entry.path().join("new"));
            dirs.push(entry.path().join("cur"));
        }
    }
    let (mut bytes, mut count) = (0, 0);
    for dir in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // A folder removed meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if let Some(size) = message_size(&dir, name) {
                bytes += size;
                count += 1;
            }
        }
    }
    Ok((bytes, count))
}

/// A Maildir++ quota: bytes (`S`) and messages (`C`), 0 for no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Bytes, or 0.
    pub bytes: u64,
    /// Messages, or 0.
    pub count: u64,
}

impl Quota {
    /// A quota of `bytes` bytes only (0: none).
    pub fn bytes(bytes: u64) -> Quota {
        Quota { bytes, count: 0 }
    }

    /// True if it limits nothing.
    pub fn is_none(&self) -> bool {
        self.bytes == 0 && self.count == 0
    }

    /// Its line in `maildirsize`: `10000S`, `100C` or `10000S,100C`.
    fn line(&self) -> String {
        let mut parts = Vec::new();
        if self.bytes > 0 {
            parts.push(format!("{}S", self.bytes));
        }
        if self.count > 0 {
            parts.push(format!("{}C", self.count));
        }
        parts.join(",")
    }

    /// Parses a quota line (`10000S,100C`, either part alone, in either order), as
    /// `maildirsize` and the `MAILDIRQUOTA` environment variable hold it.
    pub fn parse(line: &str) -> Option<Quota> {
        let mut q = Quota::bytes(0);
        for part in line.trim_end().split(',') {
            if let Some(n) = part.strip_suffix('S') {
                q.bytes = n.parse().ok()?;
            } else if let Some(n) = part.strip_suffix('C') {
                q.count = n.parse().ok()?;
            } else {
                return None;
            }
        }
        Some(q)
    }

    /// True if `used` (bytes, messages) plus `more` stays within the quota.
    fn allows(&self, used: (u64, u64), more: (u64, u64)) -> bool {
        (self.bytes == 0 || used.0.saturating_add(more.0) <= self.bytes)
            && (self.count == 0 || used.1.saturating_add(more.1) <= self.count)
    }
}

/// Reads `maildirsize`: `Some((bytes, count, file size))` if its quota line is `quota`'s.
fn read(maildir: &Path, quota: &Quota) -> io::Result<Option<(u64, u64, u64)>> {
    let text = match std::fs::read_to_string(maildir.join(FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    if lines.next().and_then(Quota::parse) != Some(*quota) {
        return Ok(None);
    }
    let (mut bytes, mut count) = (0i64, 0i64);
    for line in lines {
        let mut f = line.split_whitespace();
        let (Some(b), Some(c)) = (f.next(), f.next()) else {
            return Ok(None);
        };
        let (Ok(b), Ok(c)) = (b.parse::<i64>(), c.parse::<i64>()) else {
            return Ok(None);
        };
        bytes += b;
        count += c;
    }
    Ok(Some((
        bytes.max(0) as u64,
        count.max(0) as u64,
        text.len() as u64,
    )))
}

/// Recounts the Maildir and rewrites `maildirsize` atomically.
pub fn recalculate(maildir: &Path, quota: &Quota) -> io::Result<(u64, u64)> {
    let (bytes, count) = scan(maildir)?;
    let text = format!("{}\n{bytes} {count}\n", quota.line());
    crate::replace_file(&maildir.join(FILE), text.as_bytes(), true)?;
    Ok((bytes, count))
}

/// Whether one message of `size` bytes fits under `quota`.
pub fn fits(maildir: &Path, quota: &Quota, size: u64) -> io::Result<bool> {
    fits_many(maildir, quota, size, 1)
}

/// Whether `count` messages of `bytes` in all fit under `quota`. Reads `maildirsize`,
/// recomputing it when it is missing, stale or says they do not fit.
pub fn fits_many(maildir: &Path, quota: &Quota, bytes: u64, count: u64) -> io::Result<bool> {
    if quota.is_none() {
        return Ok(true);
    }
    let used = match read(maildir, quota)? {
        Some((b, c, len)) if len <= MAX_SIZE && quota.allows((b, c), (bytes, count)) => {
            return Ok(true);
        }
        _ => recalculate(maildir, quota)?,
    };
    Ok(quota.allows(used, (bytes, count)))
}

/// The room one more message has under a quota, for a message whose size is known only
/// once it has been written: ask [`Room::allows`] as it grows. The first answer comes
/// from `maildirsize` (recomputed when missing or stale, as [`fits`] does); a size it
/// refuses is asked again after one recount, so a message is refused only by a count of
/// the Maildir itself.
pub struct Room<'a> {
    maildir: &'a Path,
    quota: Quota,
    /// Bytes the message may have; `None` when no message may come (`C` reached).
    bytes: Option<u64>,
    recounted: bool,
}

impl<'a> Room<'a> {
    /// The room in `maildir` under `quota`.
    pub fn new(maildir: &'a Path, quota: &Quota) -> io::Result<Room<'a>> {
        let mut room = Room {
            maildir,
            quota: *quota,
            bytes: Some(u64::MAX),
            recounted: false,
        };
        if !quota.is_none() {
            let used = match read(maildir, quota)? {
                Some((b, c, len)) if len <= MAX_SIZE => (b, c),
                _ => {
                    room.recounted = true;
                    recalculate(maildir, quota)?
                }
            };
            room.bytes = room.left(used);
        }
        Ok(room)
    }

    /// What is left after `used` (bytes, messages).
    fn left(&self, used: (u64, u64)) -> Option<u64> {
        if !self.quota.allows(used, (0, 1)) {
            return None;
        }
        Some(match self.quota.bytes {
            0 => u64::MAX,
            limit => limit - used.0,
        })
    }

    /// True if the message may have `size` bytes. A recount that fails refuses.
    pub fn allows(&mut self, size: u64) -> bool {
        if self.bytes.is_some_and(|b| size <= b) {
            return true;
        }
        if !self.recounted {
            self.recounted = true;
            self.bytes = recalculate(self.maildir, &self.quota)
                .ok()
                .and_then(|used| self.left(used));
        }
        self.bytes.is_some_and(|b| size <= b)
    }
}

/// The quota that the Maildir's `maildirsize` names, if it has one: what programs that do
/// not know the user's quota themselves (rqmail-imapd without `MAILDIRQUOTA`) go by.
pub fn limit(maildir: &Path) -> Option<Quota> {
    let mut first = String::new();
    let file = File::open(maildir.join(FILE)).ok()?;
    std::io::BufRead::read_line(&mut io::BufReader::new(file.take(256)), &mut first).ok()?;
    Quota::parse(&first).filter(|q| !q.is_none())
}

/// Records `count` messages of `bytes` in all leaving the Maildir (one appended line of
/// negative numbers), when it has a quota.
pub fn remove(maildir: &Path, quota: &Quota, bytes: u64, count: u64) -> io::Result<()> {
    if quota.is_none() || read(maildir, quota)?.is_none() {
        return Ok(());
    }
    let mut f = OpenOptions::new()
        .append(true)
        .mode(0o600)
        .open(maildir.join(FILE))?;
    f.write_all(format!("-{bytes} -{count}\n").as_bytes())
}

/// Records `count` messages of `bytes` in all added to the Maildir (one appended line).
pub fn add_many(maildir: &Path, quota: &Quota, bytes: u64, count: u64) -> io::Result<()> {
    if quota.is_none() {
        return Ok(());
    }
    if read(maildir, quota)?.is_none() {
        recalculate(maildir, quota)?;
        return Ok(());
    }
    let mut f = OpenOptions::new()
        .append(true)
        .mode(0o600)
        .open(maildir.join(FILE))?;
    f.write_all(format!("{bytes} {count}\n").as_bytes())
}

/// Records a delivered message of `size` bytes in `maildirsize` (one appended line).
pub fn add(maildir: &Path, quota: &Quota, size: u64) -> io::Result<()> {
    add_many(maildir, quota, size, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rqmail-quota-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for sub in [
            "new",
            "cur",
            "tmp",
            ".Archive/new",
            ".Archive/cur",
            ".Archive/tmp",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        d
    }

    #[test]
    fn quota_counts_the_maildir_and_its_folders_and_recounts_before_refusing() {
        let dir = scratch("count");
        std::fs::write(dir.join("new/1.a.host,S=400,W=410"), "").unwrap();
        std::fs::write(dir.join("cur/2.b.host:2,S"), vec![b'x'; 200]).unwrap();
        std::fs::write(dir.join(".Archive/cur/3.c.host,S=100:2,S"), "").unwrap();
        assert!(fits(&dir, &Quota::bytes(1000), 300).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE)).unwrap(),
            "1000S\n700 3\n"
        );
        assert_eq!(limit(&dir), Some(Quota::bytes(1000)));
        assert!(!fits(&dir, &Quota::bytes(1000), 301).unwrap());
        std::fs::write(dir.join("new/4.d.host,S=250,W=260"), "").unwrap();
        add(&dir, &Quota::bytes(1000), 250).unwrap();
        assert!(!fits(&dir, &Quota::bytes(1000), 100).unwrap());
        std::fs::remove_file(dir.join("new/1.a.host,S=400,W=410")).unwrap();
        remove(&dir, &Quota::bytes(1000), 400, 1).unwrap();
        assert!(
            std::fs::read_to_string(dir.join(FILE))
                .unwrap()
                .ends_with("-400 -1\n")
        );
        assert!(fits(&dir, &Quota::bytes(1000), 100).unwrap());
        assert!(fits(&dir, &Quota::bytes(0), u64::MAX / 2).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn room_is_exact_and_recounts_once_before_refusing() {
        let dir = scratch("room");
        let q = Quota::bytes(1000);
        std::fs::write(dir.join("new/1.a.host,S=400"), "").unwrap();
        let mut room = Room::new(&dir, &q).unwrap();
        assert!(room.allows(600));
        assert!(!room.allows(601));
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE)).unwrap(),
            "1000S\n400 1\n",
            "a missing maildirsize is made"
        );
        // maildirsize counts a message removed by hand; the recount before refusing
        // finds the room.
        std::fs::remove_file(dir.join("new/1.a.host,S=400")).unwrap();
        let mut room = Room::new(&dir, &q).unwrap();
        assert!(room.allows(1000));
        assert!(!room.allows(1001));
        std::fs::write(dir.join(FILE), "1000S,1C\n0 0\n").unwrap();
        std::fs::write(dir.join("new/2.b.host,S=1"), "").unwrap();
        let one = Quota {
            bytes: 1000,
            count: 1,
        };
        add(&dir, &one, 1).unwrap();
        let mut room = Room::new(&dir, &one).unwrap();
        assert!(!room.allows(0), "no room for another message under 1C");
        assert!(Room::new(&dir, &Quota::bytes(0)).unwrap().allows(u64::MAX));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_maildirsize_means_no_limit() {
        let dir = scratch("none");
        assert_eq!(limit(&dir), None);
        std::fs::write(dir.join(FILE), "junk\n").unwrap();
        assert_eq!(limit(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_message_count_quota_is_kept_and_enforced() {
        let dir = scratch("count-limit");
        std::fs::write(dir.join(FILE), "5000S,2C\n0 0\n").unwrap();
        let q = limit(&dir).unwrap();
        assert_eq!(
            q,
            Quota {
                bytes: 5000,
                count: 2
            }
        );
        std::fs::write(dir.join("new/1.a.host,S=10"), "").unwrap();
        assert!(fits(&dir, &q, 10).unwrap());
        add(&dir, &q, 10).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE)).unwrap(),
            "5000S,2C\n0 0\n10 1\n",
            "the quota line is kept as it was written"
        );
        std::fs::write(dir.join("new/2.b.host,S=10"), "").unwrap();
        add(&dir, &q, 10).unwrap();
        assert!(!fits(&dir, &q, 10).unwrap(), "a third message is over 2C");
        assert!(
            std::fs::read_to_string(dir.join(FILE))
                .unwrap()
                .starts_with("5000S,2C\n"),
            "the recount keeps both limits"
        );
        std::fs::write(dir.join(FILE), "100C\n").unwrap();
        assert_eq!(
            limit(&dir),
            Some(Quota {
                bytes: 0,
                count: 100
            })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
