//! Issue 12, item 3: descriptors that root programs inherit (a root-only file left open as
//! fd 9 by whoever started them) never reach the users' programs they run.

use rqmail_e2e::{Instance, as_root, inheriting, spawn_server, wait_for};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "the root-only secret\n";

/// A file only its owner (root, when the suite runs as root) can read.
fn secret_file(dir: &Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, SECRET).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn chown_nobody(path: &Path) {
    if as_root() {
        let status = Command::new("chown")
            .arg("65534:65534")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The descriptor numbers in an `ls /proc/PID/fd` listing.
fn descriptors(listing: &str) -> Vec<u32> {
    listing
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn a_program_delivery_cannot_read_a_descriptor_rqmail_start_inherited() {
    let mut inst = Instance::new("fds-start");
    let homes = inst.add_users(&["bob"]);
    let secret = secret_file(&inst.home);
    let dot_qmail = homes[0].join(".qmail");
    std::fs::write(
        &dot_qmail,
        "|ls /proc/$$/fd > fds.txt; { cat <&9; } > fd9.txt 2>&1; cat > message.txt\n./Maildir/\n",
    )
    .unwrap();
    chown_nobody(&dot_qmail);
    inst.start_inheriting(9, &secret);
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com"],
            b"Subject: fds\n\nhello\n"
        ),
        0
    );
    // The legitimate use: the program gets the message, and the delivery goes on.
    inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let message = homes[0].join("message.txt");
    assert!(wait_for(Duration::from_secs(10), || read(&message)
        .ends_with("hello\n")));
    let fd9 = read(&homes[0].join("fd9.txt"));
    assert!(
        !fd9.contains(SECRET.trim()),
        "the program read fd 9: {fd9:?}"
    );
    let fds = descriptors(&read(&homes[0].join("fds.txt")));
    assert!(!fds.contains(&9), "fd 9 reached the program: {fds:?}");
}

/// rqmail-tcpserver started with `secret` on fd 9, running `sh -c PROGRAM` per connection;
/// returns what one connection got.
fn serve_once(dir: &Path, secret: &Path, program: &str) -> String {
    let mut cmd = inheriting(
        9,
        secret,
        &rqmail_e2e::target_dir().join("rqmail-tcpserver"),
    );
    cmd.args([
        "-1",
        "-q",
        "-R",
        "-H",
        "-l",
        "x",
        "127.0.0.1",
        "0",
        "/bin/sh",
        "-c",
    ])
    .arg(program)
    .current_dir(dir)
    .stdin(Stdio::null());
    let (mut child, port) = spawn_server(&mut cmd, "rqmail-tcpserver");
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = String::new();
    let _ = conn.read_to_string(&mut got);
    let _ = child.kill();
    let _ = child.wait();
    got
}

#[test]
fn a_program_tcpserver_runs_does_not_inherit_its_descriptors() {
    let inst = Instance::new("fds-tcpserver");
    let secret = secret_file(&inst.home);
    let got = serve_once(
        &inst.home,
        &secret,
        "echo connected; ls /proc/$$/fd | tr '\\n' ' '; echo; { cat <&9; } 2>&1",
    );
    // The legitimate use: the program has the socket as its stdout.
    assert!(got.starts_with("connected\n"), "{got:?}");
    assert!(
        !got.contains(SECRET.trim()),
        "the program read fd 9: {got:?}"
    );
    let fds = descriptors(got.lines().nth(1).unwrap_or_default());
    assert!(!fds.contains(&9), "fd 9 reached the program: {fds:?}");
}

#[test]
fn systemds_socket_still_serves_but_does_not_reach_the_program() {
    let dir =
        std::env::temp_dir().join(format!("rqmail-e2e-fds-activation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // As in tcpserver.rs: the listener goes in as the shell's stdin and is moved to fd 3.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        // The program looks at its fd 3 without opening anything (an `ls` of /proc/$$/fd
        // would count its own directory handle, and a pipeline the shell's pipe).
        .arg("exec 3<&0 </dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" -1 -q -H 0 0 /bin/sh -c 'echo fds 0 1 2; readlink /proc/$$/fd/3 || echo fd3 closed'")
        .arg(rqmail_e2e::target_dir().join("rqmail-tcpserver"))
        .stdin(Stdio::from(OwnedFd::from(listener)));
    let (mut child, printed) = spawn_server(&mut cmd, "rqmail-tcpserver");
    assert_eq!(printed, port);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = String::new();
    let _ = conn.read_to_string(&mut got);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        got.starts_with("fds 0 1 2\n"),
        "the program did not run: {got:?}"
    );
    assert!(
        got.contains("fd3 closed") && !got.contains("socket:"),
        "the listening socket reached the program: {got:?}"
    );
}

#[test]
fn the_post_login_program_does_not_inherit_rqmail_logins_descriptors() {
    let inst = Instance::new("fds-login");
    let secret = secret_file(&inst.home);
    let home = inst.home.join("homes/joe");
    std::fs::create_dir_all(&home).unwrap();
    chown_nobody(&home);
    inst.install_fake_checkpassword(&home);
    let post_login = inst.bin("fds-postlogin");
    script(
        &post_login,
        "#!/bin/sh\nls /proc/$$/fd | tr '\\n' ' ' > fds.txt\n{ cat <&9; } > fd9.txt 2>&1\nprintf '+OK logged in\\r\\n'\n",
    );
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut cmd = inheriting(9, &secret, &inst.bin("rqmail-login"));
    cmd.arg("pop3")
        .arg(inst.bin("fake-checkpassword"))
        .arg(&post_login)
        .current_dir(&inst.home)
        .env("POP3_PLAINTEXT", "")
        .stdin(Stdio::from(OwnedFd::from(theirs.try_clone().unwrap())))
        .stdout(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    ours.write_all(b"USER joe\r\nPASS secret\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("logged in") {
        match ours.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    drop(ours);
    let _ = child.wait();
    // The legitimate use: the login goes through to the post-login program.
    let got = String::from_utf8_lossy(&got);
    assert!(got.contains("+OK logged in"), "{got:?}");
    let fd9 = read(&home.join("fd9.txt"));
    assert!(
        !fd9.contains(SECRET.trim()),
        "the program read fd 9: {fd9:?}"
    );
    let fds = descriptors(&read(&home.join("fds.txt")));
    assert!(!fds.contains(&9), "fd 9 reached the program: {fds:?}");
}
