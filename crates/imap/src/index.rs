//! A folder's index: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and, for each message, its UID,
//! mod-sequence, internal date and flags as last seen, kept as an append-only log.
//!
//! The file `rqmail-index` starts with `rqmail-index 1 VALIDITY`; then each line is one of
//! - `N NEXT HIGHESTMODSEQ`: at least these values (written when the log is compacted);
//! - `+ UID MODSEQ MTIME FLAGS UNIQUE`: the message `UNIQUE` has `UID`, and since `MODSEQ`
//!   the info letters `FLAGS` (`-` for none) and the internal date `MTIME`;
//! - `- UID MODSEQ`: the message left the folder at `MODSEQ`.
//! - `Z UID SIZE`: the message's size with CRLF line ends (RFC822.SIZE), once computed.
//! - `S CUR CUR_NS NEW NEW_NS`: the modification times of cur/ and new/ when a scan last
//!   found every file as the records say and new/ empty: while the directories still have
//!   these times, the records are the folder and it need not be read again.
//!
//! Later lines win. Writers hold the folder's lock, append whole lines and fsync before a
//! UID or mod-sequence is shown to a client, so neither is ever reused after a crash; a
//! torn last line (no newline) is ignored and cut off by the next writer. When the log has
//! grown well past the live records it is rewritten through a temporary file and a rename,
//! which readers notice by the changed inode. Sessions keep what they read and read only
//! what was appended since.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The index file in each folder.
pub const INDEX: &str = "rqmail-index";
/// The UID list of earlier versions, read once to keep its UIDs.
const OLD_UIDLIST: &str = "rqmail-uidlist";
const MAGIC: &str = "rqmail-index 1 ";

/// A set of Maildir info letters (`A`-`Z`, `a`-`z`) in eight bytes: the flags of every
/// message are kept, twice, for the whole folder, so they should cost no allocation.
/// Other characters in an info field are not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Letters(u64);

impl Letters {
    fn bit(l: u8) -> Option<u64> {
        match l {
            b'A'..=b'Z' => Some(1 << (l - b'A')),
            b'a'..=b'z' => Some(1 << (26 + l - b'a')),
            _ => None,
        }
    }

    /// The letters of `bytes` (duplicates and other characters dropped).
    pub fn from_slice(bytes: &[u8]) -> Letters {
        Letters(
            bytes
                .iter()
                .filter_map(|&l| Letters::bit(l))
                .fold(0, |a, b| a | b),
        )
    }

    /// True if `l` is in the set.
    pub fn contains(&self, l: u8) -> bool {
        Letters::bit(l).is_some_and(|b| self.0 & b != 0)
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The letters in ASCII order (as they go in a file name).
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .filter(|&l| self.contains(l))
    }

    /// The letters in ASCII order.
    pub fn to_vec(&self) -> Vec<u8> {
        self.iter().collect()
    }
}

/// One message as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The UID.
    pub uid: u32,
    /// The mod-sequence of its last flag change (or of its arrival).
    pub modseq: u64,
    /// The internal date, seconds since the epoch (`i64::MIN` if not yet known).
    pub mtime: i64,
    /// The info letters last seen.
    pub flags: Letters,
    /// The size with CRLF line ends, once known (0: not yet).
    pub size: u64,
    /// The Maildir unique name.
    pub unique: Rc<str>,
}

/// The index of one folder, as read so far.
#[derive(Debug, Clone)]
pub struct Index {
    /// UIDVALIDITY.
    pub validity: u32,
    /// UIDNEXT.
    pub next: u32,
    /// HIGHESTMODSEQ.
    pub highest: u64,
    /// The live records in ascending UID order.
    pub records: Vec<Record>,
    /// The directories' times when the records were last known to be the whole folder.
    pub stamp: Option<[i64; 4]>,
    /// UIDs by unique name, built when a scan of the directories first needs it (opening
    /// a settled folder does not).
    by_unique: Option<HashMap<Rc<str>, u32>>,
    lines: usize,
    /// The file read so far, kept open so that its inode cannot be reused by a later
    /// index while `identity` still names it.
    file: Option<Rc<File>>,
    identity: (u64, u64),
    offset: u64,
    pending: String,
}

