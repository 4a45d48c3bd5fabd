//! Recent login attempts per account, shared by every run of rqmail-checkpassword through
//! one file (`users/loginfailures`), so guesses at one account are slowed however many
//! connections, processes or client addresses they come through.
//!
//! The file is a table of 4096 slots of 32 bytes, found by a hash of the login name (8
//! probes, the stalest slot taken when all are busy), read and written under flock. Each
//! slot counts the attempts since the account's last success. The first [`FREE`] pass at
//! once; after that each attempt is given a start time after the one before, 1 s later,
//! then 2, 4, ... up to [`MAX_INTERVAL_MS`], so parallel guesses queue up one behind the
//! other; one that would have to wait more than [`MAX_WAIT_MS`] is refused without its
//! password being checked. A success clears the slot, and attempts are forgotten after
//! [`WINDOW_MS`] without one.

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SLOTS: u64 = 4096;
const SLOT: usize = 32;
const PROBES: u64 = 8;
/// Attempts since the last success that pass without waiting (typing mistakes).
pub const FREE: u32 = 5;
/// The longest gap the table puts between two attempts at one account.
pub const MAX_INTERVAL_MS: u64 = 16_000;
/// An attempt that would wait longer than this is refused unchecked.
pub const MAX_WAIT_MS: u64 = 30_000;
/// Attempts are forgotten after this long without another.
pub const WINDOW_MS: u64 = 15 * 60_000;

/// What an attempt may do.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Check the password after this wait (zero: at once).
    After(Duration),
    /// Refuse without checking: too many attempts are queued for the account.
    Refused,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// The name's hash, never 0; 0 marks a free slot.
    key: u64,
    attempts: u32,
    last_ms: u64,
    next_ms: u64,
}

impl Slot {
    fn decode(b: &[u8; SLOT]) -> Slot {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Slot {
            key: u64_at(0),
            attempts: u32::from_le_bytes(b[8..12].try_into().unwrap_or([0; 4])),
            last_ms: u64_at(16),
            next_ms: u64_at(24),
        }
    }

    fn encode(&self) -> [u8; SLOT] {
        let mut b = [0u8; SLOT];
        b[0..8].copy_from_slice(&self.key.to_le_bytes());
        b[8..12].copy_from_slice(&self.attempts.to_le_bytes());
        b[16..24].copy_from_slice(&self.last_ms.to_le_bytes());
        b[24..32].copy_from_slice(&self.next_ms.to_le_bytes());
        b
    }
}

/// FNV-1a: stable across builds, so every installed binary finds the same slot.
fn hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The open table.
pub struct Table {
    file: File,
}

impl Table {
    /// Uses an open table file (opened while the process may still write it).
    pub fn new(file: File) -> Table {
        Table { file }
    }

    fn read(&self, index: u64) -> io::Result<Slot> {
        let mut b = [0u8; SLOT];
        let mut got = 0;
        while got < SLOT {
            match self
                .file
                .read_at(&mut b[got..], index * SLOT as u64 + got as u64)?
            {
                0 => break, // past the end of a new, short file: a free slot
                n => got += n,
            }
        }
        Ok(Slot::decode(&b))
    }

    fn write(&self, index: u64, slot: &Slot) -> io::Result<()> {
        self.file.write_all_at(&slot.encode(), index * SLOT as u64)
    }

    /// The slot of `key`, or the one to take for it, with its current contents.
    fn find(&self, key: u64, now: u64) -> io::Result<(u64, Slot)> {
        let base = (key >> 1) % SLOTS;
        let mut free = None;
        let mut stalest: Option<(u64, Slot)> = None;
        for i in 0..PROBES {
            let index = (base + i) % SLOTS;
            let slot = self.read(index)?;
            if slot.key == key {
                return Ok((index, slot));
            }
            let stale = slot.key == 0 || now.saturating_sub(slot.last_ms) > WINDOW_MS;
            if stale && free.is_none() {
                free = Some(index);
            }
            if stalest.is_none_or(|(_, s)| slot.last_ms < s.last_ms) {
                stalest = Some((index, slot));
            }
        }
        let index = free.or(stalest.map(|(i, _)| i)).unwrap_or(base);
        Ok((index, Slot::default()))
    }

