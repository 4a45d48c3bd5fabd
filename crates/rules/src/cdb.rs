//! The rules CDB on disk: written atomically with tcprules' exact bytes, and read back with
//! bounds checks on every offset, since tcpserver rereads it for each connection.

use crate::parse::Rule;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Why a rules CDB could not be replaced; in every case the old one is left as it was.
#[derive(Debug)]
pub enum WriteError {
    /// The temporary file could not be created.
    Create(io::Error),
    /// The temporary file could not be written or synced.
    Write(io::Error),
    /// The temporary file could not be renamed over the CDB, or the rename not synced.
    Move(io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Create(e) => write!(f, "unable to create the temporary file: {e}"),
            WriteError::Write(e) => write!(f, "unable to write the temporary file: {e}"),
            WriteError::Move(e) => write!(f, "unable to move the temporary file: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Writes the CDB for `rules` as tcprules does: `tmp` (truncated if it exists) gets every
/// key of every rule in order, is fsynced and renamed over `cdb`, and the directory is
/// synced. `tmp` must be in the same filesystem as `cdb`. On error `tmp` is removed.
pub fn write_cdb(cdb: &Path, tmp: &Path, rules: &[Rule]) -> Result<(), WriteError> {
    let options = rqmail_replace::Options {
        mode: 0o644,
        create: rqmail_replace::Create::Truncate,
        durable: true,
    };
    match rqmail_replace::replace(cdb, tmp, options, |file| fill(file, rules)) {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.step {
            rqmail_replace::Step::Create => WriteError::Create(e.source),
            rqmail_replace::Step::Write => WriteError::Write(e.source),
            rqmail_replace::Step::Install => WriteError::Move(e.source),
        }),
    }
}

fn fill(file: &File, rules: &[Rule]) -> io::Result<()> {
    let mut make = cdb::CDBMake::new(file.try_clone()?)?;
    for rule in rules {
        let data = rule.data();
        for key in rule.keys() {
            make.add(key, &data)?;
        }
    }
    make.finish()
}

/// The CDB hash: h = 5381; h = (h * 33) ^ byte.
pub fn hash(key: &[u8]) -> u32 {
    key.iter()
        .fold(5381u32, |h, &b| (h << 5).wrapping_add(h) ^ u32::from(b))
}

/// Where a CDB's bytes come from.
#[derive(Debug)]
enum Source {
    File(File),
    Bytes(Vec<u8>),
}

/// A CDB opened for lookups. Unlike the `cdb` crate's reader it takes the 2048-byte CDB
/// that an empty rules file compiles to, and it does not map the file into memory.
#[derive(Debug)]
pub struct Cdb {
    source: Source,
    size: u64,
}

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "truncated or corrupt cdb")
}

