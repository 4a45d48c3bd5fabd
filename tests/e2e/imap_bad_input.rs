//! Hostile and broken IMAP clients, spoken by hand over raw sockets to the whole chain:
//! rqmail-tcpserver running `rqmail-login imap`, a checkpassword, then rqmail-imapd on a
//! Maildir filled by a real instance. Unbalanced parentheses, literals over the limits
//! (synchronizing and not), unknown commands, commands in the wrong state, a client that
//! vanishes inside an APPEND literal, a 1 MB line, and EXPUNGE responses while another
//! session expunges. After each, the session (or a new one) must still work and the
//! Maildir on disk must hold exactly what it should.
//!
//! The front gets `IMAP_PLAINTEXT` (passwords in the clear, as the rules allow on
//! loopback), so that the scripts can speak the protocol byte by byte; a fake
//! checkpassword accepts joe/secret and runs `rqmail-imapd Maildir` in joe's home.

use rqmail_e2e::{Instance, LoginServer};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Accepts joe/secret; enters HOME (substituted) and runs argv[1:].
/// Passwords in the clear on loopback, as the shipped rules allow.
const PLAINTEXT: &[(&str, &str)] = &[("IMAP_PLAINTEXT", "")];
const ONE: &[u8] = b"From: Alice <alice@remote.example>\nSubject: one\n\nfirst\n";
const TWO: &[u8] = b"From: Carol <carol@remote.example>\nSubject: two\n\nsecond\n";
const THREE: &[u8] = b"From: Dave <dave@remote.example>\nSubject: three\n\nthird\n";
const FOUR: &[u8] = b"From: Erin <erin@remote.example>\nSubject: four\n\nfourth\n";

/// An instance with joe's Maildir holding `messages` (delivered through the queue, then
/// moved to cur/ by a first session so that later snapshots are stable) and the server.
fn setup(name: &str, messages: &[&[u8]]) -> (Instance, PathBuf, LoginServer) {
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
    let server = inst.login_server("imap", false, "rqmail-imapd", "Maildir", PLAINTEXT);
    python(
        &server,
        &maildir,
        "r = Raw(); assert r.last(b'a SELECT INBOX').startswith(b'a OK'); r.cmd(b'z LOGOUT')",
    );
    server.wait_idle_and_clean();
    (inst, maildir, server)
}

/// Helpers every script starts with.
const PRELUDE: &str = r#"
import os, re, socket, threading, time
PORT = int(os.environ["PORT"])
MAILDIR = os.environ["MAILDIR"]

class Raw:
    """A session on a bare socket; logged in unless told otherwise."""
    def __init__(self, login=True):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
        self.f = self.s.makefile("rb")
        self.greeting = self.f.readline()
        assert self.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 "), self.greeting
        if login:
            lines = self.cmd(b"L LOGIN joe secret")
            assert lines[-1].startswith(b"L OK "), lines
    def send(self, data):
        self.s.sendall(data)
    def line(self):
        l = self.f.readline()
        assert l, "connection closed"
        return l
    def until(self, tag):
        """The lines up to and with the tagged reply."""
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag + b" "):
                return lines
    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.until(line.split(b" ")[0])
    def last(self, line):
        return self.cmd(line)[-1]
    def closed_within(self, seconds):
        """Reads what is left until the server closes; None if it keeps the socket open."""
        self.s.settimeout(seconds)
        rest = b""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return rest
                rest += chunk
        except socket.timeout:
            return None
        except ConnectionResetError:
            return rest

def folder_dir(folder):
    return os.path.join(MAILDIR, "." + folder) if folder else MAILDIR

def messages(folder=""):
    """The folder's message files (new/ and cur/), as sub/name."""
    d = folder_dir(folder)
    return sorted(sub + "/" + n for sub in ("new", "cur")
                  for n in os.listdir(os.path.join(d, sub)) if not n.startswith("."))

def tmp(folder=""):
    return sorted(os.listdir(os.path.join(folder_dir(folder), "tmp")))

