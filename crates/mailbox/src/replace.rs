//! Replacing a small file whole, so that readers see the old or the new contents.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `bytes` (mode 0600 when new): written to `NAME.tmpPID` beside it,
/// then renamed over it, so readers see the old or the new contents, never a part, and
/// two processes replacing it at once never write into each other's temporary file. With
/// `durable`, the data is fsynced before the rename and the directory after it. Returns
/// the new file, open for reading and writing (whose inode stays in use while it is held).
pub fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> io::Result<File> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| -> io::Result<File> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        Ok(f)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let file = result?;
    if durable && let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(file)
}
