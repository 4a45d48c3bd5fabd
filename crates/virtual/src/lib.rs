//! Virtual domains: mailboxes that are not Unix accounts. A domain listed in
//! control/virtualdomains belongs to one account, whose home holds the domain's mailboxes;
//! the domain's password hashes live apart, where that account cannot read them.
//!
//! Layout, for `a.test:vmaila` in control/virtualdomains and vmaila's home `~vmaila`:
//!
//! * `~vmaila/.qmail-default` holds `|/path/to/bin/rqmail-vdeliver`, so every
//!   `vmaila-BOX@a.test` (what routing makes of `BOX@a.test`) reaches rqmail-vdeliver.
//! * `HOME/users/virtual/a.test/` ([`hash_dir`]; owner rqmailp, group shadow, mode 2750 on
//!   an installed system): the domain's table, which only rqmail-vusers (setuid rqmailp)
//!   and root may change:
//!   - `passwd` (mode 0600): the text table, the source of truth, one record a line, `#`
//!     comments and blank lines ignored:
//!     - `USER:HASH:QUOTA:` a mailbox with a crypt(3) hash (yescrypt from rqmail-vusers)
//!       and a quota in bytes (0: none);
//!     - `alias:NAME:TARGET,...` a name that delivers to local names of the domain
//!       (mailboxes, forwards or other aliases) and/or full addresses (forwards);
//!     - `forward:USER:ADDRESS,...` forwards for USER; with a mailbox entry too, USER gets
//!       a copy and the forwards, else only the forwards.
//!   - `passwd.cdb` (mode 0640 group shadow, inherited from the directory; 0600 where
//!     there is no such group): user → hash, read by rqmail-checkpassword, which is root
//!     under rqmail-login and holds group shadow when smtpd runs it for SMTP AUTH.
//!   - `lock`: rqmail-vusers holds it while it changes the domain.
//! * `~vmaila/a.test/` (mode 0711, the account's): the domain directory, with
//!   `boxes.cdb` (mode 0644): every deliverable name with its expanded targets and quotas,
//!   no hashes; read by rqmail-vdeliver and by rqmail-smtpd at RCPT.
//! * `~vmaila/a.test/USER/Maildir/` (0700): the user's mailbox, with Maildir++ `maildirsize`
//!   when a quota is set.
//!
//! The sessions of the domain's users (rqmail-pop3d, rqmail-imapd, rqmail-vdeliver) run
//! as the account, so a bug in one of them can reach the mailboxes but no hash.
//!
//! [`compile_text`] parses the whole text first and writes both CDBs through temporary
//! files, fsync and rename: a mistake (reported with its line number) changes nothing.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The text table's name in the domain directory.
pub const TEXT: &str = "passwd";
/// The compiled table of names and targets, readable by all.
pub const BOXES_CDB: &str = "boxes.cdb";
/// The compiled table of password hashes, restricted.
pub const PASSWD_CDB: &str = "passwd.cdb";
/// The directory under the rqmail home that holds each domain's [`hash_dir`].
pub const HASH_ROOT: &str = "users/virtual";
/// The lock file rqmail-vusers holds in a [`hash_dir`] while it changes the domain.
pub const LOCK: &str = "lock";
/// Alias chains longer than this are refused (a loop, or close to one).
const MAX_ALIAS_DEPTH: usize = 10;

/// One record of the text table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `USER:HASH:QUOTA:`.
    Mailbox {
        /// The user (lowercase).
        name: String,
        /// The crypt(3) hash.
        hash: String,
        /// Bytes; 0 means no quota.
        quota: u64,
    },
    /// `alias:NAME:TARGET,...`.
    Alias {
        /// The alias (lowercase).
        name: String,
        /// Local names or full addresses.
        targets: Vec<String>,
    },
    /// `forward:USER:ADDRESS,...`.
    Forward {
        /// The user (lowercase).
        name: String,
        /// Full addresses.
        addresses: Vec<String>,
    },
}

impl Record {
    /// The name the record defines.
    pub fn name(&self) -> &str {
        match self {
            Record::Mailbox { name, .. }
            | Record::Alias { name, .. }
            | Record::Forward { name, .. } => name,
        }
    }

