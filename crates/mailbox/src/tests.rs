use super::*;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rqmail-mailbox-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

const PREFIX: &[u8] = b"Return-Path: <a@b.example>\nDelivered-To: joe@c.example\n";

/// A message read from its middle, to show that deliveries rewind it.
fn message(bytes: &[u8]) -> Cursor<Vec<u8>> {
    let mut m = Cursor::new(bytes.to_vec());
    m.seek(SeekFrom::End(0)).unwrap();
    m
}

#[test]
fn maildir_file_is_prefix_plus_message_and_tmp_is_left_empty() {
    let s = Scratch::new("maildir");
    let md = s.0.join("Maildir");
    make_maildir(&md).unwrap();
    let body = b"Received: x\nSubject: hi\n\nFrom here\nno final newline";
    let path = deliver_maildir(&md, PREFIX, &mut message(body)).unwrap();
    assert_eq!(path.parent().unwrap(), md.join("new"));
    let mut want = PREFIX.to_vec();
    want.extend_from_slice(body);
    assert_eq!(std::fs::read(&path).unwrap(), want);
    assert_eq!(mode(&path), 0o600);
    assert!(entries(&md.join("tmp")).is_empty());
    assert!(entries(&md.join("cur")).is_empty());
    assert_eq!(entries(&md.join("new")).len(), 1);
}

#[test]
fn maildir_names_follow_time_m_p_q_host_and_differ() {
    let s = Scratch::new("names");
    make_maildir(&s.0).unwrap();
    let a = deliver_maildir(&s.0, b"", &mut message(b"1")).unwrap();
    let b = deliver_maildir(&s.0, b"", &mut message(b"2")).unwrap();
    assert_ne!(a, b);
    let name = a.file_name().unwrap().to_str().unwrap();
    let (time, rest) = name.split_once('.').unwrap();
    assert!(time.bytes().all(|c| c.is_ascii_digit()));
    let (id, host) = rest.split_once('.').unwrap();
    assert!(id.starts_with('M'));
    assert!(id.contains(&format!("P{}Q", std::process::id())));
    assert!(!host.contains('/') && !host.contains(':'));
    assert_eq!(entries(&s.0.join("new")).len(), 2);
}

#[test]
fn hostname_slash_and_colon_are_escaped() {
    assert_eq!(maildir::escape_host("a/b:c"), "a\\057b\\072c");
}

#[test]
fn missing_maildir_is_a_temporary_4_2_1() {
    let s = Scratch::new("nomaildir");
    let err = deliver_maildir(&s.0.join("absent"), PREFIX, &mut message(b"x")).unwrap_err();
    assert!(!err.permanent);
    assert!(err.text.ends_with("(#4.2.1)"), "{}", err.text);
}

#[test]
fn maildir_without_tmp_is_a_temporary_error_and_delivers_nothing() {
    let s = Scratch::new("notmp");
    std::fs::create_dir_all(s.0.join("new")).unwrap();
    let err = deliver_maildir(&s.0, PREFIX, &mut message(b"x")).unwrap_err();
    assert!(!err.permanent);
    assert!(err.text.ends_with("(#4.3.0)"), "{}", err.text);
    assert!(entries(&s.0.join("new")).is_empty());
}

/// Gives some bytes, then fails.
struct Broken(usize);

impl Read for Broken {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = self.0.min(buf.len());
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

impl Seek for Broken {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Ok(0)
    }
}

#[test]
fn maildir_read_error_unlinks_tmp_and_delivers_nothing() {
    let s = Scratch::new("readerr");
    make_maildir(&s.0).unwrap();
    let err = deliver_maildir(&s.0, PREFIX, &mut Broken(100)).unwrap_err();
    assert!(
        err.text.starts_with("Unable to read message"),
        "{}",
        err.text
    );
    assert!(entries(&s.0.join("tmp")).is_empty());
    assert!(entries(&s.0.join("new")).is_empty());
}

const UFLINE: &[u8] = b"From a@b.example Thu Jan 01 00:00:00 1970\n";

#[test]
fn mbox_quotes_from_lines_and_adds_missing_final_newline() {
    let s = Scratch::new("mbox");
    let mbox = s.0.join("Mailbox");
    let body =
        b"Subject: x\n\nFrom me\n>From you\n>>From them\nFromage\n From indented\n>From\nlast";
    deliver_mbox(&mbox, UFLINE, PREFIX, &mut message(body)).unwrap();
    let mut want = UFLINE.to_vec();
    want.extend_from_slice(PREFIX);
    want.extend_from_slice(
        b"Subject: x\n\n>From me\n>>From you\n>>>From them\nFromage\n From indented\n>From\nlast\n\n",
    );
    assert_eq!(std::fs::read(&mbox).unwrap(), want);
    assert_eq!(mode(&mbox), 0o600);
}

#[test]
fn mbox_appends_and_terminated_message_gets_one_blank_line() {
    let s = Scratch::new("append");
    let mbox = s.0.join("Mailbox");
    std::fs::write(&mbox, b"old\n\n").unwrap();
    deliver_mbox(&mbox, UFLINE, b"", &mut message(b"a\n")).unwrap();
    deliver_mbox(&mbox, UFLINE, b"", &mut message(b"")).unwrap();
    let mut want = b"old\n\n".to_vec();
    want.extend_from_slice(UFLINE);
    want.extend_from_slice(b"a\n\n");
    want.extend_from_slice(UFLINE);
    want.extend_from_slice(b"\n");
    assert_eq!(std::fs::read(&mbox).unwrap(), want);
}

