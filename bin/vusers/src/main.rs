//! rqmail-vusers DOMAIN COMMAND [ARG...]: manages the users, aliases and forwards of a
//! virtual domain (see the rqmail-virtual crate), then compiles it.
//!
//! Commands: `add USER [QUOTA]` (password on stdin, one line; makes the Maildir), `remove
//! USER` (its Maildir stays on disk), `list`, `passwd USER` (password on stdin), `quota USER
//! BYTES`, `alias NAME TARGET[,TARGET...]`, `forward USER ADDRESS[,ADDRESS...]` (replacing
//! earlier ones; `-` removes them), `compile` (after root edited the text by hand, and to
//! move a table of the old layout out of the domain directory). Passwords are hashed with
//! yescrypt and never printed. The domain is found through control/virtualdomains and the
//! account of its prepend.
//!
//! Who does what (README, "Security"): the table with the hashes, `users/virtual/DOMAIN/`,
//! belongs to the owner of `users/virtual` (rqmailp; this program is installed setuid
//! rqmailp), and the mailboxes and boxes.cdb to the domain's account, in its home. Run by
//! the domain's account, it writes the table as rqmailp and the account's files as the
//! account; run by anyone else but root it refuses. Run by root, it becomes the account
//! before it touches anything in the account's home, and the owner of `users/virtual`
//! before it touches the table, so a link planted by either leads nowhere that one could
//! not reach already. Without root and without the set-uid bit (an instance of one user)
//! it does everything as that user. Exit 0 on success, 100 on a usage or table mistake or a
//! caller who may not change the domain, 111 otherwise.
#![forbid(unsafe_code)]

mod identity;

use identity::{Caller, Ids};
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use rqmail_virtual::{Record, parse_line, valid_name};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: rqmail-vusers DOMAIN add USER [QUOTA] | remove USER | list | passwd USER | quota USER BYTES | alias NAME TARGETS | forward USER ADDRESSES | compile";

/// A failure: message and exit code.
pub(crate) struct Fail(pub(crate) String, pub(crate) u8);

fn usage() -> Fail {
    Fail(USAGE.into(), EXIT_PERMANENT)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            rqmail_log::line(&format!("rqmail-vusers: {msg}"));
            ExitCode::from(code)
        }
    }
}

/// Reads the password: the first line of stdin, without its line end.
fn read_password() -> Result<String, Fail> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Fail(format!("unable to read the password: {e}"), EXIT_TEMPORARY))?;
    // Drain the rest, so a writer never sees EPIPE.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Fail("no password on stdin".into(), EXIT_PERMANENT));
    }
    Ok(password)
}

fn hash(password: &str) -> Result<String, Fail> {
    rqmail_passwd::hash_password(password.as_bytes())
        .map_err(|e| Fail(format!("unable to hash the password: {e}"), EXIT_TEMPORARY))
}

fn name_arg(args: &[String], i: usize) -> Result<String, Fail> {
    let name = args.get(i).ok_or_else(usage)?.to_ascii_lowercase();
    if !valid_name(&name) {
        return Err(Fail(
            format!("bad name {name:?} (a-z, 0-9, . _ + = -)"),
            EXIT_PERMANENT,
        ));
    }
    Ok(name)
}

fn list_arg(args: &[String], from: usize) -> Result<Vec<String>, Fail> {
    let items: Vec<String> = args[from.min(args.len())..]
        .join(",")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(usage());
    }
    Ok(items)
}

/// The text as lines, each with its record if it parses.
struct Table {
    lines: Vec<(String, Option<Record>)>,
}

