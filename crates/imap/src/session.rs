//! The IMAP session after login: the authenticated state and, with a mailbox selected,
//! the selected state; each command parsed from tokens and answered on the output.

use crate::cache::{Cache, Kind};
use crate::input::{Input, ReadError, Token, wait_either};
use crate::mime::{self, SectionSpec, SectionText};
use crate::store::{self, Change, FLAG_LETTERS, Folder, Message, NewMessage, flag_letter};
use crate::{date, utf7};
use rqmail_mailbox::quota;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

/// What CAPABILITY says.
pub const CAPABILITIES: &str = "IMAP4rev1 LITERAL+ UIDPLUS MOVE IDLE NAMESPACE ID ENABLE UNSELECT CHILDREN SPECIAL-USE LIST-STATUS CONDSTORE ESEARCH";
/// How deep SEARCH keys may nest (parentheses, NOT, OR), so that a hostile command cannot
/// exhaust the stack.
const MAX_SEARCH_DEPTH: usize = 100;
const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// LOGOUT.
    Logout,
    /// The client went away or timed out.
    Dropped(io::Error),
}

/// A command's result: the tagged reply's status and text.
type Reply = Result<String, Failure>;

/// Why a command failed.
enum Failure {
    /// `NO text`.
    No(String),
    /// `BAD text`.
    Bad(String),
    /// The output failed: the session ends.
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

fn bad<T>(text: &str) -> Result<T, Failure> {
    Err(Failure::Bad(text.to_string()))
}

fn no<T>(text: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::No(text.into()))
}

/// The answer to a quota check for APPEND or COPY: a quota that cannot be checked refuses
/// too, since nothing else would hold the user to it.
fn room(fits: io::Result<bool>) -> Result<(), Failure> {
    match fits {
        Ok(true) => Ok(()),
        Ok(false) => no("[OVERQUOTA] not enough room in the mailbox"),
        Err(e) => no(format!("[SERVERBUG] unable to check the quota: {e}")),
    }
}

/// The selected state: the mailbox and the messages as this session last told the client.
struct Selected {
    name: String,
    folder: Folder,
    read_only: bool,
    next: u32,
    messages: Vec<Message>,
    recent: HashSet<Rc<str>>,
    highest: u64,
    keywords: Vec<String>,
    cache: Cache,
    /// The UIDVALIDITY the client was given: if the folder's changes (deleted and made
    /// again by another session), the session's UIDs mean nothing and it ends.
    validity: u32,
}

/// The session: the Maildir root and, maybe, a selected mailbox.
pub struct Session<W: Write> {
    root: PathBuf,
    out: W,
    selected: Option<Selected>,
    /// CONDSTORE enabled (RFC 7162 §3.1): MODSEQ goes with every flag update.
    condstore: bool,
    /// The user's quota as the login passed it on ([`Session::set_quota`]), if it did.
    quota: Option<quota::Quota>,
}

/// Command arguments as a cursor over tokens.
struct Args {
    tokens: Vec<Token>,
    pos: usize,
}

impl Args {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn atom(&mut self) -> Result<String, Failure> {
        match self.next() {
            Some(Token::Atom(a)) => Ok(a),
            _ => bad("missing argument"),
        }
    }
    /// An astring: atom, quoted string or literal.
    fn astring(&mut self) -> Result<Vec<u8>, Failure> {
        match self.next() {
            Some(Token::Atom(a)) => Ok(a.into_bytes()),
            Some(Token::Str(s)) => Ok(s),
            _ => bad("missing argument"),
        }
    }
    fn text(&mut self) -> Result<String, Failure> {
        String::from_utf8(self.astring()?).or_else(|_| bad("argument is not UTF-8"))
    }
    fn end(&self) -> Result<(), Failure> {
        if self.pos < self.tokens.len() {
            return bad("unexpected arguments");
        }
        Ok(())
    }
    /// A parenthesized list of atoms, or one atom.
    fn atom_list(&mut self) -> Result<Vec<String>, Failure> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let mut list = Vec::new();
            loop {
                match self.next() {
                    Some(Token::Close) => return Ok(list),
                    Some(Token::Atom(a)) => list.push(a),
                    Some(Token::Str(s)) => list.push(String::from_utf8_lossy(&s).into_owned()),
                    _ => return bad("unbalanced parentheses"),
                }
            }
        }
        Ok(vec![self.atom()?])
    }
}

/// Parentheses must balance before anything else is looked at.
fn balanced(tokens: &[Token]) -> bool {
    let mut depth = 0i32;
    for t in tokens {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// A sequence set: ranges with `u32::MAX` for `*`.
#[derive(Debug, Clone)]
struct SeqSet(Vec<(u32, u32)>);

impl SeqSet {
    fn parse(s: &str) -> Option<SeqSet> {
        let num = |p: &str| -> Option<u32> {
            if p == "*" {
                Some(u32::MAX)
            } else {
                p.parse().ok().filter(|&n| n > 0)
            }
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let (a, b) = match part.split_once(':') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            ranges.push((a.min(b), a.max(b)));
        }
        Some(SeqSet(ranges))
    }
    /// True if `n` is in the set, where `*` is `max`.
    fn contains(&self, n: u32, max: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let a = if a == u32::MAX { max } else { a };
            let b = if b == u32::MAX { max } else { b };
            a.min(b) <= n && n <= a.max(b)
        })
    }
}

#[derive(Debug, Clone)]
enum Att {
    Flags,
    Uid,
    ModSeq,
    InternalDate,
    Size,
    Envelope,
    Structure(bool),
    Body {
        section: SectionSpec,
        label: String,
        peek: bool,
        partial: Option<(u64, u64)>,
    },
}

/// SEARCH keys.
#[derive(Debug, Clone)]
enum Key {
    All,
    Seq(SeqSet),
    Uid(SeqSet),
    Flag(u8, bool),
    Recent(bool),
    New,
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
    Header(String, String),
    Body(String),
    Text(String),
    Before(i64),
    On(i64),
    Since(i64),
    Larger(u64),
    Smaller(u64),
    Keyword(String, bool),
    ModSeq(u64),
    /// SENTBEFORE (Less), SENTON (Equal), SENTSINCE (Greater: on or after) a day, by
    /// the Date header's own calendar day.
    Sent(Ordering, i64),
}

impl Key {
    /// True if the key (or one inside it) is MODSEQ.
    fn uses_modseq(&self) -> bool {
        match self {
            Key::ModSeq(_) => true,
            Key::Not(k) => k.uses_modseq(),
            Key::Or(a, b) => a.uses_modseq() || b.uses_modseq(),
            Key::And(keys) => keys.iter().any(Key::uses_modseq),
            _ => false,
        }
    }
}

/// The header of a message (through the empty line) and its body.
fn split_message(bytes: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while i < bytes.len() {
        let line_end = bytes[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1);
        let Some(end) = line_end else { break };
        let line = &bytes[i..end];
        if line == b"\n" || line == b"\r\n" {
            return (&bytes[..end], &bytes[end..]);
        }
        i = end;
    }
    (bytes, &[])
}

/// Cache records are written in batches of this many, so a command over a large folder
/// does not hold them all in memory.
const CACHE_BATCH: usize = 4096;

/// The header fields SEARCH looks at most, kept in the folder's cache.
const CACHED_FIELDS: &[&str] = &["From", "To", "Cc", "Bcc", "Subject"];

/// The cache record of a message's CACHED_FIELDS: `Name: unfolded value` lines.
fn fields_record(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in CACHED_FIELDS {
        for value in search_values(header, name) {
            out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
        }
    }
    out
}

/// The unfolded value of each header field `name`.
fn header_values(header: &[u8], name: &str) -> Vec<String> {
    let field = |line: &str| {
        line.split_once(':')
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    unfolded(header, |line| field(line).is_some())
        .iter()
        .filter_map(|line| field(line))
        .collect()
}

/// The header's fields whose first line `keep` accepts, each unfolded into one line.
fn unfolded(header: &[u8], keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if text.starts_with(' ') || text.starts_with('\t') {
            if current && let Some(last) = lines.last_mut() {
                last.push_str(text.trim_end());
            }
            continue;
        }
        current = keep(&text);
        if current {
            lines.push(text.trim_end().to_string());
        }
    }
    lines
}

/// The values of header field `name` as SEARCH compares them: unfolded, with RFC 2047
/// encoded words decoded.
fn search_values(header: &[u8], name: &str) -> Vec<String> {
    let mut values = header_values(header, name);
    for v in &mut values {
        // One line each, in the cache's records too.
        *v = mime::decode_words(v).replace(['\r', '\n'], " ");
    }
    values
}

/// True if `bytes` may hold text that only decoding shows: a base64 or quoted-printable
/// part, encoded words in the header (if `with_header`), or 8-bit text that is not UTF-8.
fn may_be_encoded(bytes: &[u8], with_header: bool) -> bool {
    const CTE: &[u8] = b"content-transfer-encoding:";
    let (header, _) = split_message(bytes);
    (with_header && header.windows(2).any(|w| w == b"=?"))
        || bytes.split(|&b| b == b'\n').any(|line| {
            line.len() > CTE.len()
                && line[..CTE.len()].eq_ignore_ascii_case(CTE)
                && (contains_ci(&line[CTE.len()..], "base64")
                    || contains_ci(&line[CTE.len()..], "quoted-printable"))
        })
        || std::str::from_utf8(bytes).is_err()
}