#[test]
fn from_quoting_does_not_depend_on_how_the_message_is_split() {
    let body: &[u8] = b"From a\n>>From b\nFro\nFrom\n>x\n>\n\nFrom ";
    let mut whole = Vec::new();
    let mut q = mbox::FromQuoter::new();
    q.push(body, &mut whole).unwrap();
    q.finish(&mut whole).unwrap();
    assert_eq!(
        whole,
        b">From a\n>>>From b\nFro\nFrom\n>x\n>\n\n>From \n\n".to_vec()
    );
    let mut bytewise = Vec::new();
    let mut q = mbox::FromQuoter::new();
    for b in body {
        q.push(std::slice::from_ref(b), &mut bytewise).unwrap();
    }
    q.finish(&mut bytewise).unwrap();
    assert_eq!(bytewise, whole);
}

#[test]
fn unterminated_partial_from_is_written_out() {
    let mut out = Vec::new();
    let mut q = mbox::FromQuoter::new();
    q.push(b"x\n>>Fro", &mut out).unwrap();
    q.finish(&mut out).unwrap();
    assert_eq!(out, b"x\n>>Fro\n\n");
}

#[test]
fn mbox_locked_by_another_gives_up_with_4_3_0_and_leaves_it_alone() {
    use nix::fcntl::{Flock, FlockArg};
    let s = Scratch::new("locked");
    let mbox = s.0.join("Mailbox");
    std::fs::write(&mbox, b"old\n").unwrap();
    let other = std::fs::File::open(&mbox).unwrap();
    let _held = Flock::lock(other, FlockArg::LockExclusive).unwrap();
    let err = mbox::deliver_mbox_waiting(
        &mbox,
        UFLINE,
        PREFIX,
        &mut message(b"x\n"),
        Duration::from_millis(200),
    )
    .unwrap_err();
    assert!(!err.permanent);
    assert!(err.text.contains("locked"));
    assert!(err.text.ends_with("(#4.3.0)"));
    assert_eq!(std::fs::read(&mbox).unwrap(), b"old\n");
}

#[test]
fn mbox_read_error_truncates_back_to_the_old_end() {
    let s = Scratch::new("mboxreaderr");
    let mbox = s.0.join("Mailbox");
    std::fs::write(&mbox, b"old\n\n").unwrap();
    let err = deliver_mbox(&mbox, UFLINE, PREFIX, &mut Broken(200_000)).unwrap_err();
    assert!(
        err.text.starts_with("Unable to read message"),
        "{}",
        err.text
    );
    assert_eq!(std::fs::read(&mbox).unwrap(), b"old\n\n");
}

#[test]
fn mbox_in_missing_directory_is_a_temporary_4_2_1() {
    let s = Scratch::new("mboxdir");
    let err =
        deliver_mbox(&s.0.join("no/Mailbox"), UFLINE, PREFIX, &mut message(b"x")).unwrap_err();
    assert!(!err.permanent);
    assert!(err.text.ends_with("(#4.2.1)"), "{}", err.text);
}

#[test]
fn make_maildir_creates_three_subdirs_mode_0700_and_may_run_twice() {
    let s = Scratch::new("make");
    let md = s.0.join("Maildir");
    make_maildir(&md).unwrap();
    make_maildir(&md).unwrap();
    assert_eq!(entries(&md), ["cur", "new", "tmp"]);
    for d in ["", "cur", "new", "tmp"] {
        assert_eq!(mode(&md.join(d)), 0o700, "{d}");
    }
    let file = s.0.join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(make_maildir(&file).is_err());
    // A link to a directory is not taken for the Maildir, nor for one of its parts.
    let elsewhere = s.0.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, s.0.join("linked")).unwrap();
    assert!(make_maildir(&s.0.join("linked")).is_err());
    let partly = s.0.join("partly");
    std::fs::create_dir(&partly).unwrap();
    std::os::unix::fs::symlink(&elsewhere, partly.join("new")).unwrap();
    assert!(make_maildir(&partly).is_err());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn make_folder_creates_dot_name_with_maildirfolder() {
    let s = Scratch::new("folder");
    make_maildir(&s.0).unwrap();
    let folder = make_folder(&s.0, "Lists.rust").unwrap();
    assert_eq!(folder, s.0.join(".Lists.rust"));
    assert_eq!(entries(&folder), ["cur", "maildirfolder", "new", "tmp"]);
    assert_eq!(std::fs::read(folder.join("maildirfolder")).unwrap(), b"");
    make_folder(&s.0, "Lists.rust").unwrap();
    for bad in ["", "a/b", ".a", "a.", "a..b"] {
        let e = make_folder(&s.0, bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
    }
    assert!(make_folder(&s.0.join("nothere"), "x").is_err());
}

#[test]
fn maildir_names_carry_the_stored_and_crlf_sizes() {
    let dir = std::env::temp_dir().join(format!("rqmail-maildir-sizes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    crate::make_maildir(&dir).unwrap();
    let mut message = std::io::Cursor::new(b"a\r\nb\nc".to_vec());
    let path = crate::deliver_maildir(&dir, b"P\n", &mut message).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    // Stored: "P\na\r\nb\nc" (8 bytes); sent as "P\r\na\r\nb\r\nc\r\n" (12).
    assert!(name.ends_with(",S=8,W=12"), "{name}");
    assert_eq!(std::fs::read(&path).unwrap(), b"P\na\r\nb\nc");
    std::fs::remove_dir_all(&dir).unwrap();
}