    /// The record as a line of the text table (without newline).
    pub fn to_line(&self) -> String {
        match self {
            Record::Mailbox { name, hash, quota } => format!("{name}:{hash}:{quota}:"),
            Record::Alias { name, targets } => format!("alias:{name}:{}", targets.join(",")),
            Record::Forward { name, addresses } => {
                format!("forward:{name}:{}", addresses.join(","))
            }
        }
    }
}

/// Where mail for a name goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Into the Maildir of this user of the domain, within this quota (0: none).
    Mailbox {
        /// The user.
        name: String,
        /// Bytes; 0 means no quota.
        quota: u64,
    },
    /// A copy to this address, through the queue.
    Forward(String),
}

/// A mistake in the text table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong (never the hash).
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Why [`compile`] changed nothing.
#[derive(Debug)]
pub enum CompileError {
    /// The text could not be read.
    Read(io::Error),
    /// The text has a mistake.
    Parse(ParseError),
    /// A CDB could not be written.
    Write(io::Error),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Read(e) => write!(f, "unable to read {TEXT}: {e}"),
            CompileError::Parse(e) => write!(f, "{TEXT}: {e}"),
            CompileError::Write(e) => write!(f, "unable to write the CDBs: {e}"),
        }
    }
}

impl std::error::Error for CompileError {}

/// A user or alias name: 1 to 64 of `a-z 0-9 . _ + = -`, not starting with `.` or `-`.
/// Being lowercase ASCII without `/` it is safe as a directory name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+=-".contains(&b))
}

/// A forward address: `local@domain`, printable ASCII without spaces, commas or colons.
pub fn valid_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && address
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b",:<>".contains(&b))
        }
        None => false,
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses one line; `Ok(None)` for comments and blank lines.
pub fn parse_line(line: &str) -> Result<Option<Record>, String> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split(':').collect();
    let check_name = |name: &str| {
        if valid_name(name) {
            Ok(name.to_string())
        } else {
            Err(format!(
                "bad name {name:?} (a-z, 0-9, . _ + = -; not starting with . or -)"
            ))
        }
    };
    match fields[0] {
        "alias" => {
            let [_, name, targets] = fields[..] else {
                return Err("an alias is alias:NAME:TARGET,...".into());
            };
            let targets = split_list(targets);
            if targets.is_empty() {
                return Err("an alias needs at least one target".into());
            }
            for t in &targets {
                if !(valid_name(t) || valid_address(t)) {
                    return Err(format!("bad alias target {t:?}"));
                }
            }
            Ok(Some(Record::Alias {
                name: check_name(name)?,
                targets,
            }))
        }
        "forward" => {
            let [_, name, addresses] = fields[..] else {
                return Err("a forward is forward:USER:ADDRESS,...".into());
            };
            let addresses = split_list(addresses);
            if addresses.is_empty() {
                return Err("a forward needs at least one address".into());
            }
            for a in &addresses {
                if !valid_address(a) {
                    return Err(format!("bad forward address {a:?} (need local@domain)"));
                }
            }
            Ok(Some(Record::Forward {
                name: check_name(name)?,
                addresses,
            }))
        }
        _ => {
            let [name, hash, quota, ""] = fields[..] else {
                return Err("a mailbox is USER:HASH:QUOTA: (four fields, the last empty)".into());
            };
            let name = check_name(name)?;
            if hash.is_empty() || hash.contains(char::is_whitespace) {
                return Err("empty or malformed password hash".into());
            }
            let quota = quota
                .parse::<u64>()
                .map_err(|_| format!("quota {quota:?} is not a number of bytes"))?;
            Ok(Some(Record::Mailbox {
                name,
                hash: hash.to_string(),
                quota,
            }))
        }
    }
}

