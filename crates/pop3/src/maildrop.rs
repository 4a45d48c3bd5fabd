//! The maildrop: the lock that gives one session the Maildir, the message list built from
//! `new/` and `cur/`, each message's UIDL and size, and the changes QUIT makes.

use crate::transmit;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lock file, in the Maildir itself: the name starts with a dot, so no Maildir reader
/// takes it for a message or (being a file) for a Maildir++ folder.
pub const LOCK_FILE: &str = ".pop3.lock";

/// Files in `tmp/` untouched for this long are leftovers of failed deliveries (maildir(5),
/// qmail-pop3d: 36 hours).
pub const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..=0x7E.
pub const UID_MAX: usize = 70;

/// The two Maildir subdirectories that hold messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// `new/`: delivered, not yet seen by any reader.
    New,
    /// `cur/`: seen by a reader; names carry `:2,FLAGS`.
    Cur,
}

impl Folder {
    fn dir(self) -> &'static str {
        match self {
            Folder::New => "new",
            Folder::Cur => "cur",
        }
    }
}

/// One message of the list.
#[derive(Debug, Clone)]
struct Message {
    folder: Folder,
    name: OsString,
    mtime: (i64, i64),
    /// Size on disk at scan time: what LIST says for a message that vanished since.
    file_size: u64,
    /// Size as transmitted, once known.
    size: Option<u64>,
}

impl Message {
    /// The Maildir unique name: the file name up to its first `:`.
    fn unique(&self) -> &[u8] {
        unique_part(self.name.as_bytes())
    }
}

fn unique_part(name: &[u8]) -> &[u8] {
    let end = name.iter().position(|&b| b == b':').unwrap_or(name.len());
    &name[..end]
}

/// The session's snapshot of a Maildir: messages numbered from 1 in delivery order.
#[derive(Debug)]
pub struct Maildrop {
    root: PathBuf,
    messages: Vec<Message>,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    InUse,
    /// The lock file could not be opened or locked.
    Io(io::Error),
}

/// An exclusive lock on a maildrop, held until dropped (or the process ends).
#[derive(Debug)]
pub struct MaildropLock {
    _lock: Flock<File>,
}

/// Takes the maildrop's exclusive lock (RFC 1939 §8) without waiting: `flock` on
/// [`LOCK_FILE`], created mode 0600. Being `flock`, it goes with the process, even a killed
/// one, so a crash never leaves the mailbox locked.
pub fn lock(root: &Path) -> Result<MaildropLock, LockError> {
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| {
            LockError::Io(io::Error::new(
                e.kind(),
                format!("open {}: {e}", path.display()),
            ))
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(MaildropLock { _lock: lock }),
        Err((_, Errno::EWOULDBLOCK)) => Err(LockError::InUse),
        Err((_, e)) => Err(LockError::Io(io::Error::new(
            io::Error::from(e).kind(),
            format!("flock {}: {e}", path.display()),
        ))),
    }
}

/// Removes files in `tmp/` (names starting with `.` skipped) that nothing has read or
/// written for [`TMP_MAX_AGE`], as qmail-pop3d does. qmail looks at atime alone; the later
/// of atime and mtime also spares a file that a slow delivery is still writing on a
/// filesystem mounted noatime. Failures are ignored: this is housekeeping. Returns how
/// many files went.
pub fn clean_tmp(root: &Path, now: SystemTime) -> usize {
    let Ok(entries) = fs::read_dir(root.join("tmp")) else {
        return 0;
    };
    let limit = seconds(now).saturating_sub(TMP_MAX_AGE.as_secs() as i64);
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_name().as_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file()
            && meta.atime().max(meta.mtime()) < limit
            && fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Seconds since the epoch (negative before it).
fn seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs().min(i64::MAX as u64) as i64,
        Err(e) => -(e.duration().as_secs().min(i64::MAX as u64) as i64),
    }
}

/// The UIDL of a message whose file name starts with the unique name `unique`: the name
/// itself, as qmail-pop3d sends it, so that it survives the move to `cur/` and flag
/// changes and agrees with the IMAP server's; but a name RFC 1939 §7 does not allow (empty,
/// over 70 characters, or with bytes outside 0x21..=0x7E) becomes `~` and the 32 hex
/// digits of its 128-bit FNV-1a hash, which is stable across sessions and versions.
pub fn uidl(unique: &[u8]) -> String {
    let allowed = !unique.is_empty()
        && unique.len() <= UID_MAX
        && unique.iter().all(|b| (0x21..=0x7e).contains(b));
    if allowed {
        // Every byte is ASCII, so this is lossless.
        return String::from_utf8_lossy(unique).into_owned();
    }
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let hash = unique
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("~{hash:032x}")
}

