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

use rqmail_e2e::{Instance, LoginServer, python_command};
use std::path::{Path, PathBuf};

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
const PRELUDE: &str = include_str!("../python/imap_bad_input/prelude.py");

/// Runs a Python 3 script (after PRELUDE); returns its output, asserting it succeeded.
fn python(server: &LoginServer, maildir: &Path, script: &str) -> String {
    let out = python_command(&format!("{PRELUDE}\n{script}"))
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
        include_str!(
            "../python/imap_bad_input/unbalanced_parentheses_in_fetch_store_and_search_get_bad_and_change_nothing.py"
        ),
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
        include_str!(
            "../python/imap_bad_input/synchronizing_literals_over_the_limit_are_refused_unread_and_the_session_goes_on.py"
        ),
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
        include_str!(
            "../python/imap_bad_input/a_non_synchronizing_literal_over_the_limit_gets_a_reply_then_a_clean_close.py"
        ),
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
        include_str!(
            "../python/imap_bad_input/unknown_commands_get_bad_and_the_session_goes_on.py"
        ),
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
        include_str!("../python/imap_bad_input/commands_in_the_wrong_state_get_bad_or_no.py"),
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
        include_str!(
            "../python/imap_bad_input/a_one_megabyte_line_gets_bad_and_the_session_goes_on.py"
        ),
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
        include_str!(
            "../python/imap_bad_input/fetch_store_and_search_never_send_expunge_and_noop_does.py"
        ),
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