/// SEARCH BODY and TEXT: the raw bytes, else the decoded text parts (and, for TEXT, the
/// decoded header).
fn text_matches(bytes: &[u8], needle: &str, with_header: bool) -> bool {
    let (header, body) = split_message(bytes);
    let raw = if with_header { bytes } else { body };
    if contains_ci(raw, needle) {
        return true;
    }
    if !may_be_encoded(bytes, with_header) {
        return false;
    }
    if with_header
        && unfolded(header, |_| true)
            .iter()
            .any(|l| contains_ci(mime::decode_words(l).as_bytes(), needle))
    {
        return true;
    }
    mime::decoded_texts(bytes)
        .iter()
        .any(|t| contains_ci(t.as_bytes(), needle))
}

/// Case-insensitive substring test: ASCII case folding for ASCII needles, Unicode
/// lower case for the others (on text as UTF-8).
fn contains_ci(hay: &[u8], needle: &str) -> bool {
    if !needle.is_ascii() {
        let needle = needle.to_lowercase();
        return String::from_utf8_lossy(hay)
            .to_lowercase()
            .contains(&needle);
    }
    let needle = needle.to_ascii_lowercase().into_bytes();
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len()).any(|w| {
        w.iter()
            .zip(&needle)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

/// A message's size as stored (what Maildir++ quotas count): `,S=` in its name, else the
/// file's size.
fn stored_size(folder: &Folder, m: &Message) -> u64 {
    m.unique
        .split(',')
        .skip(1)
        .find_map(|f| f.strip_prefix("S="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::fs::metadata(folder.dir.join(m.file())).map_or(0, |meta| meta.len())
        })
}

/// The system flags and the folder's keywords, as FLAGS lists them.
fn all_flags(keywords: &[String]) -> String {
    let mut all = SYSTEM_FLAGS.to_string();
    for k in keywords {
        all.push(' ');
        all.push_str(k);
    }
    all
}

/// True if `tag` is a valid tag (RFC 3501 §9: ASTRING-CHARs but `+`), at most 64 bytes.
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b > 0x20 && b < 0x7f && !b"(){%*\"\\+".contains(&b))
}

/// A string as an IMAP quoted string, or a literal when it cannot be quoted.
fn quote(s: &[u8]) -> Vec<u8> {
    if s.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        let mut q = b"\"".to_vec();
        q.extend_from_slice(s);
        q.push(b'"');
        q
    } else {
        let mut q = format!("{{{}}}\r\n", s.len()).into_bytes();
        q.extend_from_slice(s);
        q
    }
}

