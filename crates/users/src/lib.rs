//! Finds the user who controls a local part, as qmail-lspawn does: users/cdb (qmail-users),
//! then the passwd database (qmail-getpw), then the alias user. Local parts are bytes, as
//! in qmail: an extension need not be UTF-8, and reaches `.qmail-EXT` unchanged.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod assign;

pub use assign::{Assignment, CompileError, FormatError, compile, parse_assign, write_cdb};

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The user-extension delimiter (qmail's `conf-break`).
pub const BREAK: u8 = b'-';

/// Passwd names are shorter than this (qmail-getpw's `GETPW_USERLEN`).
const USER_NAME_LIMIT: usize = 32;

/// Who controls an address, and which `.qmail` file: `home/.qmail` + dash + ext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The account name, handed to the delivery as `USER`.
    pub user: Vec<u8>,
    /// The uid the delivery runs as.
    pub uid: u32,
    /// The gid the delivery runs as (its only group).
    pub gid: u32,
    /// The home directory, holding the `.qmail` files.
    pub home: PathBuf,
    /// `""` or `-`.
    pub dash: Vec<u8>,
    /// The extension; for a wildcard assignment already completed with the rest of the
    /// local part in its original case.
    pub ext: Vec<u8>,
}

/// Why the controlling user could not be found. qmail-lspawn treats every one of these as
/// a temporary failure: the address is retried later, never bounced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// users/cdb exists but cannot be read, or holds a malformed record.
    Cdb(String),
    /// The passwd database failed for a reason other than "no such user".
    Passwd(String),
    /// A candidate's home directory could not be checked, for a temporary reason.
    Home(String),
    /// No alias user exists to receive mail for addresses that belong to no one.
    NoAlias,
}

impl LookupError {
    /// Always false: a lookup failure is never the sender's fault.
    pub fn is_permanent(&self) -> bool {
        false
    }

    /// qmail-lspawn's exit code for this failure (`qlx.h`).
    pub fn qmail_code(&self) -> u8 {
        match self {
            LookupError::Home(_) => 115,
            LookupError::NoAlias => 116,
            LookupError::Cdb(_) => 117,
            LookupError::Passwd(_) => 118,
        }
    }

    /// The text for the delivery report, ending in a qmail-style status code.
    pub fn message(&self) -> String {
        match self {
            LookupError::Cdb(why) => format!("Trouble reading users/cdb: {why}. (#4.3.0)"),
            LookupError::Passwd(why) => {
                format!("Trouble reading the passwd database: {why}. (#4.3.0)")
            }
            LookupError::Home(why) => format!("Unable to check a home directory: {why}. (#4.3.0)"),
            LookupError::NoAlias => "Unable to find alias user! (#4.3.0)".into(),
        }
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for LookupError {}

/// Looks `local` up in `home/users/cdb` (local-delivery.md §2): the exact key first, then
/// wildcard prefixes from the longest down to the catch-all. `Ok(None)` if there is no
/// users/cdb or no assignment matches; an unreadable users/cdb is a temporary error, never
/// "no such user".
pub fn lookup(home: &Path, local: &[u8]) -> Result<Option<UserEntry>, LookupError> {
    let path = home.join("users").join("cdb");
    let db = match cdb::CDB::open(&path) {
        Ok(db) => db,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LookupError::Cdb(e.to_string())),
    };
    let get = |key: &[u8]| match db.get(key) {
        None => Ok(None),
        Some(Ok(data)) => Ok(Some(data)),
        Some(Err(e)) => Err(LookupError::Cdb(e.to_string())),
    };
    // qmail-newu always writes this record; without it the file is not a users/cdb.
    let wildchars = get(b"")?.ok_or_else(|| LookupError::Cdb("no \"\" record".into()))?;

    let mut key = Vec::with_capacity(local.len() + 2);
    key.push(b'!');
    key.extend(local.iter().map(u8::to_ascii_lowercase));
    key.push(0);
    if let Some(data) = get(&key)? {
        return parse_record(&data, b"").map(Some);
    }
    key.pop();
    // Byte i of the key is byte i-1 of `local`.
    for i in (0..=local.len()).rev() {
        if i > 0 && !wildchars.contains(&key[i]) {
            continue;
        }
        if let Some(data) = get(&key[..=i])? {
            return parse_record(&data, &local[i..]).map(Some);
        }
    }
    Ok(None)
}

/// Splits `USER\0UID\0GID\0HOMEDIR\0DASH\0EXT` and appends `rest` to EXT.
fn parse_record(data: &[u8], rest: &[u8]) -> Result<UserEntry, LookupError> {
    let fields: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let [user, uid, gid, home, dash, ext] = fields[..] else {
        return Err(LookupError::Cdb("a record does not have six fields".into()));
    };
    let number = |field: &[u8]| {
        assign::parse_u32(field)
            .ok_or_else(|| LookupError::Cdb("a uid or gid is not a number".into()))
    };
    Ok(UserEntry {
        user: user.to_vec(),
        uid: number(uid)?,
        gid: number(gid)?,
        home: PathBuf::from(OsStr::from_bytes(home)),
        dash: dash.to_vec(),
        ext: [ext, rest].concat(),
    })
}

/// A passwd entry, as far as delivery needs it.
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// Where accounts come from: the system's passwd database, or a table in tests.
trait Passwd {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError>;
    fn running_as_root(&self) -> bool;
    fn current(&self) -> rqmail_privs::Ids;
}

/// True in an instance run by one user, as tests and the quick start run it: its queue
/// belongs to the uid running this program. In a real install the queue belongs to
/// rqmailq, which never looks users up, so lspawn (root) and smtpd (rqmaild) both see
/// real account separation and agree on every lookup.
fn single_user_instance() -> bool {
    use std::sync::OnceLock;
    static SINGLE: OnceLock<bool> = OnceLock::new();
    *SINGLE.get_or_init(|| {
        let euid = nix::unistd::geteuid().as_raw();
        rqmail_control::home()
            .and_then(|home| std::fs::metadata(home.join("queue")))
            .map(|meta| meta.uid() == euid && euid != 0)
            .unwrap_or(false)
    })
}

/// The system's passwd database (NSS).
struct System;

impl Passwd for System {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        use nix::errno::Errno;
        match nix::unistd::User::from_name(name) {
            Ok(user) => Ok(user.map(|u| Account {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                home: u.dir,
            })),
            // getpwnam_r(3): these mean "not found" on some systems.
            Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => Ok(None),
            Err(e) => Err(LookupError::Passwd(format!("looking up {name}: {e}"))),
        }
    }

