//! Maildir delivery (tmp/, then a link into new/) and the creation of Maildirs and
//! Maildir++ folders.

use crate::{COPY_BUFFER, DeliveryError, WithinError};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Deliveries attempted by this process: the `Q` part of unique names.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// How many names to try in tmp/ before giving up. Names carry microseconds and a
/// counter, so a collision means another writer on this host reused our pid: no need for
/// qmail's 2-second sleep between tries.
const NAME_TRIES: usize = 3;

/// The host part of unique names: `gethostname()`, at most 64 bytes as in qmail, with `/`
/// and `:` escaped since they cannot appear in a Maildir name.
fn host_part() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let name = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut end = name.len().min(64);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        escape_host(&name[..end])
    })
}

/// Writes `/` as `\057` and `:` as `\072` (maildir(5)).
pub(crate) fn escape_host(host: &str) -> String {
    host.replace('/', "\\057").replace(':', "\\072")
}

/// A fresh Maildir name, `TIME.M<usec>P<pid>Q<n>.HOST`: unique on this host, since no two
/// deliveries by one process share `n` and no two processes alive at once share a pid.
pub fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = DELIVERIES.fetch_add(1, Ordering::Relaxed) + 1;
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        host_part()
    )
}

fn temporary(text: String) -> DeliveryError {
    DeliveryError::temporary(text)
}

/// Delivers `prefix` (Return-Path and Delivered-To lines) followed by the whole message,
/// unchanged, into the Maildir `dir`, and returns the new file's path in `new/`. The
/// message is rewound first. Every failure is temporary, and leaves nothing in `tmp/`.
pub fn deliver_maildir(
    dir: &Path,
    prefix: &[u8],
    message: &mut (impl Read + Seek),
) -> Result<PathBuf, DeliveryError> {
    message
        .seek(SeekFrom::Start(0))
        .map_err(|e| temporary(format!("Unable to rewind message: {e}. (#4.3.0)")))?;
    match deliver_maildir_within(dir, prefix, message, &mut |_| true) {
        Ok((path, _)) => Ok(path),
        Err(WithinError::Failed(e)) => Err(e),
        // Unreachable: every size is allowed.
        Err(WithinError::TooLarge) => Err(temporary("Message too large. (#4.3.0)".into())),
    }
}

/// Delivers `prefix` followed by the rest of `message`, read once from where it is, into
/// the Maildir `dir`, while `allows(bytes)` says the file may grow to that many bytes:
/// the message is copied through a fixed buffer, never held whole, so its size need not
/// be known in advance. Returns the new file's path in `new/` and its size. A message
/// that grows past what `allows` accepts gets [`WithinError::TooLarge`]; then, as after
/// every failure, nothing is delivered and nothing is left in `tmp/`.
pub fn deliver_maildir_within(
    dir: &Path,
    prefix: &[u8],
    message: &mut impl Read,
    allows: &mut dyn FnMut(u64) -> bool,
) -> Result<(PathBuf, u64), WithinError> {
    // qmail-local's chdir into the maildir: a missing maildir is the user's to fix (#4.2.1).
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(temporary(format!(
                "Unable to chdir to maildir {}: not a directory. (#4.2.1)",
                dir.display()
            ))
            .into());
        }
        Err(e) => {
            return Err(temporary(format!(
                "Unable to chdir to maildir {}: {e}. (#4.2.1)",
                dir.display()
            ))
            .into());
        }
    }
    let (name, file) = create_tmp(&dir.join("tmp"), false)?;
    let tmp = dir.join("tmp").join(&name);
    let mut new = dir.join("new").join(&name);
    let mut stored = 0;
    let written = write_synced(file, &tmp, prefix, message, allows).and_then(|sizes| {
        // Dovecot's convention: S= the size on disk, W= the size with CRLF line ends, so a
        // POP3 or IMAP server can report sizes without reading every message.
        stored = sizes.stored;
        new = dir
            .join("new")
            .join(format!("{name},S={},W={}", sizes.stored, sizes.wire));
        // At this instant the message is delivered.
        std::fs::hard_link(&tmp, &new).map_err(|e| {
            WithinError::Failed(temporary(format!(
                "Unable to link {} into new/: {e}. (#4.3.0)",
                tmp.display()
            )))
        })
    });
    let _ = std::fs::remove_file(&tmp);
    written?;
    // qmail stops at the link; without this fsync a crash could still lose the new name.
    // On failure the message is reported undelivered and retried: a duplicate, not a loss.
    File::open(dir.join("new"))
        .and_then(|d| d.sync_all())
        .map_err(|e| {
            temporary(format!(
                "Unable to sync {}/new: {e}. (#4.3.0)",
                dir.display()
            ))
        })?;
    Ok((new, stored))
}

