//! rqmail-imapd on a Maildir filled by a real instance, served per connection by the real
//! rqmail-tcpserver (so it greets with PREAUTH) and driven with Python's imaplib and raw
//! sockets: SELECT, byte-exact FETCH, flags in file names, SEARCH, COPY/MOVE, EXPUNGE,
//! APPEND, UID stability, two sessions, IDLE, bad input.

use rqmail_e2e::{Instance, Listener};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Helpers every script starts with.
const PRELUDE: &str = r#"
import imaplib, os, re, socket, time
PORT = int(os.environ["PORT"])
MAILDIR = os.path.join(os.environ["HOME_DIR"], "homes", "bob", "Maildir")

def connect():
    m = imaplib.IMAP4("127.0.0.1", PORT, timeout=30)
    assert m.state == "AUTH", m.state
    return m

def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data

def files(folder=""):
    """{unique: (sub/name)} of the messages in a folder ("" = INBOX)."""
    d = os.path.join(MAILDIR, "." + folder) if folder else MAILDIR
    found = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(d, sub)):
            if not name.startswith("."):
                found[name.split(":")[0]] = os.path.join(d, sub, name)
    return found

def wire(path):
    """The message as FETCH BODY[] must send it: every line ended by CR LF."""
    data = re.sub(rb"(?<!\r)\n", b"\r\n", open(path, "rb").read())
    return data if not data or data.endswith(b"\n") else data + b"\r\n"

class Raw:
    """A session on a bare socket, for exact replies."""
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        self.f = self.s.makefile("rb")
        self.greeting = self.f.readline()
    def send(self, data):
        self.s.sendall(data)
    def until(self, tag):
        lines = []
        while True:
            l = self.f.readline()
            assert l, lines
            lines.append(l)
            if l.startswith(tag + b" "):
                return lines
    def cmd(self, line):
        tag = line.split(b" ")[0]
        self.send(line + b"\r\n")
        return self.until(tag)
    def rest(self):
        """Every line until the server closes the connection."""
        lines = []
        while True:
            l = self.f.readline()
            if not l:
                return lines
            lines.append(l)
"#;

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
            r#"
m = connect()
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"3"], (typ, data)
assert m.untagged_responses.get("RECENT") == [b"3"], m.untagged_responses
assert not os.listdir(os.path.join(MAILDIR, "new")), "SELECT moves new/ to cur/"
uids = ok(m.uid("SEARCH", "ALL"))[0].split()
assert uids == [b"1", b"2", b"3"], uids

# FETCH: byte-exact BODY[], sizes, header fields, partials.
data = ok(m.fetch("1:3", "(UID RFC822.SIZE BODY.PEEK[])"))
by_unique = files()
bodies = {}
for item in data[::2]:
    meta, body = item
    uid = int(re.search(rb"UID (\d+)", meta).group(1))
    size = int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1))
    bodies[uid] = body
    assert size == len(body), (size, len(body))
