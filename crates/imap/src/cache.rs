//! A folder's cache of what is costly to compute from a message: its ENVELOPE, BODY and
//! BODYSTRUCTURE, so that a client listing 100,000 messages does not make the server read
//! and parse 100,000 files each time.
//!
//! The file `rqmail-cache` starts with `rqmail-cache 2 UIDVALIDITY`; then records
//! `KIND UID LEN\n` followed by LEN bytes and `\n`, KIND being `E` (ENVELOPE), `B` (BODY) or
//! `S` (BODYSTRUCTURE), or `F` (the From, To, Cc, Bcc and Subject fields, unfolded and
//! with RFC 2047 words decoded, for SEARCH). It is only a cache: nothing is fsynced, a
//! record cut short by a crash ends the readable part and is cut off by the next writer, a
//! file for an older UIDVALIDITY (or version) is replaced by a new one, and the whole file
//! is rewritten without the records of expunged messages once they are most of it. Writers append under an flock of the file; each
//! session reads what others appended since it last looked, keeps only offsets, and holds
//! the file open (so that a later cache cannot reuse its inode).

use nix::fcntl::{Flock, FlockArg};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// The cache file in each folder.
pub const CACHE: &str = "rqmail-cache";
/// Version 2: the `F` records hold decoded (RFC 2047) values.
const MAGIC: &str = "rqmail-cache 2 ";

/// What is cached of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// ENVELOPE.
    Envelope,
    /// BODY (the non-extensible structure).
    Body,
    /// BODYSTRUCTURE.
    Structure,
    /// The header fields SEARCH looks at most (From, To, Cc, Bcc, Subject), unfolded.
    Fields,
}

impl Kind {
    fn letter(self) -> u8 {
        match self {
            Kind::Envelope => b'E',
            Kind::Body => b'B',
            Kind::Structure => b'S',
            Kind::Fields => b'F',
        }
    }

    fn from_letter(l: u8) -> Option<Kind> {
        match l {
            b'E' => Some(Kind::Envelope),
            b'B' => Some(Kind::Body),
            b'S' => Some(Kind::Structure),
            b'F' => Some(Kind::Fields),
            _ => None,
        }
    }
}

/// A record's message and kind.
type Key = (u32, Kind);
/// Where a record's bytes are in the file: offset and length.
type Place = (u64, u32);

/// One folder's cache as this session knows it: where each record is in the file.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    validity: u32,
    file: Option<File>,
    identity: (u64, u64),
    scanned: u64,
    entries: HashMap<Key, Place>,
}

/// Parses records from `bytes` (read at file offset `base`) into `entries`; returns how
/// many bytes hold whole records.
fn parse(bytes: &[u8], base: u64, entries: &mut HashMap<Key, Place>) -> usize {
    let mut pos = 0;
    loop {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return pos;
        };
        let head = String::from_utf8_lossy(&bytes[pos..pos + nl]);
        let mut f = head.split(' ');
        let (Some(kind), Some(uid), Some(len)) = (f.next(), f.next(), f.next()) else {
            return pos;
        };
        let kind = kind.bytes().next().and_then(Kind::from_letter);
        let (Some(kind), Ok(uid), Ok(len)) = (kind, uid.parse::<u32>(), len.parse::<u32>()) else {
            return pos;
        };
        let start = pos + nl + 1;
        let end = start + len as usize;
        if end + 1 > bytes.len() || bytes[end] != b'\n' {
            return pos;
        }
        entries.insert((uid, kind), (base + start as u64, len));
        pos = end + 1;
    }
}

impl Cache {
    /// The cache of the folder at `dir`, for UIDVALIDITY `validity`; nothing is read yet.
    pub fn new(dir: PathBuf, validity: u32) -> Cache {
        Cache {
            path: dir.join(CACHE),
            validity,
            file: None,
            identity: (0, 0),
            scanned: 0,
            entries: HashMap::new(),
        }
    }