/// A list of UIDs in sequence-set form (`1:3,7`).
fn uid_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            uids[i].to_string()
        } else {
            format!("{}:{}", uids[i], uids[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// `*` and `%` pattern matching for LIST: `%` does not match the `.` separator.
fn pattern_matches(pattern: &[u8], name: &[u8]) -> bool {
    // can[j]: the pattern so far matches name[..j]. One pass per pattern byte, so a
    // pattern of many wildcards costs O(pattern * name), never exponential time.
    let mut can = vec![false; name.len() + 1];
    can[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' => {
                let mut reach = false;
                for j in 0..=name.len() {
                    reach |= can[j];
                    next[j] = reach;
                }
            }
            b'%' => {
                let mut reach = false;
                for j in 0..=name.len() {
                    reach |= can[j];
                    next[j] = reach;
                    // % does not cross the hierarchy separator.
                    if name.get(j) == Some(&b'.') {
                        reach = false;
                    }
                }
            }
            c => {
                for j in 0..name.len() {
                    next[j + 1] = can[j] && name[j] == c;
                }
            }
        }
        can = next;
    }
    can[name.len()]
}

impl<W: Write> Session<W> {
    /// A session on the Maildir `root`, writing to `out`.
    pub fn new(root: PathBuf, out: W) -> Session<W> {
        Session {
            root,
            out,
            selected: None,
            condstore: false,
            quota: None,
        }
    }

    /// Holds APPEND and COPY to `quota` (what `MAILDIRQUOTA` says: rqmail-checkpassword
    /// sets it from a virtual user's boxes.cdb entry), whether or not `maildirsize` exists
    /// yet; the first check that needs it makes it by counting the Maildir. Without it, the
    /// quota is the one `maildirsize` names, if any.
    pub fn set_quota(&mut self, quota: quota::Quota) {
        self.quota = Some(quota).filter(|q| !q.is_none());
    }

    /// The quota in force: the one given, with a message limit (`C`) that the admin put
    /// in `maildirsize` kept as rqmail-vdeliver keeps it; else `maildirsize`'s.
    fn quota(&self) -> Option<quota::Quota> {
        let written = quota::limit(&self.root);
        match self.quota {
            Some(q) if q.count == 0 => Some(quota::Quota {
                bytes: q.bytes,
                count: written.map_or(0, |w| w.count),
            }),
            Some(q) => Some(q),
            None => written,
        }
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\r\n")
    }

    /// Says BYE because the selected folder's UIDVALIDITY changed, and ends the session.
    fn validity_lost(out: &mut W) -> Failure {
        match out.write_all(b"* BYE mailbox UIDVALIDITY changed; select it again\r\n") {
            Err(e) => Failure::Io(e),
            Ok(()) => Failure::Io(store::validity_changed()),
        }
    }

    /// Greets the client: the tagged answer to its login command, or a PREAUTH greeting.
    pub fn greet(&mut self, login_tag: Option<&str>) -> io::Result<()> {
        let _ = store::make_special_folders(&self.root);
        match login_tag {
            Some(tag) => self.send(&format!("{tag} OK [CAPABILITY {CAPABILITIES}] logged in"))?,
            None => self.send(&format!("* PREAUTH [CAPABILITY {CAPABILITIES}] ready"))?,
        }
        self.out.flush()
    }

    /// Reads and answers commands until LOGOUT or the client goes away.
    pub fn serve(&mut self, input: &mut Input) -> End {
        loop {
            if let Err(e) = self.out.flush() {
                return End::Dropped(e);
            }
            let tokens = match input.command(&mut self.out) {
                Ok(t) => t,
                Err(ReadError::Gone(e)) => {
                    if e.kind() == io::ErrorKind::TimedOut {
                        let _ = self.send("* BYE autologout; idle for too long");
                        let _ = self.out.flush();
                    }
                    return End::Dropped(e);
                }
                Err(ReadError::TooLong) => {
                    if let Err(e) = self.send("* BAD line too long") {
                        return End::Dropped(e);
                    }
                    continue;
                }
                Err(ReadError::TooBigNonSync { tag }) => {
                    let tag = tag
                        .filter(|t| valid_tag(t))
                        .unwrap_or_else(|| "*".to_string());
                    let _ = self.send(&format!("{tag} BAD [TOOBIG] literal too big"));
                    let _ = self.send("* BYE literal too big to skip");
                    let _ = self.out.flush();
                    // What the client already sent of the literal goes unread otherwise.
                    input.drain(4 << 20, Duration::from_millis(200));
                    return End::Dropped(io::Error::other("non-synchronizing literal too big"));
                }
                Err(ReadError::TooBig { tag }) => {
                    let tag = tag
                        .filter(|t| valid_tag(t))
                        .unwrap_or_else(|| "*".to_string());
                    if let Err(e) = self.send(&format!("{tag} NO [TOOBIG] literal too big")) {
                        return End::Dropped(e);
                    }
                    continue;
                }
            };
            if tokens.is_empty() {
                continue;
            }
            match self.command(tokens, input) {
                Ok(true) => {}
                Ok(false) => {
                    let _ = self.out.flush();
                    return End::Logout;
                }
                Err(e) => return End::Dropped(e),
            }
        }
    }

    /// One command; false after LOGOUT.
    fn command(&mut self, tokens: Vec<Token>, input: &mut Input) -> io::Result<bool> {
        let tag = match tokens.first() {
            Some(Token::Atom(t)) if valid_tag(t) => t.clone(),
            _ => {
                self.send("* BAD missing or invalid tag")?;
                return Ok(true);
            }
        };
        // RFC 3501 §9: no control characters outside literals (an atom may not hold one,
        // and a quoted string may not hold CR, LF or NUL); nothing of them is echoed.
        let control = |b: &u8| *b < 0x20 || *b == 0x7f;
        if tokens.iter().any(|t| match t {
            Token::Atom(a) => a.bytes().any(|b| control(&b)),
            _ => false,
        }) {
            self.send(&format!("{tag} BAD control characters in the command"))?;
            return Ok(true);
        }
        let mut args = Args { tokens, pos: 1 };
        let Some(Token::Atom(name)) = args.next() else {
            self.send(&format!("{tag} BAD missing command"))?;
            return Ok(true);
        };
        let mut name = name.to_ascii_uppercase();
        let mut uid = false;
        if name == "UID" {
            uid = true;
            name = match args.next() {
                Some(Token::Atom(n)) => n.to_ascii_uppercase(),
                _ => String::new(),
            };
        }
        if !balanced(&args.tokens) {
            self.send(&format!("{tag} BAD unbalanced parentheses"))?;
            return Ok(true);
        }
        if name == "LOGOUT" {
            self.send("* BYE logging out")?;
            self.send(&format!("{tag} OK LOGOUT completed"))?;
            return Ok(false);
        }
        // RFC 3501 §7.4.1: no EXPUNGE while FETCH, STORE or SEARCH runs.
        let quiet = matches!(name.as_str(), "FETCH" | "STORE" | "SEARCH") && !uid;
        let reply = self.dispatch(&tag, &name, uid, &mut args, input);
        let reply = match reply {
            Err(Failure::Io(e)) => return Err(e),
            other => other,
        };
        if !quiet && name != "IDLE" && name != "SELECT" && name != "EXAMINE" {
            self.refresh(true)?;
        }
        match reply {
            Ok(text) => self.send(&format!("{tag} OK {text}"))?,
            Err(Failure::No(text)) => self.send(&format!("{tag} NO {text}"))?,
            Err(Failure::Bad(text)) => self.send(&format!("{tag} BAD {text}"))?,
            Err(Failure::Io(e)) => return Err(e),
        }
        Ok(true)
    }

    fn dispatch(
        &mut self,
        tag: &str,
        name: &str,
        uid: bool,
        args: &mut Args,
        input: &mut Input,
    ) -> Reply {
        if uid
            && !matches!(
                name,
                "FETCH" | "STORE" | "SEARCH" | "COPY" | "MOVE" | "EXPUNGE"
            )
        {
            return bad("unknown UID command");
        }
        match name {
            "CAPABILITY" => {
                args.end()?;
                self.send(&format!("* CAPABILITY {CAPABILITIES}"))?;
                Ok("CAPABILITY completed".into())
            }
            "NOOP" | "CHECK" => {
                args.end()?;
                Ok(format!("{name} completed"))
            }
            "LOGIN" | "AUTHENTICATE" | "STARTTLS" => bad("already authenticated"),
            "ENABLE" => {
                let mut enabled = Vec::new();
                while args.peek().is_some() {
                    let ext = args.atom()?.to_ascii_uppercase();
                    if ext == "CONDSTORE" && !enabled.contains(&"CONDSTORE") {
                        self.enable_condstore()?;
                        enabled.push("CONDSTORE");
                    }
                }
                let mut line = "* ENABLED".to_string();
                for e in enabled {
                    line.push(' ');
                    line.push_str(e);
                }
                self.send(&line)?;
                Ok("ENABLE completed".into())
            }
            "ID" => {
                self.send("* ID (\"name\" \"rqmail\")")?;
                Ok("ID completed".into())
            }
            "NAMESPACE" => {
                args.end()?;
                self.send("* NAMESPACE ((\"\" \".\")) NIL NIL")?;
                Ok("NAMESPACE completed".into())
            }
            "LIST" | "LSUB" => self.list(name, args),
            "CREATE" => self.create(args),
            "DELETE" => self.delete(args),
            "RENAME" => self.rename(args),
            "SUBSCRIBE" | "UNSUBSCRIBE" => self.subscribe(name == "SUBSCRIBE", args),
            "STATUS" => self.status(args),
            "SELECT" | "EXAMINE" => self.select(name == "EXAMINE", args),
            "APPEND" => self.append(args),
            "IDLE" => self.idle(tag, args, input),
            "FETCH" | "STORE" | "SEARCH" | "COPY" | "MOVE" | "EXPUNGE" | "CLOSE" | "UNSELECT" => {
                if self.selected.is_none() {
                    return bad("no mailbox selected");
                }
                match name {
                    "FETCH" => self.fetch(uid, args),
                    "STORE" => self.store(uid, args),
                    "SEARCH" => self.search(tag, uid, args),
                    "COPY" => self.copy(uid, false, args),
                    "MOVE" => self.copy(uid, true, args),
                    "EXPUNGE" => self.expunge(uid, args),
                    "CLOSE" => {
                        args.end()?;
                        if let Some(sel) = &self.selected
                            && !sel.read_only
                        {
                            self.expunge_quietly(None)?;
                        }
                        self.selected = None;
                        Ok("CLOSE completed".into())
                    }
                    _ => {
                        args.end()?;
                        self.selected = None;
                        Ok("UNSELECT completed".into())
                    }
                }
            }
            _ => bad("unknown command"),
        }
    }

    /// Turns CONDSTORE on (RFC 7162 §3.1); in a selected mailbox, says its HIGHESTMODSEQ.
    fn enable_condstore(&mut self) -> io::Result<()> {
        if self.condstore {
            return Ok(());
        }
        self.condstore = true;
        // RFC 7162 §3.1: the first CONDSTORE enabling command in a selected mailbox says
        // its HIGHESTMODSEQ, which the client had not been told.
        if let Some(sel) = &self.selected {
            let line = format!("* OK [HIGHESTMODSEQ {}] highest", sel.highest);
            self.send(&line)?;
        }
        Ok(())
    }

    fn mailbox_arg(&mut self, args: &mut Args) -> Result<(String, Folder), Failure> {
        let name = args.astring()?;
        let Some(name) = utf7::from_client(&name) else {
            return no("[CANNOT] mailbox name is not valid modified UTF-7");
        };
        let name = if name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            name
        };
        match store::folder_dir(&self.root, &name) {
            Some(dir) => Ok((name, Folder::new(dir))),
            None => no("invalid mailbox name"),
        }
    }

    fn list(&mut self, command: &str, args: &mut Args) -> Reply {
        // RFC 5258 selection options, then reference and pattern, then RETURN options.
        let mut only_subscribed = false;
        let mut only_special = false;
        if command == "LIST" && args.peek() == Some(&Token::Open) {
            for opt in args.atom_list()? {
                match opt.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => only_subscribed = true,
                    "SPECIAL-USE" => only_special = true,
                    "REMOTE" | "RECURSIVEMATCH" => {}
                    _ => return bad("unknown LIST selection option"),
                }
            }
        }
        let reference = args.astring()?;
        let pattern = args.astring()?;
        let mut status_items = None;
        let mut show_subscribed = only_subscribed;
        if command == "LIST"
            && let Some(Token::Atom(word)) = args.peek()
            && word.eq_ignore_ascii_case("RETURN")
        {
            args.next();
            if args.next() != Some(Token::Open) {
                return bad("RETURN needs a list");
            }
            loop {
                match args.next() {
                    Some(Token::Close) => break,
                    Some(Token::Atom(opt)) => match opt.to_ascii_uppercase().as_str() {
                        "STATUS" => status_items = Some(args.atom_list()?),
                        "SUBSCRIBED" => show_subscribed = true,
                        "CHILDREN" | "SPECIAL-USE" => {}
                        _ => return bad("unknown LIST return option"),
                    },
                    _ => return bad("invalid RETURN options"),
                }
            }
        }
        args.end()?;
        if pattern.is_empty() {
            self.send(&format!("* {command} (\\Noselect) \".\" \"\""))?;
            return Ok(format!("{command} completed"));
        }
        let mut full = reference;
        full.extend_from_slice(&pattern);
        let names = store::list_folders(&self.root)?;
        let subscribed = store::read_subscriptions(&self.root);
        let mut shown: Vec<(String, bool)> = names.iter().map(|n| (n.clone(), true)).collect();
        // Parents with no folder of their own still show, as \Noselect.
        for n in &names {
            let mut parent = n.as_str();
            while let Some((p, _)) = parent.rsplit_once('.') {
                if !shown.iter().any(|(s, _)| s == p) {
                    shown.push((p.to_string(), false));
                }
                parent = p;
            }
        }
        shown.sort();
        for (name, exists) in &shown {
            let inbox_match =
                name == "INBOX" && pattern_matches(&full.to_ascii_uppercase(), b"INBOX");
            if !inbox_match && !pattern_matches(&full, name.as_bytes()) {
                continue;
            }
            let is_subscribed = subscribed.iter().any(|s| s == name);
            if (command == "LSUB" || only_subscribed) && !is_subscribed {
                continue;
            }
            let special = store::SPECIAL_USE.iter().find(|(n, _)| n == name);
            if only_special && special.is_none() {
                continue;
            }
            let mut attrs = Vec::new();
            if !exists {
                attrs.push("\\Noselect");
            }
            let prefix = format!("{name}.");
            if shown.iter().any(|(s, _)| s.starts_with(&prefix)) {
                attrs.push("\\HasChildren");
            } else {
                attrs.push("\\HasNoChildren");
            }
            if show_subscribed && is_subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some((_, use_attr)) = special {
                attrs.push(use_attr);
            }
            let mut line = format!("* {command} ({}) \".\" ", attrs.join(" ")).into_bytes();
            line.extend(quote(utf7::to_client(name).as_bytes()));
            line.extend_from_slice(b"\r\n");
            self.out.write_all(&line)?;
            if let Some(items) = &status_items
                && *exists
                && let Some(dir) = store::folder_dir(&self.root, name)
            {
                // RFC 5819: a folder whose STATUS fails is just listed without it.
                match self.status_of(name, Folder::new(dir), items) {
                    Err(Failure::Io(e)) => return Err(Failure::Io(e)),
                    Err(Failure::Bad(b)) => return Err(Failure::Bad(b)),
                    _ => {}
                }
            }
        }
        Ok(format!("{command} completed"))
    }

    fn create(&mut self, args: &mut Args) -> Reply {
        let (name, folder) = self.mailbox_arg(args)?;
        args.end()?;
        if name == "INBOX" {
            return no("[ALREADYEXISTS] INBOX always exists");
        }
        if folder.exists() {
            return no("[ALREADYEXISTS] mailbox exists");
        }
        store::create(&self.root, &name).map_err(|e| Failure::No(format!("create failed: {e}")))?;
        Ok("CREATE completed".into())
    }

    fn delete(&mut self, args: &mut Args) -> Reply {
        let (name, folder) = self.mailbox_arg(args)?;
        args.end()?;
        if name == "INBOX" {
            return no("INBOX cannot be deleted");
        }
        if !folder.exists() {
            return no("[NONEXISTENT] no such mailbox");
        }
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            self.selected = None;
        }
        store::delete(&self.root, &name).map_err(|e| Failure::No(format!("delete failed: {e}")))?;
        Ok("DELETE completed".into())
    }

    fn rename(&mut self, args: &mut Args) -> Reply {
        let (from, old) = self.mailbox_arg(args)?;
        let (to, new) = self.mailbox_arg(args)?;
        args.end()?;
        if to == "INBOX" {
            return no("[ALREADYEXISTS] INBOX always exists");
        }
        if from == "INBOX" {
            // RFC 3501 §6.3.5: INBOX's messages move to the new folder; INBOX stays, empty.
            if new.exists() {
                return no("[ALREADYEXISTS] mailbox exists");
            }
            store::create(&self.root, &to)
                .map_err(|e| Failure::No(format!("rename failed: {e}")))?;
            store::move_messages(&old.dir, &new.dir)
                .map_err(|e| Failure::No(format!("rename failed: {e}")))?;
            return Ok("RENAME completed".into());
        }
        if !old.exists() {
            return no("[NONEXISTENT] no such mailbox");
        }
        if new.exists() {
            return no("[ALREADYEXISTS] mailbox exists");
        }
        store::rename(&self.root, &from, &to)
            .map_err(|e| Failure::No(format!("rename failed: {e}")))?;
        Ok("RENAME completed".into())
    }

    fn subscribe(&mut self, on: bool, args: &mut Args) -> Reply {
        let (name, _) = self.mailbox_arg(args)?;
        args.end()?;
        let mut names = store::read_subscriptions(&self.root);
        names.retain(|n| *n != name);
        if on {
            names.push(name);
        }
        store::write_subscriptions(&self.root, &names)?;
        Ok(if on {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        }
        .into())
    }

    fn status(&mut self, args: &mut Args) -> Reply {
        let (name, folder) = self.mailbox_arg(args)?;
        let items = args.atom_list()?;
        args.end()?;
        self.status_of(&name, folder, &items)?;
        Ok("STATUS completed".into())
    }

    /// Sends `* STATUS name (items)` for the folder.
    fn status_of(&mut self, name: &str, mut folder: Folder, items: &[String]) -> Reply {
        if !folder.exists() {
            return no("[NONEXISTENT] no such mailbox");
        }
        if items
            .iter()
            .any(|i| i.eq_ignore_ascii_case("HIGHESTMODSEQ"))
        {
            self.enable_condstore()?;
        }
        let snap = folder.sync()?;
        let mut parts = Vec::new();
        for item in items {
            let item = item.to_ascii_uppercase();
            let value = match item.as_str() {
                "MESSAGES" => snap.messages.len() as u64,
                "RECENT" => snap.messages.iter().filter(|m| m.in_new).count() as u64,
                "UIDNEXT" => u64::from(snap.next),
                "UIDVALIDITY" => u64::from(snap.validity),
                "UNSEEN" => snap.messages.iter().filter(|m| !m.has(b'S')).count() as u64,
                "SIZE" => snap.messages.iter().map(|m| m.wire_size.unwrap_or(0)).sum(),
                "HIGHESTMODSEQ" => snap.highest,
                _ => return bad("unknown STATUS item"),
            };
            parts.push(format!("{item} {value}"));
        }
        let mut line = b"* STATUS ".to_vec();
        line.extend(quote(utf7::to_client(name).as_bytes()));
        line.extend(format!(" ({})\r\n", parts.join(" ")).into_bytes());
        self.out.write_all(&line)?;
        Ok(String::new())
    }

    fn select(&mut self, read_only: bool, args: &mut Args) -> Reply {
        self.selected = None;
        let (name, mut folder) = self.mailbox_arg(args)?;
        if args.peek().is_some() {
            let params = args.atom_list()?;
            args.end()?;
            for p in params {
                if p.eq_ignore_ascii_case("CONDSTORE") {
                    self.enable_condstore()?;
                } else {
                    return bad("unknown SELECT parameter");
                }
            }
        }
        if !folder.exists() {
            return no("[NONEXISTENT] no such mailbox");
        }
        let mut recent = HashSet::new();
        if !read_only {
            recent.extend(folder.take_new()?);
        }
        let snap = folder.sync()?;
        if read_only {
            recent.extend(
                snap.messages
                    .iter()
                    .filter(|m| m.in_new)
                    .map(|m| m.unique.clone()),
            );
        }
        let keywords = folder.keywords();
        let all = all_flags(&keywords);
        self.send(&format!("* FLAGS ({all})"))?;
        let permanent = match (read_only, keywords.len() < 26) {
            (true, _) => String::new(),
            (false, true) => format!("{all} \\*"),
            (false, false) => all,
        };
        self.send(&format!(
            "* OK [PERMANENTFLAGS ({permanent})] flags permitted"
        ))?;
        self.send(&format!("* {} EXISTS", snap.messages.len()))?;
        self.send(&format!("* {} RECENT", recent.len()))?;
        if let Some(i) = snap.messages.iter().position(|m| !m.has(b'S')) {
            self.send(&format!("* OK [UNSEEN {}] first unseen", i + 1))?;
        }
        self.send(&format!("* OK [UIDVALIDITY {}] UIDs valid", snap.validity))?;
        self.send(&format!("* OK [UIDNEXT {}] predicted next UID", snap.next))?;
        if self.condstore {
            self.send(&format!(
                "* OK [HIGHESTMODSEQ {}] mod-sequences",
                snap.highest
            ))?;
        }
        let dir = folder.dir.clone();
        self.selected = Some(Selected {
            name,
            folder,
            read_only,
            next: snap.next,
            messages: snap.messages,
            recent,
            highest: snap.highest,
            keywords,
            cache: Cache::new(dir, snap.validity),
            validity: snap.validity,
        });
        Ok(if read_only {
            "[READ-ONLY] EXAMINE completed"
        } else {
            "[READ-WRITE] SELECT completed"
        }
        .into())
    }

    fn flags_text(sel: &Selected, m: &Message) -> String {
        let mut names: Vec<&str> = FLAG_LETTERS
            .iter()
            .filter(|(l, _)| m.has(*l))
            .map(|(_, n)| *n)
            .collect();
        for l in m.flags.iter() {
            if l.is_ascii_lowercase()
                && let Some(k) = sel.keywords.get(usize::from(l - b'a'))
            {
                names.push(k);
            }
        }
        if sel.recent.contains(&m.unique) {
            names.push("\\Recent");
        }
        format!("({})", names.join(" "))
    }

    /// Tells the client about changes by other sessions and deliveries: EXPUNGE (only if
    /// `expunges`), flag changes, EXISTS and RECENT.
    fn refresh(&mut self, expunges: bool) -> io::Result<()> {
        let condstore = self.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        if !expunges {
            return Ok(());
        }
        if !sel.folder.exists() {
            self.send("* BYE mailbox deleted")?;
            return Err(io::Error::other("selected mailbox deleted"));
        }
        let before_recent = sel.recent.len();
        if !sel.read_only {
            let taken = sel.folder.take_new()?;
            sel.recent.extend(taken);
        }
        if !sel.folder.changed() {
            return Ok(());
        }
        let snap = sel.folder.sync()?;
        if snap.validity != sel.validity {
            return Err(match Self::validity_lost(&mut self.out) {
                Failure::Io(e) => e,
                _ => store::validity_changed(),
            });
        }
        let mut out = Vec::new();
        let keywords = sel.folder.keywords();
        if keywords != sel.keywords {
            out.push(format!("* FLAGS ({})", all_flags(&keywords)));
            sel.keywords = keywords;
        }
        let mut i = sel.messages.len();
        while i > 0 {
            i -= 1;
            let uid = sel.messages[i].uid;
            if snap.messages.binary_search_by_key(&uid, |m| m.uid).is_err() {
                out.push(format!("* {} EXPUNGE", i + 1));
                sel.messages.remove(i);
            }
        }
        let known = sel.messages.last().map_or(0, |m| m.uid);
        let mut changed = Vec::new();
        for (seq, m) in sel.messages.iter_mut().enumerate() {
            if let Ok(j) = snap.messages.binary_search_by_key(&m.uid, |n| n.uid) {
                let now = &snap.messages[j];
                if now.flags != m.flags || now.modseq != m.modseq {
                    changed.push(seq);
                }
                m.flags.clone_from(&now.flags);
                m.odd.clone_from(&now.odd);
                m.in_new = now.in_new;
                m.modseq = now.modseq;
            }
        }
        let added: Vec<Message> = snap
            .messages
            .into_iter()
            .filter(|m| m.uid > known)
            .collect();
        let grew = !added.is_empty();
        if sel.read_only {
            sel.recent
                .extend(added.iter().filter(|m| m.in_new).map(|m| m.unique.clone()));
        }
        sel.messages.extend(added);
        sel.next = snap.next;
        sel.highest = snap.highest;
        let sel = &*sel;
        for seq in changed {
            let m = &sel.messages[seq];
            let modseq = if condstore {
                format!(" MODSEQ ({})", m.modseq)
            } else {
                String::new()
            };
            out.push(format!(
                "* {} FETCH (FLAGS {} UID {}{modseq})",
                seq + 1,
                Self::flags_text(sel, m),
                m.uid
            ));
        }
        if grew {
            out.push(format!("* {} EXISTS", sel.messages.len()));
        }
        if grew || sel.recent.len() != before_recent {
            out.push(format!("* {} RECENT", sel.recent.len()));
        }
        for line in out {
            self.send(&line)?;
        }
        Ok(())
    }

    /// Writes cache records and empties `records`. Only a cache: a folder it cannot be
    /// written in is still served.
    fn write_cache(sel: &mut Selected, records: &mut Vec<(u32, Kind, Vec<u8>)>) {
        let live: HashSet<u32> = sel.messages.iter().map(|m| m.uid).collect();
        let _ = sel.cache.put(records, &live);
        records.clear();
    }

    /// Keeps sizes computed from the files (`(index, size)`) in the session and the index.
    fn keep_sizes(sel: &mut Selected, learned: &[(usize, u64)]) -> io::Result<()> {
        let mut by_uid = Vec::with_capacity(learned.len());
        for &(i, size) in learned {
            sel.messages[i].wire_size = Some(size);
            by_uid.push((sel.messages[i].uid, size));
        }
        // Only a cache: a folder the index cannot be written in is still served.
        let _ = sel.folder.learn_sizes(&by_uid);
        Ok(())
    }

    /// Indexes (from 0) of the messages a sequence set names.
    fn resolve(sel: &Selected, set: &SeqSet, uid: bool) -> Vec<usize> {
        if uid {
            let max = sel.messages.last().map_or(0, |m| m.uid);
            (0..sel.messages.len())
                .filter(|&i| set.contains(sel.messages[i].uid, max))
                .collect()
        } else {
            let max = sel.messages.len() as u32;
            (0..sel.messages.len())
                .filter(|&i| set.contains(i as u32 + 1, max))
                .collect()
        }
    }

    fn set_arg(&self, args: &mut Args, uid: bool) -> Result<Vec<usize>, Failure> {
        let set = args.atom()?;
        let set = SeqSet::parse(&set).ok_or_else(|| Failure::Bad("invalid sequence set".into()))?;
        let Some(sel) = &self.selected else {
            return bad("no mailbox selected");
        };
        if !uid {
            let max = sel.messages.len() as u32;
            let out_of_range = set
                .0
                .iter()
                .any(|&(a, b)| (a != u32::MAX && a > max) || (b != u32::MAX && b > max));
            if out_of_range || (max == 0 && !set.0.is_empty()) {
                return bad("invalid message sequence number");
            }
        }
        Ok(Self::resolve(sel, &set, uid))
    }

    fn parse_att(item: &str) -> Result<Vec<Att>, Failure> {
        let upper = item.to_ascii_uppercase();
        let whole = |text: SectionText| SectionSpec {
            path: Vec::new(),
            text,
        };
        Ok(match upper.as_str() {
            "FLAGS" => vec![Att::Flags],
            "UID" => vec![Att::Uid],
            "MODSEQ" => vec![Att::ModSeq],
            "INTERNALDATE" => vec![Att::InternalDate],
            "RFC822.SIZE" => vec![Att::Size],
            "ENVELOPE" => vec![Att::Envelope],
            "BODYSTRUCTURE" => vec![Att::Structure(true)],
            "BODY" => vec![Att::Structure(false)],
            "FAST" => vec![Att::Flags, Att::InternalDate, Att::Size],
            "ALL" => vec![Att::Flags, Att::InternalDate, Att::Size, Att::Envelope],
            "FULL" => vec![
                Att::Flags,
                Att::InternalDate,
                Att::Size,
                Att::Envelope,
                Att::Structure(false),
            ],
            "RFC822" => vec![Att::Body {
                section: whole(SectionText::All),
                label: "RFC822".into(),
                peek: false,
                partial: None,
            }],
            "RFC822.HEADER" => vec![Att::Body {
                section: whole(SectionText::Header),
                label: "RFC822.HEADER".into(),
                peek: true,
                partial: None,
            }],
            "RFC822.TEXT" => vec![Att::Body {
                section: whole(SectionText::Text),
                label: "RFC822.TEXT".into(),
                peek: false,
                partial: None,
            }],
            _ => {
                let (peek, rest) = if let Some(r) = upper.strip_prefix("BODY.PEEK[") {
                    (true, r)
                } else if let Some(r) = upper.strip_prefix("BODY[") {
                    (false, r)
                } else {
                    return bad("unsupported FETCH item");
                };
                let Some((spec, after)) = rest.split_once(']') else {
                    return bad("invalid section");
                };
                // Header names keep the client's spelling in the reply's label.
                let original = &item[item.len() - rest.len()..][..spec.len()];
                let section = mime::parse_section(original)
                    .ok_or_else(|| Failure::Bad("invalid section".into()))?;
                let partial = if after.is_empty() {
                    None
                } else {
                    let inner = after
                        .strip_prefix('<')
                        .and_then(|a| a.strip_suffix('>'))
                        .ok_or_else(|| Failure::Bad("invalid partial".into()))?;
                    let (o, n) = inner
                        .split_once('.')
                        .ok_or_else(|| Failure::Bad("invalid partial".into()))?;
                    match (o.parse(), n.parse()) {
                        (Ok(o), Ok(n)) if n > 0 => Some((o, n)),
                        _ => return bad("invalid partial"),
                    }
                };
                vec![Att::Body {
                    section,
                    label: format!("BODY[{}]", original.to_ascii_uppercase()),
                    peek,
                    partial,
                }]
            }
        })
    }

    fn fetch(&mut self, uid: bool, args: &mut Args) -> Reply {
        let indexes = self.set_arg(args, uid)?;
        let mut atts = Vec::new();
        for item in args.atom_list()? {
            atts.extend(Self::parse_att(&item)?);
        }
        let mut changed_since = None;
        if args.peek().is_some() {
            let modifiers = args.atom_list()?;
            let mut m = modifiers.iter();
            while let Some(name) = m.next() {
                if !name.eq_ignore_ascii_case("CHANGEDSINCE") {
                    return bad("unknown FETCH modifier");
                }
                let n: u64 = m
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Failure::Bad("invalid CHANGEDSINCE".into()))?;
                changed_since = Some(n);
            }
        }
        args.end()?;
        if atts.iter().any(|a| matches!(a, Att::ModSeq)) || changed_since.is_some() {
            self.enable_condstore()?;
            if !atts.iter().any(|a| matches!(a, Att::ModSeq)) {
                atts.push(Att::ModSeq);
            }
        }
        if uid && !atts.iter().any(|a| matches!(a, Att::Uid)) {
            atts.insert(0, Att::Uid);
        }
        let condstore = self.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        let mut missing = false;
        let indexes: Vec<usize> = indexes
            .into_iter()
            .filter(|&i| changed_since.is_none_or(|n| sel.messages[i].modseq > n))
            .collect();
        // Reading a body sets \Seen: first on disk, then (with the new mod-sequences) in
        // the replies.
        let mut seen_set = Vec::new();
        if !sel.read_only
            && atts
                .iter()
                .any(|a| matches!(a, Att::Body { peek: false, .. }))
        {
            let unseen: Vec<usize> = indexes
                .iter()
                .copied()
                .filter(|&i| !sel.messages[i].has(b'S'))
                .collect();
            if !unseen.is_empty() {
                let validity = sel.validity;
                let changes = sel
                    .folder
                    .change_flags(validity, &mut sel.messages, &unseen, |m| {
                        let mut flags = m.flags.to_vec();
                        flags.push(b'S');
                        Some(flags)
                    });
                let changes = match changes {
                    Err(e) if store::is_validity_changed(&e) => {
                        return Err(Self::validity_lost(&mut self.out));
                    }
                    Err(e) => return no(format!("cannot set \\Seen: {e}")),
                    Ok(c) => c,
                };
                // Reported with the reply: what this FETCH set, and what another session
                // changed meanwhile (the session's view now has it, so no NOOP would).
                for (&i, (change, news)) in unseen.iter().zip(changes) {
                    if change == Change::Changed || news {
                        seen_set.push(i);
                    }
                }
                sel.highest = sel.highest.max(sel.folder.highest());
            }
        }
        let seen_set: HashSet<usize> = seen_set.into_iter().collect();
        let mut learned = Vec::new();
        // ENVELOPE, BODY and BODYSTRUCTURE come from the folder's cache when they can.
        let kinds: Vec<Kind> = atts
            .iter()
            .filter_map(|a| match a {
                Att::Envelope => Some(Kind::Envelope),
                Att::Structure(true) => Some(Kind::Structure),
                Att::Structure(false) => Some(Kind::Body),
                _ => None,
            })
            .collect();
        if !kinds.is_empty() {
            sel.cache.refresh();
        }
        let mut to_cache = Vec::new();
        for i in indexes {
            let uid = sel.messages[i].uid;
            let mut structures: HashMap<Kind, Vec<u8>> = HashMap::new();
            for &k in &kinds {
                if let Some(b) = sel.cache.get(uid, k) {
                    structures.insert(k, b);
                }
            }
            let needs_body = structures.len() < kinds.len()
                || atts.iter().any(|a| {
                    matches!(a, Att::Body { .. })
                        || (matches!(a, Att::Size) && sel.messages[i].wire_size.is_none())
                });
            let bytes = if needs_body {
                match sel.folder.read(&mut sel.messages[i]) {
                    Ok(b) => Some(b),
                    Err(_) => {
                        missing = true;
                        continue;
                    }
                }
            } else {
                None
            };
            let wire = bytes.as_deref().map(store::to_wire);
            if let Some(w) = &wire {
                for &k in &kinds {
                    if structures.contains_key(&k) {
                        continue;
                    }
                    let b = match k {
                        Kind::Envelope => mime::envelope(w),
                        Kind::Structure => mime::body_structure(w, true),
                        Kind::Body => mime::body_structure(w, false),
                        Kind::Fields => fields_record(split_message(w).0),
                    };
                    to_cache.push((uid, k, b.clone()));
                    structures.insert(k, b);
                }
                if to_cache.len() >= CACHE_BATCH {
                    Self::write_cache(sel, &mut to_cache);
                }
            }
            let flags_changed = seen_set.contains(&i);
            let mut out = format!("* {} FETCH (", i + 1).into_bytes();
            let mut first = true;
            let mut items = atts.clone();
            if flags_changed && !items.iter().any(|a| matches!(a, Att::Flags)) {
                items.push(Att::Flags);
            }
            if flags_changed && condstore && !items.iter().any(|a| matches!(a, Att::ModSeq)) {
                items.push(Att::ModSeq);
            }
            if flags_changed && condstore && !items.iter().any(|a| matches!(a, Att::Uid)) {
                items.push(Att::Uid);
            }
            let m = &sel.messages[i];
            for att in &items {
                if !first {
                    out.push(b' ');
                }
                first = false;
                match att {
                    Att::Flags => {
                        out.extend(format!("FLAGS {}", Self::flags_text(sel, m)).into_bytes())
                    }
                    Att::Uid => out.extend(format!("UID {}", m.uid).into_bytes()),
                    Att::ModSeq => out.extend(format!("MODSEQ ({})", m.modseq).into_bytes()),
                    Att::InternalDate => out.extend(
                        format!("INTERNALDATE \"{}\"", date::internal_date(m.mtime)).into_bytes(),
                    ),
                    Att::Size => {
                        let size = match (m.wire_size, &bytes) {
                            (Some(s), _) => s,
                            (None, Some(b)) => {
                                let size = store::wire_size_of(b);
                                learned.push((i, size));
                                size
                            }
                            (None, None) => 0,
                        };
                        out.extend(format!("RFC822.SIZE {size}").into_bytes());
                    }
                    Att::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        out.extend_from_slice(
                            structures.get(&Kind::Envelope).map_or(&b"NIL"[..], |b| b),
                        );
                    }
                    Att::Structure(extensible) => {
                        let (label, kind) = if *extensible {
                            (&b"BODYSTRUCTURE "[..], Kind::Structure)
                        } else {
                            (&b"BODY "[..], Kind::Body)
                        };
                        out.extend_from_slice(label);
                        out.extend_from_slice(structures.get(&kind).map_or(&b"NIL"[..], |b| b));
                    }
                    Att::Body {
                        section,
                        label,
                        partial,
                        ..
                    } => {
                        let part = mime::section(wire.as_deref().unwrap_or(b""), section);
                        let Some(part) = part else {
                            // A part that does not exist is empty (as Dovecot answers).
                            out.extend(format!("{label} NIL").into_bytes());
                            continue;
                        };
                        let (label, part) = match partial {
                            Some((o, n)) => {
                                let start = (*o as usize).min(part.len());
                                let end = start.saturating_add(*n as usize).min(part.len());
                                (format!("{label}<{o}>"), &part[start..end])
                            }
                            None => (label.clone(), &part[..]),
                        };
                        out.extend(format!("{label} {{{}}}\r\n", part.len()).into_bytes());
                        out.extend_from_slice(part);
                    }
                }
            }
            out.extend_from_slice(b")\r\n");
            self.out.write_all(&out)?;
        }
        Self::keep_sizes(sel, &learned)?;
        if !to_cache.is_empty() {
            Self::write_cache(sel, &mut to_cache);
        }
        if missing {
            return no("some messages were expunged by another session");
        }
        Ok("FETCH completed".into())
    }

    fn store(&mut self, uid: bool, args: &mut Args) -> Reply {
        let indexes = self.set_arg(args, uid)?;
        let mut unchanged_since = None;
        if args.peek() == Some(&Token::Open) {
            let modifiers = args.atom_list()?;
            match modifiers.as_slice() {
                [name, n] if name.eq_ignore_ascii_case("UNCHANGEDSINCE") => {
                    let n: u64 = n.parse().or_else(|_| bad("invalid UNCHANGEDSINCE"))?;
                    unchanged_since = Some(n);
                    self.enable_condstore()?;
                }
                _ => return bad("unknown STORE modifier"),
            }
        }
        let op = args.atom()?.to_ascii_uppercase();
        let (mode, silent) = match op.as_str() {
            "FLAGS" => (0, false),
            "FLAGS.SILENT" => (0, true),
            "+FLAGS" => (1, false),
            "+FLAGS.SILENT" => (1, true),
            "-FLAGS" => (-1, false),
            "-FLAGS.SILENT" => (-1, true),
            _ => return bad("invalid STORE item"),
        };
        let names = if args.peek() == Some(&Token::Open) {
            args.atom_list()?
        } else {
            let mut names = Vec::new();
            while args.peek().is_some() {
                names.push(args.atom()?);
            }
            names
        };
        args.end()?;
        let condstore = self.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        if sel.read_only {
            return no("mailbox is read-only");
        }
        let mut letters = Vec::new();
        for n in &names {
            if let Some(l) = flag_letter(n) {
                letters.push(l);
            } else if n.starts_with('\\') {
                if !n.eq_ignore_ascii_case("\\Recent") {
                    return bad("invalid flag");
                }
            } else if !store::valid_keyword(n) {
                return bad("invalid keyword");
            } else if let Some(l) = sel.folder.keyword_letter(n, mode >= 0)? {
                letters.push(l);
            } else if mode >= 0 {
                return no("[LIMIT] too many keywords in this mailbox");
            }
        }
        let keywords = sel.folder.keywords();
        let mut announce = None;
        if keywords != sel.keywords {
            announce = Some(format!("* FLAGS ({})", all_flags(&keywords)));
            sel.keywords = keywords;
        }
        // Decided under the folder's lock on the flags and mod-sequences of this moment,
        // not those this session last saw.
        let validity = sel.validity;
        let changes = sel
            .folder
            .change_flags(validity, &mut sel.messages, &indexes, |m| {
                if unchanged_since.is_some_and(|n| m.modseq > n) {
                    return None;
                }
                let old = m.flags.to_vec();
                Some(match mode {
                    0 => letters.clone(),
                    1 => old.iter().chain(&letters).copied().collect(),
                    _ => old
                        .iter()
                        .copied()
                        .filter(|l| !letters.contains(l))
                        .collect(),
                })
            });
        let changes = match changes {
            Err(e) if store::is_validity_changed(&e) => {
                return Err(Self::validity_lost(&mut self.out));
            }
            Err(e) => return no(format!("cannot change flags: {e}")),
            Ok(c) => c,
        };
        sel.highest = sel.highest.max(sel.folder.highest());
        let mut failed = false;
        let mut modified = Vec::new();
        let mut lines: Vec<String> = announce.into_iter().collect();
        // `news`: changed by someone else since this session last said, which the client
        // hears of even after .SILENT.
        for (&i, (change, news)) in indexes.iter().zip(changes) {
            let m = &sel.messages[i];
            match change {
                Change::Gone => continue,
                Change::Failed => {
                    failed = true;
                    if !news {
                        continue;
                    }
                }
                Change::Refused => {
                    modified.push(if uid { m.uid } else { i as u32 + 1 });
                    if !news {
                        continue;
                    }
                }
                Change::Changed | Change::Same => {}
            }
            let changed = change == Change::Changed;
            // With UNCHANGEDSINCE, even .SILENT reports the new mod-sequence (RFC 7162 §3.2).
            if silent && !news && !(condstore && changed) {
                continue;
            }
            let mut items = Vec::new();
            if !silent || news {
                items.push(format!("FLAGS {}", Self::flags_text(sel, m)));
            }
            if uid || condstore {
                items.push(format!("UID {}", m.uid));
            }
            if condstore {
                items.push(format!("MODSEQ ({})", m.modseq));
            }
            lines.push(format!("* {} FETCH ({})", i + 1, items.join(" ")));
        }
        for l in lines {
            self.send(&l)?;
        }
        if failed {
            return no("some messages could not be changed");
        }
        if !modified.is_empty() {
            modified.sort_unstable();
            return Ok(format!(
                "[MODIFIED {}] conditional STORE failed",
                uid_set(&modified)
            ));
        }
        Ok("STORE completed".into())
    }

    fn search_key(args: &mut Args, depth: usize) -> Result<Key, Failure> {
        if depth > MAX_SEARCH_DEPTH {
            return bad("search keys nested too deeply");
        }
        let depth = depth + 1;
        let Some(tok) = args.next() else {
            return bad("missing search key");
        };
        let word = match tok {
            Token::Open => {
                let mut keys = Vec::new();
                while args.peek() != Some(&Token::Close) {
                    keys.push(Self::search_key(args, depth)?);
                }
                args.pos += 1;
                return Ok(Key::And(keys));
            }
            Token::Atom(a) => a.to_ascii_uppercase(),
            _ => return bad("invalid search key"),
        };
        let flag = |l: u8, set: bool| Ok(Key::Flag(l, set));
        let date_arg = |args: &mut Args| -> Result<i64, Failure> {
            let t = args.text()?;
            date::parse_date(&t).ok_or_else(|| Failure::Bad("invalid date".into()))
        };
        let num_arg = |args: &mut Args| -> Result<u64, Failure> {
            args.atom()?.parse().or_else(|_| bad("invalid number"))
        };
        match word.as_str() {
            "ALL" => Ok(Key::All),
            "ANSWERED" => flag(b'R', true),
            "UNANSWERED" => flag(b'R', false),
            "DELETED" => flag(b'T', true),
            "UNDELETED" => flag(b'T', false),
            "DRAFT" => flag(b'D', true),
            "UNDRAFT" => flag(b'D', false),
            "FLAGGED" => flag(b'F', true),
            "UNFLAGGED" => flag(b'F', false),
            "SEEN" => flag(b'S', true),
            "UNSEEN" => flag(b'S', false),
            "RECENT" => Ok(Key::Recent(true)),
            "OLD" => Ok(Key::Recent(false)),
            "NEW" => Ok(Key::New),
            "KEYWORD" => Ok(Key::Keyword(args.atom()?, true)),
            "UNKEYWORD" => Ok(Key::Keyword(args.atom()?, false)),
            "MODSEQ" => {
                // RFC 7162 §3.1.5: MODSEQ ["entry-name" entry-type] mod-sequence.
                if matches!(args.peek(), Some(Token::Str(_))) {
                    args.next();
                    args.atom()?;
                }
                Ok(Key::ModSeq(num_arg(args)?))
            }
            "NOT" => Ok(Key::Not(Box::new(Self::search_key(args, depth)?))),
            "OR" => {
                let a = Self::search_key(args, depth)?;
                let b = Self::search_key(args, depth)?;
                Ok(Key::Or(Box::new(a), Box::new(b)))
            }
            "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => Ok(Key::Header(word, args.text()?)),
            "HEADER" => {
                let name = args.text()?;
                Ok(Key::Header(name, args.text()?))
            }
            "BODY" => Ok(Key::Body(args.text()?)),
            "TEXT" => Ok(Key::Text(args.text()?)),
            "BEFORE" => Ok(Key::Before(date_arg(args)?)),
            "ON" => Ok(Key::On(date_arg(args)?)),
            "SINCE" => Ok(Key::Since(date_arg(args)?)),
            "SENTBEFORE" => Ok(Key::Sent(Ordering::Less, date_arg(args)?)),
            "SENTON" => Ok(Key::Sent(Ordering::Equal, date_arg(args)?)),
            "SENTSINCE" => Ok(Key::Sent(Ordering::Greater, date_arg(args)?)),
            "LARGER" => Ok(Key::Larger(num_arg(args)?)),
            "SMALLER" => Ok(Key::Smaller(num_arg(args)?)),
            "UID" => {
                let s = args.atom()?;
                Ok(Key::Uid(
                    SeqSet::parse(&s).ok_or_else(|| Failure::Bad("invalid set".into()))?,
                ))
            }
            _ => match SeqSet::parse(&word) {
                Some(set) => Ok(Key::Seq(set)),
                None => bad("unknown search key"),
            },
        }
    }

    fn matches(
        sel: &mut Selected,
        i: usize,
        key: &Key,
        body: &mut Option<Vec<u8>>,
        fields: &mut Option<(Vec<u8>, bool)>,
    ) -> bool {
        let count = sel.messages.len() as u32;
        let max_uid = sel.messages.last().map_or(0, |m| m.uid);
        let mut load = |sel: &mut Selected| -> Vec<u8> {
            if body.is_none() {
                *body = Some(sel.folder.read(&mut sel.messages[i]).unwrap_or_default());
            }
            body.clone().unwrap_or_default()
        };
        let m = &sel.messages[i];
        let day = m.mtime.div_euclid(86400);
        match key {
            Key::All => true,
            Key::Seq(set) => set.contains(i as u32 + 1, count),
            Key::Uid(set) => set.contains(m.uid, max_uid),
            Key::Flag(l, set) => m.has(*l) == *set,
            Key::Keyword(name, set) => {
                let has = match flag_letter(name) {
                    Some(l) => m.has(l),
                    None => sel
                        .keywords
                        .iter()
                        .position(|k| k.eq_ignore_ascii_case(name))
                        .is_some_and(|p| m.has(b'a' + p as u8)),
                };
                has == *set
            }
            Key::ModSeq(n) => m.modseq >= *n,
            Key::Sent(order, d) => {
                let bytes = load(sel);
                let (header, _) = split_message(&bytes);
                let sent = header_values(header, "Date")
                    .first()
                    .and_then(|v| mail_parser::DateTime::parse_rfc822(v))
                    .map(|t| {
                        date::days_from_civil(
                            i64::from(t.year),
                            u32::from(t.month),
                            u32::from(t.day),
                        )
                    });
                match (sent, order) {
                    (None, _) => false,
                    (Some(s), Ordering::Less) => s < *d,
                    (Some(s), Ordering::Equal) => s == *d,
                    (Some(s), Ordering::Greater) => s >= *d,
                }
            }
            Key::Recent(r) => sel.recent.contains(&m.unique) == *r,
            Key::New => sel.recent.contains(&m.unique) && !m.has(b'S'),
            Key::Before(d) => day < *d,
            Key::On(d) => day == *d,
            Key::Since(d) => day >= *d,
            Key::Larger(n) | Key::Smaller(n) => {
                let size = match m.wire_size {
                    Some(s) => s,
                    None => store::wire_size_of(&load(sel)),
                };
                if matches!(key, Key::Larger(_)) {
                    size > *n
                } else {
                    size < *n
                }
            }
            Key::Header(name, s) if CACHED_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) => {
                // The common header searches read the folder's cache, not the message.
                if fields.is_none() {
                    let uid = m.uid;
                    *fields = Some(match sel.cache.get(uid, Kind::Fields) {
                        Some(f) => (f, false),
                        None => (fields_record(split_message(&load(sel)).0), true),
                    });
                }
                fields.as_ref().is_some_and(|(f, _)| {
                    header_values(f, name)
                        .iter()
                        .any(|v| contains_ci(v.as_bytes(), s))
                })
            }
            Key::Header(name, s) => {
                let bytes = load(sel);
                let (header, _) = split_message(&bytes);
                search_values(header, name)
                    .iter()
                    .any(|v| contains_ci(v.as_bytes(), s))
            }
            Key::Body(s) => text_matches(&load(sel), s, false),
            Key::Text(s) => text_matches(&load(sel), s, true),
            Key::Not(k) => !Self::matches(sel, i, k, body, fields),
            Key::Or(a, b) => {
                Self::matches(sel, i, a, body, fields) || Self::matches(sel, i, b, body, fields)
            }
            Key::And(keys) => keys.iter().all(|k| Self::matches(sel, i, k, body, fields)),
        }
    }

    fn search(&mut self, tag: &str, uid: bool, args: &mut Args) -> Reply {
        // RFC 4731: SEARCH RETURN (MIN MAX COUNT ALL) answers with one ESEARCH line.
        let mut returns: Option<Vec<String>> = None;
        if let Some(Token::Atom(a)) = args.peek()
            && a.eq_ignore_ascii_case("RETURN")
        {
            args.pos += 1;
            let mut options = Vec::new();
            for o in args.atom_list()? {
                let o = o.to_ascii_uppercase();
                if !matches!(o.as_str(), "MIN" | "MAX" | "COUNT" | "ALL") {
                    return bad("unsupported SEARCH RETURN option");
                }
                options.push(o);
            }
            if options.is_empty() {
                options.push("ALL".to_string());
            }
            returns = Some(options);
        }
        if let Some(Token::Atom(a)) = args.peek()
            && a.eq_ignore_ascii_case("CHARSET")
        {
            args.pos += 1;
            let charset = args.text()?.to_ascii_uppercase();
            if charset != "UTF-8" && charset != "US-ASCII" {
                return no("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset");
            }
        }
        let mut keys = Vec::new();
        while args.peek().is_some() {
            keys.push(Self::search_key(args, 0)?);
        }
        if keys.is_empty() {
            return bad("missing search key");
        }
        let key = Key::And(keys);
        let with_modseq = key.uses_modseq();
        if with_modseq {
            self.enable_condstore()?;
        }
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        let mut found = Vec::new();
        let mut modseqs = Vec::new();
        let mut highest = 0;
        sel.cache.refresh();
        let mut to_cache = Vec::new();
        for i in 0..sel.messages.len() {
            let mut body = None;
            let mut fields = None;
            let hit = Self::matches(sel, i, &key, &mut body, &mut fields);
            if let Some((f, true)) = fields {
                to_cache.push((sel.messages[i].uid, Kind::Fields, f));
                if to_cache.len() >= CACHE_BATCH {
                    Self::write_cache(sel, &mut to_cache);
                }
            }
            if hit {
                highest = highest.max(sel.messages[i].modseq);
                modseqs.push(sel.messages[i].modseq);
                found.push(if uid {
                    sel.messages[i].uid
                } else {
                    i as u32 + 1
                });
            }
        }
        if !to_cache.is_empty() {
            Self::write_cache(sel, &mut to_cache);
        }
        let line = match returns {
            Some(options) => {
                let mut line = format!("* ESEARCH (TAG \"{tag}\")");
                if uid {
                    line.push_str(" UID");
                }
                for o in &options {
                    match (o.as_str(), found.first(), found.last()) {
                        ("MIN", Some(min), _) => line.push_str(&format!(" MIN {min}")),
                        ("MAX", _, Some(max)) => line.push_str(&format!(" MAX {max}")),
                        ("ALL", Some(_), _) => line.push_str(&format!(" ALL {}", uid_set(&found))),
                        ("COUNT", _, _) => line.push_str(&format!(" COUNT {}", found.len())),
                        _ => {}
                    }
                }
                if with_modseq && !found.is_empty() {
                    // RFC 7162 §3.1.5: with only MIN and/or MAX, the mod-sequence of the
                    // messages returned; otherwise the highest of all that matched.
                    let only_ends = options.iter().all(|o| o == "MIN" || o == "MAX");
                    let modseq = if only_ends {
                        let mut m = 0;
                        if options.iter().any(|o| o == "MIN") {
                            m = m.max(modseqs[0]);
                        }
                        if options.iter().any(|o| o == "MAX") {
                            m = m.max(modseqs[modseqs.len() - 1]);
                        }
                        m
                    } else {
                        highest
                    };
                    line.push_str(&format!(" MODSEQ {modseq}"));
                }
                line
            }
            None => {
                let mut line = "* SEARCH".to_string();
                for n in &found {
                    line.push_str(&format!(" {n}"));
                }
                if with_modseq && !found.is_empty() {
                    line.push_str(&format!(" (MODSEQ {highest})"));
                }
                line
            }
        };
        self.send(&line)?;
        Ok("SEARCH completed".into())
    }

    fn copy(&mut self, uid: bool, moving: bool, args: &mut Args) -> Reply {
        let indexes = self.set_arg(args, uid)?;
        let (_, mut dest) = self.mailbox_arg(args)?;
        args.end()?;
        if !dest.exists() {
            return no("[TRYCREATE] no such mailbox");
        }
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        if moving && sel.read_only {
            return no("mailbox is read-only");
        }
        let mut news = Vec::new();
        let mut src_uids = Vec::new();
        for &i in &indexes {
            let bytes = sel
                .folder
                .read(&mut sel.messages[i])
                .map_err(|e| Failure::No(format!("copy failed: {e}")))?;
            let m = &sel.messages[i];
            news.push(NewMessage {
                bytes,
                flags: m.flags.to_vec(),
                mtime: Some(UNIX_EPOCH + Duration::from_secs(m.mtime.max(0) as u64)),
            });
            src_uids.push(m.uid);
        }
        if news.is_empty() {
            return Ok(if moving {
                "MOVE completed"
            } else {
                "COPY completed"
            }
            .into());
        }
        // Maildir++ quota: a COPY must fit; a MOVE within the Maildir changes nothing in all.
        let total: u64 = news.iter().map(|n| n.bytes.len() as u64).sum();
        let limit = self.quota();
        if let Some(q) = limit
            && !moving
        {
            room(quota::fits_many(&self.root, &q, total, news.len() as u64))?;
        }
        let (validity, uids) = dest
            .add(&news)
            .map_err(|e| Failure::No(format!("copy failed: {e}")))?;
        if let Some(q) = limit {
            let _ = quota::add_many(&self.root, &q, total, news.len() as u64);
        }
        let code = format!(
            "[COPYUID {validity} {} {}]",
            uid_set(&src_uids),
            uid_set(&uids)
        );
        if !moving {
            return Ok(format!("{code} COPY completed"));
        }
        self.send(&format!("* OK {code} moved"))?;
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        let mut lines = Vec::new();
        let (mut freed, mut count) = (0, 0);
        for &i in indexes.iter().rev() {
            let size = stored_size(&sel.folder, &sel.messages[i]);
            if let Ok(removed) = sel.folder.remove(&sel.messages[i]) {
                sel.messages.remove(i);
                lines.push(format!("* {} EXPUNGE", i + 1));
                // Another session may have removed it first, and counted it then.
                if removed {
                    freed += size;
                    count += 1;
                }
            }
        }
        if let Some(q) = limit {
            let _ = quota::remove(&self.root, &q, freed, count);
        }
        for l in lines {
            self.send(&l)?;
        }
        Ok("MOVE completed".into())
    }

    /// Removes \Deleted messages (of `only`, if given); returns the EXPUNGE lines.
    fn expunge_quietly(&mut self, only: Option<&[usize]>) -> Result<Vec<String>, Failure> {
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        let only: Option<HashSet<usize>> = only.map(|o| o.iter().copied().collect());
        let mut lines = Vec::new();
        let (mut freed, mut count) = (0, 0);
        let mut i = sel.messages.len();
        while i > 0 {
            i -= 1;
            if !sel.messages[i].has(b'T') || only.as_ref().is_some_and(|o| !o.contains(&i)) {
                continue;
            }
            let size = stored_size(&sel.folder, &sel.messages[i]);
            let removed = sel.folder.remove(&sel.messages[i])?;
            sel.messages.remove(i);
            lines.push(format!("* {} EXPUNGE", i + 1));
            // Another session may have removed it first, and counted it then.
            if removed {
                freed += size;
                count += 1;
            }
        }
        if count > 0
            && let Some(q) = self.quota()
        {
            let _ = quota::remove(&self.root, &q, freed, count);
        }
        Ok(lines)
    }

    fn expunge(&mut self, uid: bool, args: &mut Args) -> Reply {
        let only = if uid {
            Some(self.set_arg(args, true)?)
        } else {
            None
        };
        args.end()?;
        if self.selected.as_ref().is_some_and(|s| s.read_only) {
            return no("mailbox is read-only");
        }
        for line in self.expunge_quietly(only.as_deref())? {
            self.send(&line)?;
        }
        Ok("EXPUNGE completed".into())
    }

    fn append(&mut self, args: &mut Args) -> Reply {
        let (name, mut folder) = self.mailbox_arg(args)?;
        let mut flags = Vec::new();
        if args.peek() == Some(&Token::Open) {
            for f in args.atom_list()? {
                match flag_letter(&f) {
                    Some(l) => flags.push(l),
                    None if f.eq_ignore_ascii_case("\\Recent") => {}
                    None if f.starts_with('\\') => return bad("invalid flag"),
                    None if !store::valid_keyword(&f) => return bad("invalid keyword"),
                    None => {
                        if folder.exists()
                            && let Some(l) = folder.keyword_letter(&f, true)?
                        {
                            flags.push(l);
                        }
                    }
                }
            }
        }
        let mut mtime = None;
        if let Some(Token::Str(s)) = args.peek().cloned()
            && args.tokens.get(args.pos + 1).is_some()
        {
            args.pos += 1;
            let text = String::from_utf8_lossy(&s).into_owned();
            let secs = date::parse_date_time(&text)
                .ok_or_else(|| Failure::Bad("invalid date-time".into()))?;
            mtime = Some(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64));
        }
        let Some(Token::Str(bytes)) = args.next() else {
            return bad("missing message literal");
        };
        args.end()?;
        // Kept with LF line ends, as delivered mail is (the wire form is the same).
        let bytes = store::from_wire(&bytes);
        if !folder.exists() {
            return no("[TRYCREATE] no such mailbox");
        }
        let _ = name;
        let limit = self.quota();
        let size = bytes.len() as u64;
        if let Some(q) = limit {
            room(quota::fits(&self.root, &q, size))?;
        }
        let (validity, uids) = folder
            .add(&[NewMessage {
                bytes,
                flags,
                mtime,
            }])
            .map_err(|e| Failure::No(format!("append failed: {e}")))?;
        if let Some(q) = limit {
            let _ = quota::add(&self.root, &q, size);
        }
        Ok(format!(
            "[APPENDUID {validity} {}] APPEND completed",
            uid_set(&uids)
        ))
    }

    fn idle(&mut self, tag: &str, args: &mut Args, input: &mut Input) -> Reply {
        args.end()?;
        self.send("+ idling")?;
        self.out.flush()?;
        let watcher = self
            .selected
            .as_ref()
            .and_then(|s| watch(&s.folder.dir).ok());
        let started = std::time::Instant::now();
        loop {
            self.refresh(true)?;
            self.out.flush()?;
            let (client, _) = match &watcher {
                Some(w) => {
                    use std::os::fd::AsFd;
                    let ready = wait_either(input, w.as_fd(), Duration::from_millis(500))?;
                    if ready.1 {
                        let _ = w.read_events();
                    }
                    ready
                }
                None => {
                    // Both ends kept: with the write end closed, poll would return at once.
                    let (r, _w) = nix::unistd::pipe().map_err(io::Error::from)?;
                    use std::os::fd::AsFd;
                    wait_either(input, r.as_fd(), Duration::from_millis(500))?
                }
            };
            if client {
                let line = input.line(crate::input::MAX_LINE)?;
                return match line {
                    Some(l) if l.eq_ignore_ascii_case(b"DONE") => Ok("IDLE terminated".into()),
                    _ => bad("expected DONE"),
                };
            }
            if started.elapsed() > Duration::from_secs(29 * 60) {
                self.send("* BYE idle too long")?;
                let _ = tag;
                return Err(Failure::Io(io::Error::new(io::ErrorKind::TimedOut, "idle")));
            }
        }
    }
}

