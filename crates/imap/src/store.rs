//! Maildir++ folders as IMAP mailboxes: names, persistent UIDs in a per-folder list file,
//! flags in the `:2,` suffix of file names, and adding messages (APPEND, COPY).

pub use crate::index::Letters;
use crate::index::{INDEX, Index};
use nix::fcntl::{Flock, FlockArg};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Taken (flock) while the index is read and changed.
const INDEX_LOCK: &str = "rqmail-index.lock";
/// The keywords of a folder, one a line: line N is the info letter `a` + N.
pub const KEYWORDS: &str = "rqmail-keywords";
/// Subscribed mailbox names, one a line, in the Maildir's root.
pub const SUBSCRIPTIONS: &str = "subscriptions";
/// Present once the SPECIAL-USE folders have been created for the user.
const FOLDERS_MADE: &str = "rqmail-imap-folders";
/// The folders made at first login, with their RFC 6154 attributes.
pub const SPECIAL_USE: &[(&str, &str)] = &[
    ("Archive", "\\Archive"),
    ("Drafts", "\\Drafts"),
    ("Junk", "\\Junk"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
];

/// Maildir info letters for the IMAP system flags, in ASCII order of the letters.
pub const FLAG_LETTERS: &[(u8, &str)] = &[
    (b'D', "\\Draft"),
    (b'F', "\\Flagged"),
    (b'R', "\\Answered"),
    (b'S', "\\Seen"),
    (b'T', "\\Deleted"),
];

/// The letter for an IMAP system flag (case-insensitive), if it has one.
pub fn flag_letter(flag: &str) -> Option<u8> {
    FLAG_LETTERS
        .iter()
        .find(|(_, name)| name.eq_ignore_ascii_case(flag))
        .map(|(l, _)| *l)
}

/// One message as last seen on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its UID, from the folder's index.
    pub uid: u32,
    /// Its mod-sequence (RFC 7162).
    pub modseq: u64,
    /// The Maildir unique name (the file name before `:`).
    pub unique: Rc<str>,
    /// The file's path relative to the folder when it is not the usual one (`new/UNIQUE`,
    /// `cur/UNIQUE:2,FLAGS`): kept only for names that other programs wrote differently.
    pub odd: Option<Box<str>>,
    /// Info letters after `:2,` (none in new/).
    pub flags: Letters,
    /// True while the file is in new/.
    pub in_new: bool,
    /// Modification time, seconds since the epoch: the INTERNALDATE.
    pub mtime: i64,
    /// The size with CRLF line ends, if the name says (`,W=`).
    pub wire_size: Option<u64>,
}

impl Message {
    /// The file's path relative to the folder: `new/NAME` or `cur/NAME`.
    pub fn file(&self) -> String {
        match &self.odd {
            Some(f) => f.to_string(),
            None => usual_file(&self.unique, &self.flags.to_vec(), self.in_new),
        }
    }

    /// Sets where the file is now (relative to the folder).
    fn moved_to(&mut self, file: String) {
        self.in_new = file.starts_with("new/");
        self.odd = (file != usual_file(&self.unique, &self.flags.to_vec(), self.in_new))
            .then(|| file.into_boxed_str());
    }

    /// True if the message carries info letter `letter`.
    pub fn has(&self, letter: u8) -> bool {
        self.flags.contains(letter)
    }
}

/// True if `name` can be a keyword: an IMAP atom, not a system flag.
pub fn valid_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('\\')
        && name
            .bytes()
            .all(|b| b > 0x20 && b < 0x7f && !b"(){%*\"\\]".contains(&b))
}

/// True if a directory time `mtime` is far enough in the past that a change in the same
/// clock tick as the last one could not hide behind an unchanged time.
fn settled(mtime: i64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now - mtime >= 2
}

/// Where a message's file usually is: `new/UNIQUE` or `cur/UNIQUE:2,FLAGS`.
fn usual_file(unique: &str, flags: &[u8], in_new: bool) -> String {
    if in_new {
        format!("new/{unique}")
    } else {
        format!("cur/{unique}:2,{}", String::from_utf8_lossy(flags))
    }
}

/// Splits a file name into unique name and info letters (`:2,XYZ`).
fn split_name(name: &str) -> (&str, Vec<u8>) {
    match name.split_once(':') {
        Some((unique, info)) => {
            let letters = info.strip_prefix("2,").unwrap_or("");
            let mut flags: Vec<u8> = letters.bytes().collect();
            flags.sort_unstable();
            flags.dedup();
            (unique, flags)
        }
        None => (name, Vec::new()),
    }
}

/// The `,W=` size in a unique name.
fn wire_size(unique: &str) -> Option<u64> {
    let at = unique.as_bytes().windows(3).position(|w| w == b",W=")?;
    let digits = unique[at + 3..].split(',').next()?;
    digits.parse().ok()
}

/// A mailbox name checked and mapped to its Maildir++ directory.
pub fn folder_dir(root: &Path, name: &str) -> Option<PathBuf> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Some(root.to_path_buf());
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.contains("..")
        || name.bytes().any(|b| b == b'/' || b < 0x20 || b == 0x7f);
    if bad {
        return None;
    }
    Some(root.join(format!(".{name}")))
}

