//! rqmail-imapd on a Maildir filled by a real instance, served per connection by the real
//! rqmail-tcpserver (so it greets with PREAUTH) and driven with Python's imaplib and raw
//! sockets: SELECT, byte-exact FETCH, flags in file names, SEARCH, COPY/MOVE, EXPUNGE,
//! APPEND, UID stability, two sessions, IDLE, bad input.

use rqmail_e2e::{Instance, Listener, python_command};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Helpers every script starts with.
const PRELUDE: &str = include_str!("../python/imapd/prelude.py");

const ONE: &[u8] = b"From: Alice <alice@remote.example>\nTo: bob@example.com\nSubject: one\n\nline one\n.leading dot\n";
const TWO: &[u8] = b"From: Carol <carol@remote.example>\nTo: bob@example.com\nSubject: two\n  folded\n\nno newline at the end";
const THREE: &[u8] = b"From: Dave <dave@remote.example>\nSubject: three\n\n\xc3\xa9t\xc3\xa9 8bit\nneedle in the body\n";

/// An instance with user bob and a listener serving his Maildir with rqmail-imapd.
fn setup(name: &str, messages: &[&[u8]]) -> (Instance, PathBuf, Listener) {
    let mut inst = Instance::new(name);
    let homes = inst.add_users(&["bob"]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    deliver(&inst, &maildir, messages);
    let listener = inst.listen("rqmail-imapd", &[maildir.to_str().unwrap()], &[]);
    (inst, maildir, listener)
}

fn deliver(inst: &Instance, maildir: &Path, messages: &[&[u8]]) {
    for message in messages {
        let before = Instance::maildir_new(maildir).len();
        assert_eq!(
            inst.queue_raw("alice@remote.example", &["bob@example.com"], message),
            0
        );
        inst.wait_for_mail(maildir, before + 1);
    }
}

fn script(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}

/// Every file under `dir` with its contents, for checking that nothing changed.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            let data = std::fs::read(&path).unwrap();
            out.push((path, data));
        }
    }
    out.sort();
    out
}

#[test]
fn imaplib_selects_fetches_stores_searches_copies_moves_expunges_and_appends() {
    let (inst, maildir, l) = setup("imap-basic", &[ONE, TWO, THREE]);
    let out = inst.python(
        l.port,
        &script(
            include_str!("../python/imapd/imaplib_selects_fetches_stores_searches_copies_moves_expunges_and_appends.py"),
        ),
    );
    assert!(out.contains("ok"), "{out}");
    assert!(maildir.join("rqmail-index").exists());
}

