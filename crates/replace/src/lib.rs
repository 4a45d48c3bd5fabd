//! Replacing a file whole, so that readers see the old or the new contents and never a part:
//! the new contents go to a temporary file beside it, which is renamed over it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How the temporary file is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Opened with `O_CREAT | O_TRUNC`: a temporary file left by a crash is reused.
    Truncate,
    /// A leftover temporary file is removed and a new one made with `O_EXCL`, so it is
    /// never opened through a link someone planted.
    Fresh,
}

/// How to write the temporary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Mode bits for the temporary file when it is created (the umask applies).
    pub mode: u32,
    /// How the temporary file is created.
    pub create: Create,
    /// Fsync the data before the rename and the directory after it, so the new contents
    /// survive a crash once this returns.
    pub durable: bool,
}

/// The step that failed, so callers can say what went wrong as they always have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Creating the temporary file.
    Create,
    /// Filling it (or fsyncing it).
    Write,
    /// Renaming it over the target, or fsyncing the directory.
    Install,
}

/// Why a replacement failed, and at which step.
#[derive(Debug)]
pub struct Error {
    /// The step that failed.
    pub step: Step,
    /// The system's error.
    pub source: io::Error,
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        e.source
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Replaces `path` by what `fill` writes into the temporary file `tmp` (which must be in the
/// same filesystem): create `tmp`, fill it, fsync it (with `durable`), rename it over
/// `path`, then fsync the directory (with `durable`). If creating, filling or renaming
/// fails, a `tmp` that was created is removed and `path` is left as it was. Returns the
/// new file, still open for writing (and reading: it is opened read-write).
pub fn replace(
    path: &Path,
    tmp: &Path,
    options: Options,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<File, Error> {
    let fail = |step| move |source| Error { step, source };
    let mut open = OpenOptions::new();
    open.read(true).write(true).mode(options.mode);
    match options.create {
        Create::Truncate => open.create(true).truncate(true),
        Create::Fresh => {
            let _ = fs::remove_file(tmp);
            open.create_new(true)
        }
    };
    let mut file = open.open(tmp).map_err(fail(Step::Create))?;
    let result = fill(&mut file)
        .and_then(|()| {
            if options.durable {
                file.sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(fail(Step::Write))
        .and_then(|()| fs::rename(tmp, path).map_err(fail(Step::Install)));
    if let Err(e) = result {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    if options.durable {
        // The rename is what readers see; make it survive a crash as well.
        sync_dir_of(path).map_err(fail(Step::Install))?;
    }
    Ok(file)
}

/// Fsyncs the directory `path` is in (`.` for a bare file name).
fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rqmail-replace-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const FRESH: Options = Options {
        mode: 0o600,
        create: Create::Fresh,
        durable: true,
    };

    #[test]
    fn replaces_the_contents_and_leaves_no_temporary_file() {
        let dir = scratch("ok");
        let (path, tmp) = (dir.join("f"), dir.join("f.tmp"));
        fs::write(&path, b"old").unwrap();
        replace(&path, &tmp, FRESH, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!tmp.exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_fill_leaves_the_old_contents_and_removes_the_temporary_file() {
        let dir = scratch("fail");
        let (path, tmp) = (dir.join("f"), dir.join("f.tmp"));
        fs::write(&path, b"old").unwrap();
        let e = replace(&path, &tmp, FRESH, |_| Err(io::Error::other("no"))).unwrap_err();
        assert_eq!(e.step, Step::Write);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!tmp.exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fresh_temporary_file_is_never_opened_through_a_link() {
        let dir = scratch("link");
        let (path, tmp, target) = (dir.join("f"), dir.join("f.tmp"), dir.join("target"));
        fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        replace(&path, &tmp, FRESH, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert_eq!(fs::read(&path).unwrap(), b"new");
        fs::remove_dir_all(dir).unwrap();
    }
}
