//! rqmail-vusers DOMAIN COMMAND [ARG...]: manages the users, aliases and forwards of a
//! virtual domain (`~ACCOUNT/DOMAIN/passwd`, see the rqmail-virtual crate), then compiles it.
//!
//! Commands: `add USER [QUOTA]` (password on stdin, one line; makes the Maildir), `remove
//! USER` (its Maildir stays on disk), `list`, `passwd USER` (password on stdin), `quota USER
//! BYTES`, `alias NAME TARGET[,TARGET...]`, `forward USER ADDRESS[,ADDRESS...]` (replacing
//! earlier ones; `-` removes them), `compile` (after editing the text by hand). Passwords
//! are hashed with yescrypt and never printed. The domain is found through
//! control/virtualdomains and the account of its prepend. Run it as that account, or as
//! root: new files are then given to the owner of the domain directory (passwd.cdb keeps
//! group shadow). Exit 0 on success, 100 on a usage or table mistake, 111 otherwise.
#![forbid(unsafe_code)]

use rqmail_virtual::{Record, parse_line, valid_name};
use std::io::{BufRead, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: rqmail-vusers DOMAIN add USER [QUOTA] | remove USER | list | passwd USER | quota USER BYTES | alias NAME TARGETS | forward USER ADDRESSES | compile";

/// A failure: message and exit code.
struct Fail(String, u8);

fn usage() -> Fail {
    Fail(USAGE.into(), 100)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            eprintln!("rqmail-vusers: {msg}");
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
        .map_err(|e| Fail(format!("unable to read the password: {e}"), 111))?;
    // Drain the rest, so a writer never sees EPIPE.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Fail("no password on stdin".into(), 100));
    }
    Ok(password)
}

fn hash(password: &str) -> Result<String, Fail> {
    rqmail_passwd::hash_password(password.as_bytes())
        .map_err(|e| Fail(format!("unable to hash the password: {e}"), 111))
}

