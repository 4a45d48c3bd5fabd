//! Maildir delivery (tmp/, then a link into new/) and the creation of Maildirs and
//! Maildir++ folders.

use crate::{COPY_BUFFER, DeliveryError};
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
    // qmail-local's chdir into the maildir: a missing maildir is the user's to fix (#4.2.1).
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(temporary(format!(
                "Unable to chdir to maildir {}: not a directory. (#4.2.1)",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(temporary(format!(
                "Unable to chdir to maildir {}: {e}. (#4.2.1)",
                dir.display()
            )));
        }
    }
    let (name, file) = create_tmp(&dir.join("tmp"))?;
    let tmp = dir.join("tmp").join(&name);
    let mut new = dir.join("new").join(&name);
    let written = write_synced(file, &tmp, prefix, message).and_then(|sizes| {
        // Dovecot's convention: S= the size on disk, W= the size with CRLF line ends, so a
        // POP3 or IMAP server can report sizes without reading every message.
        new = dir
            .join("new")
            .join(format!("{name},S={},W={}", sizes.stored, sizes.wire));
        // At this instant the message is delivered.
        std::fs::hard_link(&tmp, &new).map_err(|e| {
            temporary(format!(
                "Unable to link {} into new/: {e}. (#4.3.0)",
                tmp.display()
            ))
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
    Ok(new)
}

/// Creates `tmp/NAME` exclusively, mode 0600, under a fresh name each try.
fn create_tmp(tmp_dir: &Path) -> Result<(String, File), DeliveryError> {
    let mut last_error = None;
    for _ in 0..NAME_TRIES {
        let name = unique_name();
        match OpenOptions::new()
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

/// Writes prefix and message to `file`, then fsync and a checked close: with NFS, a write
/// error may only show up there.
fn write_synced(
    file: File,
    path: &Path,
    prefix: &[u8],
    message: &mut impl Read,
) -> Result<Sizes, DeliveryError> {
    let mut sizes = Sizes::default();
    sizes.count(prefix);
    let write_error =
        |e: io::Error| temporary(format!("Unable to write {}: {e}. (#4.3.0)", path.display()));
    let mut out = io::BufWriter::with_capacity(COPY_BUFFER, file);
    out.write_all(prefix).map_err(write_error)?;
    let mut buffer = vec![0u8; COPY_BUFFER];
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
        sizes.count(&buffer[..n]);
    }
    let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.sync_all().map_err(write_error)?;
    nix::unistd::close(file).map_err(|e| write_error(e.into()))?;
    Ok(sizes.finish())
}

/// Creates one directory with mode 0700; an existing directory is fine.
fn make_dir(path: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
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
