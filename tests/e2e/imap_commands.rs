//! Every IMAP4rev1 command (and the extensions rqmail-imapd announces) through the whole
//! chain: rqmail-tcpserver running `rqmail-login imap`, a checkpassword, then
//! rqmail-imapd, driven by Python's imaplib, with each reply checked against the files the
//! command leaves in the Maildir. Then IDLE hearing of mail sent through rqmail-smtpd, and
//! UIDs that stay put while imapd sessions are killed during a delivery burst.
//!
//! As in imap_clients.rs, the instance is a single-user one, so a fake checkpassword
//! stands in for the real one: it accepts joe/secret, enters joe's home and runs
//! `rqmail-imapd Maildir`. The front has IMAP_PLAINTEXT (a loopback rule would set it), so
//! imaplib logs in without TLS: TLS is tested in login_imap.rs and imap_clients.rs.

use rqmail_e2e::{Instance, LoginServer, wait_for};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Accepts joe/secret; enters HOME (substituted) and runs argv[1:].
/// Passwords in the clear on loopback, as the shipped rules allow.
const PLAINTEXT: &[(&str, &str)] = &[("IMAP_PLAINTEXT", "")];
/// Python helpers every client script starts with.
const PRELUDE: &str = r#"
import calendar, datetime, imaplib, json, os, re, socket, sys, time
PORT = int(os.environ["PORT"])
MAILDIR = os.environ["MAILDIR"]

def connect():
    m = imaplib.IMAP4("127.0.0.1", PORT, timeout=30)
    typ, data = m.login("joe", "secret")
    assert typ == "OK", (typ, data)
    return m

def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data

def no(result, code=None):
    typ, data = result
    assert typ == "NO", (typ, data)
    if code is not None:
        assert data[0].startswith(code), (code, data)
    return data

def take(m, name):
    """The untagged responses (or response codes) of one kind, removed."""
    return m.untagged_responses.pop(name, [])

def folder_dir(name):
    return MAILDIR if name == "INBOX" else os.path.join(MAILDIR, "." + name)

def files(name="INBOX"):
    """{unique name: path} of the messages in a folder."""
    d = folder_dir(name)
    found = {}
    for sub in ("new", "cur"):
        for f in os.listdir(os.path.join(d, sub)):
            if not f.startswith("."):
                found[f.split(":")[0]] = os.path.join(d, sub, f)
    return found

def info(path):
    """The Maildir info letters of a message file."""
    return path.split(":2,")[1] if ":2," in path else ""

def by_msgid(name="INBOX"):
    """{Message-ID: path} of the messages in a folder, read from the files."""
    out = {}
    for path in files(name).values():
        mid = re.search(rb"(?im)^Message-ID: *(<[^>]*>)", open(path, "rb").read())
        out[mid.group(1).decode()] = path
    return out

def wire(path):
    """A file as FETCH BODY[] sends it: every line ended by CR LF."""
    data = re.sub(rb"(?<!\r)\n", b"\r\n", open(path, "rb").read())
    return data if not data or data.endswith(b"\n") else data + b"\r\n"