    fn locked(&self) -> io::Result<Flock<File>> {
        Flock::lock(self.file.try_clone()?, FlockArg::LockExclusive)
            .map_err(|(_, e)| io::Error::from(e))
    }

    /// Records an attempt at `name` and says when it may be checked.
    pub fn admit(&self, name: &[u8]) -> io::Result<Admission> {
        let _lock = self.locked()?;
        let now = now_ms();
        let key = hash(name);
        let (index, mut slot) = self.find(key, now)?;
        if now.saturating_sub(slot.last_ms) > WINDOW_MS {
            slot = Slot::default();
        }
        let admission = admission(&mut slot, now);
        slot.key = key;
        slot.last_ms = now;
        self.write(index, &slot)?;
        Ok(admission)
    }

    /// Forgets the attempts at `name` after a success.
    pub fn succeeded(&self, name: &[u8]) -> io::Result<()> {
        let _lock = self.locked()?;
        let key = hash(name);
        let (index, slot) = self.find(key, now_ms())?;
        if slot.key == key {
            self.write(index, &Slot::default())?;
        }
        Ok(())
    }
}

/// The rule itself, on one slot at time `now`.
fn admission(slot: &mut Slot, now: u64) -> Admission {
    if slot.attempts < FREE {
        slot.attempts += 1;
        return Admission::After(Duration::ZERO);
    }
    let doublings = (slot.attempts - FREE).min(20);
    let interval = (1000u64 << doublings).min(MAX_INTERVAL_MS);
    let start = now.max(slot.next_ms);
    let wait = start - now;
    if wait > MAX_WAIT_MS {
        return Admission::Refused;
    }
    slot.next_ms = start + interval;
    slot.attempts = slot.attempts.saturating_add(1);
    Admission::After(Duration::from_millis(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempts_pass_then_each_waits_behind_the_one_before() {
        let mut slot = Slot::default();
        let now = 1_000_000;
        for _ in 0..FREE {
            assert_eq!(admission(&mut slot, now), Admission::After(Duration::ZERO));
        }
        let waits: Vec<Admission> = (0..8).map(|_| admission(&mut slot, now)).collect();
        let ms = |w: u64| Admission::After(Duration::from_millis(w));
        // Intervals 1, 2, 4, 8, 16, 16 s: starts at 0, 1, 3, 7, 15, 31 (> 30 s: refused).
        assert_eq!(
            waits,
            [
                ms(0),
                ms(1000),
                ms(3000),
                ms(7000),
                ms(15_000),
                Admission::Refused,
                Admission::Refused,
                Admission::Refused
            ]
        );
    }

    #[test]
    fn slots_round_trip_and_names_hash_without_case() {
        let slot = Slot {
            key: 7,
            attempts: 3,
            last_ms: 9,
            next_ms: 11,
        };
        assert_eq!(Slot::decode(&slot.encode()), slot);
        assert_eq!(hash(b"Alice@A.test"), hash(b"alice@a.test"));
        assert_ne!(hash(b"alice"), hash(b"bob"));
        assert_ne!(hash(b""), 0);
    }

    #[test]
    fn a_table_file_throttles_one_name_and_not_another() {
        let path = std::env::temp_dir().join(format!("rqmail-throttle-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let table = Table::new(file);
        for _ in 0..FREE + 1 {
            assert_eq!(
                table.admit(b"alice").unwrap(),
                Admission::After(Duration::ZERO)
            );
        }
        assert!(
            matches!(table.admit(b"alice").unwrap(), Admission::After(d) if d > Duration::from_millis(500))
        );
        assert_eq!(
            table.admit(b"bob").unwrap(),
            Admission::After(Duration::ZERO)
        );
        table.succeeded(b"ALICE").unwrap();
        assert_eq!(
            table.admit(b"alice").unwrap(),
            Admission::After(Duration::ZERO)
        );
        let _ = std::fs::remove_file(&path);
    }
}