    /// Reads what was appended since the last look (all of it if the file is new to us).
    fn catch_up(&mut self) -> io::Result<()> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        // The file this session holds open cannot have had its inode reused, so the same
        // identity is the same file.
        if self.file.is_none()
            || (meta.dev(), meta.ino()) != self.identity
            || meta.len() < self.scanned
        {
            self.forget();
            self.identity = (meta.dev(), meta.ino());
        }
        let mut file = file;
        if self.scanned == 0 {
            if header_validity(&mut file)? != Some(self.validity) {
                self.forget();
                return Ok(());
            }
            self.scanned = self.magic().len() as u64;
        }
        if meta.len() > self.scanned {
            let mut bytes = Vec::with_capacity((meta.len() - self.scanned) as usize);
            file.seek(SeekFrom::Start(self.scanned))?;
            file.read_to_end(&mut bytes)?;
            let used = parse(&bytes, self.scanned, &mut self.entries);
            self.scanned += used as u64;
        }
        self.file = Some(file);
        Ok(())
    }

    /// Forgets the file and its records.
    fn forget(&mut self) {
        self.file = None;
        self.identity = (0, 0);
        self.entries.clear();
        self.scanned = 0;
    }

    fn magic(&self) -> String {
        format!("{MAGIC}{}\n", self.validity)
    }

    /// Reads what other sessions added since the last look (errors leave the cache as it
    /// was: it is only a cache). Called once before a command's lookups.
    pub fn refresh(&mut self) {
        if self.catch_up().is_err() {
            self.forget();
        }
    }

    /// The cached bytes of `uid`'s `kind`, as of the last `refresh` or `put`.
    pub fn get(&mut self, uid: u32, kind: Kind) -> Option<Vec<u8>> {
        let &(offset, len) = self.entries.get(&(uid, kind))?;
        let file = self.file.as_ref()?;
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }

    /// Appends records (errors are only reported: this is a cache). When the file has
    /// grown to more than twice the records of `live` messages, it is rewritten with only
    /// theirs. A file of an older UIDVALIDITY (or not a cache) is replaced, never changed
    /// in place, since other sessions may still read it; one of a newer UIDVALIDITY means
    /// this session's folder is gone, and nothing is written.
    pub fn put(&mut self, items: &[(u32, Kind, Vec<u8>)], live: &HashSet<u32>) -> io::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        let mut file =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        // Under the lock: the file may be new, of another UIDVALIDITY, or replaced.
        let meta = file.metadata()?;
        if self.file.is_none() || (meta.dev(), meta.ino()) != self.identity {
            self.forget();
            self.identity = (meta.dev(), meta.ino());
        }
        let magic = self.magic();
        match header_validity(&mut file)? {
            Some(v) if v == self.validity => {
                if self.scanned == 0 {
                    self.scanned = magic.len() as u64;
                }
            }
            Some(v) if v > self.validity => return Ok(()),
            _ if meta.len() == 0 => {
                // Made just now, under our lock: no one has read it.
                file.write_all_at(magic.as_bytes(), 0)?;
                self.scanned = magic.len() as u64;
            }
            _ => {
                let fresh: Vec<(Key, Vec<u8>)> = items
                    .iter()
                    .map(|(uid, kind, bytes)| ((*uid, *kind), bytes.clone()))
                    .collect();
                return self.replace(fresh);
            }
        }
        // Records others appended, then cut a torn tail (which no one can have read).
        let len = file.metadata()?.len();
        if len > self.scanned {
            let mut bytes = Vec::with_capacity((len - self.scanned) as usize);
            file.seek(SeekFrom::Start(self.scanned))?;
            (*file).read_to_end(&mut bytes)?;
            let used = parse(&bytes, self.scanned, &mut self.entries);
            self.scanned += used as u64;
        }
        if file.metadata()?.len() != self.scanned {
            file.set_len(self.scanned)?;
        }
        let mut out = Vec::new();
        let mut placed = Vec::with_capacity(items.len());
        for (uid, kind, bytes) in items {
            let head = format!("{} {uid} {}\n", kind.letter() as char, bytes.len());
            out.extend_from_slice(head.as_bytes());
            placed.push((
                (*uid, *kind),
                (self.scanned + out.len() as u64, bytes.len() as u32),
            ));
            out.extend_from_slice(bytes);
            out.push(b'\n');
        }
        file.seek(SeekFrom::Start(self.scanned))?;
        file.write_all(&out)?;
        self.scanned += out.len() as u64;
        self.entries.extend(placed);
        let stale = self
            .entries
            .keys()
            .filter(|(u, _)| !live.contains(u))
            .count();
        if stale > 1000 && stale > self.entries.len() / 2 {
            // Only the records of `live` messages, from the old file (still locked).
            let mut keep: Vec<(&Key, &Place)> = self
                .entries
                .iter()
                .filter(|((u, _), _)| live.contains(u))
                .collect();
            keep.sort_by_key(|(_, (offset, _))| *offset);
            let mut records = Vec::with_capacity(keep.len());
            for (&key, &(offset, len)) in keep {
                let mut buf = vec![0; len as usize];
                file.read_exact_at(&mut buf, offset)?;
                records.push((key, buf));
            }
            return self.replace(records);
        }
        self.file = Some(file.unlock().map_err(|(_, e)| io::Error::from(e))?);
        Ok(())
    }

    /// Writes a new file with `records` and renames it over the old one (whose lock the
    /// caller holds, if there is one); the session then holds the new file.
    fn replace(&mut self, records: Vec<(Key, Vec<u8>)>) -> io::Result<()> {
        let mut out = self.magic().into_bytes();
        let mut entries = HashMap::with_capacity(records.len());
        for ((uid, kind), bytes) in records {
            let len = bytes.len() as u32;
            out.extend_from_slice(format!("{} {uid} {len}\n", kind.letter() as char).as_bytes());
            entries.insert((uid, kind), (out.len() as u64, len));
            out.extend_from_slice(&bytes);
            out.push(b'\n');
        }
        // Only a cache: not fsynced.
        match rqmail_mailbox::replace_file(&self.path, &out, false)
            .and_then(|f| Ok((f.metadata()?, f)))
        {
            Ok((meta, file)) => {
                self.identity = (meta.dev(), meta.ino());
                self.entries = entries;
                self.scanned = out.len() as u64;
                self.file = Some(file);
                Ok(())
            }
            Err(e) => {
                self.forget();
                Err(e)
            }
        }
    }
}

