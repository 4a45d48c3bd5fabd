//! rqmail-login under the real rqmail-tcpserver, driven by Python's poplib and raw sockets:
//! STLS and POP3S, USER/PASS and AUTH PLAIN, failures and their limit, injection probes.
//!
//! A fake checkpassword accepts joe/secret and appends every request it gets to
//! `checkpassword.log`, so a test can prove that what the front refuses never reaches the
//! root half. A fake post-login program stands in for rqmail-pop3d (which gets its own
//! test when it is built). As root, the real rqmail-checkpassword and a real account show
//! that the front runs as rqmaild and the session as the user.

use rqmail_e2e::{Instance, LoginServer, python_command, wait_for};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Accepts joe/secret (and exits 111 for the user `temp`); logs each request, NULs as `|`.
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
    log.write(data.replace(b"\0", b"|") + b"\n")
fields = data.split(b"\0")
if fields[:2] == [b"joe", b"secret"]:
    home = os.path.join(here, "..", "homes", "joe")
    if os.path.isdir(home):
        os.chdir(home)
    os.environ["USER"] = "joe"
    os.execv(sys.argv[1], sys.argv[1:])
sys.exit(111 if fields[0] == b"temp" else 1)
"#;

/// A stand-in for rqmail-pop3d: `+OK` first, then a few commands, one of them with a
/// reply of 40,000 lines.
const FAKE_POSTLOGIN: &str = r#"#!/usr/bin/env python3
import os, sys
out = sys.stdout.buffer
out.write(b"+OK logged in uid=%d\r\n" % os.getuid())
out.flush()
for line in sys.stdin.buffer:
    cmd = line.rstrip(b"\r\n")
    verb = cmd.split(b" ")[0].upper()
    if verb == b"QUIT":
        out.write(b"+OK bye\r\n")
        out.flush()
        sys.exit(0)
    elif verb == b"RETR":
        out.write(b"+OK message follows\r\n")
        out.write(b"".join(b"line %06d of a long message, to see that the relay keeps up\r\n" % i for i in range(40000)))
        out.write(b".\r\n")
    elif verb == b"STAT":
        out.write(b"+OK 1 3000000\r\n")
    else:
        out.write(b"+OK echo " + cmd + b"\r\n")
    out.flush()
"#;

/// Python helpers every client script starts with.
const PRELUDE: &str = r#"
import base64, os, poplib, re, socket, ssl, time
from rqtest import connect_line, env_port, tls_context
PORT = env_port()
ctx = tls_context()
def b64(text):
    return base64.b64encode(text.encode()).decode()
def expect_err(f, *args, code=None):
    try:
        r = f(*args)
    except poplib.error_proto as e:
        text = e.args[0]
        if isinstance(text, str):
            text = text.encode()
        assert text.startswith(b"-ERR"), text
        if code is not None:
            assert code in text, text
        return text
    raise SystemExit(f"expected -ERR from {f.__name__}{args}, got {r!r}")
def connect():
    return connect_line(PORT, b"+OK <")
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
    install_script(&inst, "fake-postlogin", FAKE_POSTLOGIN);
    inst
}