impl Table {
    /// The table at `path`, `None` if there is none; never read through a link.
    fn load(path: &Path) -> Result<Option<Table>, Fail> {
        let mut text = String::new();
        let read = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .and_then(|mut f| f.read_to_string(&mut text));
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Fail(
                    format!("unable to read {}: {e}", path.display()),
                    EXIT_TEMPORARY,
                ));
            }
        }
        Ok(Some(Table {
            lines: text
                .lines()
                .map(|l| (l.to_string(), parse_line(l).ok().flatten()))
                .collect(),
        }))
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (line, _) in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn mailbox(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|(_, r)| matches!(r, Some(Record::Mailbox { name: n, .. }) if n == name))
    }

    fn find(&self, pred: impl Fn(&Record) -> bool) -> Option<usize> {
        self.lines
            .iter()
            .position(|(_, r)| r.as_ref().is_some_and(&pred))
    }

    /// Replaces line `at` (or appends) with `record`.
    fn put(&mut self, at: Option<usize>, record: Record) {
        let entry = (record.to_line(), Some(record));
        match at {
            Some(i) => self.lines[i] = entry,
            None => self.lines.push(entry),
        }
    }
}

fn run(args: &[String]) -> Result<(), Fail> {
    let (Some(domain), Some(command)) = (args.first(), args.get(1)) else {
        return Err(usage());
    };
    let home = rqmail_control::home().map_err(|e| {
        Fail(
            format!("unable to find the rqmail home: {e}"),
            EXIT_TEMPORARY,
        )
    })?;
    let caller = Caller::detect();
    let domain = rqmail_virtual::locate(&home, domain)
        .map_err(|e| Fail(e, EXIT_TEMPORARY))?
        .ok_or_else(|| {
            Fail(
                format!("{domain} is not a virtual domain in control/virtualdomains"),
                EXIT_PERMANENT,
            )
        })?;
    if domain.account.uid == 0 {
        return Err(Fail(
            "a virtual domain may not belong to root".into(),
            EXIT_PERMANENT,
        ));
    }
    caller.may_change(&domain)?;
    let account = Ids {
        uid: domain.account.uid,
        gid: domain.account.gid,
    };
    let keeper = caller.keeper(&home.join(rqmail_virtual::HASH_ROOT))?;
    let hash_dir = rqmail_virtual::hash_dir(&home, &domain.name);
    let dir = domain.dir.clone();

    caller.act_as(keeper)?;
    if command == "compile" && !hash_dir.join(rqmail_virtual::TEXT).exists() {
        caller.act_as(account)?;
        let old = dir.join(rqmail_virtual::TEXT).exists();
        caller.act_as(keeper)?;
        if !old {
            return Err(Fail(
                format!("{} has no table to compile", domain.name),
                EXIT_PERMANENT,
            ));
        }
    }
    make_dir(&hash_dir, 0o750)?;
    let _lock = lock(&hash_dir)?;
    let text_path = hash_dir.join(rqmail_virtual::TEXT);
    let (mut table, migrated) = match Table::load(&text_path)? {
        Some(table) => (table, false),
        None => {
            // A domain of the old layout kept its table, hashes and all, in the account's
            // directory: read it as the account, and move it once this run has saved.
            caller.act_as(account)?;
            let old = Table::load(&dir.join(rqmail_virtual::TEXT))?;
            caller.act_as(keeper)?;
            match old {
                Some(table) => (table, true),
                None => (Table { lines: Vec::new() }, false),
            }
        }
    };
    // What the table file holds now (none for a moved or new table), so that an unchanged
    // table is not written again.
    let on_disk = (!migrated && text_path.exists()).then(|| table.text());
    let mut new_user = None;
    match command.as_str() {
        "list" => {
            if args.len() != 2 {
                return Err(usage());
            }
            let records = rqmail_virtual::parse(&table.text())
                .map_err(|e| Fail(format!("the table of {}: {e}", domain.name), EXIT_PERMANENT))?;
            for (_, r) in records {
                match r {
                    Record::Mailbox { name, quota, .. } => println!("user {name} quota {quota}"),
                    Record::Alias { name, targets } => {
                        println!("alias {name} {}", targets.join(","))
                    }
                    Record::Forward { name, addresses } => {
                        println!("forward {name} {}", addresses.join(","))
                    }
                }
            }
            return Ok(());
        }
        "compile" => {
            if args.len() != 2 {
                return Err(usage());
            }
        }
        "add" => {
            let name = name_arg(args, 2)?;
            let quota = match args.get(3) {
                Some(q) => q.parse().map_err(|_| {
                    Fail(
                        format!("quota {q:?} is not a number of bytes"),
                        EXIT_PERMANENT,
                    )
                })?,
                None => 0,
            };
            if args.len() > 4 {
                return Err(usage());
            }
            if table
                .find(|r| r.name() == name && !matches!(r, Record::Forward { .. }))
                .is_some()
            {
                return Err(Fail(format!("{name} already exists"), EXIT_PERMANENT));
            }
            let hash = hash(&read_password()?)?;
            table.put(
                None,
                Record::Mailbox {
                    name: name.clone(),
                    hash,
                    quota,
                },
            );
            new_user = Some(name);
        }
        "remove" => {
            let name = name_arg(args, 2)?;
            if args.len() != 3 {
                return Err(usage());
            }
            let before = table.lines.len();
            table.lines.retain(|(_, r)| {
                !matches!(r, Some(Record::Mailbox { name: n, .. } | Record::Forward { name: n, .. } | Record::Alias { name: n, .. }) if *n == name)
            });
            if table.lines.len() == before {
                return Err(Fail(format!("no user or alias {name}"), EXIT_PERMANENT));
            }
            // Aliases pointing at the name lose that target; emptied aliases go.
            let mut kept = Vec::new();
            for (line, r) in table.lines.drain(..) {
                match r {
                    Some(Record::Alias { name: a, targets }) if targets.contains(&name) => {
                        let targets: Vec<String> =
                            targets.into_iter().filter(|t| *t != name).collect();
                        if !targets.is_empty() {
                            let r = Record::Alias { name: a, targets };
                            kept.push((r.to_line(), Some(r)));
                        }
                    }
                    other => kept.push((line, other)),
                }
            }
            table.lines = kept;
        }
        "passwd" => {
            let name = name_arg(args, 2)?;
            if args.len() != 3 {
                return Err(usage());
            }
            let at = table
                .mailbox(&name)
                .ok_or_else(|| Fail(format!("no mailbox {name}"), EXIT_PERMANENT))?;
            let Some(Record::Mailbox { quota, .. }) = table.lines[at].1.clone() else {
                unreachable!()
            };
            let hash = hash(&read_password()?)?;
            table.put(Some(at), Record::Mailbox { name, hash, quota });
        }
        "quota" => {
            let name = name_arg(args, 2)?;
            let bytes = args.get(3).ok_or_else(usage)?;
            let quota = bytes.parse().map_err(|_| {
                Fail(
                    format!("quota {bytes:?} is not a number of bytes"),
                    EXIT_PERMANENT,
                )
            })?;
            let at = table
                .mailbox(&name)
                .ok_or_else(|| Fail(format!("no mailbox {name}"), EXIT_PERMANENT))?;
            let Some(Record::Mailbox { hash, .. }) = table.lines[at].1.clone() else {
                unreachable!()
            };
            table.put(Some(at), Record::Mailbox { name, hash, quota });
        }
        "alias" => {
            let name = name_arg(args, 2)?;
            let targets: Vec<String> = list_arg(args, 3)?
                .into_iter()
                .map(|t| {
                    if t.contains('@') {
                        t
                    } else {
                        t.to_ascii_lowercase()
                    }
                })
                .collect();
            let at = table.find(|r| matches!(r, Record::Alias { name: n, .. } if *n == name));
            if targets == ["-"] {
                let at = at.ok_or_else(|| Fail(format!("no alias {name}"), EXIT_PERMANENT))?;
                table.lines.remove(at);
            } else {
                table.put(at, Record::Alias { name, targets });
            }
        }
        "forward" => {
            let name = name_arg(args, 2)?;
            let addresses = list_arg(args, 3)?;
            let at = table.find(|r| matches!(r, Record::Forward { name: n, .. } if *n == name));
            if addresses == ["-"] {
                let at =
                    at.ok_or_else(|| Fail(format!("no forward for {name}"), EXIT_PERMANENT))?;
                table.lines.remove(at);
            } else {
                table.put(at, Record::Forward { name, addresses });
            }
        }
        _ => return Err(usage()),
    }

    // Everything in the account's home is done as the account.
    caller.act_as(account)?;
    make_dir(&dir, 0o711)?;
    if let Some(name) = &new_user {
        let user_dir = rqmail_virtual::user_dir(&dir, name);
        make_dir(&user_dir, 0o700)?;
        rqmail_mailbox::make_maildir(&user_dir.join("Maildir")).map_err(|e| {
            Fail(
                format!("unable to make {}/Maildir: {e}", user_dir.display()),
                EXIT_TEMPORARY,
            )
        })?;
    }
    caller.act_as(keeper)?;
    let tables = save(&table, &text_path, &hash_dir, on_disk.as_deref())?;
    caller.act_as(account)?;
    rqmail_virtual::compile_boxes(&dir, &tables).map_err(|e| {
        Fail(
            format!("{}: {e}; the old boxes.cdb stays in use", dir.display()),
            EXIT_TEMPORARY,
        )
    })?;
    if migrated {
        for name in [rqmail_virtual::TEXT, rqmail_virtual::PASSWD_CDB] {
            let path = dir.join(name);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Fail(
                    format!("unable to remove {}: {e}", path.display()),
                    EXIT_TEMPORARY,
                ));
            }
        }
        println!(
            "rqmail-vusers: moved the table of {} from {} to {}",
            domain.name,
            dir.display(),
            hash_dir.display()
        );
    }
    Ok(())
}