def flags(r, seq):
    """The FLAGS of message `seq`, fetched in session r."""
    lines = r.cmd(b"f FETCH %d (FLAGS)" % seq)
    assert lines[-1].startswith(b"f OK"), lines
    fetched = [l for l in lines if l.startswith(b"* %d FETCH" % seq)]
    assert len(fetched) == 1, lines
    return re.search(rb"FLAGS \(([^)]*)\)", fetched[0]).group(1)
"#;

/// Runs a Python 3 script (after PRELUDE); returns its output, asserting it succeeded.
fn python(server: &LoginServer, maildir: &Path, script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .env("PORT", server.port.to_string())
        .env("MAILDIR", maildir)
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python failed:\n{text}\nserver log:\n{}",
        server.log_text()
    );
    text
}

/// Every file under `dir` with its contents, for checking that nothing changed.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        // The folder's cache (envelopes, search fields) may be written by any command that
        // reads messages; it holds nothing that is not in the messages.
        if path.file_name().is_some_and(|n| n == "rqmail-cache") {
            continue;
        }
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// The names of the files in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The names of a snapshot's files directly in `dir`, sorted.
fn names_in(snapshot: &[(PathBuf, Vec<u8>)], dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = snapshot
        .iter()
        .filter(|(p, _)| p.parent() == Some(dir))
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that the Maildir is as it was, naming the files that differ.
fn assert_unchanged(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)]) {
    if before == after {
        return;
    }
    let names = |t: &[(PathBuf, Vec<u8>)]| -> Vec<String> {
        t.iter().map(|(p, _)| p.display().to_string()).collect()
    };
    panic!(
        "the Maildir changed:\nbefore: {:#?}\nafter: {:#?}",
        names(before),
        names(after)
    );
}

