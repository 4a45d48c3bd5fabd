//! rqmail's Unix accounts and groups, and the one way to change to one of them.
//! Not root: uid changes are skipped, so a whole instance runs as one user for tests.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod descriptors;

pub use descriptors::cloexec_from;
use nix::unistd::{Gid, Group, Uid, User};
use std::io;

/// Runs rqmail-smtpd and the pre-auth front of pop3/imap; owns nothing on disk.
pub const RQMAILD: &str = "rqmaild";
/// Runs rqmail-queue (setuid) and rqmail-clean; owns the queue.
pub const RQMAILQ: &str = "rqmailq";
/// Runs rqmail-send; owns info/, local/, remote/, bounce/.
pub const RQMAILS: &str = "rqmails";
/// Runs rqmail-rspawn and rqmail-remote.
pub const RQMAILR: &str = "rqmailr";
/// Runs the log services.
pub const RQMAILL: &str = "rqmaill";
/// Receives mail for addresses that belong to no user.
pub const ALIAS: &str = "alias";
/// The group of the queue accounts.
pub const GROUP: &str = "rqmail";
/// The group of the accounts that own no files.
pub const NOFILES: &str = "rqnofiles";

/// A uid and its primary gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// True when the effective uid is root, i.e. real account separation is in force.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// The ids of the current process.
pub fn current() -> Ids {
    Ids {
        uid: Uid::current().as_raw(),
        gid: Gid::current().as_raw(),
    }
}

/// Looks up an account by name; `Ok(None)` if there is none.
pub fn account(name: &str) -> io::Result<Option<Ids>> {
    User::from_name(name)
        .map(|u| {
            u.map(|u| Ids {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            })
        })
        .map_err(io::Error::from)
}

/// Looks up a group id by name.
pub fn group(name: &str) -> io::Result<Option<u32>> {
    Group::from_name(name)
        .map(|g| g.map(|g| g.gid.as_raw()))
        .map_err(io::Error::from)
}

/// The ids an rqmail program should run as: the named account when running as root (it
/// must exist), else the current ids, since without root no change is possible.
pub fn service_ids(user: &str, group_name: &str) -> io::Result<Ids> {
    if !is_root() {
        return Ok(current());
    }
    let ids = account(user)?.ok_or_else(|| io::Error::other(format!("no account named {user}")))?;
    let gid = group(group_name)?
        .ok_or_else(|| io::Error::other(format!("no group named {group_name}")))?;
    Ok(Ids { uid: ids.uid, gid })
}

/// Becomes `ids` with exactly the supplementary groups given (gid alone if empty): groups,
/// then gid, then uid, so nothing is left that could change them back. Without root the
/// change is skipped; the caller runs as whoever started it.
pub fn become_ids(ids: Ids, groups: &[u32]) -> io::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let gid = Gid::from_raw(ids.gid);
    let list: Vec<Gid> = if groups.is_empty() {
        vec![gid]
    } else {
        groups.iter().copied().map(Gid::from_raw).collect()
    };
    nix::unistd::setgroups(&list).map_err(io::Error::from)?;
    nix::unistd::setgid(gid).map_err(io::Error::from)?;
    nix::unistd::setuid(Uid::from_raw(ids.uid)).map_err(io::Error::from)?;
    if ids.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(io::Error::other("uid change could be undone"));
    }
    Ok(())
}