def uid_map(m):
    """{UID: Message-ID} of the selected mailbox, in one UID FETCH."""
    out = {}
    for item in ok(m.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")):
        if not isinstance(item, tuple):
            continue
        uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
        mid = re.search(rb"<[^>]*>", item[1])
        out[uid] = mid.group(0).decode() if mid else None
    return out

def uid_set(text):
    """A sequence set of numbers (no *) as the list it stands for, in its order."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        a, b = int(a), int(b or a)
        out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out

def copyuid(text):
    """(validity, source UIDs, destination UIDs) of a [COPYUID ...] code."""
    mo = re.search(rb"COPYUID (\d+) ([\d:,]+) ([\d:,]+)", text)
    assert mo, text
    return int(mo.group(1)), uid_set(mo.group(2).decode()), uid_set(mo.group(3).decode())

def listing(m, reference, pattern, command="LIST"):
    """{name: set of attributes} of a LIST or LSUB reply."""
    typ, data = m._simple_command(command, reference, pattern)
    assert typ == "OK", (typ, data)
    out = {}
    for line in m.untagged_responses.pop(command, []):
        if line is None:
            continue
        mo = re.fullmatch(rb'\(([^)]*)\) "\." "?([^"]*)"?', line)
        assert mo, line
        out[mo.group(2).decode()] = set(mo.group(1).decode().split())
    return out

def status(m, name, items="(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"):
    data = ok(m.status(name, items))
    mo = re.fullmatch(rb'"?[^"]*"? \((.*)\)', data[0])
    assert mo, data
    words = mo.group(1).split()
    return {words[i].decode(): int(words[i + 1]) for i in range(0, len(words), 2)}

def after_expunges(uids, seqs):
    """The UIDs left after EXPUNGE responses (sequence numbers, each counted after the
    ones before it)."""
    left = list(uids)
    for seq in seqs:
        del left[int(seq) - 1]
    return left

def refused(f, *args):
    """True if the command got NO or BAD (which imaplib raises)."""
    try:
        typ, data = f(*args)
    except imaplib.IMAP4.error:
        return True
    assert typ == "NO", (typ, data)
    return True

def message(n, subject, extra=b"", body=b"body\r\n"):
    return (b"Message-ID: <%s@test>\r\nSubject: %s\r\n%s\r\n%s" % (n.encode(), subject, extra, body))
"#;

/// An instance with joe's Maildir (messages delivered through the queue) and the login
/// front serving it.
struct Setup {
    inst: Instance,
    maildir: PathBuf,
    front: LoginServer,
}

/// Makes the instance, delivers `messages` one by one (each has its own Message-ID), and
/// starts the front.
fn setup(name: &str, messages: &[Vec<u8>]) -> Setup {
    let mut inst = Instance::new(name);
    let homes = inst.add_users(&["joe"]);
    inst.install_fake_checkpassword(&homes[0]);
    inst.start();
    let maildir = homes[0].join("Maildir");
    for message in messages {
        let before = Instance::maildir_new(&maildir).len();
        assert_eq!(
            inst.queue_raw("alice@remote.example", &["joe@example.com"], message),
            0
        );
        inst.wait_for_mail(&maildir, before + 1);
    }
    let front = inst.login_server("imap", false, "rqmail-imapd", "Maildir", PLAINTEXT);
    Setup {
        inst,
        maildir,
        front,
    }
}

/// A delivered message `n`: `Message-ID: <n@test>`, a subject and a body.
fn delivered(n: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@remote.example>\nTo: joe@example.com\nMessage-ID: <{n}@test>\n\
         Subject: {subject}\n\nbody of {n}\nsecond line\n"
    )
    .into_bytes()
}

impl Setup {
    /// A client script (after PRELUDE) as a Command, with PORT and MAILDIR set.
    fn script(&self, body: &str) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg("-c")
            .arg(format!("{PRELUDE}\n{body}"))
            .env("PORT", self.front.port.to_string())
            .env("MAILDIR", &self.maildir);
        cmd
    }

    /// Runs a client script; returns its output, asserting that it printed "ok" last.
    fn python(&self, body: &str) -> String {
        let out = self.script(body).output().expect("python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.trim_end().ends_with("ok"),
            "python failed:\n{text}\nfront log:\n{}\nsend log:\n{}",
            self.front.log_text(),
            self.inst.log_text()
        );
        text
    }
}

#[test]
fn capability_noop_check_id_enable_namespace_and_logout_answer_as_the_rfcs_say() {
    let s = setup("imapcmd-any", &[delivered("m1", "one")]);
    s.python(
        r#"
m = connect()
caps = ok(m.capability())[0].split()
for c in [b"IMAP4rev1", b"LITERAL+", b"UIDPLUS", b"MOVE", b"IDLE", b"NAMESPACE", b"ID",
          b"ENABLE", b"UNSELECT", b"CHILDREN", b"CONDSTORE"]:
    assert c in caps, (c, caps)
# Logged in: no more login capabilities.
assert not [c for c in caps if c.startswith(b"AUTH=") or c in (b"STARTTLS", b"LOGINDISABLED")], caps
assert ok(m.noop()) == [b"NOOP completed"]

# ID (RFC 2971): the server's own list, whatever the client says.
ok(m.xatom("ID", '("name" "imaplib" "version" "3")'))
assert take(m, "ID") == [b'("name" "rqmail")'], m.untagged_responses
ok(m.xatom("ID", "NIL"))
assert take(m, "ID") == [b'("name" "rqmail")']

# NAMESPACE (RFC 2342): one personal namespace, "." as the separator.
assert ok(m.namespace()) == [b'(("" ".")) NIL NIL']

# ENABLE (RFC 5161): only what is known is enabled; CONDSTORE then shows in SELECT.
ok(m.enable("X-NOSUCH"))
assert take(m, "ENABLED") == [b""], m.untagged_responses
ok(m.enable("CONDSTORE"))
assert take(m, "ENABLED") == [b"CONDSTORE"], m.untagged_responses
ok(m.select("INBOX"))
assert take(m, "HIGHESTMODSEQ"), m.untagged_responses
# CHECK (§6.4.1) in the selected state: nothing to say.
assert ok(m.check()) == [b"CHECK completed"]
typ, data = m.logout()
assert typ == "BYE", (typ, data)

# Without ENABLE, SELECT says nothing of mod-sequences.
m = connect()
ok(m.select("INBOX"))
assert "HIGHESTMODSEQ" not in m.untagged_responses, m.untagged_responses
m.logout()

# LOGOUT by hand: the untagged BYE, then the tagged OK, then the connection closes.
s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
f = s.makefile("rb")
assert f.readline().startswith(b"* OK [CAPABILITY IMAP4rev1 ")
s.sendall(b"a LOGIN joe secret\r\n")
line = f.readline()
assert line.startswith(b"a OK [CAPABILITY IMAP4rev1 "), line
s.sendall(b"b NOOP\r\nc LOGOUT\r\n")
assert f.readline() == b"b OK NOOP completed\r\n"
line = f.readline()
assert line.startswith(b"* BYE "), line
assert f.readline() == b"c OK LOGOUT completed\r\n"
assert f.readline() == b"", "connection still open after LOGOUT"
print("ok")
"#,
    );
}

#[test]
fn create_delete_rename_subscribe_list_and_status_keep_the_folder_tree_consistent() {
    let s = setup(
        "imapcmd-folders",
        &[delivered("i1", "inbox one"), delivered("i2", "inbox two")],
    );
    let out = s.python(
        r#"
m = connect()
# CREATE a.b.c makes the parents (RFC 3501 §6.3.3), each a Maildir++ folder.
ok(m.create("a.b.c"))
for name in ("a", "a.b", "a.b.c"):
    d = folder_dir(name)
    for sub in ("cur", "new", "tmp"):
        assert os.path.isdir(os.path.join(d, sub)), (d, sub)
    assert os.path.exists(os.path.join(d, "maildirfolder")), d
no(m.create("a.b"), b"[ALREADYEXISTS]")
no(m.create("INBOX"), b"[ALREADYEXISTS]")

# LIST: * crosses the separator, % does not; the reference is prefixed to the pattern.
every = listing(m, '""', "*")
assert {"INBOX", "a", "a.b", "a.b.c", "Sent", "Trash", "Drafts", "Junk", "Archive"} <= set(every), every
assert every["a"] == {"\\HasChildren"} and every["a.b"] == {"\\HasChildren"}, every
assert every["a.b.c"] == {"\\HasNoChildren"}, every
top = listing(m, '""', "%")
assert "a" in top and "INBOX" in top and not [n for n in top if "." in n], top
assert set(listing(m, "a.", "%")) == {"a.b"}
assert set(listing(m, "a.", "*")) == {"a.b", "a.b.c"}
assert set(listing(m, '""', "a.%.c")) == {"a.b.c"}
assert set(listing(m, '""', "inbox")) == {"INBOX"}, "INBOX matches in any case"
assert listing(m, '""', "nosuch*") == {}
# An empty pattern asks for the separator (§6.3.8).
typ, data = m.list('""', '""')
assert typ == "OK" and data == [b'(\\Noselect) "." ""'], data

# SUBSCRIBE / UNSUBSCRIBE / LSUB, kept in the Maildir's subscriptions file.
ok(m.subscribe("a.b"))
ok(m.subscribe("a.b.c"))
subs = open(os.path.join(MAILDIR, "subscriptions")).read().split()
assert "a.b" in subs and "a.b.c" in subs and "INBOX" in subs, subs
assert set(listing(m, "a.", "*", "LSUB")) == {"a.b", "a.b.c"}
ok(m.unsubscribe("a.b"))
assert set(listing(m, "a.", "*", "LSUB")) == {"a.b.c"}
assert "a.b" not in open(os.path.join(MAILDIR, "subscriptions")).read().split()
assert "a.b" in listing(m, "a.", "*"), "unsubscribing does not delete"

# STATUS: every item, against SELECT and the files.
st = status(m, "INBOX")
assert st["MESSAGES"] == 2 and st["RECENT"] == 2 and st["UNSEEN"] == 2, st
assert len(files()) == 2
ok(m.select("INBOX"))
assert int(take(m, "UIDVALIDITY")[0]) == st["UIDVALIDITY"]
assert int(take(m, "UIDNEXT")[0]) == st["UIDNEXT"] == 3, st
ok(m.store("1", "+FLAGS", "(\\Seen)"))
ok(m.close())
st = status(m, "INBOX")
assert st["MESSAGES"] == 2 and st["RECENT"] == 0 and st["UNSEEN"] == 1, st
assert not os.listdir(os.path.join(MAILDIR, "new")), "SELECT took the messages out of new/"
no(m.status("nosuch", "(MESSAGES)"), b"[NONEXISTENT]")

# DELETE of a folder holding messages: allowed, and the messages go with it.
ok(m.create("Full"))
for i in range(2):
    ok(m.append("Full", None, None, message("full%d" % i, b"full")))
assert len(files("Full")) == 2
old_full = status(m, "Full")
ok(m.delete("Full"))
assert not os.path.exists(folder_dir("Full"))
assert "Full" not in listing(m, '""', "*")
no(m.select("Full"), b"[NONEXISTENT]")
no(m.delete("Full"), b"[NONEXISTENT]")
no(m.delete("INBOX"))
# A folder made again under the name is a new, empty one.
ok(m.create("Full"))
assert status(m, "Full")["MESSAGES"] == 0
assert not files("Full")

# DELETE of a folder with inferiors (§6.3.4): either refused, or its messages go and the
# name stays as \Noselect while the inferiors keep theirs.
ok(m.append("a", None, None, message("a1", b"in a")))
ok(m.append("a.b", None, None, message("ab1", b"in a.b")))
ok(m.append("a.b", None, None, message("ab2", b"in a.b")))
typ, data = m.delete("a")
if typ == "OK":
    print("DELETE of a folder with inferiors: OK, the name stays as \\Noselect")
    assert not os.path.exists(folder_dir("a")), "the messages of a are gone"
    lst = listing(m, '""', "a*")
    assert lst["a"] == {"\\Noselect", "\\HasChildren"}, lst
    assert lst["a.b"] == {"\\HasChildren"} and lst["a.b.c"] == {"\\HasNoChildren"}, lst
    no(m.select("a"))
    no(m.status("a", "(MESSAGES)"))
    # "It is an error to attempt to delete a name that has inferior hierarchical names
    # and also has the \Noselect attribute."
    no(m.delete("a"))
    # Made again, it is selectable and empty.
    ok(m.create("a"))
    assert listing(m, '""', "a")["a"] == {"\\HasChildren"}
    assert status(m, "a")["MESSAGES"] == 0
else:
    print("DELETE of a folder with inferiors: refused")
    assert typ == "NO", (typ, data)
    assert len(files("a")) == 1
    assert "\\Noselect" not in listing(m, '""', "a")["a"]
assert status(m, "a.b")["MESSAGES"] == 2 and len(files("a.b")) == 2
assert os.path.isdir(folder_dir("a.b.c"))

# RENAME of a folder with inferiors: they move with it, with their messages and UIDs.
ok(m.create("x.y.z"))
for folder, n in (("x", 2), ("x.y", 3), ("x.y.z", 1)):
    for i in range(n):
        ok(m.append(folder, None, None, message("%s-%d" % (folder, i), b"rename me")))
before = {}
for folder in ("x", "x.y", "x.y.z"):
    ok(m.select(folder))
    ok(m.store("1", "+FLAGS", "(\\Flagged)"))
    before[folder] = (status(m, folder), uid_map(m), sorted(files(folder)))
ok(m.close())
ok(m.rename("x", "p.w"))
lst = listing(m, '""', "*")
assert not [n for n in lst if n == "x" or n.startswith("x.")], lst
assert {"p", "p.w", "p.w.y", "p.w.y.z"} <= set(lst), lst
assert lst["p.w.y.z"] == {"\\HasNoChildren"} and lst["p.w"] == {"\\HasChildren"}, lst
for folder in ("x", "x.y", "x.y.z"):
    assert not os.path.exists(folder_dir(folder)), folder
    new = "p.w" + folder[1:]
    old_status, old_uids, old_files = before[folder]
    st = status(m, new)
    assert st["MESSAGES"] == old_status["MESSAGES"], (folder, st, old_status)
    # The files moved as they were (flags included).
    assert sorted(files(new)) == old_files, (folder, files(new))
    ok(m.select(new))
    uids = uid_map(m)
    assert sorted(uids.values()) == sorted(old_uids.values()), (uids, old_uids)
    # What a client caches under (name, UIDVALIDITY, UID) must still be right.
    if st["UIDVALIDITY"] == old_status["UIDVALIDITY"]:
        assert uids == old_uids, (folder, uids, old_uids)
        print("RENAME kept UIDVALIDITY and UIDs of", folder)
    assert st["UIDNEXT"] > max(uids), (st, uids)
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0], data
ok(m.close())
no(m.rename("nosuch", "other"), b"[NONEXISTENT]")
no(m.rename("a.b", "p.w"), b"[ALREADYEXISTS]")
m.logout()
print("ok")
"#,
    );
    eprintln!("{out}");
}

#[test]
fn a_folder_deleted_and_created_again_never_reuses_uidvalidity_and_uid() {
    let s = setup("imapcmd-validity", &[]);
    s.python(
        r#"
m = connect()
ok(m.create("Reborn"))
ok(m.append("Reborn", None, None, message("first-life", b"old")))
st1 = status(m, "Reborn")
ok(m.select("Reborn"))
old = uid_map(m)
ok(m.close())
ok(m.delete("Reborn"))
ok(m.create("Reborn"))
ok(m.append("Reborn", None, None, message("second-life", b"new")))
st2 = status(m, "Reborn")
ok(m.select("Reborn"))
new = uid_map(m)
# RFC 3501 §2.3.1.1: a client that cached (Reborn, UIDVALIDITY, UID) must not be handed
# another message under the same three.
same = [u for u in new if u in old and old[u] != new[u]]
assert st1["UIDVALIDITY"] != st2["UIDVALIDITY"] or not same, (
    "UIDVALIDITY %d kept, UID %s now names %s instead of %s"
    % (st1["UIDVALIDITY"], same, [new[u] for u in same], [old[u] for u in same]))
m.logout()
print("ok")
"#,
    );
}

#[test]
fn examine_is_read_only_close_expunges_unselect_does_not_and_uid_expunge_takes_only_its_uids() {
    let messages: Vec<Vec<u8>> = (1..=8)
        .map(|i| delivered(&format!("m{i}"), &format!("message {i}")))
        .collect();
    let s = setup("imapcmd-select", &messages);
    s.python(
        r#"
def present():
    """The Message-IDs of INBOX, by the files, sorted by number."""
    return sorted(by_msgid(), key=lambda k: int(k[2:-6]))

m = connect()
# EXAMINE: read-only, and it leaves \Recent alone (the files stay in new/).
typ, data = m.select("INBOX", readonly=True)
assert typ == "OK" and data == [b"8"], (typ, data)
assert "READ-ONLY" in m.untagged_responses, m.untagged_responses
assert take(m, "RECENT") == [b"8"]
assert len(os.listdir(os.path.join(MAILDIR, "new"))) == 8
before = sorted(files().values())
data = ok(m.fetch("1", "(BODY[])"))
assert data[0][1] == wire(by_msgid()["<m1@test>"]), data
assert b"\\Seen" not in data[0][0], data
data = ok(m.fetch("1:*", "(FLAGS)"))
assert not [d for d in data if b"\\Seen" in d], data
no(m.store("1", "+FLAGS", "(\\Seen)"))
no(m.expunge())
no(m.xatom("MOVE", "1", "Trash"))
assert sorted(files().values()) == before, "EXAMINE changed the Maildir"
# COPY out of a read-only mailbox is allowed.
ok(m.copy("1", "Trash"))
assert len(files("Trash")) == 1
ok(m.close())

# SELECT: read-write; the messages leave new/ and are \Recent in this session only.
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"8"], (typ, data)
assert "READ-WRITE" in m.untagged_responses, m.untagged_responses
assert take(m, "RECENT") == [b"8"]
assert not os.listdir(os.path.join(MAILDIR, "new"))
assert len(os.listdir(os.path.join(MAILDIR, "cur"))) == 8
ok(m.store("2,4", "+FLAGS", "(\\Deleted)"))
assert sorted(info(p) for p in files().values()) == [""] * 6 + ["T"] * 2, files()

# UNSELECT (RFC 3691) leaves \Deleted messages.
ok(m.unselect())
assert len(files()) == 8
# CLOSE of an EXAMINEd mailbox expunges nothing either.
ok(m.select("INBOX", readonly=True))
ok(m.close())
assert len(files()) == 8
# CLOSE of a SELECTed one removes them, silently (§6.4.2).
ok(m.select("INBOX"))
m.untagged_responses.clear()
ok(m.close())
assert "EXPUNGE" not in m.untagged_responses, m.untagged_responses
assert present() == ["<m1@test>", "<m3@test>", "<m5@test>", "<m6@test>", "<m7@test>", "<m8@test>"], present()
assert m.state == "AUTH"

# EXPUNGE: the \Deleted message goes, with its EXPUNGE response.
ok(m.select("INBOX"))
uids = uid_map(m)
assert uids == {1: "<m1@test>", 3: "<m3@test>", 5: "<m5@test>", 6: "<m6@test>", 7: "<m7@test>", 8: "<m8@test>"}, uids
ok(m.store("2", "+FLAGS", "(\\Deleted)"))
take(m, "EXPUNGE")
assert ok(m.expunge()) == [b"2"]
assert "<m3@test>" not in present()

# UID EXPUNGE (RFC 4315): of the \Deleted messages, only the UIDs named go.
ok(m.store("2:5", "+FLAGS", "(\\Deleted)"))   # UIDs 5 6 7 8
ok(m.uid("EXPUNGE", "6,8,1"))                 # 1 is not \Deleted: it stays
assert after_expunges([1, 5, 6, 7, 8], take(m, "EXPUNGE")) == [1, 5, 7], m.untagged_responses
assert present() == ["<m1@test>", "<m5@test>", "<m7@test>"], present()
assert sorted(info(p) for p in by_msgid().values()) == ["", "T", "T"]
assert ok(m.uid("SEARCH", "DELETED")) == [b"5 7"]
assert uid_map(m) == {1: "<m1@test>", 5: "<m5@test>", 7: "<m7@test>"}
# SELECT of a missing mailbox fails and leaves no mailbox selected.
no(m.select("nosuch"), b"[NONEXISTENT]")
assert m.state == "AUTH"
m.logout()
print("ok")
"#,
    );
}

#[test]
fn copy_move_and_their_uid_forms_report_the_destinations_real_uids_and_append_keeps_flags_and_date()
{
    let messages: Vec<Vec<u8>> = (1..=6)
        .map(|i| delivered(&format!("c{i}"), &format!("copy {i}")))
        .collect();
    let s = setup("imapcmd-copy", &messages);
    s.python(
        r#"
m = connect()
ok(m.create("Dest"))
# APPEND with flags (a keyword too) and an internal date.
typ, data = m.append("Dest", r"(\Seen \Draft $Label)", '"14-Jul-2021 08:30:00 +0200"', message("app", b"appended"))
assert typ == "OK", (typ, data)
mo = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
assert mo, data
dest_validity = int(mo.group(1))
assert status(m, "Dest")["UIDVALIDITY"] == dest_validity
appended = by_msgid("Dest")["<app@test>"]
assert info(appended) == "DSa", appended
assert open(os.path.join(folder_dir("Dest"), "rqmail-keywords")).read() == "$Label\n"
assert int(os.stat(appended).st_mtime) == calendar.timegm((2021, 7, 14, 6, 30, 0))
assert open(appended, "rb").read() == message("app", b"appended").replace(b"\r\n", b"\n")
ok(m.select("Dest"))
data = ok(m.uid("FETCH", mo.group(2).decode(), "(FLAGS INTERNALDATE)"))
assert b'INTERNALDATE "14-Jul-2021 06:30:00 +0000"' in data[0], data
for f in (b"\\Seen", b"\\Draft", b"$Label"):
    assert f in data[0], data
no(m.append("Nowhere", None, None, message("x", b"x")), b"[TRYCREATE]")

def check_copyuid(code, src_map, dest):
    """The COPYUID code names the destination's real UIDs, message for message."""
    validity, src, dst = copyuid(code)
    assert validity == status(m, dest)["UIDVALIDITY"], (code, dest)
    assert len(src) == len(dst), code
    m2 = connect()
    ok(m2.select(dest, readonly=True))
    dest_map = uid_map(m2)
    m2.logout()
    for s_uid, d_uid in zip(src, dst):
        assert dest_map[d_uid] == src_map[s_uid], (code, s_uid, d_uid, dest_map, src_map)
    return dst

ok(m.select("INBOX"))
inbox = uid_map(m)
assert inbox == {i: "<c%d@test>" % i for i in range(1, 7)}, inbox
ok(m.store("1", "+FLAGS", "(\\Flagged)"))

# COPY by sequence number: the source stays, the flags come along.
typ, data = m.copy("1:2", "Dest")
assert typ == "OK", (typ, data)
got = check_copyuid(data[0], inbox, "Dest")
assert len(files()) == 6 and len(files("Dest")) == 3
assert info(by_msgid("Dest")["<c1@test>"]) == "F"

# UID COPY of a set written out of order.
typ, data = m._simple_command("UID", "COPY", "5,3", "Dest")
assert typ == "OK", (typ, data)
got += check_copyuid(data[0], inbox, "Dest")
assert sorted(got) == sorted(set(got)) and len(files("Dest")) == 5
no(m.copy("1", "Nowhere"), b"[TRYCREATE]")

# MOVE by sequence number: COPYUID in an untagged OK, then EXPUNGE.
m.untagged_responses.clear()
typ, data = m.xatom("MOVE", "1", "Dest")
assert typ == "OK", (typ, data)
code = take(m, "COPYUID")
assert code, m.untagged_responses
got += check_copyuid(b"COPYUID " + code[0], inbox, "Dest")
assert take(m, "EXPUNGE") == [b"1"]
assert "<c1@test>" not in by_msgid() and "<c1@test>" in by_msgid("Dest")
assert sorted(by_msgid()) == ["<c2@test>", "<c3@test>", "<c4@test>", "<c5@test>", "<c6@test>"]

# UID MOVE of a range written backwards.
typ, data = m._simple_command("UID", "MOVE", "6:4", "Dest")
assert typ == "OK", (typ, data)
code = take(m, "COPYUID")
_, src, _ = copyuid(b"COPYUID " + code[0])
assert sorted(src) == [4, 5, 6], code
got += check_copyuid(b"COPYUID " + code[0], inbox, "Dest")
assert after_expunges([2, 3, 4, 5, 6], take(m, "EXPUNGE")) == [2, 3]
assert sorted(by_msgid()) == ["<c2@test>", "<c3@test>"], by_msgid()
assert uid_map(m) == {2: "<c2@test>", 3: "<c3@test>"}

# The destination: every message once, each UID once, UIDNEXT past them all.
ok(m.select("Dest"))
dest = uid_map(m)
assert sorted(dest.values()) == sorted(["<app@test>", "<c1@test>", "<c2@test>", "<c3@test>", "<c5@test>", "<c1@test>", "<c4@test>", "<c5@test>", "<c6@test>"]), dest
assert sorted(by_msgid("Dest")) == sorted(set(dest.values()))
st = status(m, "Dest")
assert st["MESSAGES"] == 9 == len(files("Dest")) and st["UIDNEXT"] > max(dest), (st, dest)
assert sorted(got) == sorted(set(got)), got
m.logout()
print("ok")
"#,
    );
}