/// The mailbox names in the Maildir `root`: INBOX, then each `.Name` folder, sorted.
pub fn list_folders(root: &Path) -> io::Result<Vec<String>> {
    let mut names = vec!["INBOX".to_string()];
    let mut folders = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(folder) = name.strip_prefix('.')
            && !folder.is_empty()
            && folder != "."
            && entry.path().join("cur").is_dir()
        {
            folders.push(folder.to_string());
        }
    }
    folders.sort();
    names.extend(folders);
    Ok(names)
}

/// Creates the SPECIAL-USE folders and subscribes to them, once per Maildir.
pub fn make_special_folders(root: &Path) -> io::Result<()> {
    if root.join(FOLDERS_MADE).exists() {
        return Ok(());
    }
    let mut subscribed = read_subscriptions(root);
    for (name, _) in SPECIAL_USE {
        if !root.join(format!(".{name}")).is_dir() {
            rqmail_mailbox::make_folder(root, name)?;
        }
        if !subscribed.iter().any(|s| s == name) {
            subscribed.push(name.to_string());
        }
    }
    if !subscribed.iter().any(|s| s == "INBOX") {
        subscribed.insert(0, "INBOX".to_string());
    }
    write_subscriptions(root, &subscribed)?;
    rqmail_mailbox::replace_file(&root.join(FOLDERS_MADE), b"", true).map(drop)
}

/// The subscribed names.
pub fn read_subscriptions(root: &Path) -> Vec<String> {
    fs::read_to_string(root.join(SUBSCRIPTIONS))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Replaces the subscriptions file.
pub fn write_subscriptions(root: &Path, names: &[String]) -> io::Result<()> {
    let mut text = String::new();
    for n in names {
        text.push_str(n);
        text.push('\n');
    }
    rqmail_mailbox::replace_file(&root.join(SUBSCRIPTIONS), text.as_bytes(), true).map(drop)
}

/// A folder's state after a scan: its UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and messages
/// in UID order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// UIDVALIDITY.
    pub validity: u32,
    /// UIDNEXT.
    pub next: u32,
    /// HIGHESTMODSEQ.
    pub highest: u64,
    /// The messages, in ascending UID order.
    pub messages: Vec<Message>,
}

/// What a folder looked like at the last scan: the modification times of cur/ and new/
/// and the index file's identity and size.
type Stamp = [(i64, i64); 4];

/// One Maildir++ folder, with its index as last read.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The folder's directory.
    pub dir: PathBuf,
    index: Option<Index>,
    stamp: Option<Stamp>,
}

/// A file found in new/ or cur/.
struct Found {
    unique: String,
    file: String,
    flags: Vec<u8>,
    in_new: bool,
}

impl Folder {
    /// The folder at `dir`.
    pub fn new(dir: PathBuf) -> Folder {
        Folder {
            dir,
            index: None,
            stamp: None,
        }
    }

    /// The HIGHESTMODSEQ of the index as last read or written.
    pub fn highest(&self) -> u64 {
        self.index.as_ref().map_or(0, |i| i.highest)
    }

    /// True if `dir` holds a Maildir.
    pub fn exists(&self) -> bool {
        self.dir.join("cur").is_dir() && self.dir.join("new").is_dir()
    }

