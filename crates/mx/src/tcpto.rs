//! qmail's TCP timeout table (spec §8.7), widened for IPv6: addresses whose connects
//! recently timed out are skipped for about an hour so one dead MX does not stall every delivery.
//!
//! The table is `HOME/queue/lock/tcpto`, exactly [`TABLE_SIZE`] = 4096 bytes: 128 records
//! of 32 bytes (qmail: 64 × 16). A record:
//!
//! | bytes  | meaning |
//! |--------|---------|
//! | 0–15   | the address as 16 IPv6 bytes; IPv4 as IPv4-mapped `::ffff:a.b.c.d` |
//! | 16     | failure count, 1–10; 0 = free record |
//! | 17–23  | zero (reserved) |
//! | 24–31  | time of the last failure, Unix seconds, little-endian u64 |
//!
//! A file of any other size (qmail's 1024-byte table, a truncated file) is read as empty
//! and rewritten whole on the next change. Every access holds an exclusive `flock` on the
//! file. Errors are ignored, as in qmail: the table only saves time, it never decides
//! whether mail is delivered.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

/// Records in the table.
pub const RECORDS: usize = 128;
/// Bytes per record.
pub const RECORD_SIZE: usize = 32;
/// Bytes in the table file.
pub const TABLE_SIZE: usize = RECORDS * RECORD_SIZE;

/// The highest failure count; qmail's 10.
const MAX_COUNT: u8 = 10;
/// Timeouts within this many seconds of the last one count once, so parallel deliveries
/// to one dead host do not each raise its count.
const SAME_FAILURE_SECS: u64 = 120;

/// The table file of a home.
pub fn path(home: &Path) -> PathBuf {
    home.join("queue").join("lock").join("tcpto")
}

/// True if `ip` should be skipped: two or more timeouts, the last one less than
/// `(60 + pid mod 32) · 64` seconds ago (3840–5824 s; the pid spreads the retries of
/// parallel deliveries). A missing or unreadable table says no.
pub fn is_down(home: &Path, ip: IpAddr) -> bool {
    let Ok(file) = File::open(path(home)) else {
        return false;
    };
    let Ok(mut file) = Flock::lock(file, FlockArg::LockExclusive) else {
        return false;
    };
    let Some(table) = read_table(&mut file) else {
        return false;
    };
    is_down_in(&table, ip, unix_now(), std::process::id())
}

/// Notes a connect timeout (not a refusal) to `ip`.
pub fn record_timeout(home: &Path, ip: IpAddr) {
    update(home, true, |table| record_timeout_in(table, ip, unix_now()));
}

/// Notes a successful connect to `ip`: its count goes back to 0.
pub fn record_success(home: &Path, ip: IpAddr) {
    update(home, false, |table| record_success_in(table, ip));
}

/// Empties the table (what qmail-rspawn does at start and what qmail-tcpok does).
pub fn clear(home: &Path) {
    update(home, true, |table| {
        let changed = table.iter().any(|&b| b != 0);
        *table = [0; TABLE_SIZE];
        changed
    });
}

/// Reads the table under the lock, lets `change` edit it, and writes it back if it says it
/// changed anything. `create` makes a missing file; a success never needs to.
fn update(home: &Path, create: bool, change: impl FnOnce(&mut [u8; TABLE_SIZE]) -> bool) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o644)
        .open(path(home));
    let Ok(file) = file else {
        return;
    };
    let Ok(mut file) = Flock::lock(file, FlockArg::LockExclusive) else {
        return;
    };
    let mut table = read_table(&mut file).unwrap_or([0; TABLE_SIZE]);
    let wrong_size = file
        .metadata()
        .map(|m| m.len() != TABLE_SIZE as u64)
        .unwrap_or(true);
    if change(&mut table) || wrong_size {
        let _ = write_table(&mut file, &table);
    }
}

/// The table, or all free if the file has the wrong size.
fn read_table(file: &mut File) -> Option<[u8; TABLE_SIZE]> {
    let mut table = [0u8; TABLE_SIZE];
    if file.metadata().ok()?.len() != TABLE_SIZE as u64 {
        return Some(table);
    }
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_exact(&mut table).ok()?;
    Some(table)
}