/// APPENDs the SEARCH test's messages to INBOX, after a first one that is expunged so that
/// UIDs (2 to 6) differ from sequence numbers (1 to 5); prints nothing.
const SEARCH_MESSAGES: &str = r#"
lines = [b"line %04d of a larger body\r\n" % i for i in range(150)]
big = b"".join(lines)
MESSAGES = [
    # (internal date, Date header, subject, body)
    ("01-Feb-2020 10:00:00 +0000", b"Sat, 15 Jun 2019 12:00:00 +0000", b"alpha", b"short\r\n"),
    ("15-Mar-2021 23:30:00 +0000", b"Sat, 01 Jan 2022 09:00:00 +0000", b"beta",
     "Gr\u00fc\u00dfe aus K\u00f6ln\r\n".encode() + b"".join(lines[:70])),
    ("15-Mar-2021 00:10:00 +0000", b"Mon, 05 Mar 2018 10:00:00 +0000",
     "Caf\u00e9 cr\u00e8me".encode(), b"plain ascii body\r\n"),
    ("10-Jul-2022 12:00:00 +0000", b"Sun, 10 Jul 2022 11:00:00 +0000", b"gamma", big),
    ("20-Dec-2023 18:00:00 +0000", b"Wed, 20 Dec 2023 17:00:00 +0000", b"delta", b"last\r\n"),
]
m = connect()
ok(m.append("INBOX", r"(\Deleted)", None, message("dummy", b"dummy")))
for i, (internal, date, subject, body) in enumerate(MESSAGES):
    ok(m.append("INBOX", None, '"%s"' % internal, message("s%d" % (i + 1), subject, b"Date: " + date + b"\r\n", body)))