/// A scratch copy of the rest of `message` in the Maildir `dir`'s `tmp/`, for a program
/// that reads a message it cannot rewind more than once: the file is unlinked as soon as
/// it is made, so nothing is left behind however the program ends. Returns the open
/// file, rewound, and its size.
pub fn spool(dir: &Path, message: &mut impl Read) -> Result<(File, u64), DeliveryError> {
    let (name, file) = create_tmp(&dir.join("tmp"), true)?;
    let path = dir.join("tmp").join(&name);
    let _ = std::fs::remove_file(&path);
    let write_error =
        |e: io::Error| temporary(format!("Unable to write {}: {e}. (#4.3.0)", path.display()));
    let mut out = io::BufWriter::with_capacity(COPY_BUFFER, file);
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut size = 0;
    loop {
        let n = match message.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(temporary(format!("Unable to read message: {e}. (#4.3.0)")));
            }
        };
        out.write_all(&buffer[..n]).map_err(write_error)?;
        size += n as u64;
    }
    let mut file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(write_error)?;
    Ok((file, size))
}

/// Creates `tmp/NAME` exclusively, mode 0600, under a fresh name each try; open for
/// reading too when `read`.
fn create_tmp(tmp_dir: &Path, read: bool) -> Result<(String, File), DeliveryError> {
    let mut last_error = None;
    for _ in 0..NAME_TRIES {
        let name = unique_name();
        match OpenOptions::new()
            .read(read)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp_dir.join(&name))
        {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => {
                return Err(temporary(format!(
                    "Unable to create a file in {}: {e}. (#4.3.0)",
                    tmp_dir.display()
                )));
            }
        }
    }
    let why = last_error.map(|e| e.to_string()).unwrap_or_default();
    Err(temporary(format!(
        "Unable to find a unique name in {}: {why}. (#4.3.0)",
        tmp_dir.display()
    )))
}

/// A delivered message's sizes.
#[derive(Default)]
struct Sizes {
    /// Bytes stored.
    stored: u64,
    /// Bytes with every line ended by CRLF, as POP3 and IMAP send it (a final line
    /// without LF gets a CRLF).
    wire: u64,
    last: Option<u8>,
}

impl Sizes {
    fn count(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' && self.last != Some(b'\r') {
                self.wire += 1;
            }
            self.last = Some(b);
        }
        self.stored += bytes.len() as u64;
        self.wire += bytes.len() as u64;
    }

    fn finish(mut self) -> Sizes {
        if self.last.is_some_and(|b| b != b'\n') {
            self.wire += 2;
        }
        self
    }
}

/// Writes prefix and message to `file`, as long as `allows` accepts the size so far, then
/// fsync and a checked close: with NFS, a write error may only show up there.
fn write_synced(
    file: File,
    path: &Path,
    prefix: &[u8],
    message: &mut impl Read,
    allows: &mut dyn FnMut(u64) -> bool,
) -> Result<Sizes, WithinError> {
    let mut sizes = Sizes::default();
    if !allows(prefix.len() as u64) {
        return Err(WithinError::TooLarge);
    }
    sizes.count(prefix);
    let write_error = |e: io::Error| {
        WithinError::Failed(temporary(format!(
            "Unable to write {}: {e}. (#4.3.0)",
            path.display()
        )))
    };
    let mut out = io::BufWriter::with_capacity(COPY_BUFFER, file);
    out.write_all(prefix).map_err(write_error)?;
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        let n = match message.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(WithinError::Failed(temporary(format!(
                    "Unable to read message: {e}. (#4.3.0)"
                ))));
            }
        };
        if !allows(sizes.stored + n as u64) {
            return Err(WithinError::TooLarge);
        }
        out.write_all(&buffer[..n]).map_err(write_error)?;
        sizes.count(&buffer[..n]);
    }
    let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.sync_all().map_err(write_error)?;
    nix::unistd::close(file).map_err(|e| write_error(e.into()))?;
    Ok(sizes.finish())
}

/// Creates one directory with mode 0700; an existing directory is fine.
/// Makes one directory, or accepts one that is there. A symbolic link is not accepted even
/// if it leads to a directory: whoever runs this (root, for one) must not be led into
/// filling a directory elsewhere that a link's owner chose.
fn make_dir(path: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) =>
        {
            Ok(())
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("unable to create {}: {e}", path.display()),
        )),
    }
}

/// Creates the Maildir `path` with `tmp/`, `new/` and `cur/`, each mode 0700. Parts that
/// already exist are left as they are.
pub fn make_maildir(path: &Path) -> io::Result<()> {
    make_dir(path)?;
    for sub in ["tmp", "new", "cur"] {
        make_dir(&path.join(sub))?;
    }
    Ok(())
}

/// Creates the Maildir++ folder `name` inside the existing Maildir `maildir`: the Maildir
/// `maildir/.name` holding an empty `maildirfolder` file. Returns the folder's path. A name
/// uses `.` between levels (`Lists.rust`) and may not contain `/`, start or end with `.`,
/// or contain `..`.
pub fn make_folder(maildir: &Path, name: &str) -> io::Result<PathBuf> {
    if name.is_empty()
        || name.contains('/')
        || name.starts_with('.')
        || name.ends_with('.')
        || name.contains("..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid folder name {name:?}"),
        ));
    }
    if !maildir.join("new").is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a Maildir", maildir.display()),
        ));
    }
    let folder = maildir.join(format!(".{name}"));
    make_maildir(&folder)?;
    let marker = folder.join("maildirfolder");
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&marker)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("unable to create {}: {e}", marker.display()),
            )
        })?;
    Ok(folder)
}