impl Cdb {
    /// Opens the CDB at `path`. A file shorter than the 2048-byte header is refused.
    pub fn open(path: &Path) -> io::Result<Cdb> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Cdb::new(Source::File(file), size)
    }

    /// A CDB held in memory (for tests and fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> io::Result<Cdb> {
        let size = bytes.len() as u64;
        Cdb::new(Source::Bytes(bytes), size)
    }

    fn new(source: Source, size: u64) -> io::Result<Cdb> {
        if size < 2048 {
            return Err(corrupt());
        }
        Ok(Cdb { source, size })
    }

    /// Reads exactly `buf.len()` bytes at `pos`, refusing reads past the end.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let end = pos.checked_add(buf.len() as u64).ok_or_else(corrupt)?;
        if end > self.size {
            return Err(corrupt());
        }
        match &self.source {
            Source::File(file) => file.read_exact_at(buf, pos).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    corrupt()
                } else {
                    e
                }
            }),
            Source::Bytes(bytes) => {
                // In range: end <= size = bytes.len(), checked above.
                buf.copy_from_slice(&bytes[pos as usize..end as usize]);
                Ok(())
            }
        }
    }

    fn read_pair(&self, pos: u64) -> io::Result<(u32, u32)> {
        let mut buf = [0u8; 8];
        self.read_at(&mut buf, pos)?;
        let first = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let second = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Ok((first, second))
    }

    /// The data of the first record with `key`, as cdb_find finds it.
    pub fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let h = hash(key);
        let (table, slots) = self.read_pair(u64::from(h & 255) * 8)?;
        if slots == 0 {
            return Ok(None);
        }
        let start = (h >> 8) % slots;
        for probe in 0..slots {
            let slot = (u64::from(start) + u64::from(probe)) % u64::from(slots);
            let (slot_hash, record) = self.read_pair(u64::from(table) + slot * 8)?;
            if record == 0 {
                return Ok(None);
            }
            if slot_hash != h {
                continue;
            }
            let record = u64::from(record);
            let (key_len, data_len) = self.read_pair(record)?;
            if key_len as usize != key.len() {
                continue;
            }
            let data_pos = record + 8 + u64::from(key_len);
            if data_pos + u64::from(data_len) > self.size {
                return Err(corrupt());
            }
            let mut found = vec![0u8; key.len()];
            self.read_at(&mut found, record + 8)?;
            if found != key {
                continue;
            }
            let mut data = vec![0u8; data_len as usize];
            self.read_at(&mut data, data_pos)?;
            return Ok(Some(data));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rqmail-rules-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn hash_is_djb_cdb_hash() {
        assert_eq!(hash(b""), 5381);
        // 5381 * 33 ^ 'a' = 177573 ^ 97 = 177604
        assert_eq!(hash(b"a"), 177604);
    }

    #[test]
    fn writes_then_reads_every_key() {
        let dir = scratch("roundtrip");
        let rules = parse(b"127.:allow,RELAYCLIENT=\"\"\n1.2.3.1-3:deny\n:allow\n").unwrap();
        let cdb = dir.join("rules.cdb");
        write_cdb(&cdb, &dir.join("rules.tmp"), &rules).unwrap();
        assert!(!dir.join("rules.tmp").exists());
        let db = Cdb::open(&cdb).unwrap();
        assert_eq!(db.get(b"127.").unwrap().unwrap(), b"+RELAYCLIENT=\0");
        assert_eq!(db.get(b"1.2.3.2").unwrap().unwrap(), b"D\0");
        assert_eq!(db.get(b"").unwrap().unwrap(), b"");
        assert_eq!(db.get(b"1.2.3.4").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_rules_compile_to_a_bare_header_that_reads_back() {
        let dir = scratch("empty");
        let cdb = dir.join("rules.cdb");
        write_cdb(&cdb, &dir.join("rules.tmp"), &[]).unwrap();
        let bytes = std::fs::read(&cdb).unwrap();
        assert_eq!(bytes.len(), 2048);
        // Every table pointer is (2048, 0), as cdbmake writes it.
        for pair in bytes.chunks(8) {
            assert_eq!(pair, [0, 8, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(Cdb::open(&cdb).unwrap().get(b"x").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn duplicate_keys_find_the_first_rule() {
        let dir = scratch("dup");
        let rules = parse(b"1.2.3.4:deny\n1.2.3.4:allow\n").unwrap();
        let cdb = dir.join("rules.cdb");
        write_cdb(&cdb, &dir.join("rules.tmp"), &rules).unwrap();
        assert_eq!(
            Cdb::open(&cdb).unwrap().get(b"1.2.3.4").unwrap().unwrap(),
            b"D\0"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_leaves_the_old_cdb() {
        let dir = scratch("fail");
        let cdb = dir.join("rules.cdb");
        std::fs::write(&cdb, b"old").unwrap();
        let rules = parse(b":allow\n").unwrap();
        // The temporary file's directory does not exist.
        let err = write_cdb(&cdb, &dir.join("missing/rules.tmp"), &rules).unwrap_err();
        assert!(matches!(err, WriteError::Create(_)));
        // Renaming onto a directory fails after the temporary file was written.
        let err = write_cdb(&dir, &dir.join("rules.tmp"), &rules).unwrap_err();
        assert!(matches!(err, WriteError::Move(_)), "{err}");
        assert!(!dir.join("rules.tmp").exists());
        assert_eq!(std::fs::read(&cdb).unwrap(), b"old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn short_or_corrupt_cdbs_are_errors_not_panics() {
        assert!(Cdb::from_bytes(vec![0; 100]).is_err());
        // Table 0 points past the end of the file.
        let mut bytes = vec![0u8; 2048];
        let h = hash(b"k");
        let t = (h & 255) as usize * 8;
        bytes[t..t + 4].copy_from_slice(&4000u32.to_le_bytes());
        bytes[t + 4..t + 8].copy_from_slice(&2u32.to_le_bytes());
        let db = Cdb::from_bytes(bytes.clone()).unwrap();
        assert!(db.get(b"k").is_err());
        // A slot whose record claims 4 GB of data.
        bytes[t..t + 4].copy_from_slice(&2048u32.to_le_bytes());
        bytes[t + 4..t + 8].copy_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&h.to_le_bytes());
        bytes.extend_from_slice(&2056u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.push(b'k');
        let db = Cdb::from_bytes(bytes).unwrap();
        assert!(db.get(b"k").is_err());
    }
}