ok(m.select("INBOX"))
ok(m.expunge())
assert uid_map(m) == {i + 2: "<s%d@test>" % (i + 1) for i in range(5)}, uid_map(m)
SIZES = [len(message("s%d" % (i + 1), s, b"Date: " + d + b"\r\n", b)) for i, (_, d, s, b) in enumerate(MESSAGES)]

def search(*keys):
    return [int(n) for n in ok(m.search(None, *keys))[0].split()]

def uid_search(*keys):
    return [int(n) for n in ok(m.uid("SEARCH", *keys))[0].split()]
"#;

#[test]
fn search_by_internal_date_size_or_not_sequence_sets_uids_and_utf8_text() {
    let s = setup("imapcmd-search", &[]);
    s.python(&format!(
        "{SEARCH_MESSAGES}\n{}",
        r#"
# SINCE / BEFORE / ON compare the day of INTERNALDATE (§6.4.4).
assert search("SINCE", "15-Mar-2021") == [2, 3, 4, 5]
assert search("BEFORE", "15-Mar-2021") == [1]
assert search("ON", "15-Mar-2021") == [2, 3]
assert search("ON", "14-Mar-2021") == []
assert search("SINCE", "1-Jan-2022", "BEFORE", "1-Jan-2023") == [4]
assert refused(m.search, None, "SINCE", "32-Foo-2020")

# LARGER / SMALLER on RFC822.SIZE, which is the size sent.
fetched = ok(m.fetch("1:*", "(RFC822.SIZE)"))
assert [int(re.search(rb"RFC822.SIZE (\d+)", f).group(1)) for f in fetched] == SIZES, (fetched, SIZES)
for n in sorted(set(SIZES)) + [0, 10**7]:
    assert search("LARGER", str(n)) == [i + 1 for i, s in enumerate(SIZES) if s > n], n
    assert search("SMALLER", str(n)) == [i + 1 for i, s in enumerate(SIZES) if s < n], n
assert search("LARGER", str(SIZES[0] - 1), "SMALLER", str(SIZES[0] + 1)) == [1]

# OR, NOT, and their nesting with parentheses.
assert search("OR", "SUBJECT", "alpha", "SUBJECT", "delta") == [1, 5]
assert search("NOT", "SUBJECT", "alpha") == [2, 3, 4, 5]
assert search("NOT", "OR", "SUBJECT", "alpha", "SUBJECT", "delta") == [2, 3, 4]
assert search("OR", "(SINCE 1-Jan-2022 SMALLER %d)" % (SIZES[3]), "ON", "1-Feb-2020") == [1, 5]
assert search("OR", "NOT", "SINCE", "1-Jan-2021", "OR", "ON", "10-Jul-2022", "SUBJECT", "beta") == [1, 2, 4]

# Sequence sets: "*" is the last message, a range may be written backwards.
assert search("5:2") == [2, 3, 4, 5]
assert search("*:4") == [4, 5]
assert search("2,*") == [2, 5]
assert search("*") == [5]
assert search("1:2,4:*") == [1, 2, 4, 5]
assert [re.match(rb"(\d+) ", f).group(1) for f in ok(m.fetch("4:2", "(FLAGS)"))] == [b"2", b"3", b"4"]
assert refused(m.fetch, "7", "(FLAGS)")

# UID SEARCH answers UIDs; UID keys and * are UIDs (here one more than the number).
assert uid_search("SUBJECT", "beta") == [3]
assert uid_search("ALL") == [2, 3, 4, 5, 6]
assert uid_search("1:2") == [2, 3], "sequence numbers in UID SEARCH are still numbers"
assert uid_search("UID", "6:4") == [4, 5, 6]
assert uid_search("UID", "*") == [6]
assert search("UID", "3,5") == [2, 4]
assert uid_search("UID", "1") == []
assert [re.search(rb"UID (\d+)", f).group(1) for f in ok(m.uid("FETCH", "*:5", "(FLAGS)"))] == [b"5", b"6"]

# CHARSET UTF-8: a non-ASCII string (sent as a literal) in a header and in a body.
def utf8_search(key, text, uid=False):
    m.literal = text.encode()
    if uid:
        r = m.uid("SEARCH", "CHARSET", "UTF-8", key)
    else:
        r = m.search("UTF-8", key)
    return [int(n) for n in ok(r)[0].split()]
assert utf8_search("SUBJECT", "Caf\u00e9") == [3]
assert utf8_search("SUBJECT", "cr\u00e8me", uid=True) == [4]
assert utf8_search("BODY", "K\u00f6ln") == [2]
assert utf8_search("BODY", "Gr\u00fc\u00dfe") == [2]
assert utf8_search("TEXT", "\u00e8me") == [3]
assert utf8_search("BODY", "Caf\u00e9") == [], "the subject is no body text"
assert utf8_search("SUBJECT", "K\u00f6ln") == []
assert [int(n) for n in ok(m.search("US-ASCII", "SUBJECT", "gamma"))[0].split()] == [4]
typ, data = m.search("X-NOSUCH-CHARSET", "SUBJECT", "gamma")
assert typ == "NO" and data[0].startswith(b"[BADCHARSET"), (typ, data)
m.logout()
print("ok")
"#
    ));
}