/// An inotify watch on a folder's new/ and cur/.
fn watch(dir: &std::path::Path) -> nix::Result<nix::sys::inotify::Inotify> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    let mask = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO;
    inotify.add_watch(&dir.join("new"), mask)?;
    inotify.add_watch(&dir.join("cur"), mask)?;
    Ok(inotify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns_stop_percent_at_the_separator() {
        assert!(pattern_matches(b"*", b"A.B"));
        assert!(pattern_matches(b"%", b"A"));
        assert!(!pattern_matches(b"%", b"A.B"));
        assert!(pattern_matches(b"A.%", b"A.B"));
        assert!(pattern_matches(b"%.B", b"A.B") && !pattern_matches(b"%B", b"A.B"));
        assert!(pattern_matches(b"*B*", b"A.B.C") && !pattern_matches(b"*D*", b"A.B.C"));
        assert!(pattern_matches(b"", b"") && !pattern_matches(b"", b"A"));
        // Many wildcards stay fast (this took hours when matching backtracked).
        let stars = [b'*'; 40];
        let mut pattern = stars.to_vec();
        pattern.push(b'x');
        assert!(!pattern_matches(&pattern, &[b'a'; 200]));
    }

    #[test]
    fn tags_are_astring_chars_without_plus() {
        assert!(valid_tag("a1") && valid_tag("x]y") && valid_tag("A.b-c"));
        for bad in [
            "",
            "a b",
            "a\rb",
            "a\0b",
            "a+",
            "*",
            "a{1}",
            "a\"",
            "a(",
            &"x".repeat(65),
        ] {
            assert!(!valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    }
}
