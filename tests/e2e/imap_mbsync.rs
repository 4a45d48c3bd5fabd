//! mbsync (isync) against the whole IMAP chain: rqmail-tcpserver running `rqmail-login imap
//! -s` (IMAPS), which runs a checkpassword and rqmail-imapd on a Maildir filled by a real
//! instance. A Maildir++ tree on mbsync's side (INBOX, a folder and a subfolder, flagged
//! messages) and one on the server's (delivered mail, a folder hierarchy made on disk) are
//! synchronised both ways; then flag changes and deletions on either side; then a run that
//! must change nothing.
//!
//! As in tests/e2e/imap_clients.rs, a fake checkpassword accepts joe/secret, enters joe's
//! home and runs `rqmail-imapd Maildir`. mbsync trusts the instance's self-signed
//! certificate through `CertificateFile` (a host certificate, matched as is).

use rqmail_e2e::{Instance, LoginServer, python_command};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// mbsync's configuration: the server over IMAPS, the local tree as Maildir++, every
/// folder both ways, deletions and expunges propagated.
const MBSYNCRC: &str = "\
IMAPAccount rqmail
Host 127.0.0.1
Port @PORT@
User joe
Pass secret
SSLType IMAPS
CertificateFile @CERT@
SystemCertificates no
Timeout 30

IMAPStore rqmail-far
Account rqmail

MaildirStore local-near
Inbox @LOCAL@
SubFolders Maildir++

Channel rqmail
Far :rqmail-far:
Near :local-near:
Patterns *
Create Both
Remove None
Expunge Both
Sync All
SyncState *
";

/// The path of mbsync, or None (after saying the test is skipped) when isync is missing.
fn mbsync(test: &str) -> Option<PathBuf> {
    let found = Command::new("mbsync")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: {test} needs mbsync (Debian package isync)");
        return None;
    }
    Some(PathBuf::from("mbsync"))
}

/// Writes a self-signed certificate for 127.0.0.1 to `control/servercert.pem` (mbsync
/// checks the host name even of a certificate it is told to trust, against the subject's
/// CN: the harness's is for mail.example.com); returns the certificate alone, for mbsync.
fn make_certificate(inst: &Instance) -> PathBuf {
    let dir = inst.home.join("control");
    let (cert, key) = (dir.join("cert-127.pem"), dir.join("key-127.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    let servercert = dir.join("servercert.pem");
    std::fs::write(&servercert, pem).unwrap();
    std::fs::set_permissions(&servercert, std::fs::Permissions::from_mode(0o600)).unwrap();
    give_to_instance(inst, &servercert);
    cert
}

/// Gives `path` (and everything under it) to the instance's user, as the server runs as it.
fn give_to_instance(inst: &Instance, path: &Path) {
    let (uid, gid) = inst.ids();
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            give_to_instance(inst, &entry.unwrap().path());
        }
    }
}

/// Makes a Maildir (tmp, new, cur) at `dir`.
fn maildir_make(dir: &Path) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

/// Writes a message into `dir/sub/` under `name`.
fn put(dir: &Path, sub: &str, name: &str, message: &[u8]) {
    std::fs::write(dir.join(sub).join(name), message).unwrap();
}

/// A message as IMAP carries it, the form both sides are compared in: mbsync writes LF
/// line ends into its Maildir and sends CR LF, which rqmail-imapd stores as received.
fn wire(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + file.len() / 32);
    let mut previous = 0;
    for &b in file {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

/// The message without the `X-TUID:` header line mbsync adds to each copy it makes (on
/// either side: it finds its copies by it), so that the copies compare equal to the
/// originals.
fn without_tuid(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut rest = message;
    let mut in_header = true;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        if in_header && (line == b"\n" || line == b"\r\n") {
            in_header = false;
        }
        if !(in_header && line.starts_with(b"X-TUID: ")) {
            out.extend_from_slice(line);
        }
        rest = &rest[end..];
    }
    out
}

/// One message of a folder: its contents (in wire form) and its Maildir flags, sorted.
type Entry = (Vec<u8>, String);

