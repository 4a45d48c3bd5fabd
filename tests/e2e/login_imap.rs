//! `rqmail-login imap` under the real rqmail-tcpserver, driven by Python's imaplib and raw
//! sockets: STARTTLS and IMAPS, LOGIN (atoms, quoted strings, literals with and without
//! LITERAL+) and AUTHENTICATE PLAIN (SASL-IR and continuation), failures and their limit,
//! injection and garbage probes.
//!
//! As in tests/e2e/login.rs, a fake checkpassword accepts joe/secret (and joe with a
//! password of spaces, quotes and a backslash) and logs every request, so a test can prove
//! that what the front refuses never reaches the root half. A fake post-login program
//! stands in for rqmail-imapd: it answers the login command with the tag it finds in
//! `IMAPLOGINTAG`, then echoes commands.

use rqmail_e2e::{Instance, LoginServer, python_command};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Accepts joe/secret and joe/`se "cr\et` (exits 111 for the user `temp`); logs each
/// request, NULs as `|`, with the tag it was given for the post-login program.
const FAKE_CHECKPASSWORD: &str = r#"#!/usr/bin/env python3
import os, sys
here = os.path.dirname(os.path.abspath(sys.argv[0]))
data = b""
while True:
    chunk = os.read(3, 1024)
    if not chunk:
        break
    data += chunk
os.close(3)
with open(os.path.join(here, "..", "checkpassword.log"), "ab") as log:
    log.write(data.replace(b"\0", b"|") + b" tag=" + os.environb.get(b"IMAPLOGINTAG", b"-") + b"\n")
fields = data.split(b"\0")
if fields[0] == b"joe" and fields[1] in (b"secret", b'se "cr\\et'):
    os.execv(sys.argv[1], sys.argv[1:])
sys.exit(111 if fields[0] == b"temp" else 1)
"#;

/// A stand-in for rqmail-imapd: the tagged OK to the login first, then an echo of each
/// command as its tagged OK; LOGOUT ends it.
const FAKE_POSTLOGIN: &str = r#"#!/usr/bin/env python3
import os, sys
out = sys.stdout.buffer
tag = os.environb[b"IMAPLOGINTAG"]
out.write(b"%s OK logged in uid=%d\r\n" % (tag, os.getuid()))
out.flush()
for line in sys.stdin.buffer:
    words = line.rstrip(b"\r\n").split(b" ", 2)
    tag, verb = words[0], (words[1].upper() if len(words) > 1 else b"")
    if verb == b"LOGOUT":
        out.write(b"* BYE bye\r\n" + tag + b" OK LOGOUT completed\r\n")
        out.flush()
        sys.exit(0)
    out.write(tag + b" OK echo " + line.rstrip(b"\r\n") + b"\r\n")
    out.flush()
"#;

/// Python helpers every client script starts with.
const PRELUDE: &str = r#"
import base64, imaplib, os, re, socket, ssl, time
from rqtest import connect_line, env_port, expect, tls_context
PORT = env_port()
ctx = tls_context()
def b64(data):
    return base64.b64encode(data).decode()
def expect_no(f, *args, code=None):
    try:
        r = f(*args)
    except imaplib.IMAP4.error as e:
        text = str(e)
        if code is not None:
            assert code in text, text
        return text
    raise SystemExit(f"expected an error from {f.__name__}{args}, got {r!r}")
def connect():
    return connect_line(PORT, b"* OK [CAPABILITY IMAP4rev1 ")
"#;