fn name_arg(args: &[String], i: usize) -> Result<String, Fail> {
    let name = args.get(i).ok_or_else(usage)?.to_ascii_lowercase();
    if !valid_name(&name) {
        return Err(Fail(
            format!("bad name {name:?} (a-z, 0-9, . _ + = -)"),
            100,
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
    fn load(path: &Path) -> Result<Table, Fail> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Fail(format!("unable to read {}: {e}", path.display()), 111)),
        };
        Ok(Table {
            lines: text
                .lines()
                .map(|l| (l.to_string(), parse_line(l).ok().flatten()))
                .collect(),
        })
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
    let home = rqmail_control::home()
        .map_err(|e| Fail(format!("unable to find the rqmail home: {e}"), 111))?;
    let domain = rqmail_virtual::locate(&home, domain)
        .map_err(|e| Fail(e, 111))?
        .ok_or_else(|| {
            Fail(
                format!("{domain} is not a virtual domain in control/virtualdomains"),
                100,
            )
        })?;
    let dir = domain.dir.clone();
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .map_err(|e| Fail(format!("unable to create {}: {e}", dir.display()), 111))?;
        give_away(&dir, domain.account.uid, domain.account.gid);
    }
    let owner = std::fs::metadata(&dir)
        .map(|m| (m.uid(), m.gid()))
        .map_err(|e| Fail(format!("unable to stat {}: {e}", dir.display()), 111))?;
    let text_path = dir.join(rqmail_virtual::TEXT);
    let mut table = Table::load(&text_path)?;
    match command.as_str() {
        "list" => {
            if args.len() != 2 {
                return Err(usage());
            }
            let records = rqmail_virtual::parse(&table.text())
                .map_err(|e| Fail(format!("{}: {e}", text_path.display()), 100))?;
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
                Some(q) => q
                    .parse()
                    .map_err(|_| Fail(format!("quota {q:?} is not a number of bytes"), 100))?,
                None => 0,
            };
            if args.len() > 4 {
                return Err(usage());
            }
            if table
                .find(|r| r.name() == name && !matches!(r, Record::Forward { .. }))
                .is_some()
            {
                return Err(Fail(format!("{name} already exists"), 100));
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
            save(&table, &text_path, &dir, owner)?;
            let user_dir = rqmail_virtual::user_dir(&dir, &name);
            let made = std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&user_dir)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .and_then(|()| rqmail_mailbox::make_maildir(&user_dir.join("Maildir")));
            made.map_err(|e| Fail(format!("unable to make {}: {e}", user_dir.display()), 111))?;
            for p in [
                user_dir.clone(),
                user_dir.join("Maildir"),
                user_dir.join("Maildir/tmp"),
                user_dir.join("Maildir/new"),
                user_dir.join("Maildir/cur"),
            ] {
                give_away(&p, owner.0, owner.1);
            }
            return Ok(());
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
                return Err(Fail(format!("no user or alias {name}"), 100));
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
                .ok_or_else(|| Fail(format!("no mailbox {name}"), 100))?;
            let Some(Record::Mailbox { quota, .. }) = table.lines[at].1.clone() else {
                unreachable!()
            };
            let hash = hash(&read_password()?)?;
            table.put(Some(at), Record::Mailbox { name, hash, quota });
        }
        "quota" => {
            let name = name_arg(args, 2)?;
            let bytes = args.get(3).ok_or_else(usage)?;
            let quota = bytes
                .parse()
                .map_err(|_| Fail(format!("quota {bytes:?} is not a number of bytes"), 100))?;
            let at = table
                .mailbox(&name)
                .ok_or_else(|| Fail(format!("no mailbox {name}"), 100))?;
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
                let at = at.ok_or_else(|| Fail(format!("no alias {name}"), 100))?;
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
                let at = at.ok_or_else(|| Fail(format!("no forward for {name}"), 100))?;
                table.lines.remove(at);
            } else {
                table.put(at, Record::Forward { name, addresses });
            }
        }
        _ => return Err(usage()),
    }
    save(&table, &text_path, &dir, owner)
}

/// Checks the new text, writes it (0600) and compiles it. A mistake changes nothing.
fn save(table: &Table, text_path: &Path, dir: &Path, owner: (u32, u32)) -> Result<(), Fail> {
    let text = table.text();
    let records = rqmail_virtual::parse(&text).map_err(|e| {
        Fail(
            format!("{}: {e}; nothing changed", text_path.display()),
            100,
        )
    })?;
    rqmail_virtual::expand(&records).map_err(|e| {
        Fail(
            format!("{}: {e}; nothing changed", text_path.display()),
            100,
        )
    })?;
    let current = std::fs::read_to_string(text_path).ok();
    if current.as_deref() != Some(text.as_str()) {
        rqmail_virtual::write_atomic(text_path, text.as_bytes(), 0o600)
            .map_err(|e| Fail(format!("unable to write {}: {e}", text_path.display()), 111))?;
        give_away(text_path, owner.0, owner.1);
    }
    rqmail_virtual::compile_text(dir, &text).map_err(|e| {
        let code = if matches!(e, rqmail_virtual::CompileError::Parse(_)) {
            100
        } else {
            111
        };
        Fail(
            format!("{}: {e}; the old CDBs stay in use", dir.display()),
            code,
        )
    })?;
    give_away(&dir.join(rqmail_virtual::BOXES_CDB), owner.0, owner.1);
    // passwd.cdb keeps the group compile gave it (shadow, when it could).
    if rqmail_privs_is_root() {
        let _ = std::os::unix::fs::chown(dir.join(rqmail_virtual::PASSWD_CDB), Some(owner.0), None);
    }
    Ok(())
}

fn rqmail_privs_is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// As root, gives a new file or directory to the domain's owner; otherwise nothing.
fn give_away(path: &Path, uid: u32, gid: u32) {
    if rqmail_privs_is_root() {
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
}
