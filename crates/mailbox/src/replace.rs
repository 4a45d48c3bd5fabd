//! Replacing a small file whole, so that readers see the old or the new contents.

use rqmail_replace::{Create, Options, replace};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` (mode 0600 when new): written to `NAME.tmpPID` beside it,
/// then renamed over it, so readers see the old or the new contents, never a part, and
/// two processes replacing it at once never write into each other's temporary file. With
/// `durable`, the data is fsynced before the rename and the directory after it. Returns
/// the new file, open for reading and writing (whose inode stays in use while it is held).
pub fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> io::Result<File> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let options = Options {
        mode: 0o600,
        create: Create::Truncate,
        durable,
    };
    Ok(replace(path, Path::new(&tmp), options, |f| {
        f.write_all(bytes)
    })?)
}