/// Every folder of a Maildir++ tree ("INBOX" for the top), with its messages sorted.
fn folders(root: &Path) -> BTreeMap<String, Vec<Entry>> {
    let mut out = BTreeMap::new();
    out.insert("INBOX".to_string(), messages(root));
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(folder) = name.strip_prefix('.')
            && !folder.is_empty()
            && entry.path().join("cur").is_dir()
        {
            out.insert(folder.to_string(), messages(&entry.path()));
        }
    }
    out
}

/// The messages of one Maildir (new/ and cur/), sorted.
fn messages(dir: &Path) -> Vec<Entry> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let mut flags: Vec<char> = name
                .split_once(":2,")
                .map_or("", |(_, f)| f)
                .chars()
                .collect();
            flags.sort_unstable();
            let data = std::fs::read(entry.path()).unwrap();
            found.push((wire(&without_tuid(&data)), flags.into_iter().collect()));
        }
    }
    found.sort();
    found
}

/// Every file under `dir`, names and contents, for checking that a run changed nothing.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A readable account of two trees' differences, for failures.
fn describe(near: &BTreeMap<String, Vec<Entry>>, far: &BTreeMap<String, Vec<Entry>>) -> String {
    let show = |tree: &BTreeMap<String, Vec<Entry>>| {
        tree.iter()
            .map(|(folder, msgs)| {
                let list: Vec<String> = msgs
                    .iter()
                    .map(|(m, f)| {
                        let subject = text(m)
                            .lines()
                            .find(|l| l.starts_with("Subject:"))
                            .unwrap_or("(no subject)")
                            .trim_end()
                            .to_string();
                        format!("    {subject} [{f}] {} bytes", m.len())
                    })
                    .collect();
                format!("  {folder}:\n{}", list.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "mbsync's side:\n{}\nserver's side:\n{}",
        show(near),
        show(far)
    )
}

/// Runs mbsync on the channel, asserting it succeeded; returns its output.
fn run_mbsync(mbsync: &Path, config: &Path, server: &LoginServer, scratch: &Path) -> String {
    let out: Output = Command::new(mbsync)
        .arg("-c")
        .arg(config)
        .args(["-V", "rqmail"])
        .env("HOME", scratch)
        .stdin(Stdio::null())
        .output()
        .expect("mbsync");
    let output = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "mbsync failed ({}):\n{output}\nserver log:\n{}",
        out.status,
        server.log_text()
    );
    // e.g. "Warning: lost track of 1 pushed message(s)": mbsync could not match a copy
    // it made with what the server reported.
    assert!(
        !output.contains("Warning") && !output.contains("Error"),
        "mbsync complained:\n{output}\nserver log:\n{}",
        server.log_text()
    );
    server.wait_idle();
    output
}

const SERVER_ONE: &[u8] = b"From: Alice <alice@remote.example>\nTo: joe@example.com\nSubject: server one\n\nline one\n.leading dot\n";
const SERVER_TWO: &[u8] =
    b"From: Carol <carol@remote.example>\nSubject: server two\n  folded\n\n\xc3\xa9t\xc3\xa9 8bit\n";
const LISTS_ONE: &[u8] = b"From: list@lists.example\nSubject: lists one\n\nin Lists\n";
const RUST_ONE: &[u8] = b"From: list@rust.example\nSubject: rust one\n\nin Lists.rust, flagged\n";
const RUST_TWO: &[u8] =
    b"From: list@rust.example\nSubject: rust two\n\nin Lists.rust, answered\n\n\nblank lines\n";

const SERVER_THREE: &[u8] =
    b"From: Alice <alice@remote.example>\nSubject: server three\n\ndelivered between runs\n";
const LISTS_TWO: &[u8] = b"From: list@lists.example\nSubject: lists two\n\nappended over IMAP\n";

const LOCAL_ONE: &[u8] = b"From: Joe <joe@example.com>\nSubject: local one\n\nwritten locally\n";
const LOCAL_TWO: &[u8] = b"From: Joe <joe@example.com>\nSubject: local two\n\nunseen, in new/\n";
const WORK_ONE: &[u8] = b"From: boss@work.example\nSubject: work one\n\nreplied to\n";
const PROJECT_ONE: &[u8] = b"From: Joe <joe@example.com>\nSubject: project draft\n\na draft\n";
const PROJECT_TWO: &[u8] = b"From: dev@work.example\nSubject: project two\nX-Long: ";

/// A message with a long header line and a 2000-character body line.
fn project_two() -> Vec<u8> {
    let mut m = PROJECT_TWO.to_vec();
    m.extend(std::iter::repeat_n(b'h', 900));
    m.extend_from_slice(b"\n\n");
    m.extend(std::iter::repeat_n(b'b', 2000));
    m.extend_from_slice(b"\nend\n");
    m
}

#[test]
fn mbsync_syncs_a_folder_tree_both_ways_then_changes_then_nothing() {
    let Some(mbsync) = mbsync("mbsync_syncs_a_folder_tree_both_ways_then_changes_then_nothing")
    else {
        return;
    };
    let mut inst = Instance::new("imap-mbsync");
    let cert = make_certificate(&inst);
    inst.control("logindelay", "50\n");
    let homes = inst.add_users(&["joe"]);
    inst.install_fake_checkpassword(&homes[0]);
    inst.start();

    // The server's side: two messages delivered through the queue, the second one then
    // flagged and seen; a hierarchy Lists, Lists.rust with flagged messages on disk.
    let server = homes[0].join("Maildir");
    for message in [SERVER_ONE, SERVER_TWO] {
        let before = Instance::maildir_new(&server).len();
        assert_eq!(
            inst.queue_raw("alice@remote.example", &["joe@example.com"], message),
            0
        );
        inst.wait_for_mail(&server, before + 1);
    }
    let delivered = Instance::maildir_new(&server);
    let second = delivered
        .iter()
        .find(|p| std::fs::read(p).unwrap().ends_with(b"8bit\n"))
        .unwrap();
    let name = second.file_name().unwrap().to_str().unwrap();
    std::fs::rename(second, server.join("cur").join(format!("{name}:2,FS"))).unwrap();
    for folder in [".Lists", ".Lists.rust"] {
        maildir_make(&server.join(folder));
        std::fs::write(server.join(folder).join("maildirfolder"), b"").unwrap();
    }
    put(
        &server.join(".Lists"),
        "new",
        "1700000001.M1P1.far",
        LISTS_ONE,
    );
    put(
        &server.join(".Lists.rust"),
        "cur",
        "1700000002.M2P1.far:2,F",
        RUST_ONE,
    );
    put(
        &server.join(".Lists.rust"),
        "cur",
        "1700000003.M3P1.far:2,RS",
        RUST_TWO,
    );
    give_to_instance(&inst, &server);

    // mbsync's side: INBOX, Work and Work.Projects, with seen, flagged, answered and draft
    // messages and one unseen in new/.
    let local = inst.home.join("local");
    maildir_make(&local);
    put(&local, "cur", "1700000010.M10P2.near:2,FS", LOCAL_ONE);
    put(&local, "new", "1700000011.M11P2.near", LOCAL_TWO);
    maildir_make(&local.join(".Work"));
    put(
        &local.join(".Work"),
        "cur",
        "1700000012.M12P2.near:2,RS",
        WORK_ONE,
    );
    maildir_make(&local.join(".Work.Projects"));
    put(
        &local.join(".Work.Projects"),
        "cur",
        "1700000013.M13P2.near:2,D",
        PROJECT_ONE,
    );
    put(
        &local.join(".Work.Projects"),
        "cur",
        "1700000014.M14P2.near:2,",
        &project_two(),
    );

    let imaps = inst.login_server("imap", true, "rqmail-imapd", "Maildir", &[]);
    let config = inst.home.join("mbsyncrc");
    std::fs::write(
        &config,
        MBSYNCRC
            .replace("@PORT@", &imaps.port.to_string())
            .replace("@CERT@", cert.to_str().unwrap())
            .replace("@LOCAL@", local.to_str().unwrap()),
    )
    .unwrap();
    let scratch = inst.home.join("mbsync-home");
    std::fs::create_dir_all(&scratch).unwrap();

    // 1. Both trees merge: every folder on both sides, the same messages with the same flags.
    let out = run_mbsync(&mbsync, &config, &imaps, &scratch);
    eprintln!("first run:\n{out}");
    let (near, far) = (folders(&local), folders(&server));
    assert!(
        near == far,
        "after the first run\n{}",
        describe(&near, &far)
    );
    for folder in ["INBOX", "Lists", "Lists.rust", "Work", "Work.Projects"] {
        assert!(
            near.contains_key(folder),
            "{folder} missing\n{}",
            describe(&near, &far)
        );
    }
    assert_eq!(near["INBOX"].len(), 4, "{}", describe(&near, &far));
    assert_eq!(near["Work.Projects"].len(), 2, "{}", describe(&near, &far));
    let flags_of = |tree: &BTreeMap<String, Vec<Entry>>, folder: &str, body: &[u8]| {
        let want = wire(body);
        tree[folder]
            .iter()
            .find(|(m, _)| m.ends_with(&want))
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no {:?} in {folder}", text(&body[..40.min(body.len())])))
    };
    assert_eq!(flags_of(&far, "INBOX", LOCAL_ONE), "FS");
    assert_eq!(flags_of(&far, "INBOX", LOCAL_TWO), "");
    assert_eq!(flags_of(&near, "INBOX", SERVER_TWO), "FS");
    assert_eq!(flags_of(&far, "Work", WORK_ONE), "RS");
    assert_eq!(flags_of(&far, "Work.Projects", PROJECT_ONE), "D");
    assert_eq!(flags_of(&near, "Lists.rust", RUST_ONE), "F");
    assert_eq!(flags_of(&near, "Lists.rust", RUST_TWO), "RS");

    // 2. Changes on both sides. mbsync's side: new flags on two messages, one deleted.
    let rename_flags = |dir: &Path, body: &[u8], flags: &str| {
        let path = find(dir, body);
        let name = path.file_name().unwrap().to_str().unwrap();
        let base = name.split_once(":2,").map_or(name, |(b, _)| b);
        std::fs::rename(&path, dir.join("cur").join(format!("{base}:2,{flags}"))).unwrap();
    };
    rename_flags(&local, LOCAL_ONE, "RS");
    rename_flags(&local.join(".Work"), WORK_ONE, "FRS");
    std::fs::remove_file(find(&local.join(".Work.Projects"), PROJECT_ONE)).unwrap();
    // The server's side, through rqmail-imapd: flags changed, a message expunged, one
    // appended; and one delivered through the queue.
    let script = r#"
import imaplib, os, ssl
from rqtest import tls_context; ctx = tls_context()
m = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["PORT"]), ssl_context=ctx, timeout=30)
def ok(r):
    assert r[0] == "OK", r
    return r[1]
ok(m.login("joe", "secret"))
ok(m.select("Lists.rust"))
found = ok(m.search(None, "SUBJECT", '"rust one"'))[0].split()
assert len(found) == 1, found
ok(m.store(found[0].decode(), "-FLAGS", "(\\Flagged)"))
ok(m.store(found[0].decode(), "+FLAGS", "(\\Seen)"))
ok(m.select("INBOX"))
found = ok(m.search(None, "SUBJECT", '"server one"'))[0].split()
assert len(found) == 1, found
ok(m.store(found[0].decode(), "+FLAGS", "(\\Deleted)"))
ok(m.expunge())
ok(m.append("Lists", "(\\Seen)", None, b"From: list@lists.example\r\nSubject: lists two\r\n\r\nappended over IMAP\r\n"))
m.logout()
print("ok")
"#;
    let out = python_command(script)
        .env("PORT", imaps.port.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success() && text(&out.stdout).contains("ok"),
        "python: {}{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        imaps.log_text()
    );
    let before = Instance::maildir_new(&server).len();
    assert_eq!(
        inst.queue_raw("alice@remote.example", &["joe@example.com"], SERVER_THREE),
        0
    );
    inst.wait_for_mail(&server, before + 1);
    imaps.wait_idle();

    let out = run_mbsync(&mbsync, &config, &imaps, &scratch);
    eprintln!("second run:\n{out}");
    let (near, far) = (folders(&local), folders(&server));
    assert!(near == far, "after the changes\n{}", describe(&near, &far));
    let has = |tree: &BTreeMap<String, Vec<Entry>>, folder: &str, body: &[u8]| {
        let want = wire(body);
        tree[folder].iter().any(|(m, _)| m.ends_with(&want))
    };
    assert!(
        !has(&far, "Work.Projects", PROJECT_ONE),
        "{}",
        describe(&near, &far)
    );
    assert!(
        !has(&near, "INBOX", SERVER_ONE),
        "{}",
        describe(&near, &far)
    );
    assert!(
        has(&near, "INBOX", SERVER_THREE),
        "{}",
        describe(&near, &far)
    );
    assert_eq!(flags_of(&far, "INBOX", LOCAL_ONE), "RS");
    assert_eq!(flags_of(&far, "Work", WORK_ONE), "FRS");
    assert_eq!(flags_of(&near, "Lists.rust", RUST_ONE), "S");
    assert_eq!(flags_of(&near, "Lists", LISTS_TWO), "S");
    assert_eq!(flags_of(&near, "INBOX", SERVER_THREE), "");
    // Nothing is left behind on the server: no \Deleted message, nothing in tmp/.
    for (folder, messages) in &far {
        assert!(
            messages.iter().all(|(_, f)| !f.contains('T')),
            "{folder} keeps a deleted message\n{}",
            describe(&near, &far)
        );
    }

    // 3. Nothing changed since: a third run must change nothing on either side.
    let (local_before, server_before) = (tree(&local), tree(&server));
    let out = run_mbsync(&mbsync, &config, &imaps, &scratch);
    eprintln!("third run:\n{out}");
    let (local_after, server_after) = (tree(&local), tree(&server));
    assert!(
        changes(&local_before, &local_after).is_empty(),
        "the third run changed mbsync's side: {:?}\n{out}",
        changes(&local_before, &local_after)
    );
    // rqmail-imapd forgets the UIDs of expunged messages at its next scan of the folder,
    // so the run may append `- UID MODSEQ` lines to an index (after the second run's
    // expunge in Work.Projects), and `S` lines that note the directories' times; nothing
    // else in it may change: no UID is given or moved, no flag changes.
    let (indexes, others): (Vec<String>, Vec<String>) = changes(&server_before, &server_after)
        .into_iter()
        .partition(|c| c.starts_with("changed ") && c.ends_with("/rqmail-index"));
    assert!(
        others.is_empty(),
        "the third run changed the server's side: {others:?}\n{out}"
    );
    for change in indexes {
        let path = Path::new(change.strip_prefix("changed ").unwrap());
        let old = &server_before.iter().find(|(p, _)| p == path).unwrap().1;
        let new = &server_after.iter().find(|(p, _)| p == path).unwrap().1;
        let (old, new) = (text(old), text(new));
        let appended = new.strip_prefix(old.as_str()).unwrap_or_else(|| {
            panic!("{change}: the index was rewritten\nbefore:\n{old}\nafter:\n{new}")
        });
        assert!(
            appended
                .lines()
                .all(|l| l.starts_with("- ") || l.starts_with("S ")),
            "{change}: UIDs or flags changed without a change\nbefore:\n{old}\nafter:\n{new}"
        );
    }
}

/// The message file in a Maildir (new/ or cur/) whose contents end with `body`.
fn find(dir: &Path, body: &[u8]) -> PathBuf {
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            if without_tuid(&std::fs::read(entry.path()).unwrap()).ends_with(body) {
                return entry.path();
            }
        }
    }
    panic!(
        "no {:?} in {}",
        text(&body[..body.len().min(40)]),
        dir.display()
    );
}

/// The paths that differ between two snapshots: added, removed or changed.
fn changes(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)]) -> Vec<String> {
    let old: BTreeMap<_, _> = before.iter().map(|(p, d)| (p, d)).collect();
    let new: BTreeMap<_, _> = after.iter().map(|(p, d)| (p, d)).collect();
    let mut out = Vec::new();
    for (path, data) in &old {
        match new.get(path) {
            None => out.push(format!("removed {}", path.display())),
            Some(now) if now != data => out.push(format!("changed {}", path.display())),
            Some(_) => {}
        }
    }
    for path in new.keys() {
        if !old.contains_key(path) {
            out.push(format!("added {}", path.display()));
        }
    }
    out
}