#[test]
fn search_sent_dates_compare_the_date_header() {
    let s = setup("imapcmd-sent", &[]);
    s.python(&format!(
        "{SEARCH_MESSAGES}\n{}",
        r#"
# Date headers: 2019-06-15, 2022-01-01, 2018-03-05, 2022-07-10, 2023-12-20;
# internal dates: 2020-02-01, 2021-03-15, 2021-03-15, 2022-07-10, 2023-12-20.
got = {
    "SENTSINCE 1-Jan-2022": search("SENTSINCE", "1-Jan-2022"),
    "SENTBEFORE 1-Jan-2020": search("SENTBEFORE", "1-Jan-2020"),
    "SENTON 1-Jan-2022": search("SENTON", "1-Jan-2022"),
    "SENTON 15-Mar-2021": search("SENTON", "15-Mar-2021"),
}
want = {
    "SENTSINCE 1-Jan-2022": [2, 4, 5],
    "SENTBEFORE 1-Jan-2020": [1, 3],
    "SENTON 1-Jan-2022": [2],
    "SENTON 15-Mar-2021": [],
}
assert got == want, "got %r, want %r" % (got, want)
m.logout()
print("ok")
"#
    ));
}

#[test]
fn fetch_flags_internaldate_size_headers_and_partials_match_the_files() {
    let mut first = delivered("f1", "fetch one");
    first.extend_from_slice(b"\xc3\xa9t\xc3\xa9 8bit\n.leading dot\n");
    let s = setup(
        "imapcmd-fetch",
        &[
            first,
            delivered("f2", "fetch two"),
            b"Message-ID: <f3@test>\nSubject: no final newline\n\nlast line".to_vec(),
        ],
    );
    s.python(
        r#"
m = connect()
ok(m.select("INBOX"))
paths = [by_msgid()["<f%d@test>" % i] for i in (1, 2, 3)]

def internaldate(path):
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(os.stat(path).st_mtime))

# FLAGS, INTERNALDATE (the delivery time, the file's mtime) and RFC822.SIZE.
data = ok(m.fetch("1:*", "(FLAGS INTERNALDATE RFC822.SIZE)"))
assert len(data) == 3, data
for n, (item, path) in enumerate(zip(data, paths), 1):
    mo = re.fullmatch(rb'(\d+) \(FLAGS \(([^)]*)\) INTERNALDATE "([^"]+)" RFC822.SIZE (\d+)\)', item)
    assert mo, item
    assert int(mo.group(1)) == n and mo.group(2) == b"\\Recent", item
    assert mo.group(3).decode() == internaldate(path), (item, internaldate(path))
    body = ok(m.fetch(str(n), "(BODY.PEEK[])"))[0][1]
    assert body == wire(path), (body, wire(path))
    assert int(mo.group(4)) == len(body), (item, len(body))
assert ok(m.fetch("3", "(BODY.PEEK[])"))[0][1].endswith(b"last line\r\n")
assert all(info(p) == "" for p in files().values()), files()

# RFC822.HEADER: the header with its blank line, no \Seen.
header = wire(paths[0]).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
item = ok(m.fetch("1", "(RFC822.HEADER)"))[0]
assert item[0] == b"1 (RFC822.HEADER {%d}" % len(header) and item[1] == header, item
assert header.startswith(b"Return-Path: <alice@remote.example>\r\nDelivered-To: joe@example.com\r\n"), header

# BODY.PEEK[HEADER.FIELDS.NOT (...)]: every other field, folded lines kept whole.
item = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path DELIVERED-TO)])"))[0]
want, keep = b"", True
for l in header.split(b"\r\n\r\n")[0].split(b"\r\n"):
    if not l.startswith((b" ", b"\t")):
        keep = not re.match(rb"(?i)(received|return-path|delivered-to):", l)
    if keep:
        want += l + b"\r\n"