/// `pop3 [-s] fake-checkpassword fake-postlogin` as arguments.
fn fake_args(inst: &Instance, implicit_tls: bool) -> Vec<String> {
    let mut args = vec!["pop3".to_string()];
    if implicit_tls {
        args.push("-s".into());
    }
    for p in ["fake-checkpassword", "fake-postlogin"] {
        args.push(inst.bin(p).to_str().unwrap().to_string());
    }
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

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
fn stls_login_succeeds_after_a_wrong_password() {
    let inst = setup("login-stls");
    let server = inst.login_server_with(&strs(&fake_args(&inst, false)), &[], false);
    python(
        &inst,
        &server,
        r#"
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
w = p.getwelcome()
assert re.fullmatch(rb"\+OK <\d+\.\d+@example\.com> ready", w), w
caps = p.capa()
for c in ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS"]:
    assert c in caps, caps
assert "USER" not in caps and "SASL" not in caps, caps
expect_err(p.user, "joe", code=b"[AUTH]")
p.stls(ctx)
caps = p.capa()
assert "STLS" not in caps and "USER" in caps and caps["SASL"] == ["PLAIN"], caps
p.user("joe")
expect_err(p.pass_, "wrong", code=b"-ERR [AUTH] authentication failed")
p.user("joe")
r = p.pass_("secret")
assert r.startswith(b"+OK logged in"), r
assert p.noop() == b"+OK echo NOOP"
assert p.quit() == b"+OK bye"
"#,
    );
    assert_eq!(
        checkpassword_requests(&inst),
        ["joe|wrong||", "joe|secret||"]
    );
    let log = server.log_text();
    assert!(log.contains("login failed for joe (1 of 3)"), "{log}");
    assert!(log.contains("login for joe"), "{log}");
    assert!(
        !log.contains("wrong") && !log.contains("secret"),
        "password logged: {log}"
    );
}

#[test]
fn pop3s_speaks_tls_from_the_first_byte() {
    let inst = setup("login-pop3s");
    let server = inst.login_server_with(&strs(&fake_args(&inst, true)), &[], false);
    python(
        &inst,
        &server,
        r#"
p = poplib.POP3_SSL("127.0.0.1", PORT, context=ctx, timeout=20)
assert p.getwelcome().startswith(b"+OK <"), p.getwelcome()
caps = p.capa()
assert "USER" in caps and "STLS" not in caps, caps
expect_err(p.stls, ctx)
p.user("joe")
expect_err(p.pass_, "wrong", code=b"[AUTH]")
p.user("joe")
assert p.pass_("secret").startswith(b"+OK logged in")
assert p.quit() == b"+OK bye"
# A client that does not speak TLS gets no greeting in the clear.
s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
s.sendall(b"CAPA\r\n")
try:
    data = s.recv(100)
except ConnectionResetError:
    data = b""
assert not data.startswith(b"+OK"), data
"#,
    );
    assert_eq!(checkpassword_requests(&inst).len(), 2);
}

#[test]
fn plaintext_login_is_refused_without_tls_unless_pop3_plaintext_is_set() {
    let inst = setup("login-plaintext");
    let strict = inst.login_server_with(&strs(&fake_args(&inst, false)), &[], false);
    python(
        &inst,
        &strict,
        r#"
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
expect_err(p.user, "joe", code=b"-ERR [AUTH]")
expect_err(p.pass_, "secret", code=b"-ERR [AUTH]")
expect_err(p._shortcmd, "AUTH PLAIN " + b64("\0joe\0secret"), code=b"-ERR [AUTH]")
expect_err(p._shortcmd, "AUTH", code=b"-ERR [AUTH]")
assert p.quit().startswith(b"+OK")
"#,
    );
    assert!(checkpassword_requests(&inst).is_empty());
    let open = inst.login_server_with(
        &strs(&fake_args(&inst, false)),
        &[("POP3_PLAINTEXT", "")],
        false,
    );
    python(
        &inst,
        &open,
        r#"
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
caps = p.capa()
assert "USER" in caps and caps["SASL"] == ["PLAIN"] and "STLS" in caps, caps
p.user("joe")
assert p.pass_("secret").startswith(b"+OK logged in")
assert p.quit() == b"+OK bye"
"#,
    );
    assert_eq!(checkpassword_requests(&inst), ["joe|secret||"]);

    // Without a certificate there is no STLS to offer.
    let bare = Instance::new("login-nocert");
    install_script(&bare, "fake-checkpassword", FAKE_CHECKPASSWORD);
    install_script(&bare, "fake-postlogin", FAKE_POSTLOGIN);
    let server = bare.login_server_with(&strs(&fake_args(&bare, false)), &[], false);
    python(
        &bare,
        &server,
        r#"
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
caps = p.capa()
assert "STLS" not in caps and "USER" not in caps, caps
expect_err(p._shortcmd, "STLS")
assert p.quit().startswith(b"+OK")
"#,
    );
}

#[test]
fn auth_plain_with_initial_response_continuation_and_cancel() {
    let inst = setup("login-auth");
    let server = inst.login_server_with(&strs(&fake_args(&inst, false)), &[], false);
    python(
        &inst,
        &server,
        r#"
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
p.stls(ctx)
expect_err(p._shortcmd, "AUTH PLAIN " + b64("\0joe\0wrong"), code=b"-ERR [AUTH] authentication failed")
p._putcmd("AUTH PLAIN")
assert p._getline()[0] == b"+ "
p._putcmd("*")
expect_err(p._getresp)
expect_err(p._shortcmd, "AUTH CRAM-MD5")
expect_err(p._shortcmd, "AUTH PLAIN !!!notbase64")
expect_err(p._shortcmd, "AUTH PLAIN " + b64("admin\0joe\0secret"), code=b"[AUTH]")
assert p._longcmd("AUTH")[1] == [b"PLAIN"]
p._putcmd("AUTH PLAIN")
assert p._getline()[0] == b"+ "
p._putcmd(b64("\0joe\0secret"))
assert p._getresp().startswith(b"+OK logged in")
assert p.quit() == b"+OK bye"

p = poplib.POP3("127.0.0.1", PORT, timeout=20)
p.stls(ctx)
assert p._shortcmd("AUTH PLAIN " + b64("joe\0joe\0secret")).startswith(b"+OK logged in")
assert p.quit() == b"+OK bye"
"#,
    );
    assert_eq!(
        checkpassword_requests(&inst),
        ["joe|wrong||", "joe|secret||", "joe|secret||"]
    );
}

#[test]
fn commands_pipelined_after_stls_are_discarded() {
    let inst = setup("login-inject");
    let server = inst.login_server_with(&strs(&fake_args(&inst, false)), &[], false);
    python(
        &inst,
        &server,
        r#"
s, f = connect()
# The classic injection: a command in the same packet as STLS.
s.sendall(b"STLS\r\nUSER joe\r\n")
line = f.readline()
assert line.startswith(b"+OK"), line
t = ctx.wrap_socket(s, server_hostname="mail.example.com")
# Had the injected USER counted, this would log joe in.
t.sendall(b"PASS secret\r\n")
reply = t.recv(1000)
assert reply == b"-ERR USER first\r\n", reply
t.sendall(b"QUIT\r\n")
assert t.recv(1000) == b"+OK bye\r\n"
"#,
    );
    assert!(checkpassword_requests(&inst).is_empty());
    let log = server.log_text();
    assert!(
        log.contains("discarded 10 bytes pipelined after STLS"),
        "{log}"
    );
}

#[test]
fn garbage_and_overlong_lines_get_err_and_never_reach_checkpassword() {
    let inst = setup("login-garbage");
    let server = inst.login_server_with(
        &strs(&fake_args(&inst, false)),
        &[("POP3_PLAINTEXT", "")],
        false,
    );
    python(
        &inst,
        &server,
        include_str!(
            "../python/login/garbage_and_overlong_lines_get_err_and_never_reach_checkpassword.py"
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
    let inst = setup("login-failures");
    let server = inst.login_server_with(
        &strs(&fake_args(&inst, false)),
        &[("POP3_PLAINTEXT", "")],
        false,
    );
    python(
        &inst,
        &server,
        r#"
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
waits = []
for i in range(3):
    p.user("joe")
    start = time.monotonic()
    text = expect_err(p.pass_, "wrong%d" % i, code=b"-ERR [AUTH] authentication failed")
    waits.append(time.monotonic() - start)
    assert (b"closing connection" in text) == (i == 2), text
# 50 ms, then 100, then 200 (control/logindelay = 50).
assert waits[0] >= 0.05 and waits[1] >= 0.1 and waits[2] >= 0.2, waits
assert p.file.readline() == b"", "connection still open"

# A checkpassword that cannot decide (exit 111) is the server's problem.
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
p.user("temp")
expect_err(p.pass_, "x", code=b"-ERR [SYS/TEMP]")
p.user("joe")
assert p.pass_("secret").startswith(b"+OK logged in")
p.quit()
"#,
    );
    assert_eq!(
        checkpassword_requests(&inst),
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
fn commands_pipelined_after_pass_reach_the_post_login_program() {
    let inst = setup("login-pipeline");
    let server = inst.login_server_with(
        &strs(&fake_args(&inst, false)),
        &[("POP3_PLAINTEXT", "")],
        false,
    );
    python(
        &inst,
        &server,
        r#"
s, f = connect()
s.sendall(b"USER joe\r\nPASS secret\r\nSTAT\r\nNOOP\r\nQUIT\r\n")
for want in [b"+OK", b"+OK logged in", b"+OK 1 3000000", b"+OK echo NOOP", b"+OK bye"]:
    line = f.readline()
    assert line.startswith(want), (want, line)
assert f.readline() == b""
"#,
    );
}

#[test]
fn long_replies_are_relayed_through_tls() {
    let inst = setup("login-bulk");
    for implicit_tls in [false, true] {
        let server = inst.login_server_with(&strs(&fake_args(&inst, implicit_tls)), &[], false);
        let connect = if implicit_tls {
            "p = poplib.POP3_SSL(\"127.0.0.1\", PORT, context=ctx, timeout=20)"
        } else {
            "p = poplib.POP3(\"127.0.0.1\", PORT, timeout=20); p.stls(ctx)"
        };
        python(
            &inst,
            &server,
            &format!(
                r#"
{connect}
p.user("joe"); p.pass_("secret")
for _ in range(2):
    resp, lines, octets = p.retr(1)
    assert resp == b"+OK message follows", resp
    assert len(lines) == 40000, len(lines)
    assert lines[12345] == b"line 012345 of a long message, to see that the relay keeps up", lines[12345]
assert p.quit() == b"+OK bye"
"#
            ),
        );
    }
}

/// Processes of rqmail-login or the fake post-login program still running for `inst`.
fn leftover_processes(inst: &Instance) -> Vec<String> {
    let home = inst.home.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_login = args.first().is_some_and(|a| a.ends_with("/rqmail-login"));
        let is_postlogin = args.iter().take(2).any(|a| a.ends_with("/fake-postlogin"));
        if (is_login || is_postlogin) && args.iter().any(|a| a.contains(&home)) {
            found.push(args.join(" "));
        }
    }
    found
}

#[test]
fn nothing_is_left_running_when_the_client_disconnects() {
    let inst = setup("login-disconnect");
    let server = inst.login_server_with(&strs(&fake_args(&inst, false)), &[], false);
    python(
        &inst,
        &server,
        r#"
# Logged in, then gone without QUIT.
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
p.stls(ctx); p.user("joe"); p.pass_("secret")
p.sock.close()
# Before login, gone in the middle of a line.
s, f = connect()
s.sendall(b"USER jo")
s.close()
# Before login, waiting for a password check, then gone.
s, f = connect()
s.sendall(b"STLS\r\n"); f.readline()
t = ctx.wrap_socket(s, server_hostname="x")
t.sendall(b"USER joe\r\n"); t.recv(100)
t.sendall(b"PASS wrong\r\n")
t.close()
"#,
    );
    let clean = wait_for(Duration::from_secs(10), || {
        leftover_processes(&inst).is_empty()
    });
    assert!(
        clean,
        "still running: {:?}\n{}",
        leftover_processes(&inst),
        server.log_text()
    );
}

#[test]
fn the_real_rqmail_pop3d_serves_the_session_when_built() {
    let pop3d = rqmail_e2e::target_dir().join("rqmail-pop3d");
    if !pop3d.exists() {
        eprintln!("SKIPPED: rqmail-pop3d is not built");
        return;
    }
    let inst = setup("login-pop3d");
    // Instances may already hold it (a hard link to the build: never copy onto that).
    let to = inst.bin("rqmail-pop3d");
    if !to.exists() {
        std::fs::copy(&pop3d, &to).unwrap();
    }
    let homes = inst.add_users(&["joe"]);
    let maildir = homes[0].join("Maildir");
    let message = maildir.join("new/1000000000.P1Q1.example.com");
    std::fs::write(&message, "Subject: hi\n\nhello from the Maildir\n").unwrap();
    // Delivered a while ago.
    let old = std::time::SystemTime::now() - Duration::from_secs(10);
    std::fs::File::options()
        .write(true)
        .open(&message)
        .unwrap()
        .set_modified(old)
        .unwrap();
    if rqmail_e2e::as_root() {
        let (uid, gid) = inst.ids();
        nix::unistd::chown(
            &message,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .unwrap();
    }
    let args = [
        "pop3",
        inst.bin("fake-checkpassword").to_str().unwrap(),
        to.to_str().unwrap(),
        "./Maildir",
    ]
    .map(str::to_string);
    let server = inst.login_server_with(&strs(&args), &[], false);
    python(
        &inst,
        &server,
        r#"
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
p.stls(ctx)
p.user("joe")
expect_err(p.pass_, "wrong", code=b"[AUTH]")
p.user("joe")
assert p.pass_("secret").startswith(b"+OK")
count, size = p.stat()
assert count == 1, (count, size)
resp, lines, octets = p.retr(1)
assert b"hello from the Maildir" in lines, lines
assert p.quit().startswith(b"+OK")
"#,
    );
}

/// Accounts made for the root test, removed on drop (the service ones only if made here).
struct Accounts {
    made: Vec<(&'static str, bool)>,
}

const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

fn system(program: &str, args: &[&str], stdin: &[u8]) {
    let mut child = Command::new(program)
        .args(args)
        .env("PATH", PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Accounts {
    fn new() -> Accounts {
        let mut accounts = Accounts { made: Vec::new() };
        if nix::unistd::Group::from_name("rqnofiles")
            .unwrap()
            .is_none()
        {
            system("groupadd", &["--system", "rqnofiles"], b"");
            accounts.made.push(("rqnofiles", true));
        }
        if nix::unistd::User::from_name("rqmaild").unwrap().is_none() {
            system(
                "useradd",
                &[
                    "--system",
                    "--gid",
                    "rqnofiles",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "rqmaild",
                ],
                b"",
            );
            // Removed before its group.
            accounts.made.insert(0, ("rqmaild", false));
        }
        accounts
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for (name, is_group) in &self.made {
            let program = if *is_group { "groupdel" } else { "userdel" };
            let _ = Command::new(program).arg(name).env("PATH", PATH).status();
        }
    }
}

struct TestUser(&'static str);

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .arg(self.0)
            .env("PATH", PATH)
            .status();
    }
}

fn id_of(name: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

#[test]
fn as_root_the_front_runs_as_rqmaild_and_the_session_as_the_user() {
    if !rqmail_e2e::as_root() {
        eprintln!(
            "SKIPPED: as_root_the_front_runs_as_rqmaild_and_the_session_as_the_user needs root"
        );
        return;
    }
    let inst = setup("login-root");
    let _accounts = Accounts::new();
    let user = "rqlogin-t1";
    let _ = Command::new("userdel").arg(user).env("PATH", PATH).output();
    let home = inst.home.join("homes").join(user);
    system(
        "useradd",
        &["-M", "-d", home.to_str().unwrap(), "-s", "/bin/sh", user],
        b"",
    );
    let _user = TestUser(user);
    system(
        "chpasswd",
        &[],
        format!("{user}:correct horse\n").as_bytes(),
    );
    std::fs::create_dir_all(&home).unwrap();
    let (uid, gid) = id_of(user);
    nix::unistd::chown(
        &home,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (rqmaild, _) = id_of("rqmaild");
    let nofiles = nix::unistd::Group::from_name("rqnofiles")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    // The front reads the certificate as rqmaild, as install.sh sets it up.
    nix::unistd::chown(
        &inst.home.join("control/servercert.pem"),
        Some(nix::unistd::Uid::from_raw(rqmaild)),
        None,
    )
    .unwrap();
    inst.control("checkpassworddelay", "100\n");
    let args = [
        "pop3",
        inst.bin("rqmail-checkpassword").to_str().unwrap(),
        inst.bin("fake-postlogin").to_str().unwrap(),
    ]
    .map(str::to_string);
    let server = inst.login_server_with(&strs(&args), &[], true);
    let out = python(
        &inst,
        &server,
        &format!(
            r#"
def status(pid):
    fields = {{}}
    try:
        for line in open("/proc/%d/status" % pid):
            key, _, value = line.partition(":")
            fields[key] = value.split()
    except OSError:
        pass
    return fields
p = poplib.POP3("127.0.0.1", PORT, timeout=20)
front = int(re.match(rb"\+OK <(\d+)\.", p.getwelcome()).group(1))
p.stls(ctx)
p.user("{user}")
expect_err(p.pass_, "wrong horse", code=b"[AUTH]")
p.user("{user}")
r = p.pass_("correct horse")
assert r == b"+OK logged in uid={uid}", r
f = status(front)
assert f["Uid"] == ["{rqmaild}"] * 4, f["Uid"]
assert f["Gid"] == ["{nofiles}"] * 4, f["Gid"]
assert f["Groups"] == ["{nofiles}"], f["Groups"]
root = int(f["PPid"][0])
r = status(root)
assert r["Uid"] == ["0"] * 4, r["Uid"]
# The root half's other child: checkpassword, now the post-login program.
sessions = [int(d) for d in os.listdir("/proc") if d.isdigit() and int(d) != front
            and status(int(d)).get("PPid") == [str(root)]]
assert len(sessions) == 1, sessions
s = status(sessions[0])
assert s["Uid"] == ["{uid}"] * 4 and s["Gid"] == ["{gid}"] * 4, (s["Uid"], s["Gid"])
assert os.readlink("/proc/%d/cwd" % sessions[0]) == "{home}"
assert p.noop() == b"+OK echo NOOP"
assert p.quit() == b"+OK bye"
print("checked")
"#,
            home = home.display()
        ),
    );
    assert!(out.contains("checked"));
    let log = server.log_text();
    assert!(
        log.contains(&format!("login failed for {user} (1 of 3)")),
        "{log}"
    );
    assert!(!log.contains("horse"), "password logged: {log}");
}