/// The UIDVALIDITY in a cache file's first line, if it is one.
fn header_validity(file: &mut File) -> io::Result<Option<u32>> {
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    let Some(nl) = head[..n].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    Ok(std::str::from_utf8(&head[..nl])
        .ok()
        .and_then(|h| h.strip_prefix(MAGIC))
        .and_then(|v| v.parse::<u32>().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rqmail-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn records_are_shared_between_sessions_and_survive_a_torn_tail() {
        let d = dir("shared");
        let live: HashSet<u32> = [1, 2, 3].into();
        let mut a = Cache::new(d.clone(), 7);
        let mut b = Cache::new(d.clone(), 7);
        a.refresh();
        assert_eq!(a.get(1, Kind::Envelope), None);
        a.put(&[(1, Kind::Envelope, b"(env one)".to_vec())], &live)
            .unwrap();
        b.refresh();
        assert_eq!(b.get(1, Kind::Envelope).unwrap(), b"(env one)");
        b.put(
            &[(2, Kind::Structure, b"(\"TEXT\"\n\"PLAIN\")".to_vec())],
            &live,
        )
        .unwrap();
        a.refresh();
        assert_eq!(a.get(2, Kind::Structure).unwrap(), b"(\"TEXT\"\n\"PLAIN\")");
        assert_eq!(a.get(2, Kind::Envelope), None);
        // A crash in the middle of a record: readers stop there, the next writer cuts it.
        let mut f = OpenOptions::new().append(true).open(d.join(CACHE)).unwrap();
        f.write_all(b"E 3 100\nshort").unwrap();
        b.refresh();
        assert_eq!(b.get(3, Kind::Envelope), None);
        b.put(&[(3, Kind::Body, b"(body)".to_vec())], &live)
            .unwrap();
        let mut c = Cache::new(d.clone(), 7);
        c.refresh();
        assert_eq!(c.get(3, Kind::Body).unwrap(), b"(body)");
        assert_eq!(c.get(1, Kind::Envelope).unwrap(), b"(env one)");
        // Another UIDVALIDITY: nothing of the old cache is believed, and it is replaced.
        let mut other = Cache::new(d.clone(), 8);
        other.refresh();
        assert_eq!(other.get(1, Kind::Envelope), None);
        other
            .put(&[(1, Kind::Envelope, b"(new)".to_vec())], &live)
            .unwrap();
        let fresh = |v: u32| {
            let mut c = Cache::new(d.clone(), v);
            c.refresh();
            c.get(1, Kind::Envelope)
        };
        assert_eq!(fresh(8).unwrap(), b"(new)");
        assert_eq!(fresh(7), None);
        // The old file was replaced, not rewritten: a session still on it reads what it
        // read before, never another UIDVALIDITY's record at the same place.
        assert_eq!(c.get(1, Kind::Envelope).unwrap(), b"(env one)");
        // A session of the older UIDVALIDITY (its folder deleted and made again) writes
        // nothing over the newer cache.
        c.put(&[(1, Kind::Envelope, b"(stale)".to_vec())], &live)
            .unwrap();
        assert_eq!(fresh(8).unwrap(), b"(new)");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn records_of_expunged_messages_are_dropped_when_they_are_most_of_the_file() {
        let d = dir("compact");
        let mut a = Cache::new(d.clone(), 1);
        let all: HashSet<u32> = (1..=3000).collect();
        let items: Vec<_> = (1..=3000)
            .map(|u| (u, Kind::Envelope, format!("(env {u})").into_bytes()))
            .collect();
        a.put(&items, &all).unwrap();
        let before = fs::metadata(d.join(CACHE)).unwrap().len();
        let live: HashSet<u32> = (2990..=3001).collect();
        a.put(&[(3001, Kind::Envelope, b"(env 3001)".to_vec())], &live)
            .unwrap();
        let after = fs::metadata(d.join(CACHE)).unwrap().len();
        assert!(after < before / 10, "{before} -> {after}");
        let mut b = Cache::new(d.clone(), 1);
        b.refresh();
        assert_eq!(b.get(2995, Kind::Envelope).unwrap(), b"(env 2995)");
        assert_eq!(b.get(3001, Kind::Envelope).unwrap(), b"(env 3001)");
        assert_eq!(b.get(5, Kind::Envelope), None);
        a.refresh();
        assert_eq!(a.get(2995, Kind::Envelope).unwrap(), b"(env 2995)");
        let _ = fs::remove_dir_all(&d);
    }
}