    fn running_as_root(&self) -> bool {
        !single_user_instance()
    }

    fn current(&self) -> rqmail_privs::Ids {
        rqmail_privs::current()
    }
}

/// qmail-getpw (local-delivery.md §3): the user whose name is `local`, or the part of it
/// before a `-`, longest first. A match needs uid ≠ 0 and a home directory owned by that
/// uid. `Ok(None)` if no candidate matches.
pub fn getpw(local: &[u8]) -> Result<Option<UserEntry>, LookupError> {
    getpw_in(&System, local)
}

fn getpw_in(passwd: &impl Passwd, local: &[u8]) -> Result<Option<UserEntry>, LookupError> {
    for end in (1..=local.len()).rev() {
        if end >= USER_NAME_LIMIT || (end < local.len() && local[end] != BREAK) {
            continue;
        }
        // Account names are portable file names (POSIX: letters, digits, `.`, `_`, `-`),
        // so a candidate that is not UTF-8 names no account; the extension after it may
        // hold any bytes.
        let Ok(name) = std::str::from_utf8(&local[..end]) else {
            continue;
        };
        let Some(account) = passwd.account(&name.to_ascii_lowercase())? else {
            continue;
        };
        if account.uid == 0 {
            continue;
        }
        // Without root no uid change is possible: an instance run by one user delivers
        // only to that user's own account, never as if it were someone else.
        if !passwd.running_as_root() && account.uid != passwd.current().uid {
            continue;
        }
        match std::fs::metadata(&account.home) {
            Ok(meta) if meta.uid() == account.uid => {}
            Ok(_) => continue,
            Err(e) if is_temporary(&e) => {
                return Err(LookupError::Home(format!(
                    "{}: {e}",
                    account.home.display()
                )));
            }
            Err(_) => continue,
        }
        let (dash, ext): (&[u8], &[u8]) = if end == local.len() {
            (b"", b"")
        } else {
            (b"-", &local[end + 1..])
        };
        return Ok(Some(UserEntry {
            user: account.name.into_bytes(),
            uid: account.uid,
            gid: account.gid,
            home: account.home,
            dash: dash.to_vec(),
            ext: ext.to_vec(),
        }));
    }
    Ok(None)
}

/// The user controlling `local`: users/cdb, else passwd, else the alias user with DASH `-`
/// and EXT = the whole local part (so `~alias/.qmail-LOCAL` decides). Without root and
/// without an `alias` account (a test instance), the alias user is the current uid with
/// home `home/alias`.
pub fn resolve(home: &Path, local: &[u8]) -> Result<UserEntry, LookupError> {
    resolve_in(&System, home, local)
}

fn resolve_in(passwd: &impl Passwd, home: &Path, local: &[u8]) -> Result<UserEntry, LookupError> {
    if let Some(entry) = lookup(home, local)? {
        return Ok(entry);
    }
    if let Some(entry) = getpw_in(passwd, local)? {
        return Ok(entry);
    }
    // Without root, the instance's own alias directory stands for the alias account,
    // even on a host where a real rqmail install has one.
    let alias = if passwd.running_as_root() {
        passwd
            .account(rqmail_privs::ALIAS)?
            .ok_or(LookupError::NoAlias)?
    } else {
        let ids = passwd.current();
        Account {
            name: rqmail_privs::ALIAS.into(),
            uid: ids.uid,
            gid: ids.gid,
            home: home.join("alias"),
        }
    };
    Ok(UserEntry {
        user: alias.name.into_bytes(),
        uid: alias.uid,
        gid: alias.gid,
        home: alias.home,
        dash: b"-".to_vec(),
        ext: local.to_vec(),
    })
}

/// qmail's `error_temp`: errors that may go away by themselves (NFS, resources).
fn is_temporary(e: &io::Error) -> bool {
    const TEMPORARY: [i32; 20] = [
        libc::EINTR,
        libc::ENOMEM,
        libc::ETXTBSY,
        libc::EIO,
        libc::ETIMEDOUT,
        libc::EAGAIN,
        libc::EDEADLK,
        libc::EBUSY,
        libc::ENFILE,
        libc::EMFILE,
        libc::ENOSPC,
        libc::ENETDOWN,
        libc::ENETUNREACH,
        libc::ECONNRESET,
        libc::ENOBUFS,
        libc::ECONNREFUSED,
        libc::EHOSTDOWN,
        libc::EHOSTUNREACH,
        libc::EDQUOT,
        libc::ESTALE,
    ];
    e.raw_os_error().is_some_and(|n| TEMPORARY.contains(&n))
}

#[cfg(test)]
mod tests;