#[test]
fn unbalanced_parentheses_in_fetch_store_and_search_get_bad_and_change_nothing() {
    let (_inst, maildir, server) = setup("imapbad-parens", &[ONE, TWO]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [
    b"a1 FETCH 1 (FLAGS",
    b"a2 FETCH 1 FLAGS)",
    b"a3 FETCH 1:* (FLAGS (UID)",
    b"a4 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
    b"a5 STORE 1 +FLAGS (\\Seen",
    b"a6 STORE 1 +FLAGS \\Seen)",
    b"a7 STORE 1 FLAGS ((\\Seen)",
    b"a8 SEARCH (OR SEEN UNSEEN",
    b"a9 SEARCH SEEN)",
    b"a10 SEARCH ((ALL)",
    b"a11 UID FETCH 1 (FLAGS",
    b"a12 UID STORE 1 +FLAGS (\\Deleted",
    b"a13 UID SEARCH (ALL",
    b"a14 FETCH 1 )FLAGS(",
]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert lines[-1].startswith(tag + b" BAD "), (probe, lines)
    # Nothing else: no FETCH data, no SEARCH result for a command that was refused.
    assert len(lines) == 1, (probe, lines)
# The session goes on, and no flag was set by the refused STOREs.
assert flags(r, 1) == b"", flags(r, 1)
lines = r.cmd(b"b SEARCH ALL")
assert lines == [b"* SEARCH 1 2\r\n", b"b OK SEARCH completed\r\n"], lines
assert r.last(b"c LOGOUT").startswith(b"c OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}

#[test]
fn synchronizing_literals_over_the_limit_are_refused_unread_and_the_session_goes_on() {
    let (_inst, maildir, server) = setup("imapbad-literal", &[ONE]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [
    b"a1 APPEND INBOX {100000000}",
    b"a2 APPEND INBOX (\\Seen) {100000000}",
    b"a3 SEARCH SUBJECT {100000000}",
    b"a4 CREATE {100000000}",
    b"a5 FETCH 1 (BODY[HEADER.FIELDS ({100000000}",
]:
    tag = probe.split(b" ")[0]
    start = time.monotonic()
    r.send(probe + b"\r\n")
    # No "+ go ahead": the refusal comes at once, without the server waiting for the
    # 100 MB.
    line = r.line()
    assert re.match(tag + rb" (NO|BAD) ", line), (probe, line)
    assert time.monotonic() - start < 5, time.monotonic() - start
    # Had the server taken what follows as the literal, this would get no reply.
    assert r.last(b"n NOOP") == b"n OK NOOP completed\r\n"
# A literal under the limit still works.
r.send(b"c SEARCH SUBJECT {3}\r\n")
assert r.line().startswith(b"+ ")
r.send(b"one\r\n")
assert r.until(b"c") == [b"* SEARCH 1\r\n", b"c OK SEARCH completed\r\n"]
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}

#[test]
fn a_non_synchronizing_literal_over_the_limit_gets_a_reply_then_a_clean_close() {
    let (_inst, maildir, server) = setup("imapbad-literal-plus", &[ONE]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
start = time.monotonic()
r.send(b"a1 APPEND INBOX {100000000+}\r\n")
# LITERAL+: the client sends the bytes without waiting; a server that stops reading
# must not leave it blocked forever, nor hang itself.
def flood():
    try:
        for _ in range(16):
            r.s.sendall(b"x" * 65536)
    except OSError:
        pass
threading.Thread(target=flood, daemon=True).start()
rest = r.closed_within(15)
took = time.monotonic() - start
assert rest is not None, "the server neither answered nor closed within 15 s"
lines = rest.split(b"\r\n")
# RFC 7888 section 4: refuse with a tagged BAD or NO ([TOOBIG]), or say * BYE, then close.
assert any(re.match(rb"(a1 (BAD|NO)|\* BYE) ", l) for l in lines), rest[:300]
print("closed after %.1f s with %r" % (took, rest[:200]))
# The server lives on: a new session works.
r = Raw()
assert r.last(b"s SELECT INBOX") .startswith(b"s OK")
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}

#[test]
fn a_non_synchronizing_literal_over_the_limit_neither_hangs_nor_crashes_the_server() {
    let (_inst, maildir, server) = setup("imapbad-literal-plus-close", &[ONE]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
r.send(b"a1 APPEND INBOX {100000000+}\r\n")
def flood():
    try:
        for _ in range(16):
            r.s.sendall(b"x" * 65536)
    except OSError:
        pass
threading.Thread(target=flood, daemon=True).start()
rest = r.closed_within(15)
assert rest is not None, "the server neither answered nor closed within 15 s"
# Whatever it said, it accepted nothing: no tagged OK, no continuation.
assert not re.search(rb"a1 OK|^\+ ", rest, re.M), rest[:300]
r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}

#[test]
fn unknown_commands_get_bad_and_the_session_goes_on() {
    let (_inst, maildir, server) = setup("imapbad-unknown", &[ONE]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
# Before login, in rqmail-login.
r = Raw(login=False)
assert r.last(b"p1 XYZZY").startswith(b"p1 BAD "), "front"
assert r.last(b"p2 FETCHX 1 FLAGS").startswith(b"p2 BAD ")
# After login, in rqmail-imapd.
lines = r.cmd(b"L LOGIN joe secret")
assert lines[-1].startswith(b"L OK "), lines
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [
    b"a1 XYZZY",
    b"a2 XYZZY with arguments (and parens)",
    b"a3 UID XYZZY 1",
    b"a4 UID",
    b"a5 UID SELECT INBOX",
    b"a6 FETCHX 1 FLAGS",
    b"a7 STARTTLS",
    b"a8 AUTHENTICATE PLAIN",
]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert len(lines) == 1 and lines[0].startswith(tag + b" BAD "), (probe, lines)
assert r.last(b"n NOOP") == b"n OK NOOP completed\r\n"
assert flags(r, 1) == b"\\Recent" or flags(r, 1) == b"", flags(r, 1)
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}

#[test]
fn commands_in_the_wrong_state_get_bad_or_no() {
    let (_inst, maildir, server) = setup("imapbad-state", &[ONE, TWO]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
r = Raw(login=False)
# Not authenticated: the front refuses what needs a login.
for probe in [b"p1 SELECT INBOX", b"p2 EXAMINE INBOX", b"p3 FETCH 1 FLAGS",
              b"p4 LIST \"\" *", b"p5 APPEND INBOX {3}", b"p6 UID FETCH 1 FLAGS"]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert len(lines) == 1 and re.match(tag + rb" (NO|BAD) ", lines[0]), (probe, lines)
lines = r.cmd(b"L LOGIN joe secret")
assert lines[-1].startswith(b"L OK "), lines
# Authenticated, nothing selected: no message commands.
for probe in [b"a1 FETCH 1 FLAGS", b"a2 STORE 1 +FLAGS (\\Deleted)", b"a3 SEARCH ALL",
              b"a4 UID FETCH 1:* FLAGS", b"a5 UID STORE 1 +FLAGS (\\Deleted)",
              b"a6 UID SEARCH ALL", b"a7 COPY 1 INBOX", b"a8 EXPUNGE", b"a9 CLOSE",
              b"a10 UNSELECT", b"a11 UID EXPUNGE 1"]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert len(lines) == 1 and re.match(tag + rb" (NO|BAD) ", lines[0]), (probe, lines)
# Authenticated: no second login.
assert re.match(rb"b1 (NO|BAD) ", r.last(b"b1 LOGIN joe secret"))
assert re.match(rb"b2 (NO|BAD) ", r.last(b"b2 AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ="))
# Selected read-only: no changes.
assert r.last(b"e EXAMINE INBOX").startswith(b"e OK [READ-ONLY]")
assert re.match(rb"e1 (NO|BAD) ", r.last(b"e1 STORE 1 +FLAGS (\\Deleted)"))
assert re.match(rb"e2 (NO|BAD) ", r.last(b"e2 EXPUNGE"))
# After CLOSE, nothing is selected again.
assert r.last(b"c CLOSE").startswith(b"c OK")
assert re.match(rb"c1 (NO|BAD) ", r.last(b"c1 FETCH 1 FLAGS"))
# And in the right state, the same commands work.
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
lines = r.cmd(b"g FETCH 1:* (UID)")
assert lines[-1].startswith(b"g OK") and len(lines) == 3, lines
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}

#[test]
fn a_client_gone_inside_an_append_literal_leaves_no_message_and_nothing_in_tmp() {
    let (_inst, maildir, server) = setup("imapbad-append-gone", &[ONE]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
body = b"Subject: half\r\n\r\n" + b"y" * 199000 + b"\r\n"
# A synchronizing literal: the client gets "+", sends half and vanishes.
r = Raw()
r.send(b"a1 APPEND INBOX (\\Seen) {%d}\r\n" % len(body))
assert r.line().startswith(b"+ ")
r.send(body[:100000])
time.sleep(0.2)
r.s.close()
# A non-synchronizing one, into a folder, cut short.
r = Raw()
assert r.last(b"c CREATE Kept").startswith(b"c OK")
r.send(b"a2 APPEND Kept {%d+}\r\n" % len(body) + body[:150000])
time.sleep(0.2)
r.s.close()
# The whole literal, but the command line after it never ends.
r = Raw()
r.send(b"a3 APPEND INBOX {%d}\r\n" % len(body))
assert r.line().startswith(b"+ ")
r.send(body)
time.sleep(0.2)
r.s.close()
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    // Nothing reached INBOX or Kept, and nothing was left in tmp/.
    let after = tree(&maildir);
    let stray: Vec<String> = after
        .iter()
        .filter(|(p, _)| p.parent().is_some_and(|d| d.ends_with("tmp")))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(stray.is_empty(), "files left in tmp/: {stray:?}");
    let kept = maildir.join(".Kept");
    assert!(kept.join("cur").is_dir(), "CREATE Kept did not happen");
    assert_eq!(
        names(&maildir.join("cur")),
        names_in(&before, &maildir.join("cur"))
    );
    assert_eq!(names(&maildir.join("new")), Vec::<String>::new());
    assert_eq!(names(&kept.join("cur")), Vec::<String>::new());
    assert_eq!(names(&kept.join("new")), Vec::<String>::new());
    // A later session works, and sees only the one message; an APPEND now succeeds.
    let out = python(
        &server,
        &maildir,
        r#"
r = Raw()
lines = r.cmd(b"s SELECT INBOX")
assert b"* 1 EXISTS\r\n" in lines and lines[-1].startswith(b"s OK"), lines
lines = r.cmd(b"k STATUS Kept (MESSAGES)")
assert lines[0] == b'* STATUS "Kept" (MESSAGES 0)\r\n', lines
whole = b"Subject: whole\r\n\r\nhi\r\n"
r.send(b"a APPEND INBOX {%d}\r\n" % len(whole))
assert r.line().startswith(b"+ ")
r.send(whole + b"\r\n")
assert r.until(b"a")[-1].startswith(b"a OK [APPENDUID "), "append"
assert r.last(b"n NOOP").startswith(b"n OK")
assert len(messages()) == 2 and tmp() == [], (messages(), tmp())
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
}

#[test]
fn a_one_megabyte_line_gets_bad_and_the_session_goes_on() {
    let (_inst, maildir, server) = setup("imapbad-long-line", &[ONE]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
MB = 1024 * 1024
# Before login, to rqmail-login.
r = Raw(login=False)
r.send(b"p1 LOGIN joe " + b"x" * MB + b"\r\n")
line = r.line()
assert re.match(rb"(\*|p1) BAD ", line), line
assert r.last(b"p2 NOOP").startswith(b"p2 OK")
lines = r.cmd(b"L LOGIN joe secret")
assert lines[-1].startswith(b"L OK "), lines
# After login, to rqmail-imapd: a command line, a SEARCH and a STORE each 1 MB long.
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [b"a1 NOOP " + b"x" * MB,
              b"a2 SEARCH " + b"OR SEEN " * (MB // 8) + b"ALL",
              b"a3 STORE 1 +FLAGS (" + b"\\Seen " * (MB // 6) + b")",
              b"a4 " + b"y" * MB]:
    start = time.monotonic()
    r.send(probe + b"\r\n")
    line = r.line()
    assert re.match(rb"(\*|a\d) BAD ", line), (probe[:20], line)
    assert time.monotonic() - start < 10
    # Nothing else came for it, and the next command is answered.
    assert r.last(b"n NOOP") == b"n OK NOOP completed\r\n", probe[:20]
assert flags(r, 1) == b"\\Recent" or flags(r, 1) == b"", flags(r, 1)
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}

#[test]
fn fetch_store_and_search_never_send_expunge_and_noop_does() {
    let (_inst, maildir, server) = setup("imapbad-expunge", &[ONE, TWO, THREE, FOUR]);
    let out = python(
        &server,
        &maildir,
        r#"
def expunges(lines):
    return [l for l in lines if re.match(rb"\* \d+ EXPUNGE", l)]

a = Raw()
b = Raw()
assert a.last(b"s SELECT INBOX").startswith(b"s OK")
assert b.last(b"s SELECT INBOX").startswith(b"s OK")

# RFC 3501 7.4.1 (RFC 9051 7.5.1): no EXPUNGE while answering FETCH, STORE or SEARCH,
# or the client's message numbers would go out of step.
assert b.last(b"x1 STORE 2 +FLAGS.SILENT (\\Deleted)").startswith(b"x1 OK")
assert b.cmd(b"x2 EXPUNGE") [-2:] == [b"* 2 EXPUNGE\r\n", b"x2 OK EXPUNGE completed\r\n"]
assert len(messages()) == 3
for probe in [b"a1 FETCH 1:* (FLAGS)", b"a2 FETCH 2 (FLAGS)", b"a3 STORE 1 +FLAGS (\\Flagged)",
              b"a4 STORE 3:4 -FLAGS.SILENT (\\Draft)", b"a5 SEARCH ALL", b"a6 SEARCH UNSEEN"]:
    lines = a.cmd(probe)
    assert not expunges(lines), (probe, lines)
    assert re.match(rb"a\d (OK|NO) ", lines[-1]), (probe, lines)
# The message numbers of the replies are still the old ones: 4 messages, 2 included.
lines = a.cmd(b"a7 SEARCH ALL")
assert lines[0] == b"* SEARCH 1 2 3 4\r\n", lines
# NOOP tells.
lines = a.cmd(b"a8 NOOP")
assert expunges(lines) == [b"* 2 EXPUNGE\r\n"], lines
assert a.cmd(b"a9 SEARCH ALL")[0] == b"* SEARCH 1 2 3\r\n"

# The UID forms may send EXPUNGE (7.4.1: "An EXPUNGE response MAY be sent during a UID
# command"); if one does, everything said after it must use the new numbers, and the
# expunge must not be told twice.
assert b.last(b"y1 UID STORE 1 +FLAGS.SILENT (\\Deleted)").startswith(b"y1 OK")
assert b.last(b"y2 EXPUNGE").startswith(b"y2 OK")
assert len(messages()) == 2
for probe in [b"u1 UID FETCH 1:* (FLAGS)", b"u2 UID STORE 3 +FLAGS (\\Seen)", b"u3 UID SEARCH ALL"]:
    lines = a.cmd(probe)
    told = expunges(lines)
    assert told in ([], [b"* 1 EXPUNGE\r\n"]), (probe, lines)
    if told:
        after = lines[lines.index(told[0]) + 1:]
        for l in after:
            m = re.match(rb"\* (\d+) FETCH", l)
            assert not m or int(m.group(1)) <= 2, (probe, lines)
        break
print("UID commands " + ("told the expunge at once" if told else "left the expunge to NOOP"))
lines = a.cmd(b"u4 NOOP")
if told:
    assert not expunges(lines), ("expunge told twice", lines)
else:
    assert expunges(lines) == [b"* 1 EXPUNGE\r\n"], lines
# Both sessions agree now: message 1 is UID 3, message 2 is UID 4.
for r in (a, b):
    lines = r.cmd(b"v FETCH 1:* (UID)")
    got = [re.search(rb"\* (\d+) FETCH \(UID (\d+)\)", l).groups() for l in lines[:-1]]
    assert got == [(b"1", b"3"), (b"2", b"4")], lines
assert a.last(b"d LOGOUT").startswith(b"d OK")
assert b.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    eprintln!("{out}");
    server.wait_idle_and_clean();
}

#[test]
fn deeply_nested_search_keys_get_bad_and_do_not_crash_the_session() {
    let (_inst, maildir, server) = setup("imapbad-nested", &[ONE]);
    let before = tree(&maildir);
    let out = python(
        &server,
        &maildir,
        r#"
r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
# Each line stays under the 64 KB line limit, so it reaches the SEARCH parser.
for tag, key in [(b"a1", b"(" * 30000 + b"ALL" + b")" * 30000),
                 (b"a2", b"NOT " * 15000 + b"ALL"),
                 (b"a3", b"OR ALL " * 9000 + b"ALL")]:
    r.send(tag + b" SEARCH " + key + b"\r\n")
    line = r.line()
    while line.startswith(b"* SEARCH"):
        line = r.line()
    assert re.match(tag + rb" (OK|NO|BAD) ", line), (tag, line)
    assert r.last(b"n NOOP") == b"n OK NOOP completed\r\n", tag
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
"#,
    );
    assert!(out.contains("ok"), "{out}");
    server.wait_idle_and_clean();
    assert_unchanged(&before, &tree(&maildir));
}