fn install_script(inst: &Instance, name: &str, text: &str) -> PathBuf {
    let path = inst.bin(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// An instance with a certificate, the fakes, and a short delay after failed logins.
fn setup(name: &str) -> Instance {
    let inst = Instance::new(name);
    inst.make_certificate();
    inst.control("logindelay", "50\n");
    install_script(&inst, "fake-checkpassword", FAKE_CHECKPASSWORD);
    install_script(&inst, "fake-imap-postlogin", FAKE_POSTLOGIN);
    inst
}

/// `imap [-s] fake-checkpassword fake-imap-postlogin`, served.
fn serve_fakes(inst: &Instance, implicit_tls: bool, env: &[(&str, &str)]) -> LoginServer {
    let mut args = vec!["imap".to_string()];
    if implicit_tls {
        args.push("-s".into());
    }
    for p in ["fake-checkpassword", "fake-imap-postlogin"] {
        args.push(inst.bin(p).to_str().unwrap().to_string());
    }
    inst.login_server_with(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        env,
        false,
    )
}

const PLAINTEXT: &[(&str, &str)] = &[("IMAP_PLAINTEXT", "")];

/// What the fake checkpassword was asked, one request per line.
fn checkpassword_requests(inst: &Instance) -> Vec<String> {
    std::fs::read_to_string(inst.home.join("checkpassword.log"))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn python(inst: &Instance, server: &LoginServer, script: &str) -> String {
    let out = python_command(&format!("{PRELUDE}\n{script}"))
        .env("PORT", server.port.to_string())
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python failed:\n{text}\nserver log:\n{}\ncheckpassword requests: {:?}",
        server.log_text(),
        checkpassword_requests(inst)
    );
    text
}

#[test]
fn starttls_then_login_succeeds_after_a_wrong_password() {
    let inst = setup("imap-starttls");
    let server = serve_fakes(&inst, false, &[]);
    python(
        &inst,
        &server,
        r#"
m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
w = m.welcome
assert re.fullmatch(rb"\* OK \[CAPABILITY [^]]*\] rqmail ready", w), w
for c in ["IMAP4REV1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "STARTTLS", "LOGINDISABLED"]:
    assert c in m.capabilities, m.capabilities
assert "AUTH=PLAIN" not in m.capabilities and "IMAP4REV2" not in m.capabilities, m.capabilities
expect_no(m.login, "joe", "secret", code="[PRIVACYREQUIRED]")
m.starttls(ctx)
assert "STARTTLS" not in m.capabilities and "LOGINDISABLED" not in m.capabilities, m.capabilities
assert "AUTH=PLAIN" in m.capabilities, m.capabilities
assert m.noop()[0] == "OK"
expect_no(m.login, "joe", "wrong", code="[AUTHENTICATIONFAILED]")
typ, data = m.login("joe", "secret")
assert typ == "OK" and data[0].startswith(b"logged in"), (typ, data)
typ, data = m.noop()
assert typ == "OK" and b"echo" in data[0] and b"NOOP" in data[0], (typ, data)
assert m.logout()[0] == "BYE"
"#,
    );
    let requests = checkpassword_requests(&inst);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[0].starts_with("joe|wrong|| tag="), "{requests:?}");
    assert!(requests[1].starts_with("joe|secret|| tag="), "{requests:?}");
    assert!(!requests[1].ends_with("tag=-"), "{requests:?}");
    let log = server.log_text();
    assert!(log.contains("rqmail-login: imap pid"), "{log}");
    assert!(log.contains("login failed for joe (1 of 3)"), "{log}");
    assert!(log.contains("login for joe (TLSv1."), "{log}");
    assert!(
        !log.contains("wrong") && !log.contains("secret"),
        "password logged: {log}"
    );
}

#[test]
fn imaps_speaks_tls_from_the_first_byte() {
    let inst = setup("imap-imaps");
    let server = serve_fakes(&inst, true, &[]);
    python(
        &inst,
        &server,
        r#"
m = imaplib.IMAP4_SSL("127.0.0.1", PORT, ssl_context=ctx, timeout=20)
assert m.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1 "), m.welcome
assert "AUTH=PLAIN" in m.capabilities and "STARTTLS" not in m.capabilities, m.capabilities
assert "LOGINDISABLED" not in m.capabilities, m.capabilities
expect_no(m._simple_command, "STARTTLS", code="BAD")
assert m.login("joe", "secret")[0] == "OK"
assert m.logout()[0] == "BYE"
# A client that does not speak TLS gets no greeting in the clear.
s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
s.sendall(b"a CAPABILITY\r\n")
try:
    data = s.recv(100)
except ConnectionResetError:
    data = b""
assert not data.startswith(b"* OK"), data
"#,
    );
    assert_eq!(checkpassword_requests(&inst).len(), 1);
}

#[test]
fn plaintext_login_is_refused_without_tls_unless_imap_plaintext_is_set() {
    let inst = setup("imap-plaintext");
    let strict = serve_fakes(&inst, false, &[]);
    python(
        &inst,
        &strict,
        r#"
m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
assert "LOGINDISABLED" in m.capabilities, m.capabilities
expect_no(m.login, "joe", "secret", code="[PRIVACYREQUIRED]")
expect_no(m.authenticate, "PLAIN", lambda _: b"\0joe\0secret", code="[PRIVACYREQUIRED]")
m.logout()
s, f = connect()
# Refused before the literal is asked for: the password is never sent.
s.sendall(b"a LOGIN {3}\r\n")
expect(f, b"a NO [PRIVACYREQUIRED]")
s.sendall(b"b AUTHENTICATE PLAIN " + base64.b64encode(b"\0joe\0secret") + b"\r\n")
expect(f, b"b NO [PRIVACYREQUIRED]")
s.sendall(b"c CAPABILITY\r\n")
expect(f, b"* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE STARTTLS LOGINDISABLED\r\n", b"c OK")
"#,
    );
    assert!(checkpassword_requests(&inst).is_empty());
    let open = serve_fakes(&inst, false, PLAINTEXT);
    python(
        &inst,
        &open,
        r#"
m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
assert "AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities, m.capabilities
assert m.login("joe", "secret")[0] == "OK"
m.logout()
"#,
    );
    assert_eq!(checkpassword_requests(&inst).len(), 1);
    assert!(open.log_text().contains("login for joe (no TLS)"));
}

#[test]
fn authenticate_plain_with_initial_response_continuation_and_cancel() {
    let inst = setup("imap-authenticate");
    let server = serve_fakes(&inst, false, PLAINTEXT);
    python(
        &inst,
        &server,
        include_str!(
            "../python/login_imap/authenticate_plain_with_initial_response_continuation_and_cancel.py"
        ),
    );
    let requests = checkpassword_requests(&inst);
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[0], "joe|wrong|| tag=a");
    assert_eq!(requests[2], "joe|secret|| tag=x");
}

#[test]
fn passwords_as_literals_and_quoted_strings() {
    let inst = setup("imap-literals");
    let server = serve_fakes(&inst, false, PLAINTEXT);
    python(
        &inst,
        &server,
        include_str!("../python/login_imap/passwords_as_literals_and_quoted_strings.py"),
    );
    let requests = checkpassword_requests(&inst);
    assert_eq!(requests.len(), 4, "{requests:?}");
    assert!(
        requests.iter().all(|r| r.starts_with("joe|se \"cr\\et||")),
        "{requests:?}"
    );
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let inst = setup("imap-inject");
    let server = serve_fakes(&inst, false, &[]);
    python(
        &inst,
        &server,
        r#"
s, f = connect()
# The classic injection: a command in the same packet as STARTTLS.
s.sendall(b"a STARTTLS\r\nb LOGIN joe secret\r\n")
expect(f, b"a OK")
t = ctx.wrap_socket(s, server_hostname="mail.example.com")
tf = t.makefile("rb")
# Had the injected LOGIN counted, its reply (or the session's) would come first.
t.sendall(b"c NOOP\r\n")
line = tf.readline()
assert line == b"c OK NOOP completed\r\n", line
t.sendall(b"d LOGOUT\r\n")
expect(tf, b"* BYE", b"d OK LOGOUT")
"#,
    );
    assert!(checkpassword_requests(&inst).is_empty());
    let log = server.log_text();
    assert!(
        log.contains("discarded 20 bytes pipelined after STARTTLS"),
        "{log}"
    );
}

#[test]
fn garbage_and_overlong_lines_get_bad_and_never_reach_checkpassword() {
    let inst = setup("imap-garbage");
    let server = serve_fakes(&inst, false, PLAINTEXT);
    python(
        &inst,
        &server,
        include_str!(
            "../python/login_imap/garbage_and_overlong_lines_get_bad_and_never_reach_checkpassword.py"
        ),
    );
    assert!(
        checkpassword_requests(&inst).is_empty(),
        "{:?}",
        checkpassword_requests(&inst)
    );
}

#[test]
fn three_failed_logins_close_the_connection_with_growing_delays() {
    let inst = setup("imap-failures");
    let server = serve_fakes(&inst, false, PLAINTEXT);
    python(
        &inst,
        &server,
        r#"
s, f = connect()
waits = []
for i in range(3):
    start = time.monotonic()
    s.sendall(b"a%d LOGIN joe wrong%d\r\n" % (i, i))
    expect(f, b"a%d NO [AUTHENTICATIONFAILED]" % i)
    waits.append(time.monotonic() - start)
expect(f, b"* BYE too many failures")
assert f.readline() == b"", "connection still open"
# 50 ms, then 100, then 200 (control/logindelay = 50).
assert waits[0] >= 0.05 and waits[1] >= 0.1 and waits[2] >= 0.2, waits

# A checkpassword that cannot decide (exit 111) is the server's problem; then a retry.
m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
expect_no(m.login, "temp", "x", code="[UNAVAILABLE]")
assert m.login("joe", "secret")[0] == "OK"
m.logout()
"#,
    );
    assert_eq!(
        checkpassword_requests(&inst)
            .iter()
            .map(|r| r.split(" tag=").next().unwrap().to_string())
            .collect::<Vec<_>>(),
        [
            "joe|wrong0||",
            "joe|wrong1||",
            "joe|wrong2||",
            "temp|x||",
            "joe|secret||"
        ]
    );
    let log = server.log_text();
    assert!(log.contains("login failed for joe (3 of 3)"), "{log}");
    assert!(
        log.contains("login failed for temp: temporary failure (1 of 3)"),
        "{log}"
    );
}

#[test]
fn the_real_rqmail_imapd_serves_the_session_when_built() {
    let imapd = rqmail_e2e::target_dir().join("rqmail-imapd");
    if !imapd.exists() {
        eprintln!("SKIPPED: rqmail-imapd is not built");
        return;
    }
    let inst = setup("imap-imapd");
    // Instances may already hold it (a hard link to the build: never copy onto that).
    let to = inst.bin("rqmail-imapd");
    if !to.exists() {
        std::fs::copy(&imapd, &to).unwrap();
    }
    let homes = inst.add_users(&["joe"]);
    let home = homes[0].to_str().unwrap().to_string();
    let message = homes[0].join("Maildir/new/1000000000.P1Q1.example.com");
    std::fs::write(&message, "Subject: hi\n\nhello from the Maildir\n").unwrap();
    // The fake checkpassword does not change directory: the session starts in joe's home
    // through a shell, as the real checkpassword would leave it.
    let wrapper = install_script(
        &inst,
        "imapd-in-home",
        &format!("#!/bin/sh\ncd '{home}' && exec '{}' \"$@\"\n", to.display()),
    );
    let args = [
        "imap",
        inst.bin("fake-checkpassword").to_str().unwrap(),
        wrapper.to_str().unwrap(),
        "./Maildir",
    ]
    .map(str::to_string);
    let server = inst.login_server_with(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
        false,
    );
    python(
        &inst,
        &server,
        r#"
m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
m.starttls(ctx)
expect_no(m.login, "joe", "wrong", code="[AUTHENTICATIONFAILED]")
assert m.login("joe", "secret")[0] == "OK"
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
assert m.logout()[0] == "BYE"
"#,
    );
}