/// The transmitted size a Maildir name may record: Dovecot and others write `,W=SIZE` in
/// the unique part, the size with CR LF line ends. (`,S=` is the size on disk, which says
/// nothing about the number of lines, so it cannot save the read.)
fn size_from_name(unique: &[u8]) -> Option<u64> {
    unique
        .split(|&b| b == b',')
        .skip(1)
        .filter_map(|field| field.strip_prefix(b"W="))
        .find(|digits| !digits.is_empty() && digits.len() <= 19)
        .and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok())
}

impl Maildrop {
    /// Lists the Maildir `root`: `new/`, then `cur/`, skipping names that start with `.`
    /// and anything but regular files; then sorted by mtime, and by unique name where
    /// mtimes are equal, so that two sessions number the same messages alike.
    ///
    /// Every message there is listed, however recent. qmail-pop3d leaves out files whose
    /// mtime is not before the current second, so a client that polls right after a
    /// delivery saw nothing, and two clients in the same second saw different counts; but
    /// a Maildir delivery writes into `tmp/` and links into `new/` only once the file is
    /// complete and synced, so whatever is in `new/` or `cur/` is whole (Dovecot lists it
    /// all too).
    pub fn scan(root: &Path) -> io::Result<Maildrop> {
        let mut messages = Vec::new();
        for folder in [Folder::New, Folder::Cur] {
            let dir = root.join(folder.dir());
            let entries = fs::read_dir(&dir)
                .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", dir.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    io::Error::new(e.kind(), format!("read {}: {e}", dir.display()))
                })?;
                let name = entry.file_name();
                if name.as_bytes().starts_with(b".") {
                    continue;
                }
                // Gone since readdir, or unreadable: not part of this snapshot, as in qmail.
                let Ok(meta) = fs::metadata(entry.path()) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                messages.push(Message {
                    folder,
                    size: size_from_name(unique_part(name.as_bytes())),
                    name,
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                    file_size: meta.len(),
                });
            }
        }
        // Unique name before the whole name: moving to `cur/` or changing flags, which
        // another reader may do between two sessions, changes neither mtime nor order.
        messages
            .sort_by(|a, b| (a.mtime, a.unique(), &a.name).cmp(&(b.mtime, b.unique(), &b.name)));
        Ok(Maildrop {
            root: root.to_path_buf(),
            messages,
        })
    }

    /// Number of messages in the snapshot, deleted or not.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True if the snapshot holds no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Where message `index` (from 0) was last seen.
    pub fn path(&self, index: usize) -> PathBuf {
        let m = &self.messages[index];
        self.root.join(m.folder.dir()).join(&m.name)
    }

    /// The folder message `index` was last seen in.
    pub fn folder(&self, index: usize) -> Folder {
        self.messages[index].folder
    }

    /// The UIDL of message `index`; see [`uidl`].
    pub fn uid(&self, index: usize) -> String {
        uidl(self.messages[index].unique())
    }

    /// The size of message `index` as RETR sends it (see [`transmit::send_message`]),
    /// computed once: from `,W=` in its name, else by reading it. A message that cannot be
    /// read keeps its size on disk, so that listings stay consistent within the session.
    pub fn size(&mut self, index: usize) -> u64 {
        if let Some(size) = self.messages[index].size {
            return size;
        }
        let size = match self.open(index) {
            Ok(file) => transmit::transmitted_size(&mut io::BufReader::with_capacity(
                transmit::READ_BUFFER,
                file,
            ))
            .unwrap_or(self.messages[index].file_size),
            Err(_) => self.messages[index].file_size,
        };
        self.messages[index].size = Some(size);
        size
    }

    /// Opens message `index` for reading. Another program (an IMAP server, a mail reader)
    /// may have moved it to `cur/` or changed its flags since the scan: it is then looked
    /// up in `cur/` by its unique name. Gone altogether: `NotFound`.
    pub fn open(&mut self, index: usize) -> io::Result<File> {
        match File::open(self.path(index)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.relocate(index)? => {
                File::open(self.path(index))
            }
            other => other,
        }
    }

    /// Looks for message `index` in `cur/` under a new name; true if found (and recorded).
    fn relocate(&mut self, index: usize) -> io::Result<bool> {
        let unique = self.messages[index].unique().to_vec();
        let current = self.messages[index].name.clone();
        for entry in fs::read_dir(self.root.join("cur"))? {
            let name = entry?.file_name();
            if unique_part(name.as_bytes()) == unique.as_slice()
                && (self.messages[index].folder == Folder::New || name != current)
            {
                let m = &mut self.messages[index];
                m.folder = Folder::Cur;
                m.name = name;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes message `index` (QUIT's update). One that is already gone counts as removed.
    pub fn remove(&mut self, index: usize) -> io::Result<()> {
        let mut result = fs::remove_file(self.path(index));
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) {
            result = match self.relocate(index) {
                Ok(true) => fs::remove_file(self.path(index)),
                Ok(false) => return Ok(()),
                Err(e) => Err(e),
            };
        }
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Moves message `index` from `new/` to `cur/NAME:2,` (QUIT's update for a message that
    /// was not deleted: it has been seen). A message no longer in `new/` is left alone.
    pub fn move_to_cur(&mut self, index: usize) -> io::Result<()> {
        let m = &self.messages[index];
        if m.folder != Folder::New {
            return Ok(());
        }
        let mut name = m.name.clone().into_vec();
        if !name.contains(&b':') {
            name.extend_from_slice(b":2,");
        }
        let name = OsString::from_vec(name);
        let to = self.root.join("cur").join(&name);
        match fs::rename(self.path(index), &to) {
            Ok(()) => {
                let m = &mut self.messages[index];
                m.folder = Folder::Cur;
                m.name = name;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The file name of message `index` (for logs and tests).
    pub fn name(&self, index: usize) -> &OsStr {
        &self.messages[index].name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::FileTimes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch Maildir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("rqmail-pop3-{name}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            for sub in ["tmp", "new", "cur"] {
                fs::create_dir_all(dir.join(sub)).unwrap();
            }
            Scratch(dir)
        }

        /// Writes `folder/name` with the given mtime (seconds since the epoch).
        fn put(&self, folder: &str, name: &str, body: &[u8], mtime: u64) -> PathBuf {
            let path = self.0.join(folder).join(name);
            fs::write(&path, body).unwrap();
            let t = UNIX_EPOCH + Duration::from_secs(mtime);
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_times(FileTimes::new().set_modified(t).set_accessed(t))
                .unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn names(m: &Maildrop) -> Vec<String> {
        (0..m.len())
            .map(|i| m.name(i).to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn scan_sorts_new_and_cur_by_mtime_then_name_and_skips_dot_files() {
        let s = Scratch::new("scan");
        s.put("cur", "300.b:2,S", b"x\n", 1000);
        s.put("new", "200.a", b"x\n", 2000);
        s.put("new", "100.c", b"x\n", 1000);
        s.put("new", ".hidden", b"x\n", 500);
        s.put("cur", ".also", b"x\n", 500);
        fs::create_dir(s.0.join("cur/dir")).unwrap();
        let m = Maildrop::scan(&s.0).unwrap();
        assert_eq!(names(&m), ["100.c", "300.b:2,S", "200.a"]);
        assert_eq!(m.folder(1), Folder::Cur);
    }

    #[test]
    fn scan_lists_messages_from_the_current_second_and_later() {
        let s = Scratch::new("second");
        let now = seconds(SystemTime::now()) as u64;
        s.put("new", "3.future", b"x\n", now + 60);
        s.put("new", "2.now", b"x\n", now);
        s.put("new", "1.old", b"x\n", 1000);
        let m = Maildrop::scan(&s.0).unwrap();
        assert_eq!(names(&m), ["1.old", "2.now", "3.future"]);
    }

    #[test]
    fn scan_orders_messages_of_one_second_by_name_every_time() {
        let s = Scratch::new("stable");
        for name in ["5.e", "1.a", "4.d", "2.b", "3.c"] {
            s.put("new", name, b"x\n", 2000);
        }
        s.put("new", "6.f", b"x\n", 2000);
        s.put("cur", "6:2,S", b"x\n", 2000);
        let first = names(&Maildrop::scan(&s.0).unwrap());
        assert_eq!(first, ["1.a", "2.b", "3.c", "4.d", "5.e", "6:2,S", "6.f"]);
        assert_eq!(names(&Maildrop::scan(&s.0).unwrap()), first);
        // Another reader moves one to cur/ and flags it: the order stays.
        fs::rename(s.0.join("new/6.f"), s.0.join("cur/6.f:2,RS")).unwrap();
        fs::rename(s.0.join("new/2.b"), s.0.join("cur/2.b:2,")).unwrap();
        let after = names(&Maildrop::scan(&s.0).unwrap());
        assert_eq!(
            after,
            ["1.a", "2.b:2,", "3.c", "4.d", "5.e", "6:2,S", "6.f:2,RS"]
        );
    }

    #[test]
    fn scan_fails_without_cur() {
        let s = Scratch::new("nocur");
        fs::remove_dir(s.0.join("cur")).unwrap();
        assert!(Maildrop::scan(&s.0).is_err());
    }

    #[test]
    fn uidl_is_the_unique_name_or_a_stable_hash() {
        assert_eq!(uidl(b"1234.M5P6Q7.host"), "1234.M5P6Q7.host");
        let long = [b'a'; 71];
        let h = uidl(&long);
        assert_eq!(h.len(), 33);
        assert!(h.starts_with('~'));
        assert_eq!(h, uidl(&long), "stable");
        assert_ne!(uidl(b"a b"), uidl(b"a c"));
        assert!(uidl(b"a b").bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(uidl(&[b'a'; 70]), "a".repeat(70));
        assert!(uidl(b"caf\xc3\xa9").starts_with('~'));
        // The FNV-1a 128 test vector for the empty input.
        assert_eq!(uidl(b""), "~6c62272e07bb014262b821756295c58d");
    }

    #[test]
    fn uid_ignores_the_info_after_the_colon() {
        let s = Scratch::new("uid");
        s.put("cur", "77.x:2,S", b"x\n", 1000);
        let m = Maildrop::scan(&s.0).unwrap();
        assert_eq!(m.uid(0), "77.x");
    }

    #[test]
    fn size_counts_crlf_once_computed_and_takes_w_from_the_name() {
        let s = Scratch::new("size");
        s.put("new", "1.a", b"a\nb\n", 1000);
        s.put("new", "2.b,S=3,W=99", b"a\nb\n", 1001);
        let mut m = Maildrop::scan(&s.0).unwrap();
        assert_eq!(m.size(0), 6);
        assert_eq!(m.size(1), 99);
        // Cached: a later change to the file does not change the listing.
        fs::write(s.0.join("new/1.a"), b"abcdef\n").unwrap();
        assert_eq!(m.size(0), 6);
    }

    #[test]
    fn a_message_moved_by_another_reader_is_found_in_cur() {
        let s = Scratch::new("moved");
        s.put("new", "1.a", b"hello\n", 1000);
        let mut m = Maildrop::scan(&s.0).unwrap();
        fs::rename(s.0.join("new/1.a"), s.0.join("cur/1.a:2,S")).unwrap();
        assert!(m.open(0).is_ok());
        assert_eq!(m.folder(0), Folder::Cur);
        fs::rename(s.0.join("cur/1.a:2,S"), s.0.join("cur/1.a:2,RS")).unwrap();
        assert!(m.open(0).is_ok());
        m.remove(0).unwrap();
        assert!(fs::read_dir(s.0.join("cur")).unwrap().next().is_none());
        // Gone: NotFound on open, and removing it again is not an error.
        assert_eq!(m.open(0).unwrap_err().kind(), io::ErrorKind::NotFound);
        m.remove(0).unwrap();
    }

    #[test]
    fn move_to_cur_adds_the_info_and_keeps_the_uid() {
        let s = Scratch::new("move");
        s.put("new", "1.a", b"hello\n", 1000);
        let mut m = Maildrop::scan(&s.0).unwrap();
        m.move_to_cur(0).unwrap();
        assert!(s.0.join("cur/1.a:2,").exists());
        assert_eq!(m.uid(0), "1.a");
        assert_eq!(m.folder(0), Folder::Cur);
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let s = Scratch::new("lock");
        let first = lock(&s.0).unwrap();
        assert!(matches!(lock(&s.0), Err(LockError::InUse)));
        drop(first);
        let _again = lock(&s.0).unwrap();
        let mode = fs::metadata(s.0.join(LOCK_FILE)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn clean_tmp_removes_only_files_untouched_for_36_hours() {
        let s = Scratch::new("tmp");
        let now = 1_000_000;
        s.put("tmp", "old", b"x", now - 36 * 3600 - 1);
        s.put("tmp", "recent", b"x", now - 36 * 3600 + 10);
        s.put("tmp", ".dot", b"x", 0);
        assert_eq!(clean_tmp(&s.0, at(now)), 1);
        let mut left: Vec<_> = fs::read_dir(s.0.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".dot", "recent"]);
    }
}