/// A decimal number without sign, as the index writes them.
fn number(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// A decimal number that may be negative (times).
fn signed(field: &[u8]) -> Option<i64> {
    match field.strip_prefix(b"-") {
        // i64::MIN's magnitude is one more than i64::MAX.
        Some(digits) => number(digits).and_then(|n| 0i64.checked_sub_unsigned(n)),
        None => number(field).and_then(|n| i64::try_from(n).ok()),
    }
}

/// The last UIDVALIDITY given in a Maildir, in its root.
const LAST_VALIDITY: &str = "rqmail-uidvalidity";

/// A new UIDVALIDITY for the folder at `dir`: the time in seconds, but always above every
/// one given before in the same Maildir, so that a folder deleted and made again in the
/// same second never shows old UIDs under an old UIDVALIDITY (RFC 3501 §2.3.1.1).
fn fresh_validity(dir: &Path) -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    let now = u32::try_from(now).unwrap_or(u32::MAX).max(1);
    let is_folder = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let root = match dir.parent() {
        Some(parent) if is_folder => parent,
        _ => dir,
    };
    let take = || -> io::Result<u32> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(root.join(LAST_VALIDITY))?;
        let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io::Error::from(e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let last: u32 = text.trim().parse().unwrap_or(0);
        let next = now.max(last.saturating_add(1));
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(format!("{next}\n").as_bytes())?;
        file.sync_data()?;
        Ok(next)
    };
    take().unwrap_or(now)
}

impl Index {
    fn empty(validity: u32) -> Index {
        Index {
            validity,
            next: 1,
            highest: 1,
            records: Vec::new(),
            stamp: None,
            by_unique: None,
            lines: 0,
            file: None,
            identity: (0, 0),
            offset: 0,
            pending: String::new(),
        }
    }

    /// The UID of `unique`, if it has one.
    pub fn uid_of(&mut self, unique: &str) -> Option<u32> {
        let records = &self.records;
        self.by_unique
            .get_or_insert_with(|| records.iter().map(|r| (r.unique.clone(), r.uid)).collect())
            .get(unique)
            .copied()
    }

    /// The record of `uid`.
    pub fn get(&self, uid: u32) -> Option<&Record> {
        self.records
            .binary_search_by_key(&uid, |r| r.uid)
            .ok()
            .map(|i| &self.records[i])
    }

    fn get_mut(&mut self, uid: u32) -> Option<&mut Record> {
        match self.records.binary_search_by_key(&uid, |r| r.uid) {
            Ok(i) => Some(&mut self.records[i]),
            Err(_) => None,
        }
    }

    /// Applies one complete line; false if it is not understood.
    fn apply(&mut self, line: &[u8], removed: &mut HashSet<u32>) -> bool {
        let mut f = line.split(|&b| b == b' ');
        let kind = f.next();
        let mut num = || f.next().and_then(number);
        match kind {
            Some(b"N") => {
                let (Some(next), Some(highest)) = (num(), num()) else {
                    return false;
                };
                let Ok(next) = u32::try_from(next) else {
                    return false;
                };
                self.next = self.next.max(next);
                self.highest = self.highest.max(highest);
            }
            Some(b"+") => {
                let (Some(uid), Some(modseq)) = (num(), num()) else {
                    return false;
                };
                let (Some(mtime), Some(flags), Some(unique)) = (
                    f.next().and_then(signed),
                    f.next(),
                    f.next().and_then(|u| std::str::from_utf8(u).ok()),
                ) else {
                    return false;
                };
                let Ok(uid) = u32::try_from(uid) else {
                    return false;
                };
                if uid == 0 || unique.is_empty() {
                    return false;
                }
                let flags = if flags == b"-" {
                    Letters::default()
                } else {
                    Letters::from_slice(flags)
                };
                if !removed.is_empty() {
                    removed.remove(&uid);
                }
                self.highest = self.highest.max(modseq);
                self.next = self.next.max(uid.saturating_add(1));
                // Records are mostly appended in UID order: look at the last one first.
                let existing = match self.records.last() {
                    Some(last) if last.uid < uid => None,
                    _ => self.get_mut(uid),
                };
                if let Some(r) = existing {
                    r.modseq = modseq;
                    r.mtime = mtime;
                    r.flags = flags;
                } else {
                    let unique: Rc<str> = Rc::from(unique);
                    if let Some(map) = &mut self.by_unique {
                        map.insert(unique.clone(), uid);
                    }
                    let record = Record {
                        uid,
                        modseq,
                        mtime,
                        flags,
                        size: 0,
                        unique,
                    };
                    match self.records.last() {
                        Some(last) if last.uid > uid => {
                            let at = self.records.partition_point(|r| r.uid < uid);
                            self.records.insert(at, record);
                        }
                        _ => self.records.push(record),
                    }
                }
            }
            Some(b"Z") => {
                let (Some(uid), Some(size)) = (num(), num()) else {
                    return false;
                };
                if let Ok(uid) = u32::try_from(uid)
                    && let Some(r) = self.get_mut(uid)
                {
                    r.size = size;
                }
            }
            Some(b"S") => {
                let mut stamp = [0i64; 4];
                for v in &mut stamp {
                    match f.next().and_then(signed) {
                        Some(n) => *v = n,
                        None => return false,
                    }
                }
                self.stamp = Some(stamp);
            }
            Some(b"-") => {
                let (Some(uid), Some(modseq)) = (num(), num()) else {
                    return false;
                };
                let Ok(uid) = u32::try_from(uid) else {
                    return false;
                };
                self.highest = self.highest.max(modseq);
                self.next = self.next.max(uid.saturating_add(1));
                removed.insert(uid);
            }
            _ => return false,
        }
        self.lines += 1;
        true
    }