    fn lock(&self) -> io::Result<Flock<File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join(INDEX_LOCK))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
    }

    fn current_stamp(&self) -> Option<Stamp> {
        let time = |p: &Path| fs::metadata(p).ok().map(|m| (m.mtime(), m.mtime_nsec()));
        let index = fs::metadata(self.dir.join(INDEX)).ok();
        Some([
            time(&self.dir.join("cur"))?,
            time(&self.dir.join("new"))?,
            index
                .as_ref()
                .map_or((0, 0), |i| (i.ino() as i64, i.len() as i64)),
            index.map_or((0, 0), |i| (i.mtime(), i.mtime_nsec())),
        ])
    }

    /// False if nothing can have changed since the last `sync`: cur/, new/ and the index
    /// are as they were then, and cur/ and new/ were last changed long enough ago that a
    /// change in the same clock tick cannot hide behind an equal time.
    pub fn changed(&self) -> bool {
        let Some(seen) = self.stamp else { return true };
        let Some(now) = self.current_stamp() else {
            return true;
        };
        now != seen || !settled(now[0].0) || !settled(now[1].0)
    }

    fn scan_files(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for (sub, in_new) in [("new", true), ("cur", false)] {
            for entry in fs::read_dir(self.dir.join(sub))? {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name.starts_with('.') || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    continue;
                }
                match entry.file_type() {
                    Ok(t) if t.is_file() || t.is_symlink() => {}
                    _ => continue,
                }
                let (unique, flags) = split_name(&name);
                found.push(Found {
                    unique: unique.to_string(),
                    file: format!("{sub}/{name}"),
                    flags: if in_new { Vec::new() } else { flags },
                    in_new,
                });
            }
        }
        // A message renamed from new/ to cur/ while we read may be listed twice: keep the
        // cur/ entry (read last), where the file now is.
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(found.len());
        let mut unique_found: Vec<Found> = Vec::with_capacity(found.len());
        for f in found {
            match seen.get(&f.unique) {
                Some(&i) => unique_found[i] = f,
                None => {
                    seen.insert(f.unique.clone(), unique_found.len());
                    unique_found.push(f);
                }
            }
        }
        Ok(unique_found)
    }

    /// Scans the folder under its lock: gives UIDs to new messages (in delivery order),
    /// new mod-sequences to messages whose flags changed, and forgets messages that left.
    pub fn sync(&mut self) -> io::Result<Snapshot> {
        let _lock = self.lock()?;
        let stamp_before = self.current_stamp();
        let mut index = Index::refresh(self.index.take(), &self.dir)?;
        let dirs = stamp_before.map(|s| [s[0].0, s[0].1, s[1].0, s[1].1]);
        let settled = dirs.is_some_and(|d| settled(d[0]) && settled(d[2]));
        if settled && dirs.is_some() && index.stamp == dirs {
            // Nothing moved in cur/ or new/ since a scan that found the records to be the
            // folder: no need to read the directories.
            let messages = index
                .records
                .iter()
                .map(|r| Message {
                    uid: r.uid,
                    modseq: r.modseq,
                    wire_size: wire_size(&r.unique).or((r.size != 0).then_some(r.size)),
                    unique: r.unique.clone(),
                    odd: None,
                    flags: r.flags,
                    in_new: false,
                    mtime: r.mtime,
                })
                .collect();
            let snapshot = Snapshot {
                validity: index.validity,
                next: index.next,
                highest: index.highest,
                messages,
            };
            self.index = Some(index);
            // Only what was seen: a change while the records were copied must still show.
            let now = self.current_stamp();
            self.stamp = now.filter(|s| stamp_before.is_some_and(|b| b[0] == s[0] && b[1] == s[1]));
            return Ok(snapshot);
        }
        let found = self.scan_files()?;
        // UIDNEXT must stay a UID: when the new files would take it past u32::MAX, the
        // folder starts again under a new UIDVALIDITY.
        if u64::from(index.next) + found.len() as u64 > u64::from(u32::MAX) {
            let fresh = found
                .iter()
                .filter(|f| index.uid_of(&f.unique).is_none())
                .count();
            if u64::from(index.next) + fresh as u64 > u64::from(u32::MAX) {
                index.renumber(&self.dir);
            }
        }
        // The records can stand for the folder later only if every file is where and as
        // they would name it.
        let usual = found
            .iter()
            .all(|f| !f.in_new && f.file == usual_file(&f.unique, &f.flags, false));
        let mut present = HashSet::with_capacity(found.len());
        let mut fresh = Vec::new();
        let mut messages = Vec::with_capacity(found.len());
        for f in found {
            match index.uid_of(&f.unique) {
                Some(uid) => {
                    if !present.insert(uid) {
                        continue; // seen in new/ and cur/ during a rename
                    }
                    let mtime = match index.get(uid).map(|r| r.mtime) {
                        Some(i64::MIN) | None => self.mtime_of(&f.file).0,
                        Some(t) => t,
                    };
                    index.update(uid, &f.flags, mtime);
                    messages.push((uid, f));
                }
                None => {
                    // A file gone meanwhile (renamed by another session) waits for the
                    // next scan, rather than get a UID and a false date now.
                    let Ok(meta) = fs::metadata(self.dir.join(&f.file)) else {
                        continue;
                    };
                    fresh.push((meta.mtime(), meta.mtime_nsec(), f));
                }
            }
        }
        // Delivery order for the UIDs of new messages.
        fresh.sort_by(|a, b| (a.0, a.1, &a.2.unique).cmp(&(b.0, b.1, &b.2.unique)));
        fresh.dedup_by(|a, b| a.2.unique == b.2.unique);
        for (mtime, _, f) in fresh {
            let (uid, _) = index.add(&f.unique, mtime, &f.flags);
            present.insert(uid);
            messages.push((uid, f));
        }
        let mut gone: HashSet<u32> = index
            .records
            .iter()
            .map(|r| r.uid)
            .filter(|u| !present.contains(u))
            .collect();
        let dirs_after = self
            .current_stamp()
            .map(|s| [s[0].0, s[0].1, s[1].0, s[1].1]);
        if !gone.is_empty() {
            // A file renamed (a flag change by a mail reader) while the directories were
            // read can be missed under both names: only what a second look misses too is
            // gone. (The directories' times cannot tell: a rename in the same clock tick
            // as the change before leaves them as they were.)
            for f in self.scan_files()? {
                if let Some(uid) = index.uid_of(&f.unique)
                    && gone.remove(&uid)
                {
                    let mtime = match index.get(uid).map(|r| r.mtime) {
                        Some(i64::MIN) | None => self.mtime_of(&f.file).0,
                        Some(t) => t,
                    };
                    index.update(uid, &f.flags, mtime);
                    messages.push((uid, f));
                }
            }
        }
        index.remove(&gone);
        if settled
            && usual
            && dirs.is_some()
            && dirs_after == dirs
            && let Some(d) = dirs
        {
            index.set_stamp(d);
        }
        index.commit(&self.dir)?;
        messages.sort_by_key(|(uid, _)| *uid);
        let messages = messages
            .into_iter()
            .filter_map(|(uid, f)| {
                let r = index.get(uid)?;
                let mut m = Message {
                    uid,
                    modseq: r.modseq,
                    wire_size: wire_size(&f.unique).or((r.size != 0).then_some(r.size)),
                    unique: r.unique.clone(),
                    odd: None,
                    flags: Letters::from_slice(&f.flags),
                    in_new: f.in_new,
                    mtime: r.mtime,
                };
                m.moved_to(f.file);
                Some(m)
            })
            .collect();
        let snapshot = Snapshot {
            validity: index.validity,
            next: index.next,
            highest: index.highest,
            messages,
        };
        self.index = Some(index);
        // Only trust the stamp if nothing moved while we scanned.
        let stamp_after = self.current_stamp();
        self.stamp =
            stamp_after.filter(|s| stamp_before.is_some_and(|b| b[0] == s[0] && b[1] == s[1]));
        Ok(snapshot)
    }

    fn mtime_of(&self, file: &str) -> (i64, i64) {
        fs::metadata(self.dir.join(file)).map_or((0, 0), |m| (m.mtime(), m.mtime_nsec()))
    }

    /// The folder's keywords: entry N is the info letter `a` + N.
    pub fn keywords(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join(KEYWORDS))
            .unwrap_or_default()
            .lines()
            .take(26)
            .map(str::to_string)
            .collect()
    }

    /// The info letter of keyword `name` (case-insensitive), added to the folder's list if
    /// `add` and there is room (26 keywords a folder); `None` if it has none.
    pub fn keyword_letter(&self, name: &str, add: bool) -> io::Result<Option<u8>> {
        let find = |list: &[String]| {
            list.iter()
                .position(|k| k.eq_ignore_ascii_case(name))
                .map(|i| b'a' + i as u8)
        };
        if let Some(l) = find(&self.keywords()) {
            return Ok(Some(l));
        }
        if !add || !valid_keyword(name) {
            return Ok(None);
        }
        let _lock = self.lock()?;
        let mut list = self.keywords();
        if let Some(l) = find(&list) {
            return Ok(Some(l));
        }
        if list.len() >= 26 {
            return Ok(None);
        }
        list.push(name.to_string());
        let mut text = list.join("\n");
        text.push('\n');
        rqmail_mailbox::replace_file(&self.dir.join(KEYWORDS), text.as_bytes(), true)?;
        Ok(Some(b'a' + (list.len() - 1) as u8))
    }

    /// Keeps sizes (with CRLF line ends) computed for messages whose names do not carry
    /// them, so that RFC822.SIZE need not read the file again.
    pub fn learn_sizes(&mut self, sizes: &[(u32, u64)]) -> io::Result<()> {
        if sizes.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let mut index = Index::refresh(self.index.take(), &self.dir)?;
        for &(uid, size) in sizes {
            index.set_size(uid, size);
        }
        let result = index.commit(&self.dir);
        self.index = Some(index);
        // Our own append must not look like someone else's change.
        if result.is_ok()
            && let (Some(mut seen), Some(now)) = (self.stamp, self.current_stamp())
        {
            seen[2] = now[2];
            seen[3] = now[3];
            self.stamp = Some(seen);
        }
        result
    }

    /// Moves every message in new/ to cur/ (clearing \Recent for other sessions); returns
    /// the unique names moved.
    pub fn take_new(&self) -> io::Result<Vec<Rc<str>>> {
        let mut moved = Vec::new();
        for entry in fs::read_dir(self.dir.join("new"))? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let (unique, _) = split_name(&name);
            let to = self.dir.join("cur").join(format!("{unique}:2,"));
            if fs::rename(entry.path(), to).is_ok() {
                moved.push(Rc::from(unique));
            }
        }
        Ok(moved)
    }

    /// Finds the current file of `unique` (another session may have renamed it).
    pub fn locate(&self, unique: &str) -> Option<String> {
        for sub in ["cur", "new"] {
            let Ok(entries) = fs::read_dir(self.dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if split_name(&name).0 == unique {
                    return Some(format!("{sub}/{name}"));
                }
            }
        }
        None
    }

    /// Reads a message's bytes, following a rename by another session.
    pub fn read(&self, m: &mut Message) -> io::Result<Vec<u8>> {
        match fs::read(self.dir.join(m.file())) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = self.locate(&m.unique).ok_or(e)?;
                let bytes = fs::read(self.dir.join(&file));
                m.moved_to(file);
                bytes
            }
            other => other,
        }
    }

    /// Changes the flags of `messages[i]` for each `i` of `which`, under the folder's lock,
    /// so that no other session's change can come between a decision and its rename: the
    /// index is read again and each file is found where it is now, `decide(message)` sees
    /// the flags and mod-sequence of this moment (not those the session last saw) and gives
    /// the new info letters, or `None` to leave the message alone; the new mod-sequences
    /// are in the index before the lock is let go. The messages are updated to what is on
    /// disk. For each message: what was done, and whether someone else had changed it
    /// since the session last saw it (its flags or mod-sequence were not the ones given),
    /// which the session must tell its client. Fails with `validity_changed` if the
    /// folder's UIDVALIDITY is no longer `validity`.
    pub fn change_flags(
        &mut self,
        validity: u32,
        messages: &mut [Message],
        which: &[usize],
        mut decide: impl FnMut(&Message) -> Option<Vec<u8>>,
    ) -> io::Result<Vec<(Change, bool)>> {
        let _lock = self.lock()?;
        let mut index = Index::refresh(self.index.take(), &self.dir)?;
        if index.validity != validity {
            self.index = Some(index);
            return Err(validity_changed());
        }
        let mut out = Vec::with_capacity(which.len());
        let mut located: Option<HashMap<String, String>> = None;
        for &i in which {
            let m = &mut messages[i];
            let Some(r) = index.get(m.uid) else {
                out.push((Change::Gone, false));
                continue;
            };
            let (recorded, mtime) = (r.flags, r.mtime);
            // Where the file is: where the index says, where the session saw it, or found
            // by reading the directories.
            let exists = |f: &str| fs::symlink_metadata(self.dir.join(f)).is_ok();
            let mut file = [usual_file(&m.unique, &recorded.to_vec(), false), m.file()]
                .into_iter()
                .find(|f| exists(f));
            if file.is_none() {
                // Renamed by another program: read the directories once for all the
                // messages of this call, not once each while holding the lock.
                if located.is_none() {
                    located = Some(
                        self.scan_files()?
                            .into_iter()
                            .map(|f| (f.unique, f.file))
                            .collect(),
                    );
                }
                file = located.as_ref().and_then(|l| l.get(&*m.unique).cloned());
            }
            let Some(file) = file else {
                out.push((Change::Gone, false));
                continue;
            };
            let now = match file.strip_prefix("cur/") {
                Some(name) => split_name(name).1,
                None => Vec::new(),
            };
            // A change made behind the index's back (a mail reader on the files) gets its
            // mod-sequence now.
            index.update(m.uid, &now, mtime);
            let seen = (m.flags, m.modseq);
            m.flags = Letters::from_slice(&now);
            m.modseq = index.get(m.uid).map_or(m.modseq, |r| r.modseq);
            m.moved_to(file.clone());
            let news = (m.flags, m.modseq) != seen;
            let Some(mut new) = decide(m) else {
                out.push((Change::Refused, news));
                continue;
            };
            new.sort_unstable();
            new.dedup();
            if new == now {
                out.push((Change::Same, news));
                continue;
            }
            let to = format!("cur/{}:2,{}", m.unique, String::from_utf8_lossy(&new));
            if fs::rename(self.dir.join(&file), self.dir.join(&to)).is_err() {
                out.push((Change::Failed, news));
                continue;
            }
            index.update(m.uid, &new, mtime);
            m.flags = Letters::from_slice(&new);
            m.modseq = index.get(m.uid).map_or(m.modseq, |r| r.modseq);
            m.moved_to(to);
            out.push((Change::Changed, news));
        }
        let result = index.commit(&self.dir);
        self.index = Some(index);
        result?;
        Ok(out)
    }

    /// Removes a message's file; false if it was gone already (removed by another
    /// session, which counted it in the quota).
    pub fn remove(&self, m: &Message) -> io::Result<bool> {
        let gone = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound {
                Ok(false)
            } else {
                Err(e)
            }
        };
        match fs::remove_file(self.dir.join(m.file())) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.locate(&m.unique) {
                Some(file) => fs::remove_file(self.dir.join(file)).map_or_else(gone, |()| Ok(true)),
                None => Ok(false),
            },
            Err(e) => Err(e),
        }
    }

    /// Adds messages to cur/ (tmp, fsync, link, fsync of cur/) and gives them UIDs under
    /// the lock, so that the UIDs are consecutive; returns UIDVALIDITY and the UIDs.
    pub fn add(&mut self, messages: &[NewMessage]) -> io::Result<(u32, Vec<u32>)> {
        let mut names = Vec::with_capacity(messages.len());
        let result = (|| {
            for m in messages {
                let unique = rqmail_mailbox::unique_name();
                let wire = wire_size_of(&m.bytes);
                let unique = format!("{unique},S={},W={wire}", m.bytes.len());
                let tmp = self.dir.join("tmp").join(&unique);
                let mut flags = m.flags.clone();
                flags.sort_unstable();
                flags.dedup();
                let cur = self
                    .dir
                    .join("cur")
                    .join(format!("{unique}:2,{}", String::from_utf8_lossy(&flags)));
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(&m.bytes)?;
                f.sync_all()?;
                if let Some(t) = m.mtime {
                    f.set_modified(t)?;
                }
                drop(f);
                let linked = fs::hard_link(&tmp, &cur);
                let _ = fs::remove_file(&tmp);
                linked?;
                names.push((unique, cur));
            }
            File::open(self.dir.join("cur"))?.sync_all()
        })();
        if let Err(e) = result {
            for (_, path) in &names {
                let _ = fs::remove_file(path);
            }
            return Err(e);
        }
        let _lock = self.lock()?;
        let mut index = Index::refresh(self.index.take(), &self.dir)?;
        if u64::from(index.next) + names.len() as u64 > u64::from(u32::MAX) {
            index.renumber(&self.dir);
        }
        let mut uids = Vec::with_capacity(names.len());
        for ((unique, _), m) in names.iter().zip(messages) {
            let mtime = m
                .mtime
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or_else(
                    || {
                        SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64)
                    },
                    |d| d.as_secs() as i64,
                );
            let mut flags = m.flags.clone();
            flags.sort_unstable();
            flags.dedup();
            // Another session's scan may have found the file (linked before the lock was
            // taken) and given it a UID already: that UID stays the message's only one.
            let uid = match index.uid_of(unique) {
                Some(uid) => {
                    index.update(uid, &flags, mtime);
                    uid
                }
                None => index.add(unique, mtime, &flags).0,
            };
            uids.push(uid);
        }
        let result = index.commit(&self.dir);
        let validity = index.validity;
        self.index = Some(index);
        result?;
        Ok((validity, uids))
    }
}

