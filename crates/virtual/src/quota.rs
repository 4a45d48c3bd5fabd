//! Maildir++ quotas: the `maildirsize` file at the top of a Maildir. Its first line is the
//! quota (`10000S` for bytes); each further line is `BYTES COUNT`, a change to add up.
//! It is recomputed from the Maildir when missing, when its quota line is not the current
//! quota, when it grows past 5120 bytes, and before a message is refused (so mail removed
//! by hand or by a POP3 client that does not update it frees room at once).

use std::fs::OpenOptions;
use std::io::{self, Write};
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

/// Bytes and messages in `new/` and `cur/` (Maildir++ folders are not counted).
pub fn scan(maildir: &Path) -> io::Result<(u64, u64)> {
    let (mut bytes, mut count) = (0, 0);
    for sub in ["new", "cur"] {
        let dir = maildir.join(sub);
        for entry in std::fs::read_dir(&dir)? {
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

/// The quota line for `quota` bytes.
fn quota_line(quota: u64) -> String {
    format!("{quota}S")
}

/// Reads `maildirsize`: `Some((bytes, count, file size))` if its quota line is `quota`'s.
fn read(maildir: &Path, quota: u64) -> io::Result<Option<(u64, u64, u64)>> {
    let text = match std::fs::read_to_string(maildir.join(FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    if lines.next() != Some(quota_line(quota).as_str()) {
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
pub fn recalculate(maildir: &Path, quota: u64) -> io::Result<(u64, u64)> {
    let (bytes, count) = scan(maildir)?;
    let text = format!("{}\n{bytes} {count}\n", quota_line(quota));
    crate::write_atomic(&maildir.join(FILE), text.as_bytes(), 0o600)?;
    Ok((bytes, count))
}

/// Whether a message of `size` bytes fits under `quota` (0: always). Reads `maildirsize`,
/// recomputing it when it is missing, stale or says the message does not fit.
pub fn fits(maildir: &Path, quota: u64, size: u64) -> io::Result<bool> {
    if quota == 0 {
        return Ok(true);
    }
    let used = match read(maildir, quota)? {
        Some((bytes, _, len)) if len <= MAX_SIZE && bytes + size <= quota => return Ok(true),
        _ => recalculate(maildir, quota)?.0,
    };
    Ok(used + size <= quota)
}

/// Records a delivered message of `size` bytes in `maildirsize` (one appended line).
pub fn add(maildir: &Path, quota: u64, size: u64) -> io::Result<()> {
    if quota == 0 {
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
    f.write_all(format!("{size} 1\n").as_bytes())
}
