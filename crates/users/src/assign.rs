//! users/assign, the admin's text, and its compiled form users/cdb (qmail-newu).
//! The cdb bytes are qmail's, so a users/cdb from qmail works here and the other way round.

use std::fmt;
use std::io;
use std::path::Path;

/// One line of users/assign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The line number in users/assign, counting from 1.
    pub line: usize,
    /// `+` (a prefix of local parts) rather than `=` (exactly one local part).
    pub wildcard: bool,
    /// LOCAL (`=`) or LOC (`+`) as written, before lowercasing.
    pub local: Vec<u8>,
    /// `USER\0UID\0GID\0HOMEDIR\0DASH\0EXT`: the six fields as written, colons made NULs.
    pub data: Vec<u8>,
}

impl Assignment {
    /// The users/cdb key: `!` + lowercase(LOCAL) + NUL, or `!` + lowercase(LOC) for `+`.
    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.local.len() + 2);
        key.push(b'!');
        key.extend(self.local.iter().map(u8::to_ascii_lowercase));
        if !self.wildcard {
            key.push(0);
        }
        key
    }
}

/// Why users/assign was refused, with the line at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The line number, counting from 1; for a missing `.` line, the line after the last.
    pub line: usize,
    /// What is wrong with that line.
    pub reason: &'static str,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad users/assign: {} (line {})", self.reason, self.line)
    }
}

impl std::error::Error for FormatError {}

/// Why rqmail-newu could not replace users/cdb; in every case the old users/cdb is kept.
#[derive(Debug)]
pub enum CompileError {
    /// users/assign could not be read.
    Read(io::Error),
    /// users/assign is malformed.
    Format(FormatError),
    /// users/cdb.tmp could not be written, synced or renamed to users/cdb.
    Write(io::Error),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Read(e) => write!(f, "unable to read users/assign: {e}"),
            CompileError::Format(e) => e.fmt(f),
            CompileError::Write(e) => write!(f, "unable to write users/cdb: {e}"),
        }
    }
}

impl std::error::Error for CompileError {}

/// Parses users/assign. Like qmail-newu, the first line starting with `.` ends the file and
/// anything after it is ignored; a file without such a line is refused, since it was
/// probably cut short.
pub fn parse_assign(text: &[u8]) -> Result<Vec<Assignment>, FormatError> {
    let mut assignments = Vec::new();
    let mut rest = text;
    let mut number = 0;
    loop {
        number += 1;
        let error = |reason| FormatError {
            line: number,
            reason,
        };
        if rest.is_empty() {
            return Err(error("missing final line \".\""));
        }
        let (line, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                (line, true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        if line.first() == Some(&b'.') {
            return Ok(assignments);
        }
        if !terminated {
            return Err(error("last line has no newline and is not \".\""));
        }
        assignments.push(parse_line(line).map_err(error)?);
        if let Some(last) = assignments.last_mut() {
            last.line = number;
        }
    }
}

/// Parses one `=` or `+` line (without its LF).
fn parse_line(line: &[u8]) -> Result<Assignment, &'static str> {
    if line.contains(&0) {
        return Err("line contains a NUL byte");
    }
    let colon = match line.iter().position(|&b| b == b':') {
        None => return Err("line has no colon"),
        Some(0) => return Err("line starts with a colon"),
        Some(colon) => colon,
    };
    // qmail-newu treats any first character other than `+` as `=`; a stray comment or typo
    // would then silently become an address, so only the two documented forms are taken.
    let wildcard = match line[0] {
        b'=' => false,
        b'+' => true,
        _ => return Err("line starts with neither \"=\" nor \"+\""),
    };
    let mut data = line[colon + 1..].to_vec();
    let mut colons = 0;
    let mut end = data.len();
    for (i, byte) in data.iter_mut().enumerate() {
        if *byte == b':' {
            *byte = 0;
            colons += 1;
            if colons == 6 {
                end = i;
                break;
            }
        }
    }
    if colons < 6 {
        return Err("fewer than 6 colons after the address");
    }
    // Text after the sixth colon is ignored, as qmail-newu ignores it.
    data.truncate(end);
    let mut fields = data.split(|&b| b == 0);
    fields.next();
    for _ in 0..2 {
        let field = fields.next().unwrap_or_default();
        // All digits: Rust's parse would also take a leading `+`.
        if !field.iter().all(u8::is_ascii_digit) || parse_u32(field).is_none() {
            return Err("uid or gid is not a number");
        }
    }
    Ok(Assignment {
        line: 0,
        wildcard,
        local: line[1..colon].to_vec(),
        data,
    })
}

/// A decimal u32, or None if it has a non-digit or does not fit.
pub(crate) fn parse_u32(digits: &[u8]) -> Option<u32> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The data of the record with the empty key: the distinct last characters of the non-empty
/// wildcard prefixes, as written (not lowercased: qmail's quirk, kept for identical files).
pub fn wildcard_chars(assignments: &[Assignment]) -> Vec<u8> {
    let mut chars = Vec::new();
    for a in assignments.iter().filter(|a| a.wildcard) {
        if let Some(&last) = a.local.last()
            && !chars.contains(&last)
        {
            chars.push(last);
        }
    }
    chars
}

/// Writes the users/cdb for `assignments` at `path`, atomically: `path.tmp`, fsync, rename,
/// then fsync of the directory. On any error `path` is left as it was.
pub fn write_cdb(path: &Path, assignments: &[Assignment]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let options = rqmail_replace::Options {
        mode: 0o644,
        create: rqmail_replace::Create::Truncate,
        durable: true,
    };
    rqmail_replace::replace(path, Path::new(&tmp_name), options, |file| {
        let mut cdb = cdb::CDBMake::new(file.try_clone()?)?;
        for a in assignments {
            cdb.add(&a.key(), &a.data)?;
        }
        cdb.add(b"", &wildcard_chars(assignments))?;
        cdb.finish()
    })?;
    Ok(())
}

/// Compiles `home/users/assign` into `home/users/cdb` (what rqmail-newu does).
pub fn compile(home: &Path) -> Result<(), CompileError> {
    let users = home.join("users");
    let text = std::fs::read(users.join("assign")).map_err(CompileError::Read)?;
    let assignments = parse_assign(&text).map_err(CompileError::Format)?;
    write_cdb(&users.join("cdb"), &assignments).map_err(CompileError::Write)
}