    /// Drops the records `removed` names.
    fn drop_removed(&mut self, removed: &HashSet<u32>) {
        if removed.is_empty() {
            return;
        }
        let mut by_unique = self.by_unique.as_mut();
        self.records.retain(|r| {
            let keep = !removed.contains(&r.uid);
            // The name may have a later record (a second UID given by mistake): only
            // forget the name if it still points at this UID.
            if !keep
                && let Some(map) = by_unique.as_mut()
                && map.get(&r.unique) == Some(&r.uid)
            {
                map.remove(&r.unique);
            }
            keep
        });
    }

    /// Brings the index up to date with the file in `dir`, reading only what was appended
    /// since the last call when the file is the same. A missing or unreadable file gives a
    /// new index (taking the UIDs of an old `rqmail-uidlist` if there is one).
    pub fn refresh(current: Option<Index>, dir: &Path) -> io::Result<Index> {
        let path = dir.join(INDEX);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::migrate(dir)),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let identity = (meta.dev(), meta.ino());
        let mut index = match current {
            Some(i) if i.file.is_some() && i.identity == identity && meta.len() >= i.offset => i,
            _ => {
                let mut i = Index::empty(0);
                i.identity = identity;
                i
            }
        };
        if meta.len() == 0 {
            // An empty file (made, never written): as if there were none.
            return Ok(Index::empty(fresh_validity(dir)));
        }
        if meta.len() == index.offset {
            return Ok(index);
        }
        file.seek(SeekFrom::Start(index.offset))?;
        let mut bytes = Vec::with_capacity((meta.len() - index.offset) as usize);
        file.read_to_end(&mut bytes)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let mut lines = bytes[..complete]
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty());
        if index.offset == 0 {
            let validity = lines
                .next()
                .and_then(|l| l.strip_prefix(MAGIC.as_bytes()))
                .and_then(number)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| v != 0);
            match validity {
                Some(v) => index.validity = v,
                // Not an index: start again with a new UIDVALIDITY.
                None => return Ok(Index::empty(fresh_validity(dir))),
            }
        }
        let mut removed = HashSet::new();
        for line in lines {
            index.apply(line, &mut removed);
        }
        index.drop_removed(&removed);
        index.records.shrink_to_fit();
        index.offset += complete as u64;
        if index.file.is_none() {
            index.file = Some(Rc::new(file));
        }
        Ok(index)
    }

    /// A new index, with the UIDs of the UID list of earlier versions if there is one.
    fn migrate(dir: &Path) -> Index {
        let Ok(text) = fs::read_to_string(dir.join(OLD_UIDLIST)) else {
            return Index::empty(fresh_validity(dir));
        };
        let mut lines = text.lines();
        let mut first = lines.next().unwrap_or("").split(' ');
        let (Some(Ok(validity)), Some(Ok(next))) = (
            first.next().map(str::parse::<u32>),
            first.next().map(str::parse::<u32>),
        ) else {
            return Index::empty(fresh_validity(dir));
        };
        if validity == 0 {
            return Index::empty(fresh_validity(dir));
        }
        let mut index = Index::empty(validity);
        index.next = next.max(1);
        let mut entries: Vec<(u32, &str)> = lines
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(u, n)| Some((u.parse().ok()?, n)))
            .filter(|(u, n)| *u != 0 && *u < next && !n.is_empty() && !n.contains(' '))
            .collect();
        entries.sort_unstable();
        entries.dedup_by_key(|e| e.0);
        for (uid, unique) in entries {
            let unique: Rc<str> = Rc::from(unique);
            let map = index.by_unique.get_or_insert_with(HashMap::new);
            if map.contains_key(&unique) {
                continue;
            }
            map.insert(unique.clone(), uid);
            index.records.push(Record {
                uid,
                modseq: 1,
                mtime: i64::MIN,
                flags: Letters::default(),
                size: 0,
                unique,
            });
        }
        index
    }

    /// Gives every message a new UID from 1 under a new UIDVALIDITY, for a folder whose
    /// UIDs ran out: RFC 3501 §2.3.1.1 allows no other way. The whole index is written
    /// again at `commit`, and sessions that have the folder selected end.
    pub fn renumber(&mut self, dir: &Path) {
        self.validity = fresh_validity(dir);
        for (n, r) in self.records.iter_mut().enumerate() {
            r.uid = n as u32 + 1;
        }
        self.next = self.records.len() as u32 + 1;
        self.highest += 1;
        self.by_unique = None;
        self.stamp = None;
        self.pending.clear();
        // No longer the file on disk: `commit` rewrites it.
        self.offset = 0;
        self.file = None;
    }

    /// Gives `unique` the next UID and a new mod-sequence (to be written by `commit`).
    pub fn add(&mut self, unique: &str, mtime: i64, flags: &[u8]) -> (u32, u64) {
        let uid = self.next;
        self.next = self.next.saturating_add(1);
        self.highest += 1;
        let record = Record {
            uid,
            modseq: self.highest,
            mtime,
            flags: Letters::from_slice(flags),
            size: 0,
            unique: Rc::from(unique),
        };
        if let Some(map) = &mut self.by_unique {
            map.insert(record.unique.clone(), uid);
        }
        self.pending.push_str(&Index::line(&record));
        self.records.push(record);
        (uid, self.highest)
    }

    /// Records new flags (or a learned internal date) for `uid`, with a new mod-sequence
    /// when the flags changed.
    pub fn update(&mut self, uid: u32, flags: &[u8], mtime: i64) {
        let highest = self.highest + 1;
        let Some(r) = self.get_mut(uid) else { return };
        let flags = Letters::from_slice(flags);
        let flags_changed = r.flags != flags;
        if !flags_changed && r.mtime == mtime {
            return;
        }
        if flags_changed {
            r.modseq = highest;
            r.flags = flags;
        }
        r.mtime = mtime;
        let line = Index::line(r);
        if flags_changed {
            self.highest = highest;
        }
        self.pending.push_str(&line);
    }

    /// Records the size of `uid` with CRLF line ends.
    pub fn set_size(&mut self, uid: u32, size: u64) {
        if let Some(r) = self.get_mut(uid)
            && r.size != size
        {
            r.size = size;
            self.pending.push_str(&format!("Z {uid} {size}\n"));
        }
    }

    /// Records that the records are the whole folder while cur/ and new/ keep these times.
    pub fn set_stamp(&mut self, stamp: [i64; 4]) {
        if self.stamp != Some(stamp) {
            self.stamp = Some(stamp);
            self.pending.push_str(&format!(
                "S {} {} {} {}\n",
                stamp[0], stamp[1], stamp[2], stamp[3]
            ));
        }
    }

    /// Forgets the messages `uids` (gone from the folder).
    pub fn remove(&mut self, uids: &HashSet<u32>) {
        if uids.is_empty() {
            return;
        }
        self.highest += 1;
        let mut sorted: Vec<&u32> = uids.iter().collect();
        sorted.sort_unstable();
        for uid in sorted {
            self.pending
                .push_str(&format!("- {uid} {}\n", self.highest));
        }
        self.drop_removed(uids);
    }

    fn line(r: &Record) -> String {
        let flags = if r.flags.is_empty() {
            "-".to_string()
        } else {
            String::from_utf8_lossy(&r.flags.to_vec()).into_owned()
        };
        format!(
            "+ {} {} {} {flags} {}\n",
            r.uid, r.modseq, r.mtime, r.unique
        )
    }

    /// True if changes wait to be written.
    pub fn dirty(&self) -> bool {
        !self.pending.is_empty() || self.offset == 0
    }

    /// Writes the pending changes (the caller holds the folder's lock and refreshed the
    /// index under it): appended and fsynced, or the whole index rewritten when the log has
    /// grown to more than twice the live records or the file is new.
    pub fn commit(&mut self, dir: &Path) -> io::Result<()> {
        if !self.dirty() {
            return Ok(());
        }
        let pending_lines = self.pending.bytes().filter(|&b| b == b'\n').count();
        let compact =
            self.offset == 0 || self.lines + pending_lines > 2 * self.records.len() + 1024;
        if compact {
            return self.rewrite(dir);
        }
        let mut file = OpenOptions::new().write(true).open(dir.join(INDEX))?;
        // Cut a torn last line left by a crash.
        if file.metadata()?.len() != self.offset {
            file.set_len(self.offset)?;
        }
        file.seek(SeekFrom::Start(self.offset))?;
        file.write_all(self.pending.as_bytes())?;
        file.sync_data()?;
        self.offset += self.pending.len() as u64;
        self.lines += pending_lines;
        self.pending.clear();
        Ok(())
    }

    fn rewrite(&mut self, dir: &Path) -> io::Result<()> {
        let mut text = format!(
            "{MAGIC}{}\nN {} {}\n",
            self.validity, self.next, self.highest
        );
        for r in &self.records {
            text.push_str(&Index::line(r));
            if r.size != 0 {
                text.push_str(&format!("Z {} {}\n", r.uid, r.size));
            }
        }
        if let Some(s) = self.stamp {
            text.push_str(&format!("S {} {} {} {}\n", s[0], s[1], s[2], s[3]));
        }
        let file = rqmail_mailbox::replace_file(&dir.join(INDEX), text.as_bytes(), true)?;
        let meta = file.metadata()?;
        self.identity = (meta.dev(), meta.ino());
        self.file = Some(Rc::new(file));
        self.offset = text.len() as u64;
        self.lines = text.bytes().filter(|&b| b == b'\n').count() - 1;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rqmail-index-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn appended_changes_are_read_incrementally_and_after_compaction() {
        let d = dir("log");
        let mut a = Index::refresh(None, &d).unwrap();
        let (u1, m1) = a.add("one", 10, b"");
        let (u2, _) = a.add("two", 11, b"S");
        a.commit(&d).unwrap();
        assert_eq!((u1, u2), (1, 2));
        let mut b = Index::refresh(None, &d).unwrap();
        assert_eq!(b.validity, a.validity);
        assert_eq!(b.records, a.records);
        a.update(1, b"FS", 10);
        a.set_size(1, 1234);
        a.remove(&HashSet::from([2]));
        a.commit(&d).unwrap();
        b = Index::refresh(Some(b), &d).unwrap();
        assert_eq!(b.records.len(), 1);
        assert_eq!(b.get(1).unwrap().flags.to_vec(), b"FS");
        assert_eq!(b.get(1).unwrap().size, 1234);
        assert!(b.get(1).unwrap().modseq > m1);
        assert_eq!(b.next, 3);
        assert_eq!(b.highest, a.highest);
        // A torn line is ignored, then cut by the next writer.
        let mut f = OpenOptions::new().append(true).open(d.join(INDEX)).unwrap();
        f.write_all(b"+ 9 9 9 - torn").unwrap();
        b = Index::refresh(Some(b), &d).unwrap();
        assert!(b.get(9).is_none());
        b.add("three", 12, b"");
        b.commit(&d).unwrap();
        let c = Index::refresh(None, &d).unwrap();
        assert_eq!(
            c.records.iter().map(|r| r.uid).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(c.next, 4);
        // Compaction keeps everything, and readers notice the new file.
        let mut w = Index::refresh(None, &d).unwrap();
        w.rewrite(&d).unwrap();
        let r = Index::refresh(Some(c.clone()), &d).unwrap();
        assert_eq!(r.records, c.records);
        assert_eq!((r.next, r.highest), (c.next, c.highest));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn letters_keep_info_letters_in_ascii_order() {
        let l = Letters::from_slice(b"TSaFzS1");
        assert_eq!(l.to_vec(), b"FSTaz");
        assert!(l.contains(b'S') && l.contains(b'z') && !l.contains(b'D') && !l.contains(b'1'));
        assert_eq!(Letters::from_slice(b"SF"), Letters::from_slice(b"FS"));
        assert!(Letters::from_slice(b"").is_empty());
        assert_eq!(std::mem::size_of::<Letters>(), 8);
    }

    #[test]
    fn the_old_uid_list_is_taken_over() {
        let d = dir("old");
        fs::write(d.join(OLD_UIDLIST), "1234 7\n3 a.b\n5 c.d\n").unwrap();
        let mut i = Index::refresh(None, &d).unwrap();
        assert_eq!((i.validity, i.next), (1234, 7));
        assert_eq!(i.uid_of("c.d"), Some(5));
        let _ = fs::remove_dir_all(&d);
    }
}