/// What `Folder::change_flags` did to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The flags were changed.
    Changed,
    /// The flags already were the ones asked for.
    Same,
    /// `decide` left it alone (STORE UNCHANGEDSINCE).
    Refused,
    /// It is no longer in the folder (expunged by another session).
    Gone,
    /// Its file could not be renamed.
    Failed,
}

/// The error of a folder whose UIDVALIDITY changed under a session (deleted and made
/// again): the session's UIDs mean nothing any more.
pub fn validity_changed() -> io::Error {
    io::Error::other(ValidityChanged)
}

/// True if `e` is `validity_changed()`.
pub fn is_validity_changed(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<ValidityChanged>())
}

#[derive(Debug)]
struct ValidityChanged;

impl std::fmt::Display for ValidityChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the mailbox's UIDVALIDITY changed")
    }
}

impl std::error::Error for ValidityChanged {}

/// A message to add to a folder.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The bytes, stored as they are.
    pub bytes: Vec<u8>,
    /// Info letters.
    pub flags: Vec<u8>,
    /// The INTERNALDATE to give it, if not now.
    pub mtime: Option<SystemTime>,
}

/// The size of `bytes` as sent: every line ended by CRLF, a last line without LF too.
pub fn wire_size_of(bytes: &[u8]) -> u64 {
    let mut size = bytes.len() as u64;
    let mut last = None;
    for &b in bytes {
        if b == b'\n' && last != Some(b'\r') {
            size += 1;
        }
        last = Some(b);
    }
    if last.is_some_and(|b| b != b'\n') {
        size += 2;
    }
    size
}