want += b"\r\n"
assert b"Received" in header and item[1] == want, (item, want)
assert item[1].startswith(b"From: Alice") and item[1].endswith(b"Subject: fetch one\r\n\r\n"), item
assert b"HEADER.FIELDS.NOT (RECEIVED RETURN-PATH DELIVERED-TO)]" in item[0].upper(), item
assert all(info(p) == "" for p in files().values()), "PEEK set a flag"

# BODY[TEXT]<0.10>: ten bytes of the text, and (not a PEEK) \Seen in the reply and the name.
m.untagged_responses.clear()
data = ok(m.fetch("1", "(BODY[TEXT]<0.10>)"))
item = data[0]
assert item[0].startswith(b"1 (") and b"BODY[TEXT]<0> {10}" in item[0], item
assert item[1] == b"body of f1", item
assert b"\\Seen" in data[1], data
assert info(by_msgid()["<f1@test>"]) == "S", files()
flags = ok(m.fetch("1", "(FLAGS)"))[0]
assert b"\\Seen" in flags, flags
# A partial past the end is empty; one across the end is cut there.
item = ok(m.fetch("2", "(BODY.PEEK[TEXT]<100000.10>)"))[0]
assert isinstance(item, tuple) and item[1] == b"" and item[0].endswith(b"BODY[TEXT]<100000> {0}"), item
text = wire(paths[1]).split(b"\r\n\r\n", 1)[1]
item = ok(m.fetch("2", "(BODY.PEEK[TEXT]<%d.100>)" % (len(text) - 4)))[0]
assert item[1] == text[-4:], (item, text)
assert info(by_msgid()["<f2@test>"]) == "", files()
m.logout()
print("ok")
"#,
    );
}