#[test]
fn two_sessions_see_each_others_flags_and_expunges_at_noop() {
    let (inst, _maildir, l) = setup("imap-two", &[ONE, TWO]);
    let out = inst.python(
        l.port,
        &script(
            r#"
a = connect()
b = connect()
ok(a.select("INBOX"))
ok(b.select("INBOX"))
ok(a.store("1", "+FLAGS", "(\\Flagged)"))
ok(b.noop())
fetches = b.untagged_responses.pop("FETCH", [])
assert any(b"\\Flagged" in f for f in fetches), (fetches, b.untagged_responses)
ok(a.store("2", "+FLAGS", "(\\Deleted)"))
ok(a.expunge())
typ, data = b.noop()
assert typ == "OK"
assert b.untagged_responses.get("EXPUNGE") == [b"2"], b.untagged_responses
a.logout(); b.logout()
print("ok")
"#,
        ),
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn idle_reports_a_message_delivered_through_the_queue_within_a_second() {
    let (inst, maildir, l) = setup("imap-idle", &[ONE]);
    let mut child = python_command(&script(
        r#"
import sys
r = Raw()
r.cmd(b"s1 SELECT INBOX")
r.send(b"i1 IDLE\r\n")
assert r.f.readline() == b"+ idling\r\n"
print("idling", flush=True)
while True:
    l = r.f.readline()
    if l.endswith(b"EXISTS\r\n"):
        break
seen = time.time()
path = list(files().values())
newest = max(os.stat(p).st_mtime for p in path)
print("delay %.3f" % (seen - newest), flush=True)
r.send(b"DONE\r\n")
assert r.until(b"i1")[-1] == b"i1 OK IDLE terminated\r\n"
print("ok", flush=True)
"#,
    ))
    .env("PORT", l.port.to_string())
    .env("HOME_DIR", inst_home(&maildir))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "idling");
    let start = Instant::now();
    assert_eq!(
        inst.queue_raw("alice@remote.example", &["bob@example.com"], TWO),
        0
    );
    let delay = lines.next().unwrap().unwrap();
    let delay: f64 = delay.strip_prefix("delay ").unwrap().parse().unwrap();
    assert!(delay < 1.0, "EXISTS {delay} s after delivery");
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(lines.next().unwrap().unwrap(), "ok");
    let status = child.wait().unwrap();
    assert!(status.success());
}

/// The instance's home (HOME_DIR), from bob's Maildir `HOME/homes/bob/Maildir`.
fn inst_home(maildir: &Path) -> PathBuf {
    maildir.ancestors().nth(3).unwrap().to_path_buf()
}

#[test]
fn bad_input_gets_bad_or_no_and_leaves_the_maildir_alone() {
    let (inst, maildir, l) = setup("imap-bad", &[ONE, TWO]);
    // Let the first session's folder creation happen, then snapshot.
    let _ = inst.python(l.port, &script("m = connect(); ok(m.select()); m.logout()"));
    let before = tree(&maildir);
    let out = inst.python(
        l.port,
        &script(
            r#"
r = Raw()
assert r.greeting.startswith(b"* PREAUTH [CAPABILITY IMAP4rev1 "), r.greeting
assert r.cmd(b"a1 FETCH 1 (FLAGS")[-1] == b"a1 BAD unbalanced parentheses\r\n"
assert r.cmd(b"a2 XYZZY")[-1] == b"a2 BAD unknown command\r\n"
assert r.cmd(b"a3 FETCH 1 FLAGS")[-1] == b"a3 BAD no mailbox selected\r\n"
assert r.cmd(b"a4 LOGIN bob secret")[-1] == b"a4 BAD already authenticated\r\n"
assert r.cmd(b"a5 APPEND INBOX {60000000}")[-1] == b"a5 NO [TOOBIG] literal too big\r\n"
assert r.cmd(b"a6 CREATE {100000}")[-1] == b"a6 NO [TOOBIG] literal too big\r\n"
assert r.cmd(b"a7 SELECT ../../etc")[-1].startswith(b"a7 NO ")
assert r.cmd(b"a8 EXAMINE INBOX")[-1] == b"a8 OK [READ-ONLY] EXAMINE completed\r\n"
assert r.cmd(b"a9 FETCH 1 (FLAGS (UID)")[-1] == b"a9 BAD unbalanced parentheses\r\n"
assert r.cmd(b"a10 FETCH 1 (FLAGS))")[-1] == b"a10 BAD unbalanced parentheses\r\n"
assert r.cmd(b"a11 FETCH 99 FLAGS")[-1].startswith(b"a11 BAD ")
assert r.cmd(b"a12 STORE 1 +FLAGS (\\Deleted)")[-1] == b"a12 NO mailbox is read-only\r\n"
assert r.cmd(b"a13 EXPUNGE")[-1] == b"a13 NO mailbox is read-only\r\n"
assert r.cmd(b"a14 FETCH 1 (BODY[]")[-1] == b"a14 BAD unbalanced parentheses\r\n"
r.send(b"a15 NOOP " + b"x" * 70000 + b"\r\n")
assert r.f.readline() == b"* BAD line too long\r\n"
assert r.cmd(b"a16 NOOP")[-1] == b"a16 OK NOOP completed\r\n"
assert r.cmd(b"a17 LOGOUT")[-1] == b"a17 OK LOGOUT completed\r\n"
print("ok")
"#,
        ),
    );
    assert!(out.contains("ok"), "{out}");
    let after = tree(&maildir);
    assert_eq!(before, after, "the Maildir changed");
}

#[test]
fn condstore_keywords_list_status_utf7_names_and_rename_inbox() {
    let (inst, maildir, l) = setup("imap-condstore", &[ONE, TWO, THREE]);
    let out = inst.python(
        l.port,
        &script(include_str!(
            "../python/imapd/condstore_keywords_list_status_utf7_names_and_rename_inbox.py"
        )),
    );
    assert!(out.contains("ok"), "{out}");
    let index = std::fs::read_to_string(maildir.join(".Old").join("rqmail-index")).unwrap();
    assert!(index.starts_with("rqmail-index 1 "), "{index}");
}

#[test]
fn uids_and_mod_sequences_survive_a_restart_and_a_torn_index() {
    let (inst, maildir, l) = setup("imap-index", &[ONE, TWO]);
    let first = inst.python(
        l.port,
        &script(
            r#"
a = connect()
ok(a.select("INBOX"))
print(ok(a.uid("FETCH", "1:*", "(UID)")))
a.logout()
"#,
        ),
    );
    // A writer killed in the middle of an append leaves a torn last line.
    let index = maildir.join("rqmail-index");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&index)
        .unwrap();
    std::io::Write::write_all(&mut f, b"+ 77 999 0 - torn-line-without-newli").unwrap();
    drop(f);
    deliver(&inst, &maildir, &[THREE]);
    let second = inst.python(
        l.port,
        &script(
            r#"
a = connect()
ok(a.select("INBOX"))
print(ok(a.uid("FETCH", "1:*", "(UID)")))
a.logout()
"#,
        ),
    );
    let uids = |s: &str| -> Vec<u32> {
        s.split("UID ")
            .skip(1)
            .map(|x| {
                x.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    let (a, b) = (uids(&first), uids(&second));
    assert_eq!(a.len(), 2, "{first}");
    assert_eq!(b.len(), 3, "{second}");
    assert_eq!(&b[..2], &a[..], "UIDs changed");
    assert_eq!(b[2], a[1] + 1, "{second}");
    let text = std::fs::read_to_string(&index).unwrap();
    assert!(
        !text.contains("torn-line"),
        "the torn line was not cut: {text}"
    );
}

const MIXED: &[u8] = b"From: \"Alice A.\" <alice@remote.example>\nTo: bob@example.com, team: carol@x.example, dave@y.example;\nSubject: =?utf-8?q?caf=C3=A9?= report\nDate: Mon, 2 Feb 2026 10:00:00 +0000\nMessage-ID: <m1@remote.example>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\npreamble\n--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9 plain\n--inner\nContent-Type: text/html; charset=utf-8\n\n<p>caf\xc3\xa9</p>\n--inner--\n--outer\nContent-Type: application/pdf; name=\"r.pdf\"\nContent-Disposition: attachment; filename=\"r.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--outer\nContent-Type: message/rfc822\n\nFrom: Eve <eve@z.example>\nSubject: inner\n\ninner body\n--outer--\n";

#[test]
fn envelope_bodystructure_and_numbered_parts() {
    let (inst, _maildir, l) = setup("imap-mime", &[MIXED]);
    let out = inst.python(
        l.port,
        &script(include_str!(
            "../python/imapd/envelope_bodystructure_and_numbered_parts.py"
        )),
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn envelopes_and_structures_come_from_the_folder_cache_the_second_time() {
    let (inst, maildir, l) = setup("imap-cache", &[MIXED, ONE]);
    let out = inst.python(
        l.port,
        &script(include_str!(
            "../python/imapd/envelopes_and_structures_come_from_the_folder_cache_the_second_time.py"
        )),
    );
    assert!(out.contains("ok"), "{out}");
    assert!(maildir.join("rqmail-cache").exists());
}

#[test]
fn flag_changes_are_decided_on_the_current_state_and_a_changed_uidvalidity_ends_the_session() {
    let (inst, maildir, l) = setup("imap-race", &[ONE, TWO, THREE]);
    let quota_file = maildir.join("maildirsize");
    std::fs::write(&quota_file, "5000000S,100C\n0 0\n").unwrap();
    // The mailbox's owner (the tests may run as root, the sessions as the owner) updates it.
    let owner = std::fs::metadata(&maildir).unwrap();
    use std::os::unix::fs::MetadataExt;
    std::os::unix::fs::chown(&quota_file, Some(owner.uid()), Some(owner.gid())).unwrap();
    let out = inst.python(
        l.port,
        &script(
            include_str!("../python/imapd/flag_changes_are_decided_on_the_current_state_and_a_changed_uidvalidity_ends_the_session.py"),
        ),
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn a_non_synchronizing_literal_after_the_command_limit_is_never_read_as_commands() {
    let (inst, _maildir, l) = setup("imap-nonsync", &[ONE]);
    let out = inst.python(
        l.port,
        &script(
            r#"
r = Raw()
# 16 literals of 65,000 bytes, then a line that takes the command past 1 MB and ends in a
# non-synchronizing literal whose bytes look like a command.
data = b"a1 SEARCH"
for _ in range(16):
    data += b" TEXT {65000+}\r\n" + b"x" * 65000
data += b" TEXT " + b"y" * 60000 + b" {10+}\r\n" + b"zz1 NOOP\r\n"
r.send(data)
lines = r.rest()
assert lines[-1].startswith(b"* BYE "), lines
assert not any(l.startswith(b"zz1 ") for l in lines), lines
# A line too long to keep that ends in {n+}: the same.
r = Raw()
r.send(b"a2 NOOP " + b"x" * 70000 + b" {10+}\r\nzz2 NOOP\r\n")
lines = r.rest()
assert lines[-1].startswith(b"* BYE "), lines
assert not any(l.startswith(b"zz2 ") for l in lines), lines
print("ok")
"#,
        ),
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn search_decodes_encoded_words_transfer_encodings_and_charsets() {
    let subject = b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@remote.example>\nSubject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\nplain ascii body\n";
    let base64 = b"Subject: b64\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nZMOpasOgIHZ1LCBsJ8OpdMOpIGVzdCBsw6AK\n";
    let latin1 = b"Subject: latin1\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nna=EFve fa=E7ade\n";
    let (inst, _maildir, l) = setup("imap-decode", &[subject, base64, latin1]);
    let out = inst.python(
        l.port,
        &script(include_str!(
            "../python/imapd/search_decodes_encoded_words_transfer_encodings_and_charsets.py"
        )),
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn uids_that_run_out_give_a_new_uidvalidity_and_selected_sessions_hear_bye() {
    let (inst, maildir, l) = setup("imap-uids-out", &[ONE]);
    // The folder's next UID is the last there is (as an old UID list could leave it).
    let box_dir = maildir.join(".Box");
    let out = inst.python(
        l.port,
        &script("m = connect(); ok(m.create('Box')); ok(m.append('Box', None, None, b'Subject: a\\r\\n\\r\\na\\r\\n')); m.logout(); print('ok')"),
    );
    assert!(out.contains("ok"), "{out}");
    let index = box_dir.join("rqmail-index");
    let text = std::fs::read_to_string(&index).unwrap();
    let unique = text
        .lines()
        .find_map(|l| l.strip_prefix("+ 1 "))
        .and_then(|rest| rest.split(' ').nth(3))
        .unwrap()
        .to_string();
    let last = u32::MAX - 1;
    std::fs::write(
        &index,
        format!(
            "rqmail-index 1 7\nN {} 5\n+ {last} 5 0 - {unique}\n",
            u32::MAX
        ),
    )
    .unwrap();
    let out = inst.python(
        l.port,
        &script(&format!(
            r#"
a = Raw()
r = a.cmd(b"a1 SELECT Box")
assert any(b"[UIDVALIDITY 7]" in l for l in r), r
assert any(b"[UIDNEXT {max}]" in l for l in r), r
r = b"".join(a.cmd(b"a2 FETCH 1 (UID)"))
assert b"UID {last})" in r, r
# Another session adds a message: there is no UID left for it under UIDVALIDITY 7.
c = connect()
typ, data = c.append("Box", None, None, b"Subject: b\r\n\r\nb\r\n")
assert typ == "OK", data
validity, uid = re.search(rb"APPENDUID (\d+) (\d+)", data[0]).groups()
assert int(validity) != 7 and int(uid) == 2, data
typ, data = c.select("Box")
assert typ == "OK" and data == [b"2"], data
assert c.untagged_responses["UIDNEXT"] == [b"3"], c.untagged_responses
c.logout()
# The session that knew UIDVALIDITY 7 is told its UIDs mean nothing now.
a.send(b"a3 NOOP\r\n")
line = a.f.readline()
assert line.startswith(b"* BYE ") and b"UIDVALIDITY" in line, line
print("ok")
"#,
            max = u32::MAX,
            last = last
        )),
    );
    assert!(out.contains("ok"), "{out}");
}