fn write_table(file: &mut File, table: &[u8; TABLE_SIZE]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(table)?;
    file.set_len(TABLE_SIZE as u64)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The 16 bytes an address is stored as.
fn key(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn record(table: &[u8; TABLE_SIZE], i: usize) -> &[u8] {
    &table[i * RECORD_SIZE..(i + 1) * RECORD_SIZE]
}

fn count(rec: &[u8]) -> u8 {
    rec[16]
}

fn when(rec: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&rec[24..32]);
    u64::from_le_bytes(bytes)
}

/// The index of `ip`'s record in use, if any.
fn find(table: &[u8; TABLE_SIZE], ip: IpAddr) -> Option<usize> {
    let key = key(ip);
    (0..RECORDS).find(|&i| {
        let rec = record(table, i);
        count(rec) != 0 && rec[..16] == key
    })
}

/// The skip rule on a table already read, with the clock and pid given.
pub fn is_down_in(table: &[u8; TABLE_SIZE], ip: IpAddr, now: u64, pid: u32) -> bool {
    let Some(i) = find(table, ip) else {
        return false;
    };
    let rec = record(table, i);
    if count(rec) < 2 {
        return false;
    }
    let window = (60 + u64::from(pid % 32)) * 64;
    // A failure time in the future (the clock went back) is not trusted.
    now.checked_sub(when(rec)).is_some_and(|age| age < window)
}

/// The timeout rule on a table; true if it changed.
pub fn record_timeout_in(table: &mut [u8; TABLE_SIZE], ip: IpAddr, now: u64) -> bool {
    let i = match find(table, ip) {
        Some(i) => {
            let rec = record(table, i);
            let age = now.checked_sub(when(rec));
            if age.is_some_and(|age| age < SAME_FAILURE_SECS) {
                return false;
            }
            i
        }
        None => {
            let slot = free_or_oldest(table);
            let rec = &mut table[slot * RECORD_SIZE..(slot + 1) * RECORD_SIZE];
            rec.fill(0);
            rec[..16].copy_from_slice(&key(ip));
            slot
        }
    };
    let rec = &mut table[i * RECORD_SIZE..(i + 1) * RECORD_SIZE];
    rec[16] = (rec[16] + 1).min(MAX_COUNT);
    rec[24..32].copy_from_slice(&now.to_le_bytes());
    true
}

/// A free record, else the one with the smallest `time + count · 1024` (old and rarely
/// failing addresses make room first), as qmail chooses.
fn free_or_oldest(table: &[u8; TABLE_SIZE]) -> usize {
    if let Some(i) = (0..RECORDS).find(|&i| count(record(table, i)) == 0) {
        return i;
    }
    (0..RECORDS)
        .min_by_key(|&i| {
            let rec = record(table, i);
            when(rec).saturating_add(u64::from(count(rec)) << 10)
        })
        .unwrap_or(0)
}

/// The success rule on a table; true if it changed.
pub fn record_success_in(table: &mut [u8; TABLE_SIZE], ip: IpAddr) -> bool {
    let Some(i) = find(table, ip) else {
        return false;
    };
    table[i * RECORD_SIZE + 16] = 0;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PID: u32 = 0; // window = 60 · 64 = 3840 s

    #[test]
    fn one_timeout_is_not_enough_to_skip_a_host() {
        let mut t = [0; TABLE_SIZE];
        assert!(record_timeout_in(&mut t, ip("192.0.2.1"), 1000));
        assert!(!is_down_in(&t, ip("192.0.2.1"), 1001, PID));
    }

    #[test]
    fn timeouts_within_two_minutes_count_once() {
        let mut t = [0; TABLE_SIZE];
        record_timeout_in(&mut t, ip("192.0.2.1"), 1000);
        assert!(!record_timeout_in(&mut t, ip("192.0.2.1"), 1119));
        assert!(!is_down_in(&t, ip("192.0.2.1"), 1120, PID));
        assert!(record_timeout_in(&mut t, ip("192.0.2.1"), 1120));
        assert!(is_down_in(&t, ip("192.0.2.1"), 1121, PID));
    }

    #[test]
    fn a_down_host_is_skipped_for_the_pid_dependent_window() {
        let mut t = [0; TABLE_SIZE];
        record_timeout_in(&mut t, ip("2001:db8::1"), 0);
        record_timeout_in(&mut t, ip("2001:db8::1"), 200);
        assert!(is_down_in(&t, ip("2001:db8::1"), 200 + 3839, 0));
        assert!(!is_down_in(&t, ip("2001:db8::1"), 200 + 3840, 0));
        assert!(is_down_in(&t, ip("2001:db8::1"), 200 + 5823, 31));
        assert!(!is_down_in(&t, ip("2001:db8::1"), 200 + 5824, 31));
        assert!(!is_down_in(&t, ip("2001:db8::2"), 201, 0));
    }

    #[test]
    fn a_failure_time_in_the_future_does_not_skip() {
        let mut t = [0; TABLE_SIZE];
        record_timeout_in(&mut t, ip("192.0.2.1"), 10_000);
        record_timeout_in(&mut t, ip("192.0.2.1"), 20_000);
        assert!(!is_down_in(&t, ip("192.0.2.1"), 5_000, PID));
    }

    #[test]
    fn the_count_stops_at_ten() {
        let mut t = [0; TABLE_SIZE];
        for n in 0..15 {
            record_timeout_in(&mut t, ip("192.0.2.1"), n * 1000);
        }
        let i = find(&t, ip("192.0.2.1")).unwrap();
        assert_eq!(count(record(&t, i)), 10);
    }

    #[test]
    fn a_success_frees_the_record() {
        let mut t = [0; TABLE_SIZE];
        record_timeout_in(&mut t, ip("192.0.2.1"), 0);
        record_timeout_in(&mut t, ip("192.0.2.1"), 200);
        assert!(record_success_in(&mut t, ip("192.0.2.1")));
        assert!(!is_down_in(&t, ip("192.0.2.1"), 201, PID));
        assert!(!record_success_in(&mut t, ip("192.0.2.9")));
    }

    #[test]
    fn ipv4_and_its_mapped_form_share_a_record() {
        let mut t = [0; TABLE_SIZE];
        record_timeout_in(&mut t, ip("192.0.2.1"), 0);
        record_timeout_in(&mut t, ip("::ffff:192.0.2.1"), 200);
        assert!(is_down_in(&t, ip("192.0.2.1"), 201, PID));
        assert_eq!(&record(&t, 0)[..16], &key(ip("::ffff:192.0.2.1")));
    }

    #[test]
    fn a_full_table_replaces_the_oldest_weighted_record() {
        let mut t = [0; TABLE_SIZE];
        for i in 0..RECORDS {
            // Records 0..128 failed at times 10_000 + i; record 7 failed long ago.
            let time = if i == 7 { 100 } else { 10_000 + i as u64 };
            record_timeout_in(
                &mut t,
                IpAddr::V6(std::net::Ipv6Addr::from(i as u128 + 1)),
                time,
            );
        }
        record_timeout_in(&mut t, ip("192.0.2.200"), 20_000);
        assert_eq!(find(&t, ip("192.0.2.200")), Some(7));
        assert_eq!(find(&t, IpAddr::V6(std::net::Ipv6Addr::from(8u128))), None);
    }

    #[test]
    fn the_file_is_created_locked_and_cleared() {
        let home = std::env::temp_dir().join(format!("rqmail-mx-tcpto-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join("queue/lock")).unwrap();
        let dead = ip("2001:db8::dead");

        assert!(!is_down(&home, dead), "no table yet");
        record_success(&home, dead);
        assert!(!path(&home).exists(), "a success alone creates nothing");

        record_timeout(&home, dead);
        assert_eq!(
            std::fs::metadata(path(&home)).unwrap().len(),
            TABLE_SIZE as u64
        );
        // A second timeout within 120 s counts once, so force an older first failure.
        let mut table = [0u8; TABLE_SIZE];
        File::open(path(&home))
            .unwrap()
            .read_exact(&mut table)
            .unwrap();
        table[24..32].copy_from_slice(&(unix_now() - 500).to_le_bytes());
        std::fs::write(path(&home), table).unwrap();
        record_timeout(&home, dead);
        assert!(is_down(&home, dead));

        record_success(&home, dead);
        assert!(!is_down(&home, dead));

        record_timeout(&home, dead);
        clear(&home);
        assert_eq!(std::fs::read(path(&home)).unwrap(), vec![0u8; TABLE_SIZE]);

        // qmail's 1024-byte table is not misread; the next change rewrites it at full size.
        std::fs::write(path(&home), [0xffu8; 1024]).unwrap();
        assert!(!is_down(&home, dead));
        record_timeout(&home, dead);
        assert_eq!(
            std::fs::metadata(path(&home)).unwrap().len(),
            TABLE_SIZE as u64
        );
        std::fs::remove_dir_all(&home).unwrap();
    }
}