#[test]
fn idle_reports_a_message_sent_through_smtpd_within_a_second() {
    let s = setup("imapcmd-idle", &[delivered("i1", "before idle")]);
    let smtpd = s.inst.listen("rqmail-smtpd", &[], &[]);
    let out = s
        .script(
            r#"
import smtplib
SMTP_PORT = int(os.environ["SMTP_PORT"])
m = connect()
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
m.send(b"i1 IDLE\r\n")
line = m.readline()
assert line.startswith(b"+ "), line
# The SMTP transaction, ended by the reply to the message's final dot.
smtp = smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30)
smtp.ehlo("client.example")
refused = smtp.sendmail("alice@remote.example", ["joe@example.com"],
                        b"Message-ID: <idle@test>\r\nSubject: idle via smtp\r\n\r\nhello idler\r\n")
sent = time.monotonic()
assert refused == {}, refused
lines = []
while True:
    line = m.readline()
    assert line, ("connection closed", lines)
    lines.append(line)
    if re.fullmatch(rb"\* 2 EXISTS\r\n", line):
        break
    assert not line.startswith(b"i1 "), lines
delay = time.monotonic() - sent
smtp.quit()
print("EXISTS %.3f s after the SMTP transaction" % delay)
assert delay < 1.0, (delay, lines)
m.send(b"DONE\r\n")
line = m.readline()
while line.startswith(b"* "):
    line = m.readline()
assert line == b"i1 OK IDLE terminated\r\n", line
# The message IDLE announced is the one sent, as it lies in the Maildir.
data = ok(m.fetch("2", "(BODY.PEEK[])"))
assert data[0][1] == wire(by_msgid()["<idle@test>"]), data
assert b"Received: from " in data[0][1] and data[0][1].endswith(b"\r\n\r\nhello idler\r\n"), data
m.logout()
print("ok")
"#,
        )
        .env("SMTP_PORT", smtpd.port.to_string())
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim_end().ends_with("ok"),
        "{text}\nfront log:\n{}\nsend log:\n{}",
        s.front.log_text(),
        s.inst.log_text()
    );
}

/// How many messages the burst delivers.
const BURST: usize = 200;

/// A watcher: sessions that SELECT INBOX over and over and record, for every message, the
/// UID it was first seen with, until the file STOP exists. A session killed under it is
/// replaced by a new one. Each SELECT's UIDs must be ascending, the messages it shows for
/// the first time must have UIDs above every UID seen before, no UID may name two messages
/// nor a message change its UID, and UIDVALIDITY must not change. Writes what it saw to
/// OUT as JSON.
const WATCHER: &str = r#"
STOP, OUT = os.environ["STOP"], os.environ["OUT"]
first_uid = {}          # Message-ID -> UID
validity = None
selects = reconnects = rounds = 0
highest = 0
ready = False
while True:
    stopping = os.path.exists(STOP)
    try:
        try:
            m = connect()
        except imaplib.IMAP4.error as e:
            # imapd killed before it answered the LOGIN: the front says so.
            assert "[UNAVAILABLE]" in str(e), e
            raise EOFError(e)
        for _ in range(5):
            typ, data = m.select("INBOX")
            assert typ == "OK", (typ, data)
            v = int(m.untagged_responses["UIDVALIDITY"][0])
            assert validity in (None, v), ("UIDVALIDITY changed", validity, v)
            validity = v
            snapshot = []
            if int(data[0]) > 0:
                for item in ok(m.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")):
                    if isinstance(item, tuple):
                        uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                        snapshot.append((uid, re.search(rb"<[^>]*>", item[1]).group(0).decode()))
            uids = [u for u, _ in snapshot]
            assert uids == sorted(set(uids)), ("UIDs not ascending", uids)
            fresh = [(u, mid) for u, mid in snapshot if mid not in first_uid]
            for u, mid in snapshot:
                if mid in first_uid:
                    assert first_uid[mid] == u, ("UID changed", mid, first_uid[mid], u)
            taken = set(first_uid.values())
            for u, mid in fresh:
                assert u > highest, ("a new message below a UID seen before", u, mid, highest)
                assert u not in taken, ("UID used twice", u, mid)
            for u, mid in fresh:
                first_uid[mid] = u
            rounds += bool(fresh)
            highest = max([highest] + uids)
            selects += 1
            if not ready:
                print("ready", flush=True)
                ready = True
        m.logout()
    except (imaplib.IMAP4.abort, OSError, EOFError) as e:
        reconnects += 1
        continue
    if stopping:
        break
json.dump({"validity": validity, "uids": first_uid, "selects": selects,
           "reconnects": reconnects, "rounds": rounds}, open(OUT, "w"))
print("ok")
"#;

/// The pids of this instance's rqmail-imapd processes (found in /proc by their argv[0]).
fn imapd_pids(inst: &Instance) -> Vec<i32> {
    let program = inst.bin("rqmail-imapd");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or(b"");
        if argv0 == program.as_os_str().as_encoded_bytes() {
            pids.push(pid);
        }
    }
    pids
}

