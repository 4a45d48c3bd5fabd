//! Whose rights rqmail-vusers works with: the domain's account in the account's home, the
//! owner of `users/virtual` (rqmailp) for the table of hashes, and who may ask at all.

use crate::Fail;
use nix::unistd::{Gid, Uid};
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

/// A uid and the gid that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// How the program was started, which decides how it changes identity.
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    /// The real uid is root: it may be anyone, and takes each owner's ids in turn (the
    /// effective ones, so it can come back).
    Root,
    /// Installed set-uid: the real uid is the caller, the saved one the table's keeper.
    /// Only these two can be taken, so nothing else is ever reached.
    Setuid {
        /// The real uid.
        caller: u32,
        /// The set-uid owner.
        keeper: u32,
    },
    /// Neither: one user does everything.
    Plain,
}

impl Caller {
    /// Reads the real and effective uids.
    pub fn detect() -> Caller {
        let real = Uid::current();
        let effective = Uid::effective();
        if real.is_root() {
            Caller::Root
        } else if real != effective {
            Caller::Setuid {
                caller: real.as_raw(),
                keeper: effective.as_raw(),
            }
        } else {
            Caller::Plain
        }
    }

    /// Whether the caller may change `domain`: root, or its account. A set-uid run by
    /// another user is refused before anything is read or written.
    pub fn may_change(&self, domain: &rqmail_virtual::Domain) -> Result<(), Fail> {
        match *self {
            Caller::Setuid { caller, .. } if caller != domain.account.uid => Err(Fail(
                format!(
                    "only root and the account {} may change {}",
                    String::from_utf8_lossy(&domain.account.user),
                    domain.name
                ),
                EXIT_PERMANENT,
            )),
            _ => Ok(()),
        }
    }

    /// The owner of `hash_root` (`users/virtual`), who keeps the tables. It must be a
    /// directory, not a link; an instance of one user makes it (0700) when missing.
    pub fn keeper(&self, hash_root: &Path) -> Result<Ids, Fail> {
        let meta = match std::fs::symlink_metadata(hash_root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !matches!(self, Caller::Plain) {
                    return Err(Fail(
                        format!("{} is missing: run install.sh again", hash_root.display()),
                        EXIT_TEMPORARY,
                    ));
                }
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(hash_root)
                    .and_then(|()| std::fs::symlink_metadata(hash_root))
                    .map_err(|e| {
                        Fail(
                            format!("unable to create {}: {e}", hash_root.display()),
                            EXIT_TEMPORARY,
                        )
                    })?
            }
            Err(e) => {
                return Err(Fail(
                    format!("unable to stat {}: {e}", hash_root.display()),
                    EXIT_TEMPORARY,
                ));
            }
            Ok(meta) => meta,
        };
        if !meta.is_dir() {
            return Err(Fail(
                format!("{} is not a directory", hash_root.display()),
                EXIT_TEMPORARY,
            ));
        }
        let uid = meta.uid();
        if let Caller::Setuid { keeper, .. } = *self
            && keeper != uid
        {
            return Err(Fail(
                format!(
                    "{} belongs to uid {uid}, not to this program's owner (uid {keeper}): run install.sh again",
                    hash_root.display()
                ),
                EXIT_TEMPORARY,
            ));
        }
        // The keeper's own group; the directory's set-gid bit gives new files theirs.
        let gid = nix::unistd::User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or(meta.gid(), |u| u.gid.as_raw());
        Ok(Ids { uid, gid })
    }

    /// Works from now on with the rights of `ids` (effective ids only).
    pub fn act_as(&self, ids: Ids) -> Result<(), Fail> {
        let fail = |e: nix::Error| {
            Fail(
                format!("unable to take the ids {}:{}: {e}", ids.uid, ids.gid),
                EXIT_TEMPORARY,
            )
        };
        match *self {
            Caller::Plain => return Ok(()),
            Caller::Root => {
                nix::unistd::seteuid(Uid::from_raw(0)).map_err(fail)?;
                let gid = Gid::from_raw(ids.gid);
                nix::unistd::setgroups(&[gid]).map_err(fail)?;
                nix::unistd::setegid(gid).map_err(fail)?;
                nix::unistd::seteuid(Uid::from_raw(ids.uid)).map_err(fail)?;
            }
            Caller::Setuid { caller, keeper } => {
                // Only the real and the saved uid can be taken; anything else is a bug.
                if ids.uid != caller && ids.uid != keeper {
                    return Err(Fail(
                        format!("uid {} cannot be taken here", ids.uid),
                        EXIT_TEMPORARY,
                    ));
                }
                nix::unistd::seteuid(Uid::from_raw(ids.uid)).map_err(fail)?;
            }
        }
        if Uid::effective().as_raw() != ids.uid {
            return Err(Fail(
                format!("the effective uid is not {}", ids.uid),
                EXIT_TEMPORARY,
            ));
        }
        Ok(())
    }
}