/// `bytes` as sent: bare LF becomes CRLF, a last line without LF gets CRLF.
pub fn to_wire(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 30 + 2);
    let mut last = None;
    for &b in bytes {
        if b == b'\n' && last != Some(b'\r') {
            out.push(b'\r');
        }
        out.push(b);
        last = Some(b);
    }
    if last.is_some_and(|b| b != b'\n') {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `bytes` as stored: CRLF line ends become LF (a CR not before LF stays).
pub fn from_wire(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

/// Reads a whole file into memory, for messages given to APPEND-like copies.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Creates the folder `name` (and missing parents).
pub fn create(root: &Path, name: &str) -> io::Result<()> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let parts: Vec<&str> = name.split('.').collect();
    for i in 1..=parts.len() {
        let prefix = parts[..i].join(".");
        if !root.join(format!(".{prefix}")).join("cur").is_dir() {
            rqmail_mailbox::make_folder(root, &prefix)?;
        }
    }
    Ok(())
}

/// Deletes the folder `name`: renamed into tmp/ first, so that it vanishes at once.
pub fn delete(root: &Path, name: &str) -> io::Result<()> {
    let dir = folder_dir(root, name).ok_or_else(|| io::Error::other("bad name"))?;
    let trash = root
        .join("tmp")
        .join(format!(".deleted-{}", rqmail_mailbox::unique_name()));
    fs::rename(&dir, &trash)?;
    fs::remove_dir_all(&trash)
}

/// Moves every message of the Maildir `from` into the Maildir `to` (RENAME of INBOX),
/// keeping the file names (and so the flags); the moved messages get new UIDs there.
pub fn move_messages(from: &Path, to: &Path) -> io::Result<()> {
    for sub in ["new", "cur"] {
        for entry in fs::read_dir(from.join(sub))? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            match fs::rename(entry.path(), to.join(sub).join(&name)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // moved meanwhile
                other => other?,
            }
        }
    }
    File::open(to.join("cur"))?.sync_all()?;
    File::open(to.join("new"))?.sync_all()
}