/// Makes a directory with `mode` if it is missing; an existing one must be a directory,
/// not a link.
fn make_dir(path: &Path, mode: u32) -> Result<(), Fail> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(Fail(
                    format!("{} is not a directory", path.display()),
                    EXIT_TEMPORARY,
                )),
            }
        }
        Err(e) => Err(Fail(
            format!("unable to create {}: {e}", path.display()),
            EXIT_TEMPORARY,
        )),
    }
}

/// Holds the domain's lock file (flock), so that two runs cannot lose each other's change.
fn lock(hash_dir: &Path) -> Result<nix::fcntl::Flock<File>, Fail> {
    let path = hash_dir.join(rqmail_virtual::LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| {
            Fail(
                format!("unable to open {}: {e}", path.display()),
                EXIT_TEMPORARY,
            )
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        Fail(
            format!("unable to lock {}: {e}", path.display()),
            EXIT_TEMPORARY,
        )
    })
}

/// Checks the new text, writes it (0600) if it differs from `on_disk` and compiles
/// passwd.cdb beside it; returns the tables for boxes.cdb. A mistake changes nothing.
fn save(
    table: &Table,
    text_path: &Path,
    hash_dir: &Path,
    on_disk: Option<&str>,
) -> Result<rqmail_virtual::Tables, Fail> {
    let text = table.text();
    let tables = rqmail_virtual::check(&text).map_err(|e| {
        Fail(
            format!("{}: {e}; nothing changed", text_path.display()),
            EXIT_PERMANENT,
        )
    })?;
    if on_disk != Some(text.as_str()) {
        rqmail_virtual::write_atomic(text_path, text.as_bytes(), 0o600).map_err(|e| {
            Fail(
                format!("unable to write {}: {e}", text_path.display()),
                EXIT_TEMPORARY,
            )
        })?;
    }
    rqmail_virtual::compile_passwd(hash_dir, &tables).map_err(|e| {
        Fail(
            format!(
                "{}: {e}; the old passwd.cdb stays in use",
                hash_dir.display()
            ),
            EXIT_TEMPORARY,
        )
    })?;
    Ok(tables)
}