wires = sorted(wire(p) for p in by_unique.values())
assert sorted(bodies.values()) == wires, (bodies, wires)
assert bodies[2].endswith(b"no newline at the end\r\n"), bodies[2]
assert all(p.endswith(":2,") for p in files().values()), files()
data = ok(m.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
assert data[0][1] == b"Subject: two\r\n  folded\r\n\r\n", data
data = ok(m.fetch("1", "(BODY.PEEK[TEXT]<5.3>)"))
assert data[0][0].endswith(b"BODY[TEXT]<5> {3}") and data[0][1] == b"one", data
data = ok(m.fetch("1", "(BODY.PEEK[HEADER])"))
assert data[0][1].startswith(b"Return-Path: ") and data[0][1].endswith(b"Subject: one\r\n\r\n"), data

# STORE renames the file; BODY[] (not PEEK) sets \Seen.
ok(m.store("2", "+FLAGS", "(\\Flagged)"))
f = files()
two = [p for p in f.values() if b"Subject: two" in open(p, "rb").read()][0]
assert two.endswith(":2,F"), two
ok(m.fetch("2", "(BODY[])"))
f = files()
two = [p for p in f.values() if b"Subject: two" in open(p, "rb").read()][0]
assert two.endswith(":2,FS"), two
ok(m.store("2", "-FLAGS.SILENT", "(\\Flagged)"))
assert [p for p in files().values() if p.endswith(":2,S")], files()

# SEARCH.
assert ok(m.search(None, "SEEN")) == [b"2"]
assert ok(m.search(None, "UNSEEN")) == [b"1 3"]
assert ok(m.search(None, "SUBJECT", "three")) == [b"3"]
assert ok(m.search(None, "FROM", "carol")) == [b"2"]
assert ok(m.search(None, "BODY", "needle")) == [b"3"]
assert ok(m.search(None, "OR", "SUBJECT", "one", "SUBJECT", "three")) == [b"1 3"]
assert ok(m.search(None, "NOT", "(SEEN)")) == [b"1 3"]
assert ok(m.search(None, "2:*")) == [b"2 3"]
assert ok(m.search(None, "LARGER", "1", "SMALLER", "100000")) == [b"1 2 3"]
assert ok(m.search(None, "SINCE", "1-Jan-2000", "BEFORE", "1-Jan-2100")) == [b"1 2 3"]
assert ok(m.search(None, "ON", "1-Jan-2000")) == [b""]

# CREATE a hierarchy, COPY and MOVE into it.
ok(m.create("Lists.rust"))
lists = ok(m.list('""', "*"))
assert b'(\\HasChildren) "." "Lists"' in lists, lists
assert b'(\\HasNoChildren) "." "Lists.rust"' in lists, lists
assert b'(\\HasNoChildren \\Sent) "." "Sent"' in lists, lists
assert not any(b"Lists.rust" in x for x in ok(m.list('""', "%")))
typ, data = m._simple_command("UID", "COPY", "1", "Lists.rust")
assert typ == "OK" and b"[COPYUID " in data[0] and data[0].split()[2:4] == [b"1", b"1]"], data
assert len(files("Lists.rust")) == 1
typ, data = m._simple_command("UID", "MOVE", "3", "Lists.rust")
assert typ == "OK", (typ, data)
assert len(files("Lists.rust")) == 2
assert len(files()) == 2
st = ok(m.status("Lists.rust", "(MESSAGES UIDNEXT UNSEEN)"))
assert st == [b'"Lists.rust" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)'], st
typ, data = m.copy("1", "Nowhere")
assert typ == "NO" and b"TRYCREATE" in data[0], data

# EXPUNGE removes the file.
ok(m.store("1", "+FLAGS", "(\\Deleted)"))
assert [p for p in files().values() if p.endswith(":2,T")]
assert m.untagged_responses.pop("EXPUNGE") == [b"3"], "MOVE expunged message 3"
typ, data = m.expunge()
assert typ == "OK" and data == [b"1"], data
assert len(files()) == 1

# APPEND with flags and a date.
typ, data = m.append("INBOX", "(\\Seen \\Answered)", '"01-Feb-2020 10:00:00 +0100"', b"Subject: appended\r\n\r\nhi\r\n")
assert typ == "OK" and b"[APPENDUID " in data[0], data
ok(m.noop())
appended = [p for p in files().values() if b"appended" in open(p, "rb").read()]
assert len(appended) == 1 and appended[0].endswith(":2,RS"), appended
assert int(os.stat(appended[0]).st_mtime) == 1580547600
assert open(appended[0], "rb").read() == b"Subject: appended\n\nhi\n"  # stored with LF, as delivered mail
uids_before = ok(m.uid("FETCH", "1:*", "(UID FLAGS)"))
m.logout()

# UIDs are stable across reconnects.
m = connect()
ok(m.select("INBOX"))
uids_after = ok(m.uid("FETCH", "1:*", "(UID FLAGS)"))
assert [re.search(rb"UID \d+", x).group(0) for x in uids_after] == [re.search(rb"UID \d+", x).group(0) for x in uids_before], (uids_before, uids_after)
assert re.search(rb"UID 4", uids_after[-1]), uids_after
ok(m.delete("Lists.rust"))
assert not os.path.exists(os.path.join(MAILDIR, ".Lists.rust"))
m.logout()
print("ok")
"#,
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
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script(
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
        &script(
            r#"
a = Raw()
b = Raw()
assert b"CONDSTORE" in a.greeting and b"LIST-STATUS" in a.greeting and b"ESEARCH" in a.greeting, a.greeting
r = a.cmd(b"e1 ENABLE CONDSTORE")
assert r[0] == b"* ENABLED CONDSTORE\r\n", r
r = a.cmd(b"s1 SELECT INBOX")
hms = [l for l in r if b"HIGHESTMODSEQ" in l]
assert hms, r
high = int(re.search(rb"HIGHESTMODSEQ (\d+)", hms[0]).group(1))
r = a.cmd(b"f1 FETCH 1:* (UID MODSEQ)")
seqs = {int(m.group(1)): int(m.group(2)) for m in (re.search(rb"UID (\d+) MODSEQ \((\d+)\)", l) for l in r) if m}
assert len(seqs) == 3 and max(seqs.values()) == high, (r, high)

# A keyword: new keywords are announced, kept in the file name, and searchable.
r = a.cmd(b"t1 STORE 2 +FLAGS ($Important)")
assert r[0].startswith(b"* FLAGS (") and b"$Important" in r[0], r
fetch = [l for l in r if b"FETCH" in l][0]
assert b"$Important" in fetch and b"MODSEQ (" in fetch, r
new_mod = int(re.search(rb"MODSEQ \((\d+)\)", fetch).group(1))
assert new_mod > high, (new_mod, high)
assert open(os.path.join(MAILDIR, "rqmail-keywords")).read() == "$Important\n"
assert any(n.endswith(":2,a") for n in os.listdir(os.path.join(MAILDIR, "cur"))), os.listdir(os.path.join(MAILDIR, "cur"))
r = a.cmd(b"k1 SEARCH KEYWORD $important")
assert r[0] == b"* SEARCH 2\r\n", r
r = a.cmd(b"k2 SEARCH UNKEYWORD $Important")
assert r[0] == b"* SEARCH 1 3\r\n", r
r = a.cmd(b"k3 SEARCH MODSEQ %d" % (high + 1))
assert r[0] == b"* SEARCH 2 (MODSEQ %d)\r\n" % new_mod, r
# ESEARCH (RFC 4731): one line with what was asked, in UID or sequence numbers.
r = a.cmd(b"e2 UID SEARCH RETURN (MIN MAX COUNT ALL) ALL")
uids3 = sorted(seqs)
assert r[0] == b'* ESEARCH (TAG "e2") UID MIN %d MAX %d COUNT 3 ALL %d:%d\r\n' % (uids3[0], uids3[2], uids3[0], uids3[2]), r
r = a.cmd(b"e3 SEARCH RETURN () UNKEYWORD $Important")
assert r[0] == b'* ESEARCH (TAG "e3") ALL 1,3\r\n', r
r = a.cmd(b"e4 SEARCH RETURN (COUNT MIN) SUBJECT nothing-like-this")
assert r[0] == b'* ESEARCH (TAG "e4") COUNT 0\r\n', r
r = a.cmd(b"e5 SEARCH RETURN (MAX) MODSEQ %d" % (high + 1))
assert r[0] == b'* ESEARCH (TAG "e5") MAX 2 MODSEQ %d\r\n' % new_mod, r
assert a.cmd(b"e6 SEARCH RETURN (SAVE) ALL")[-1].startswith(b"e6 BAD"), "SAVE is not offered"
# With only MIN (or MAX), MODSEQ is that message's; with COUNT or ALL, the highest matched.
r = a.cmd(b"e7 SEARCH RETURN (MIN) MODSEQ 1")
assert r[0] == b'* ESEARCH (TAG "e7") MIN 1 MODSEQ %d\r\n' % seqs[uids3[0]], (r, seqs)
r = a.cmd(b"e8 SEARCH RETURN (MIN COUNT) MODSEQ 1")
assert r[0] == b'* ESEARCH (TAG "e8") MIN 1 COUNT 3 MODSEQ %d\r\n' % new_mod, r

# Only what changed since a mod-sequence.
r = a.cmd(b"f2 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % high)
assert len([l for l in r if l.startswith(b"* ")]) == 1 and b"MODSEQ" in r[0], r

# Conditional STORE: the stale one is refused with MODIFIED.
r = a.cmd(b"t2 UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Flagged)" % high)
uids = sorted(seqs)
assert r[-1].startswith(b"t2 OK [MODIFIED %d]" % uids[1]), r
flagged = a.cmd(b"f3 SEARCH FLAGGED")
assert flagged[0] == b"* SEARCH 1 3\r\n", flagged

# The other session hears of the changes with the new mod-sequences once it enables CONDSTORE.
r = b.cmd(b"b1 SELECT INBOX (CONDSTORE)")
assert any(b"HIGHESTMODSEQ" in l for l in r), r
r = a.cmd(b"t3 STORE 3 -FLAGS (\\Flagged)")
r = b.cmd(b"b2 NOOP")
assert any(l.startswith(b"* 3 FETCH") and b"MODSEQ (" in l for l in r), r

# STATUS and LIST-STATUS with HIGHESTMODSEQ; names in modified UTF-7.
r = a.cmd(b"c1 CREATE \"Entw&APw-rfe\"")
assert r[-1].startswith(b"c1 OK"), r
assert os.path.isdir(os.path.join(MAILDIR, ".Entw&APw-rfe"))
r = a.cmd(b"c2 CREATE \"bad&name\"")
assert r[-1].startswith(b"c2 NO"), r
r = a.cmd(b'c3 CREATE "caf\xc3\xa9"')
assert r[-1].startswith(b"c3 OK") and os.path.isdir(os.path.join(MAILDIR, ".caf&AOk-")), r
r = a.cmd(b'l1 LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN HIGHESTMODSEQ))')
text = b"".join(r)
assert b'* LIST (\\HasNoChildren) "." "Entw&APw-rfe"' in text, text
assert b'* STATUS "Entw&APw-rfe" (MESSAGES 0 UNSEEN 0 HIGHESTMODSEQ' in text, text
assert re.search(rb'\* STATUS "INBOX" \(MESSAGES 3 UNSEEN 3 HIGHESTMODSEQ \d+\)', text), text
r = a.cmd(b'l2 LIST (SUBSCRIBED) "" "*"')
assert all(b"\\Subscribed" in l for l in r if l.startswith(b"* LIST")), r
assert any(b'"Sent"' in l for l in r), r

# RENAME INBOX moves its messages into the new folder and leaves INBOX empty.
a.cmd(b"u1 UNSELECT")
r = a.cmd(b"r1 RENAME INBOX Old")
assert r[-1].startswith(b"r1 OK"), r
r = a.cmd(b"r2 STATUS INBOX (MESSAGES)")
assert r[0] == b'* STATUS "INBOX" (MESSAGES 0)\r\n', r
r = a.cmd(b"r3 STATUS Old (MESSAGES)")
assert r[0] == b'* STATUS "Old" (MESSAGES 3)\r\n', r
print("ok")
"#,
        ),
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
        &script(
            r#"
r = Raw()
assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
t = b"".join(r.cmd(b"f1 FETCH 1 (ENVELOPE)"))
assert b'ENVELOPE ("Mon, 2 Feb 2026 10:00:00 +0000" "=?utf-8?q?caf=C3=A9?= report" (("Alice A." NIL "alice" "remote.example"))' in t, t
assert b'(NIL NIL "team" NIL)(NIL NIL "carol" "x.example")(NIL NIL "dave" "y.example")(NIL NIL NIL NIL)' in t, t
assert t.rstrip().endswith(b'NIL NIL NIL "<m1@remote.example>"))\r\nf1 OK FETCH completed'), t
t = b"".join(r.cmd(b"f2 FETCH 1 (BODYSTRUCTURE)"))
assert b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 15 0' in t, t
assert b'"ALTERNATIVE"' in t and b'"MIXED"' in t, t
assert b'("APPLICATION" "PDF" ("NAME" "r.pdf") NIL NIL "BASE64" 12' in t, t
assert b'("ATTACHMENT" ("FILENAME" "r.pdf"))' in t, t
assert b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT"' in t and b'"inner"' in t, t
t = b"".join(r.cmd(b"f3 FETCH 1 (BODY)"))
assert b"BODY ((" in t and b"ATTACHMENT" not in t, t
# Numbered parts, their MIME headers, the enclosed message's header and text.
def part(spec):
    lines = r.cmd(b"p FETCH 1 (BODY.PEEK[" + spec + b"])")
    t = b"".join(lines)
    m = re.search(rb"\{(\d+)\}\r\n", t)
    assert m, t
    return t[m.end():m.end() + int(m.group(1))]
v = part(b"1.1"); assert v == b"caf=C3=A9 plain", v
v = part(b"1.2"); assert v == b"<p>caf\xc3\xa9</p>", (b"1.2", v)
v = part(b"1.1.MIME"); assert v == b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", (b"1.1.MIME", v)
v = part(b"2"); assert v == b"JVBERi0xLjQK", (b"2", v)
v = part(b"3.HEADER"); assert v == b"From: Eve <eve@z.example>\r\nSubject: inner\r\n\r\n", (b"3.HEADER", v)
v = part(b"3.TEXT"); assert v == b"inner body", (b"3.TEXT", v)
v = part(b"3.HEADER.FIELDS (Subject)"); assert v == b"Subject: inner\r\n\r\n", (b"3.HEADER.FIELDS (Subject)", v)
v = part(b"HEADER.FIELDS.NOT (Return-Path Delivered-To Received To From Subject Date Message-ID MIME-Version)"); assert v == b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n', (b"HEADER.FIELDS.NOT (Return-Path Delivered-To Received To From Subject Date Message-ID MIME-Version)", v)
t = b"".join(r.cmd(b"p2 FETCH 1 (BODY.PEEK[9])"))
assert b"BODY[9] NIL" in t and t.endswith(b"p2 OK FETCH completed\r\n"), t
assert r.cmd(b"p3 FETCH 1 (BODY[0])")[-1].startswith(b"p3 BAD"), "part 0"
# Reading a part sets \Seen; BODY.PEEK did not.
assert b"\\Seen" not in b"".join(r.cmd(b"p4 FETCH 1 (FLAGS)"))
t = b"".join(r.cmd(b"p5 FETCH 1 (BODY[1.2]<1.3>)"))
assert b"BODY[1.2]<1> {3}\r\np>c" in t and b"\\Seen" in t, t
# imaplib's own parser accepts the structures.
m = connect()
ok(m.select("INBOX"))
typ, data = m.fetch("1", "(ENVELOPE BODYSTRUCTURE FLAGS)")
assert typ == "OK", data
print("ok")
"#,
        ),
    );
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn envelopes_and_structures_come_from_the_folder_cache_the_second_time() {
    let (inst, maildir, l) = setup("imap-cache", &[MIXED, ONE]);
    let out = inst.python(
        l.port,
        &script(
            r#"
r = Raw()
assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
first = r.cmd(b"f1 FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)")
cache = open(os.path.join(MAILDIR, "rqmail-cache"), "rb").read()
assert cache.startswith(b"rqmail-cache 2 "), cache[:40]
assert cache.count(b"\nE ") == 2 and cache.count(b"\nS ") == 2 and cache.count(b"\nB ") == 2, cache
# A second session answers the same, from the cache: prove it by changing a record
# (same length) behind the server's back.
s = Raw()
assert s.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
assert s.cmd(b"f1 FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)") == first
marked = cache.replace(b'"one"', b'"ONE"')
assert marked != cache
open(os.path.join(MAILDIR, "rqmail-cache"), "wb").write(marked)
t = b"".join(s.cmd(b"f2 FETCH 2 (ENVELOPE)"))
assert b'"ONE"' in t, t
# SEARCH on From/To/Cc/Bcc/Subject keeps those fields in the cache, and reads them there.
assert s.cmd(b"q1 SEARCH SUBJECT one")[0] == b"* SEARCH 2\r\n"
cache = open(os.path.join(MAILDIR, "rqmail-cache"), "rb").read()
assert cache.count(b"\nF ") == 2 and b"Subject: one\n" in cache, cache
open(os.path.join(MAILDIR, "rqmail-cache"), "wb").write(cache.replace(b"Subject: one\n", b"Subject: xyz\n"))
u = Raw()
assert u.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
assert u.cmd(b"q2 SEARCH SUBJECT xyz")[0] == b"* SEARCH 2\r\n"
assert u.cmd(b"q3 SEARCH OR FROM alice SUBJECT xyz")[0] == b"* SEARCH 1 2\r\n"
# Other fields still come from the message.
assert u.cmd(b"q4 SEARCH HEADER Message-ID m1@remote")[0] == b"* SEARCH 1\r\n"
print("ok")
"#,
        ),
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
            r#"
a = Raw(); b = Raw()
assert a.cmd(b"a1 SELECT INBOX")[-1].startswith(b"a1 OK")
assert b.cmd(b"b1 SELECT INBOX")[-1].startswith(b"b1 OK")
# ENABLE while selected says the HIGHESTMODSEQ the client was not told (RFC 7162 3.1).
r = a.cmd(b"a2 ENABLE CONDSTORE")
assert any(l.startswith(b"* OK [HIGHESTMODSEQ ") for l in r), r
m = re.search(rb"MODSEQ \((\d+)\)", b"".join(a.cmd(b"a3 FETCH 1 (MODSEQ)")))
seen_modseq = int(m.group(1))
# b flags message 1 behind a's back.
assert b.cmd(b"b2 STORE 1 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"b2 OK")
# a's conditional STORE tests the mod-sequence of now, not the one a last saw.
r = a.cmd(b"a4 STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % seen_modseq)
assert r[-1].startswith(b"a4 OK [MODIFIED 1]"), r
assert any(b"\\Flagged" in l and b"UID 1 " in l for l in r if l.startswith(b"* 1 FETCH")), r
assert all(b"\\Answered" not in l for l in r), r
# A non-conditional +FLAGS keeps b's \Flagged; with CONDSTORE the FETCH has UID and MODSEQ.
r = a.cmd(b"a5 STORE 1 +FLAGS (\\Seen)")
fetch = [l for l in r if l.startswith(b"* 1 FETCH")]
assert len(fetch) == 1 and b"\\Flagged" in fetch[0] and b"\\Seen" in fetch[0], r
assert b"UID 1 " in fetch[0] and b"MODSEQ (" in fetch[0], fetch
assert any(p.endswith(":2,FS") for p in files().values()), files()
# Reading a body sets \Seen, and the reply also tells what another session set meanwhile,
# even when \Seen was among it.
assert b.cmd(b"b6 STORE 2 +FLAGS.SILENT (\Flagged)")[-1].startswith(b"b6 OK")
r = b"".join(a.cmd(b"a12 FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY[1])"))
assert r.count(b"* 2 FETCH") == 1 and b"FLAGS (\\Flagged \\Seen" in r, r
assert b.cmd(b"b7 STORE 3 +FLAGS.SILENT (\Seen \Answered)")[-1].startswith(b"b7 OK")
r = b"".join(a.cmd(b"a13 FETCH 3 (BODY[1])"))
assert r.count(b"* 3 FETCH") == 1 and b"FLAGS (\\Answered \\Seen" in r and b"MODSEQ (" in r, r
assert b"\\Answered" not in b"".join(a.cmd(b"a14 NOOP")), "told twice"
assert b.cmd(b"b8 STORE 2:3 -FLAGS.SILENT (\Flagged \Answered \Seen)")[-1].startswith(b"b8 OK")
assert a.cmd(b"a15 NOOP")[-1].startswith(b"a15 OK")
# b flags message 2; a's quiet STORE on message 3 must not hide that from a's next NOOP.
assert b.cmd(b"b3 STORE 2 +FLAGS.SILENT (\\Draft)")[-1].startswith(b"b3 OK")
assert a.cmd(b"a6 STORE 3 +FLAGS.SILENT (\\Seen)")[-1].startswith(b"a6 OK")
r = a.cmd(b"a7 NOOP")
assert any(l.startswith(b"* 2 FETCH") and b"\\Draft" in l for l in r), r
# Both sessions expunge message 3: the quota counts it once.
assert a.cmd(b"a8 STORE 3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"a8 OK")
assert b.cmd(b"b4 NOOP")[-1].startswith(b"b4 OK")
r = a.cmd(b"a9 EXPUNGE")
assert r[-1].startswith(b"a9 OK") and b"* 3 EXPUNGE\r\n" in r, r
r = b.cmd(b"b5 EXPUNGE")
assert r[-1].startswith(b"b5 OK") and b"* 3 EXPUNGE\r\n" in r, r
size = open(os.path.join(MAILDIR, "maildirsize")).read()
assert size.startswith("5000000S,100C\n"), size
assert len([l for l in size.splitlines() if l.startswith("-")]) == 1, (size, r, files())
# Another session deletes the folder and makes it again: a's UIDs mean nothing now.
c = connect()
ok(c.create("Box"))
assert a.cmd(b"a10 SELECT Box")[-1].startswith(b"a10 OK")
ok(c.delete("Box")); ok(c.create("Box"))
ok(c.append("Box", None, None, b"Subject: new\r\n\r\nnew\r\n"))
a.send(b"a11 NOOP\r\n")
lines = a.rest()
assert len(lines) == 1 and lines[0].startswith(b"* BYE ") and b"UIDVALIDITY" in lines[0], lines
c.logout()
print("ok")
"#,
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
        &script(
            r#"
r = Raw()
assert r.cmd(b"a1 SELECT INBOX")[-1].startswith(b"a1 OK")
def search(tag, key, text):
    data = text.encode()
    return r.cmd(tag + b" SEARCH CHARSET UTF-8 " + key + b" {%d+}\r\n" % len(data) + data)[0]
# Encoded words in Subject and From, case-insensitively (Unicode).
assert search(b"s1", b"SUBJECT", "GRÜSSE") == b"* SEARCH\r\n"
assert search(b"s2", b"SUBJECT", "grüße aus köln") == b"* SEARCH 1\r\n"
assert search(b"s3", b"FROM", "müller") == b"* SEARCH 1\r\n"
# Again, from the folder's cache, which holds the decoded value: prove it by changing the
# record (same length) behind the server's back.
path = os.path.join(MAILDIR, "rqmail-cache")
cache = open(path, "rb").read()
assert "Subject: Grüße aus Köln\n".encode() in cache, cache
open(path, "wb").write(cache.replace("aus Köln".encode(), "aus Kölx".encode()))
assert search(b"s4", b"SUBJECT", "Kölx") == b"* SEARCH 1\r\n"
assert search(b"s5", b"HEADER SUBJECT", "Grüße") == b"* SEARCH 1\r\n"
# A base64 body, and a quoted-printable Latin-1 one.
assert search(b"b1", b"BODY", "l'été est là") == b"* SEARCH 2\r\n"
assert search(b"b2", b"BODY", "FAÇADE") == b"* SEARCH 3\r\n"
assert search(b"b3", b"TEXT", "naïve") == b"* SEARCH 3\r\n"
assert search(b"b4", b"TEXT", "jürgen") == b"* SEARCH 1\r\n"
# The raw bytes still match as before.
assert search(b"b5", b"BODY", "ZMOpasOg") == b"* SEARCH 2\r\n"
assert search(b"b6", b"BODY", "plain ascii") == b"* SEARCH 1\r\n"
print("ok")
"#,
        ),
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