/// Renames folder `from` to `to`, with its subfolders.
pub fn rename(root: &Path, from: &str, to: &str) -> io::Result<()> {
    let to = to.strip_suffix('.').unwrap_or(to);
    let from = from.strip_suffix('.').unwrap_or(from);
    let mut moves = vec![(from.to_string(), to.to_string())];
    for name in list_folders(root)? {
        if let Some(rest) = name.strip_prefix(&format!("{from}.")) {
            moves.push((name.clone(), format!("{to}.{rest}")));
        }
    }
    // Parents of the new name, so that the hierarchy lists.
    if let Some((parent, _)) = to.rsplit_once('.') {
        create(root, parent)?;
    }
    for (a, b) in moves {
        fs::rename(root.join(format!(".{a}")), root.join(format!(".{b}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rqmail-imap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        rqmail_mailbox::make_maildir(&dir).unwrap();
        dir
    }

    #[test]
    fn uids_persist_and_are_not_reused_after_removal() {
        let dir = maildir("uids");
        fs::write(dir.join("new/1.a.host,S=3,W=4"), b"ab\n").unwrap();
        fs::write(dir.join("cur/2.b.host:2,SF"), b"x").unwrap();
        let mut f = Folder::new(dir.clone());
        let s = f.sync().unwrap();
        assert_eq!(s.messages.len(), 2);
        assert_eq!(s.next, 3);
        let flagged = s
            .messages
            .iter()
            .find(|m| &*m.unique == "2.b.host")
            .unwrap();
        assert_eq!(flagged.flags.to_vec(), b"FS");
        let uid_a = s
            .messages
            .iter()
            .find(|m| &*m.unique == "1.a.host,S=3,W=4")
            .unwrap();
        assert_eq!(uid_a.wire_size, Some(4));
        fs::remove_file(dir.join("cur/2.b.host:2,SF")).unwrap();
        fs::write(dir.join("new/3.c.host"), b"y").unwrap();
        let s2 = f.sync().unwrap();
        assert_eq!(s2.validity, s.validity);
        assert_eq!(
            s2.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![uid_a.uid, 3]
        );
        // Flags changed by anyone get a new mod-sequence.
        let before = s2.messages[0].modseq;
        fs::rename(
            dir.join("new/1.a.host,S=3,W=4"),
            dir.join("cur/1.a.host,S=3,W=4:2,S"),
        )
        .unwrap();
        let s3 = f.sync().unwrap();
        assert!(s3.messages[0].modseq > before);
        assert_eq!(s3.highest, s3.messages[0].modseq);
        fs::write(dir.join(INDEX), "garbage").unwrap();
        let s4 = Folder::new(dir.clone()).sync().unwrap();
        assert_eq!(s4.messages.len(), 2);
        assert_ne!(s4.validity, 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_settled_folder_is_not_read_again() {
        let dir = maildir("settled");
        fs::write(dir.join("cur/1.a.host:2,S"), b"a\n").unwrap();
        fs::write(dir.join("cur/2.b.host:2,"), b"b\n").unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        let age = |d: &Path| File::open(d).unwrap().set_modified(past).unwrap();
        age(&dir.join("cur"));
        age(&dir.join("new"));
        let first = Folder::new(dir.clone()).sync().unwrap();
        let index = fs::read_to_string(dir.join(INDEX)).unwrap();
        assert!(index.lines().any(|l| l.starts_with("S ")), "{index}");
        // A file slipped in without changing the directory's time would not be seen:
        // that is how we know the second scan used the records.
        fs::write(dir.join("cur/3.c.host:2,"), b"c\n").unwrap();
        age(&dir.join("cur"));
        let second = Folder::new(dir.clone()).sync().unwrap();
        assert_eq!(second.messages, first.messages);
        // Any real change moves the directory's time, and the folder is read again.
        fs::rename(dir.join("cur/2.b.host:2,"), dir.join("cur/2.b.host:2,F")).unwrap();
        let third = Folder::new(dir.clone()).sync().unwrap();
        assert_eq!(third.messages.len(), 3);
        assert_eq!(third.messages[1].flags.to_vec(), b"F");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_are_renamed_with_letters_in_ascii_order() {
        let dir = maildir("flags");
        fs::write(dir.join("new/1.a.host"), b"ab\n").unwrap();
        let mut f = Folder::new(dir.clone());
        let snap = f.sync().unwrap();
        let mut messages = snap.messages;
        let done = f
            .change_flags(snap.validity, &mut messages, &[0], |_| {
                Some(b"TSF".to_vec())
            })
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>();
        assert_eq!(done, vec![Change::Changed]);
        assert!(dir.join("cur/1.a.host:2,FST").exists());
        assert_eq!(messages[0].file(), "cur/1.a.host:2,FST");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn flag_changes_are_decided_on_the_flags_of_the_moment() {
        let root = maildir("decide");
        // A folder, so that UIDVALIDITY's counter (in the root) outlives it.
        let dir = root.join(".Box");
        rqmail_mailbox::make_maildir(&dir).unwrap();
        fs::write(dir.join("new/1.a.host"), b"a\n").unwrap();
        let (mut one, mut two) = (Folder::new(dir.clone()), Folder::new(dir.clone()));
        let snap = one.sync().unwrap();
        let validity = snap.validity;
        let (mut mine, mut theirs) = (snap.messages.clone(), two.sync().unwrap().messages);
        let seen_at = mine[0].modseq;
        // The other session flags it.
        two.change_flags(validity, &mut theirs, &[0], |_| Some(b"F".to_vec()))
            .unwrap();
        assert!(theirs[0].modseq > seen_at);
        // +FLAGS (\Seen) from this session's stale view keeps their \Flagged.
        let add_seen = |m: &Message| {
            let mut f = m.flags.to_vec();
            f.push(b'S');
            Some(f)
        };
        let done = one
            .change_flags(validity, &mut mine, &[0], add_seen)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>();
        assert_eq!(done, vec![Change::Changed]);
        assert!(dir.join("cur/1.a.host:2,FS").exists());
        assert_eq!(mine[0].flags.to_vec(), b"FS");
        // UNCHANGEDSINCE tests the mod-sequence of the moment, not the one last seen.
        let mut stale = snap.messages.clone();
        let mut seen = None;
        let done = one
            .change_flags(validity, &mut stale, &[0], |m| {
                seen = Some(m.modseq);
                (m.modseq <= seen_at).then(Vec::new)
            })
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>();
        assert_eq!(done, vec![Change::Refused]);
        assert_eq!(seen, Some(mine[0].modseq));
        assert!(dir.join("cur/1.a.host:2,FS").exists());
        // A mail reader's rename behind the index's back gets a new mod-sequence too.
        fs::rename(dir.join("cur/1.a.host:2,FS"), dir.join("cur/1.a.host:2,S")).unwrap();
        let before = mine[0].modseq;
        let done = one
            .change_flags(validity, &mut mine, &[0], |_| None)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>();
        assert_eq!(done, vec![Change::Refused]);
        assert_eq!(mine[0].flags.to_vec(), b"S");
        assert!(mine[0].modseq > before);
        // Gone, and then a folder made again under the same name.
        fs::remove_file(dir.join("cur/1.a.host:2,S")).unwrap();
        let done = one
            .change_flags(validity, &mut mine, &[0], add_seen)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>();
        assert_eq!(done, vec![Change::Gone]);
        assert!(!one.remove(&mine[0]).unwrap(), "already removed");
        fs::remove_dir_all(&dir).unwrap();
        rqmail_mailbox::make_maildir(&dir).unwrap();
        Folder::new(dir.clone()).sync().unwrap();
        let e = one
            .change_flags(validity, &mut mine, &[0], add_seen)
            .unwrap_err();
        assert!(is_validity_changed(&e), "{e}");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_scan_racing_renames_keeps_every_uid() {
        // Another session flags messages (renames in cur/) while this one scans: a file
        // renamed while the directory is read can be missed under both names, and must not
        // be taken for expunged.
        let dir = maildir("race");
        let count = 3000;
        for n in 0..count {
            fs::write(dir.join(format!("cur/{n}.a.host:2,")), b"x\n").unwrap();
        }
        let mut f = Folder::new(dir.clone());
        let first = f.sync().unwrap();
        assert_eq!(first.messages.len(), count);
        let uids: Vec<u32> = first.messages.iter().map(|m| m.uid).collect();
        let mover = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                for n in 0..count {
                    let from = dir.join(format!("cur/{n}.a.host:2,"));
                    fs::rename(from, dir.join(format!("cur/{n}.a.host:2,S"))).unwrap();
                }
            })
        };
        let mut scans = 0;
        while !mover.is_finished() || scans == 0 {
            let s = f.sync().unwrap();
            assert_eq!(s.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), uids);
            scans += 1;
        }
        mover.join().unwrap();
        let last = f.sync().unwrap();
        assert_eq!(
            last.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            uids
        );
        assert!(last.messages.iter().all(|m| m.flags.to_vec() == b"S"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn uids_that_run_out_start_again_under_a_new_uidvalidity() {
        let dir = maildir("uids-out");
        let last = u32::MAX - 1;
        fs::write(
            dir.join(INDEX),
            format!(
                "rqmail-index 1 7\nN {} 3\n+ {last} 3 0 - 1.a.host\n",
                u32::MAX
            ),
        )
        .unwrap();
        fs::write(dir.join("cur/1.a.host:2,"), b"a\n").unwrap();
        fs::write(dir.join("new/2.b.host"), b"b\n").unwrap();
        fs::write(dir.join("new/3.c.host"), b"c\n").unwrap();
        let mut f = Folder::new(dir.clone());
        let s = f.sync().unwrap();
        assert_ne!(s.validity, 7);
        assert_eq!(
            s.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(&*s.messages[0].unique, "1.a.host");
        assert_eq!(s.next, 4);
        // As read by another session.
        let again = Folder::new(dir.clone()).sync().unwrap();
        assert_eq!(again.validity, s.validity);
        assert_eq!(again.messages, s.messages);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn wire_form_ends_every_line_with_crlf() {
        assert_eq!(to_wire(b"a\nb\r\nc"), b"a\r\nb\r\nc\r\n");
        assert_eq!(wire_size_of(b"a\nb\r\nc"), 9);
        assert_eq!(from_wire(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }

    #[test]
    fn bad_folder_names_are_refused() {
        let root = Path::new("/m");
        assert_eq!(folder_dir(root, "inbox").unwrap(), root);
        assert!(folder_dir(root, "../x").is_none());
        assert!(folder_dir(root, "a/b").is_none());
        assert!(folder_dir(root, ".x").is_none());
        assert_eq!(folder_dir(root, "A.B").unwrap(), root.join(".A.B"));
    }
}
