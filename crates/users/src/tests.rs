use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rqmail-users-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("users")).unwrap();
        Scratch(dir)
    }

    fn assign(&self, text: &str) {
        std::fs::write(self.0.join("users/assign"), text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const EXAMPLE: &str = "\
+:alias:7790:2108:/var/qmail/alias:-::
+joe-:joe:507:100:/home/joe:-::
=joe:joe:507:100:/home/joe:::
=Joe.Shmoe:joe:503:78:/home/joe:::ignored text
.
lines after the dot are ignored
";

fn compiled(name: &str, text: &str) -> Scratch {
    let s = Scratch::new(name);
    s.assign(text);
    compile(&s.0).unwrap();
    s
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn entry(user: &str, uid: u32, gid: u32, home: &str, dash: &str, ext: &str) -> UserEntry {
    UserEntry {
        user: user.into(),
        uid,
        gid,
        home: home.into(),
        dash: dash.into(),
        ext: ext.into(),
    }
}

/// A cdb built straight from control-files.md §9, independently of the cdb crate.
fn cdb_by_hand(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    fn hash(key: &[u8]) -> u32 {
        key.iter().fold(5381u32, |h, &c| {
            (h.wrapping_shl(5).wrapping_add(h)) ^ u32::from(c)
        })
    }
    let mut out = vec![0u8; 2048];
    let mut placed: Vec<(u32, u32)> = Vec::new();
    for (key, data) in records {
        placed.push((hash(key), out.len() as u32));
        out.extend((key.len() as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(*key);
        out.extend(*data);
    }
    let mut header = Vec::new();
    for t in 0..256u32 {
        let mine: Vec<(u32, u32)> = placed
            .iter()
            .copied()
            .filter(|(h, _)| h % 256 == t)
            .collect();
        let len = mine.len() * 2;
        header.extend((out.len() as u32).to_le_bytes());
        header.extend((len as u32).to_le_bytes());
        let mut slots = vec![(0u32, 0u32); len];
        for (h, pos) in mine {
            let mut s = (h >> 8) as usize % len;
            while slots[s].1 != 0 {
                s = (s + 1) % len;
            }
            slots[s] = (h, pos);
        }
        for (h, pos) in slots {
            out.extend(h.to_le_bytes());
            out.extend(pos.to_le_bytes());
        }
    }
    out[..2048].copy_from_slice(&header);
    out
}

#[test]
fn compiles_assign_into_qmails_exact_cdb_bytes() {
    let s = compiled("bytes", EXAMPLE);
    let expected = cdb_by_hand(&[
        (b"!", b"alias\x007790\x002108\x00/var/qmail/alias\x00-\x00"),
        (b"!joe-", b"joe\x00507\x00100\x00/home/joe\x00-\x00"),
        (b"!joe\x00", b"joe\x00507\x00100\x00/home/joe\x00\x00"),
        (b"!joe.shmoe\x00", b"joe\x00503\x0078\x00/home/joe\x00\x00"),
        (b"", b"-"),
    ]);
    assert_eq!(std::fs::read(s.0.join("users/cdb")).unwrap(), expected);
    assert!(!s.0.join("users/cdb.tmp").exists());
}

#[test]
fn empty_key_record_holds_distinct_last_chars_as_written() {
    let text = "+a-:u:1:1:/h:-::\n+b-:u:1:1:/h:-::\n+salE:u:1:1:/h:-::\n+:u:1:1:/h:-::\n.\n";
    let parsed = parse_assign(text.as_bytes()).unwrap();
    assert_eq!(assign::wildcard_chars(&parsed), b"-E");
}

#[test]
fn simple_assignment_matches_case_insensitively_with_empty_ext() {
    let s = compiled("simple", EXAMPLE);
    let want = entry("joe", 507, 100, "/home/joe", "", "");
    assert_eq!(lookup(&s.0, b"joe").unwrap(), Some(want.clone()));
    assert_eq!(lookup(&s.0, b"JOE").unwrap(), Some(want));
    assert_eq!(
        lookup(&s.0, b"joe.shmoe").unwrap(),
        Some(entry("joe", 503, 78, "/home/joe", "", ""))
    );
}

#[test]
fn longer_wildcard_prefix_wins_and_ext_keeps_original_case() {
    let s = compiled("wild", EXAMPLE);
    assert_eq!(
        lookup(&s.0, b"Joe-Direct").unwrap(),
        Some(entry("joe", 507, 100, "/home/joe", "-", "Direct"))
    );
    assert_eq!(
        lookup(&s.0, b"joe-").unwrap(),
        Some(entry("joe", 507, 100, "/home/joe", "-", ""))
    );
}

#[test]
fn wildcard_ext_is_its_prefix_plus_the_rest() {
    let s = compiled("pre", "+list-:lists:600:60:/home/lists:-:ml-:\n.\n");
    assert_eq!(
        lookup(&s.0, b"list-Announce").unwrap(),
        Some(entry("lists", 600, 60, "/home/lists", "-", "ml-Announce"))
    );
}

#[test]
fn catch_all_takes_every_other_local_part() {
    let s = compiled("catchall", EXAMPLE);
    assert_eq!(
        lookup(&s.0, b"Bill").unwrap(),
        Some(entry("alias", 7790, 2108, "/var/qmail/alias", "-", "Bill"))
    );
    assert_eq!(
        lookup(&s.0, b"joex").unwrap(),
        Some(entry("alias", 7790, 2108, "/var/qmail/alias", "-", "joex"))
    );
}

#[test]
fn simple_assignment_beats_a_wildcard_and_first_duplicate_wins() {
    let s = compiled(
        "precedence",
        "+joe:w:1:1:/w:-::\n=joe:first:2:2:/f:::\n=JOE:second:3:3:/s:::\n.\n",
    );
    assert_eq!(lookup(&s.0, b"joe").unwrap().unwrap().user, b"first");
    assert_eq!(lookup(&s.0, b"joeY").unwrap().unwrap().ext, b"Y");
}

#[test]
fn wildcard_ending_in_uppercase_is_never_found() {
    // qmail's quirk: the "" record keeps "E" while probes are lowercase.
    let s = compiled("quirk", "+salE:s:1:1:/s:-::\n.\n");
    assert_eq!(lookup(&s.0, b"sale").unwrap(), None);
}

#[test]
fn no_match_and_missing_cdb_are_not_errors() {
    let s = compiled("nomatch", "=joe:joe:1:1:/h:::\n.\n");
    assert_eq!(lookup(&s.0, b"bill").unwrap(), None);
    let empty = Scratch::new("nocdb");
    assert_eq!(lookup(&empty.0, b"joe").unwrap(), None);
}

#[test]
fn unreadable_cdb_is_a_temporary_error() {
    let s = Scratch::new("garbage");
    std::fs::write(s.0.join("users/cdb"), b"not a cdb").unwrap();
    let err = lookup(&s.0, b"joe").unwrap_err();
    assert!(matches!(err, LookupError::Cdb(_)));
    assert!(!err.is_permanent());
    assert_eq!(err.qmail_code(), 117);
    assert!(err.message().ends_with("(#4.3.0)"));
}

#[test]
fn cdb_without_the_empty_key_record_is_an_error() {
    let s = Scratch::new("noempty");
    let a = parse_assign(b"=joe:joe:1:1:/h:::\n.\n").unwrap();
    let file = std::fs::File::create(s.0.join("users/cdb")).unwrap();
    let mut cdb = cdb::CDBMake::new(file).unwrap();
    cdb.add(&a[0].key(), &a[0].data).unwrap();
    cdb.finish().unwrap();
    assert!(matches!(lookup(&s.0, b"joe"), Err(LookupError::Cdb(_))));
}

fn format_error(text: &[u8]) -> FormatError {
    parse_assign(text).unwrap_err()
}

#[test]
fn format_errors_name_the_line() {
    let good = "=a:a:1:1:/a:::\n";
    let cases: [(String, usize, &str); 9] = [
        (good.repeat(2), 3, "missing final line"),
        (format!("{good}=b:b:1:1:/b:::"), 2, "no newline"),
        (format!("{good}=b\0:b:1:1:/b:::\n.\n"), 2, "NUL"),
        (format!("{good}{good}=b\n.\n"), 3, "no colon"),
        (":b:1:1:/b:::\n.\n".into(), 1, "starts with a colon"),
        (
            format!("{good}=b:b:1:1:/b::\n.\n"),
            2,
            "fewer than 6 colons",
        ),
        ("=b:b:x:1:/b:::\n.\n".into(), 1, "not a number"),
        (format!("{good}=b:b:1::/b:::\n.\n"), 2, "not a number"),
        ("#b:b:1:1:/b:::\n.\n".into(), 1, "neither"),
    ];
    for (text, line, reason) in cases {
        let e = format_error(text.as_bytes());
        assert_eq!(e.line, line, "{text:?}");
        assert!(e.reason.contains(reason), "{text:?}: {}", e.reason);
        assert!(e.to_string().ends_with(&format!("(line {line})")));
    }
    assert_eq!(format_error(b"").line, 1);
}

#[test]
fn dot_line_may_lack_its_newline_and_empty_assign_compiles() {
    assert_eq!(parse_assign(b"=a:a:1:1:/a:::\n.").unwrap().len(), 1);
    let s = compiled("empty", ".\n");
    assert_eq!(lookup(&s.0, b"anyone").unwrap(), None);
}

#[test]
fn refused_assign_keeps_the_old_cdb() {
    let s = compiled("keep", "=joe:joe:1:1:/h:::\n.\n");
    let before = std::fs::read(s.0.join("users/cdb")).unwrap();
    s.assign("=joe:joe:1:1:/h:::\n=bill:bill:2:2:/b::\n.\n");
    match compile(&s.0) {
        Err(CompileError::Format(e)) => assert_eq!(e.line, 2),
        other => panic!("expected a format error, got {other:?}"),
    }
    assert_eq!(std::fs::read(s.0.join("users/cdb")).unwrap(), before);
    assert!(!s.0.join("users/cdb.tmp").exists());
}

#[test]
fn missing_assign_is_a_read_error() {
    let s = Scratch::new("noassign");
    assert!(matches!(compile(&s.0), Err(CompileError::Read(_))));
}

/// A passwd table for tests.
struct Table {
    accounts: HashMap<String, Account>,
    root: bool,
}

impl Passwd for Table {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        Ok(self.accounts.get(name).cloned())
    }
    fn running_as_root(&self) -> bool {
        self.root
    }
    fn current(&self) -> rqmail_privs::Ids {
        rqmail_privs::Ids {
            uid: 1234,
            gid: 567,
        }
    }
}

/// A home directory owned by a non-root uid, which is returned with it.
fn owned_home(s: &Scratch, name: &str) -> (PathBuf, u32) {
    let home = s.0.join(name);
    std::fs::create_dir(&home).unwrap();
    let mut uid = std::fs::metadata(&home).unwrap().uid();
    if uid == 0 {
        uid = 4242;
        std::os::unix::fs::chown(&home, Some(uid), None).unwrap();
    }
    (home, uid)
}

fn table(accounts: &[(&str, u32, &Path)]) -> Table {
    Table {
        accounts: accounts
            .iter()
            .map(|&(name, uid, home)| {
                let account = Account {
                    name: name.into(),
                    uid,
                    gid: 77,
                    home: home.into(),
                };
                (name.to_string(), account)
            })
            .collect(),
        root: true,
    }
}

#[test]
fn getpw_tries_prefixes_before_each_dash_longest_first() {
    let s = Scratch::new("getpw");
    let (home, uid) = owned_home(&s, "joe");
    let t = table(&[("joe", uid, &home)]);
    let got = getpw_in(&t, b"Joe-a-B").unwrap().unwrap();
    assert_eq!(
        (text(&got.user), text(&got.dash), text(&got.ext)),
        ("joe", "-", "a-B")
    );
    assert_eq!((got.uid, got.gid, got.home), (uid, 77, home.clone()));
    let got = getpw_in(&t, b"JOE").unwrap().unwrap();
    assert_eq!((text(&got.dash), text(&got.ext)), ("", ""));
    assert_eq!(getpw_in(&t, b"joey").unwrap(), None);

    let t = table(&[("joe", uid, &home), ("joe-a", uid, &home)]);
    let got = getpw_in(&t, b"joe-a-b").unwrap().unwrap();
    assert_eq!((text(&got.user), text(&got.ext)), ("joe-a", "b"));
}

#[test]
fn getpw_skips_root_unowned_or_missing_homes_and_long_names() {
    let s = Scratch::new("getpwskip");
    let (home, uid) = owned_home(&s, "home");
    let missing = s.0.join("missing");
    let long = "a".repeat(32);
    let t = table(&[
        ("root", 0, Path::new("/")),
        ("other", uid + 1, &home),
        ("gone", uid, &missing),
        (&long, uid, &home),
        ("x", uid, &home),
    ]);
    assert_eq!(getpw_in(&t, b"root").unwrap(), None);
    assert_eq!(getpw_in(&t, b"other").unwrap(), None);
    assert_eq!(getpw_in(&t, b"gone-ext").unwrap(), None);
    assert_eq!(getpw_in(&t, long.as_bytes()).unwrap(), None);
    // The 32-byte name is skipped, but the shorter candidate before a dash is still tried.
    assert_eq!(
        getpw_in(&t, b"x-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .unwrap()
            .unwrap()
            .user,
        b"x"
    );
}

#[test]
fn real_passwd_has_no_mail_user_named_like_this() {
    assert_eq!(getpw(b"no-such-rqmail-user").unwrap(), None);
}

#[test]
fn resolve_prefers_users_cdb_then_passwd_then_alias() {
    let s = compiled("resolve", "=joe:cdbjoe:501:50:/cdb/joe:::\n.\n");
    let (home, uid) = owned_home(&s, "bill");
    let (alias_home, alias_uid) = owned_home(&s, "aliashome");
    let t = table(&[
        ("joe", uid, &home),
        ("bill", uid, &home),
        ("alias", alias_uid, &alias_home),
    ]);
    assert_eq!(resolve_in(&t, &s.0, b"joe").unwrap().user, b"cdbjoe");
    assert_eq!(resolve_in(&t, &s.0, b"bill-x").unwrap().ext, b"x");
    let alias = resolve_in(&t, &s.0, b"Postmaster").unwrap();
    assert_eq!(
        alias,
        UserEntry {
            user: "alias".into(),
            uid: alias_uid,
            gid: 77,
            home: alias_home,
            dash: "-".into(),
            ext: "Postmaster".into(),
        }
    );
}

#[test]
fn alias_without_root_or_account_is_the_current_user_in_home_alias() {
    let s = Scratch::new("noroot");
    let mut t = table(&[]);
    t.root = false;
    assert_eq!(
        resolve_in(&t, &s.0, b"root").unwrap(),
        UserEntry {
            user: "alias".into(),
            uid: 1234,
            gid: 567,
            home: s.0.join("alias"),
            dash: "-".into(),
            ext: "root".into(),
        }
    );
}

#[test]
fn no_alias_user_as_root_is_a_temporary_error() {
    let s = Scratch::new("noalias");
    let err = resolve_in(&table(&[]), &s.0, b"nobody-here").unwrap_err();
    assert_eq!(err, LookupError::NoAlias);
    assert_eq!(err.qmail_code(), 116);
    assert!(!err.is_permanent());
}

#[test]
fn extensions_that_are_not_utf8_are_kept_byte_for_byte() {
    let s = compiled("latin1", "+joe-:joe:1:1:/h:-::\n.\n");
    let got = lookup(&s.0, b"joe-caf\xe9").unwrap().unwrap();
    assert_eq!((got.dash, got.ext), (b"-".to_vec(), b"caf\xe9".to_vec()));

    let (home, uid) = owned_home(&s, "bill");
    let t = table(&[("bill", uid, &home), ("alias", uid, &home)]);
    let got = getpw_in(&t, b"Bill-caf\xe9-x").unwrap().unwrap();
    assert_eq!(got.ext, b"caf\xe9-x");
    // A candidate name that is not UTF-8 is no account; the alias user gets it all.
    let got = resolve_in(&t, &s.0, b"caf\xe9").unwrap();
    assert_eq!(
        (got.user, got.ext),
        (b"alias".to_vec(), b"caf\xe9".to_vec())
    );
}