/// Parses the whole text table: every record with its line number. Checks each line, that
/// no name is defined twice (a mailbox and a forward for one user excepted), and that every
/// local alias target exists.
pub fn parse(text: &str) -> Result<Vec<(usize, Record)>, ParseError> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(r)) => records.push((i + 1, r)),
            Ok(None) => {}
            Err(message) => {
                return Err(ParseError {
                    line: i + 1,
                    message,
                });
            }
        }
    }
    let mut seen: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    let mut aliases = BTreeSet::new();
    let mut mailboxes_or_forwards = BTreeSet::new();
    for (line, r) in &records {
        let is_forward = matches!(r, Record::Forward { .. });
        if let Some(first) = seen.insert((r.name(), is_forward), *line) {
            return Err(ParseError {
                line: *line,
                message: format!("{} is already defined on line {first}", r.name()),
            });
        }
        match r {
            Record::Alias { name, .. } => {
                aliases.insert(name.as_str());
            }
            _ => {
                mailboxes_or_forwards.insert(r.name());
            }
        }
    }
    for (line, r) in &records {
        if let Record::Alias { name, targets } = r {
            if mailboxes_or_forwards.contains(name.as_str()) {
                return Err(ParseError {
                    line: *line,
                    message: format!("{name} is both an alias and a user"),
                });
            }
            for t in targets.iter().filter(|t| !t.contains('@')) {
                if !aliases.contains(t.as_str()) && !mailboxes_or_forwards.contains(t.as_str()) {
                    return Err(ParseError {
                        line: *line,
                        message: format!("alias target {t} is no user or alias of the domain"),
                    });
                }
            }
        }
    }
    Ok(records)
}

/// Every deliverable name with its targets, and every mailbox with its hash.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// name → targets (sorted, without duplicates).
    pub boxes: BTreeMap<String, Vec<Target>>,
    /// user → hash.
    pub passwd: BTreeMap<String, String>,
}

/// Expands aliases into mailboxes and forwards.
pub fn expand(records: &[(usize, Record)]) -> Result<Tables, ParseError> {
    let mut direct: BTreeMap<&str, BTreeSet<Target>> = BTreeMap::new();
    let mut aliases: BTreeMap<&str, (usize, &Vec<String>)> = BTreeMap::new();
    let mut tables = Tables::default();
    for (line, r) in records {
        match r {
            Record::Mailbox { name, hash, quota } => {
                direct.entry(name).or_default().insert(Target::Mailbox {
                    name: name.clone(),
                    quota: *quota,
                });
                tables.passwd.insert(name.clone(), hash.clone());
            }
            Record::Forward { name, addresses } => {
                let set = direct.entry(name).or_default();
                set.extend(addresses.iter().cloned().map(Target::Forward));
            }
            Record::Alias { name, targets } => {
                aliases.insert(name, (*line, targets));
            }
        }
    }
    fn walk(
        name: &str,
        depth: usize,
        line: usize,
        direct: &BTreeMap<&str, BTreeSet<Target>>,
        aliases: &BTreeMap<&str, (usize, &Vec<String>)>,
        out: &mut BTreeSet<Target>,
    ) -> Result<(), ParseError> {
        if depth > MAX_ALIAS_DEPTH {
            return Err(ParseError {
                line,
                message: format!("aliases nested more than {MAX_ALIAS_DEPTH} deep (a loop?)"),
            });
        }
        if let Some(set) = direct.get(name) {
            out.extend(set.iter().cloned());
        } else if let Some((_, targets)) = aliases.get(name) {
            for t in targets.iter() {
                if t.contains('@') {
                    out.insert(Target::Forward(t.clone()));
                } else {
                    walk(t, depth + 1, line, direct, aliases, out)?;
                }
            }
        }
        Ok(())
    }
    for (name, set) in &direct {
        tables
            .boxes
            .insert(name.to_string(), set.iter().cloned().collect());
    }
    for (name, (line, _)) in &aliases {
        let mut out = BTreeSet::new();
        walk(name, 0, *line, &direct, &aliases, &mut out)?;
        tables
            .boxes
            .insert(name.to_string(), out.into_iter().collect());
    }
    Ok(tables)
}

/// A boxes.cdb value: one target a line, `M NAME QUOTA` or `F ADDRESS`.
fn encode_targets(targets: &[Target]) -> Vec<u8> {
    let mut out = String::new();
    for t in targets {
        match t {
            Target::Mailbox { name, quota } => out.push_str(&format!("M {name} {quota}\n")),
            Target::Forward(a) => out.push_str(&format!("F {a}\n")),
        }
    }
    out.into_bytes()
}