/// A small xorshift generator: the kill times need to vary, not to be good randomness.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn uids_stay_stable_while_sessions_are_killed_during_a_delivery_burst() {
    let s = setup("imapcmd-burst", &[]);
    let stop = s.inst.home.join("stop-watchers");
    // Two watchers, so that two sessions also race each other to give the UIDs.
    let mut watchers = Vec::new();
    for n in 0..2 {
        let out = s.inst.home.join(format!("watcher-{n}.json"));
        let mut child = s
            .script(WATCHER)
            .env("STOP", &stop)
            .env("OUT", &out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            let out = child.wait_with_output().unwrap();
            panic!(
                "watcher {n} not ready: {line}{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                s.front.log_text()
            );
        }
        watchers.push((child, stdout, out));
    }

    // The burst, through rqmail-queue, while sessions are killed at random moments.
    let delivering = Arc::new(AtomicBool::new(true));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (delivering, errors) = (delivering.clone(), errors.clone());
        let inst_home = s.inst.home.clone();
        let queue = s.inst.bin("rqmail-queue");
        std::thread::spawn(move || {
            for i in 0..BURST {
                let message =
                    format!("Message-ID: <burst{i}@test>\nSubject: burst {i}\n\nmessage {i}\n");
                let status = queue_one(&queue, &inst_home, message.as_bytes());
                if status != 0 {
                    errors.lock().unwrap().push(format!("queue {i}: {status}"));
                }
            }
            delivering.store(false, Ordering::SeqCst);
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill schedule seed {seed}");
    let mut random = Random(seed);
    let mut kills = 0;
    let count = || {
        ["new", "cur"]
            .iter()
            .map(|d| {
                std::fs::read_dir(s.maildir.join(d))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut delivered_at = None;
    // Keep killing until everything is delivered, and a second more.
    while delivered_at.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(1)) {
        assert!(
            Instant::now() < deadline,
            "burst not delivered: {} of {BURST}\n{}",
            count(),
            s.inst.log_text()
        );
        std::thread::sleep(Duration::from_millis(5 + random.below(60)));
        let pids = imapd_pids(&s.inst);
        if !pids.is_empty() {
            let pid = pids[random.below(pids.len() as u64) as usize];
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
            {
                kills += 1;
            }
        }
        if delivered_at.is_none() && !delivering.load(Ordering::SeqCst) && count() >= BURST {
            delivered_at = Some(Instant::now());
        }
    }
    sender.join().unwrap();
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
    std::fs::write(&stop, "").unwrap();

    let mut seen = Vec::new();
    for (n, (mut child, mut stdout, out)) in watchers.into_iter().enumerate() {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(
            status.success() && rest.trim_end().ends_with("ok"),
            "watcher {n} failed (seed {seed}, {kills} kills):\n{rest}{err}\nfront log:\n{}",
            s.front.log_text()
        );
        seen.push(std::fs::read_to_string(&out).unwrap());
    }
    assert!(kills >= 10, "only {kills} sessions killed");

    // A new session sees every message, each with the UID it was first seen with.
    let report = s
        .script(
            r#"
BURST = int(os.environ["BURST"])
watchers = [json.loads(t) for t in os.environ["SEEN"].split("\n@@\n")]
m = connect()
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"%d" % BURST], (typ, data)
validity = int(m.untagged_responses["UIDVALIDITY"][0])
uids = uid_map(m)
assert sorted(uids.values()) == sorted("<burst%d@test>" % i for i in range(BURST)), uids
first = {mid: uid for uid, mid in uids.items()}
for n, w in enumerate(watchers):
    assert w["validity"] == validity, ("UIDVALIDITY changed", n, w["validity"], validity)
    changed = {mid: (uid, first.get(mid)) for mid, uid in w["uids"].items() if first.get(mid) != uid}
    assert not changed, ("UIDs changed", n, changed)
    print("watcher %d: %d messages found in %d of %d SELECTs, %d sessions lost" % (n, len(w["uids"]), w["rounds"], w["selects"], w["reconnects"]))
# The UIDs were given while mail kept coming, not all at the end.
assert max(w["rounds"] for w in watchers) >= 3, watchers
# No UID names two messages (the map would have fewer entries) and UIDNEXT is past them.
assert len(uids) == BURST
st = status(m, "INBOX")
assert st["UIDVALIDITY"] == validity and st["UIDNEXT"] > max(uids), st
m.logout()
print("ok")
"#,
        )
        .env("SEEN", seen.join("\n@@\n"))
        .env("BURST", BURST.to_string())
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(
        report.status.success() && text.trim_end().ends_with("ok"),
        "final check failed (seed {seed}, {kills} kills):\n{text}\nfront log:\n{}",
        s.front.log_text()
    );
    eprintln!("{kills} imapd sessions killed\n{text}");
    // No session is left behind.
    assert!(wait_for(Duration::from_secs(5), || imapd_pids(&s.inst).is_empty()));
}

/// Queues one message for joe through rqmail-queue (as Instance::queue_raw, which needs
/// the Instance on this thread).
fn queue_one(queue: &Path, home: &Path, message: &[u8]) -> i32 {
    let (env_read, env_write) = nix::unistd::pipe().unwrap();
    let mut child = rqmail_e2e::command(queue)
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(env_read))
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(message);
    drop(stdin);
    let mut env = std::fs::File::from(env_write);
    let _ = env.write_all(b"Falice@remote.example\0Tjoe@example.com\0\0");
    drop(env);
    child.wait().unwrap().code().unwrap_or(-1)
}