fn decode_targets(data: &[u8]) -> io::Result<Vec<Target>> {
    let bad = || io::Error::other("malformed boxes.cdb record");
    let text = std::str::from_utf8(data).map_err(|_| bad())?;
    text.lines()
        .map(|line| match line.split(' ').collect::<Vec<_>>()[..] {
            ["M", name, quota] => Ok(Target::Mailbox {
                name: name.to_string(),
                quota: quota.parse().map_err(|_| bad())?,
            }),
            ["F", address] => Ok(Target::Forward(address.to_string())),
            _ => Err(bad()),
        })
        .collect()
}

/// The gid of group `shadow` from /etc/group, if there is one.
fn shadow_gid() -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some("shadow"))
            .then(|| f.nth(1)?.parse().ok())
            .flatten()
    })
}

/// Writes `entries` as a CDB at `dir/name`: a temporary file of this process, fsync,
/// rename. With `restricted`, the file is 0640 when it got group shadow (from a set-gid
/// directory), else 0600; otherwise 0644. Files are created anew (`create_new`), never
/// opened through a link.
fn write_cdb(
    dir: &Path,
    name: &str,
    entries: &[(&str, Vec<u8>)],
    restricted: bool,
) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let options = rqmail_replace::Options {
        mode: if restricted { 0o600 } else { 0o644 },
        create: rqmail_replace::Create::Fresh,
        durable: true,
    };
    rqmail_replace::replace(&path, &tmp, options, |file| {
        let mode = if !restricted {
            0o644
        } else if shadow_gid().is_some_and(|g| file.metadata().is_ok_and(|m| m.gid() == g)) {
            0o640
        } else {
            0o600
        };
        // fchmod on the descriptor: the umask may have taken bits away.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        let mut cdb = cdb::CDBMake::new(file.try_clone()?)?;
        for (key, value) in entries {
            cdb.add(key.as_bytes(), value)?;
        }
        cdb.finish()
    })?;
    Ok(())
}

/// Checks `text` and, if it is right, writes passwd.cdb in `hash_dir` and then
/// boxes.cdb in `boxes_dir` (the caller runs each write as the owner of that directory;
/// [`compile_passwd`] and [`compile_boxes`] do one each). On error nothing changes.
pub fn compile_text(boxes_dir: &Path, hash_dir: &Path, text: &str) -> Result<Tables, CompileError> {
    let tables = check(text)?;
    compile_passwd(hash_dir, &tables)?;
    compile_boxes(boxes_dir, &tables)?;
    Ok(tables)
}

/// Parses and expands `text`: the tables it compiles to, or its first mistake.
pub fn check(text: &str) -> Result<Tables, CompileError> {
    let records = parse(text).map_err(CompileError::Parse)?;
    expand(&records).map_err(CompileError::Parse)
}

/// Writes `hash_dir/passwd.cdb` from `tables`.
pub fn compile_passwd(hash_dir: &Path, tables: &Tables) -> Result<(), CompileError> {
    let passwd: Vec<(&str, Vec<u8>)> = tables
        .passwd
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes().to_vec()))
        .collect();
    write_cdb(hash_dir, PASSWD_CDB, &passwd, true).map_err(CompileError::Write)
}

/// Writes `boxes_dir/boxes.cdb` from `tables`.
pub fn compile_boxes(boxes_dir: &Path, tables: &Tables) -> Result<(), CompileError> {
    let boxes: Vec<(&str, Vec<u8>)> = tables
        .boxes
        .iter()
        .map(|(k, v)| (k.as_str(), encode_targets(v)))
        .collect();
    write_cdb(boxes_dir, BOXES_CDB, &boxes, false).map_err(CompileError::Write)
}

/// Where the table and hashes of `domain` live: `HOME/users/virtual/DOMAIN`.
pub fn hash_dir(home: &Path, domain: &str) -> PathBuf {
    home.join(HASH_ROOT).join(domain.to_ascii_lowercase())
}

fn cdb_get(path: &Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    let db = cdb::CDB::open(path)?;
    match db.get(key.as_bytes()) {
        None => Ok(None),
        Some(r) => r.map(Some),
    }
}

/// The targets of `name` (lowercased here) from `dir/boxes.cdb`; `Ok(None)`: nobody.
pub fn lookup_box(dir: &Path, name: &str) -> io::Result<Option<Vec<Target>>> {
    let name = name.to_ascii_lowercase();
    if !valid_name(&name) {
        return Ok(None);
    }
    cdb_get(&dir.join(BOXES_CDB), &name)?
        .map(|d| decode_targets(&d))
        .transpose()
}

/// The hash of mailbox `name` (lowercased here) from `hash_dir/passwd.cdb`.
pub fn lookup_hash(dir: &Path, name: &str) -> io::Result<Option<String>> {
    let name = name.to_ascii_lowercase();
    if !valid_name(&name) {
        return Ok(None);
    }
    Ok(cdb_get(&dir.join(PASSWD_CDB), &name)?.map(|d| String::from_utf8_lossy(&d).into_owned()))
}

/// A user's directory (`DOMAIN/USER`) and Maildir.
pub fn user_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name.to_ascii_lowercase())
}

/// A virtual domain found through control/virtualdomains.
#[derive(Debug, Clone)]
pub struct Domain {
    /// The domain (lowercase).
    pub name: String,
    /// `~ACCOUNT/DOMAIN`.
    pub dir: PathBuf,
    /// The account the domain is handed to.
    pub account: rqmail_users::UserEntry,
}

/// A domain name safe as a directory name: not empty, no `/`, not starting with `.`.
pub fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && !domain.starts_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Finds `domain` (an exact `domain:prepend` line in control/virtualdomains) and the
/// account of its prepend, as delivery resolves it (users/cdb, then passwd). `Ok(None)`:
/// not a virtual domain here.
pub fn locate(home: &Path, domain: &str) -> Result<Option<Domain>, String> {
    let domain = domain.to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Ok(None);
    }
    let control = rqmail_control::Control::new(home);
    let list = control
        .list("virtualdomains")
        .map_err(|e| format!("unable to read control/virtualdomains: {e}"))?
        .unwrap_or_default();
    let Some(prepend) = list.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.eq_ignore_ascii_case(&domain) && !value.is_empty()).then(|| value.to_string())
    }) else {
        return Ok(None);
    };
    let account = rqmail_users::resolve(home, prepend.as_bytes()).map_err(|e| e.to_string())?;
    if !account.dash.is_empty() || account.user == b"alias" && account.ext == prepend.as_bytes() {
        return Err(format!(
            "no account for {prepend} (virtual domain {domain})"
        ));
    }
    Ok(Some(Domain {
        dir: account.home.join(&domain),
        name: domain,
        account,
    }))
}

/// True if `account_home/.qmail-default` runs rqmail-vdeliver.
pub fn runs_vdeliver(account_home: &Path) -> bool {
    std::fs::read_to_string(account_home.join(".qmail-default")).is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with('|') && l.contains("rqmail-vdeliver"))
    })
}

/// For smtpd at RCPT: whether box `ext` of `domain` exists, when the account's
/// `.qmail-default` hands the domain to rqmail-vdeliver and no `.qmail-EXT` of its own
/// decides. `None`: not a virtual mailbox, or cannot be told (leave it to delivery).
pub fn box_exists(account_home: &Path, domain: &str, ext: &str) -> Option<bool> {
    let domain = domain.to_ascii_lowercase();
    if ext.is_empty() || !valid_domain(&domain) || !runs_vdeliver(account_home) {
        return None;
    }
    let own = format!(".qmail-{}", ext.to_ascii_lowercase().replace('.', ":"));
    if !own.contains('/') && account_home.join(&own).exists() {
        return None;
    }
    match lookup_box(&account_home.join(&domain), ext) {
        Ok(found) => Some(found.is_some()),
        Err(_) => None,
    }
}

/// Writes `text` to `path` atomically with `mode`: a new temporary file of this process
/// (never opened through a link), fsync, rename, directory fsync.
pub fn write_atomic(path: &Path, text: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let options = rqmail_replace::Options {
        mode,
        create: rqmail_replace::Create::Fresh,
        durable: true,
    };
    rqmail_replace::replace(path, Path::new(&tmp), options, |f| {
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(text)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
