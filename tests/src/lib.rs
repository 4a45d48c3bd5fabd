//! The test harness: builds a whole rqmail instance in a scratch directory from the
//! workspace's binaries, starts it, injects mail and watches what lands on disk.
#![forbid(unsafe_code)]

pub mod postfix;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Every program of the workspace (install/programs.sh, the installer's list too), as each
/// instance gets it in its `bin/`.
pub fn programs() -> Vec<String> {
    static LIST: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../install/programs.sh");
        let out = Command::new(&script).output().expect("install/programs.sh");
        assert!(out.status.success(), "install/programs.sh failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    })
    .clone()
}

/// The unprivileged account tests run instances as when the suite runs as root, so that
/// the instance is a single-user one like a developer's.
const NOBODY: u32 = 65534;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The directory holding the workspace's built binaries (the test binary's grandparent).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("target profile dir").to_path_buf()
}

/// True when the tests run as root: instances then run as nobody.
pub fn as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A Command that runs as the instance's user (nobody when the suite runs as root).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if as_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

/// One rqmail instance in a scratch directory.
pub struct Instance {
    /// The instance's home.
    pub home: PathBuf,
    start: Option<Child>,
    /// The scheduler's log.
    pub log: PathBuf,
}

fn chown_tree(path: &Path) {
    if !as_root() {
        return;
    }
    let status = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success());
}

impl Instance {
    /// Makes an instance with `me` = example.com, locals example.com and localhost.
    pub fn new(name: &str) -> Instance {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let home =
            std::env::temp_dir().join(format!("rqmail-e2e-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        let target = target_dir();
        for p in &programs() {
            let from = target.join(p);
            assert!(
                from.exists(),
                "{} is not built: run `cargo build --workspace` first",
                from.display()
            );
            let to = home.join("bin").join(p);
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).unwrap();
            }
        }
        rqmail_qfiles::Queue::new(&home).create().unwrap();
        for dir in ["control", "users", "alias", "homes"] {
            std::fs::create_dir_all(home.join(dir)).unwrap();
        }
        std::fs::set_permissions(home.join("alias"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let inst = Instance {
            log: home.join("send.log"),
            home,
            start: None,
        };
        inst.control("me", "example.com\n");
        inst.control("locals", "example.com\nlocalhost\n");
        inst.control("defaultdelivery", "./Maildir/\n");
        // Remote deliveries go to a closed loopback port unless a test routes them: tests
        // never look names up in the machine's DNS or send anything off this host.
        inst.control("smtproutes", ":127.0.0.1:1\n");
        inst.control("dnsservers", "127.0.0.1:1\n");
        std::fs::write(inst.home.join("users/assign"), ".\n").unwrap();
        chown_tree(&inst.home);
        inst
    }

    /// Writes a control file.
    pub fn control(&self, name: &str, text: &str) {
        std::fs::write(self.home.join("control").join(name), text).unwrap();
        chown_tree(&self.home.join("control").join(name));
    }

    /// The uid and gid deliveries run as in this instance.
    pub fn ids(&self) -> (u32, u32) {
        if as_root() {
            (NOBODY, NOBODY)
        } else {
            (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            )
        }
    }

    /// Adds users with homes under `homes/` and Maildirs, via users/assign and rqmail-newu.
    pub fn add_users(&self, names: &[&str]) -> Vec<PathBuf> {
        let (uid, gid) = self.ids();
        let mut assign = String::new();
        let mut homes = Vec::new();
        for name in names {
            let dir = self.home.join("homes").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            for sub in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            assign.push_str(&format!(
                "={name}:{name}:{uid}:{gid}:{}:::\n",
                dir.display()
            ));
            assign.push_str(&format!(
                "+{name}-:{name}:{uid}:{gid}:{}:-::\n",
                dir.display()
            ));
            chown_tree(&dir);
            homes.push(dir);
        }
        assign.push_str(".\n");
        std::fs::write(self.home.join("users/assign"), assign).unwrap();
        chown_tree(&self.home.join("users"));
        let out = self.run("rqmail-newu", &[], b"");
        assert!(
            out.status.success(),
            "newu: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        homes
    }

    /// The path of one of the instance's programs.
    pub fn bin(&self, program: &str) -> PathBuf {
        self.home.join("bin").join(program)
    }

    /// Runs one of the instance's programs with `input` on stdin.
    pub fn run(&self, program: &str, args: &[&str], input: &[u8]) -> Output {
        self.run_env(program, args, input, &[])
    }

    /// Runs a program with extra environment variables.
    pub fn run_env(
        &self,
        program: &str,
        args: &[&str],
        input: &[u8],
        env: &[(&str, &str)],
    ) -> Output {
        let mut child = command(self.bin(program))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// Queues a message through rqmail-queue itself (message on fd 0, envelope on fd 1)
    /// and returns its exit code.
    pub fn queue_raw(&self, sender: &str, recipients: &[&str], message: &[u8]) -> i32 {
        let recipients: Vec<&[u8]> = recipients.iter().map(|r| r.as_bytes()).collect();
        self.queue_raw_bytes(sender.as_bytes(), &recipients, message)
    }

    /// [`Instance::queue_raw`] with addresses as bytes, which need not be UTF-8.
    pub fn queue_raw_bytes(&self, sender: &[u8], recipients: &[&[u8]], message: &[u8]) -> i32 {
        let (env_read, env_write) = nix::unistd::pipe().unwrap();
        let mut child = command(self.bin("rqmail-queue"))
            .current_dir(&self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_read))
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(message);
        drop(stdin);
        let mut envelope = [b"F", sender, b"\0"].concat();
        for r in recipients {
            envelope.extend_from_slice(&[b"T", *r, b"\0"].concat());
        }
        envelope.push(0);
        let mut env = std::fs::File::from(env_write);
        let _ = env.write_all(&envelope);
        drop(env);
        child.wait().unwrap().code().unwrap_or(-1)
    }

    /// Starts rqmail-start in the background, logging to `send.log`.
    pub fn start(&mut self) {
        self.start_with(command(self.bin("rqmail-start")));
    }

    /// Starts rqmail-start as [`Instance::start`] does, but with `file` open (read-only,
    /// without close-on-exec) as descriptor `fd`, as something that started it as root
    /// might have left it.
    pub fn start_inheriting(&mut self, fd: u32, file: &Path) {
        self.start_with(inheriting(fd, file, &self.bin("rqmail-start")));
    }

    fn start_with(&mut self, mut cmd: Command) {
        assert!(self.start.is_none());
        let started_before = self.log_text().matches("status: local").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = cmd
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.start = Some(child);
        // Wait until the scheduler has announced itself.
        let started = wait_for(Duration::from_secs(10), || {
            self.log_text().matches("status: local").count() > started_before
        });
        if !started {
            let status = self.start.as_mut().map(|c| c.try_wait());
            panic!(
                "rqmail-start did not start ({status:?}):\n{}",
                self.log_text()
            );
        }
    }

    /// The scheduler's pid, if it runs.
    pub fn send_pid(&self) -> Option<u32> {
        self.start.as_ref().map(Child::id)
    }

    /// Sends a signal to rqmail-send (rqmail-start became it).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.send_pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    /// Stops rqmail-send with TERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.start.take() {
            self.signal_pid(&child, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal_pid(&self, child: &Child, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
    }

    /// Kills rqmail-send with SIGKILL (a crash) and waits for it.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.start.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The scheduler's log so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Files in a Maildir's `new/`, sorted by name.
    pub fn maildir_new(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Waits until a Maildir holds `count` messages in `new/`; returns them.
    pub fn wait_for_mail(&self, maildir: &Path, count: usize) -> Vec<PathBuf> {
        let ok = wait_for(Duration::from_secs(30), || {
            Self::maildir_new(maildir).len() >= count
        });
        let files = Self::maildir_new(maildir);
        assert!(
            ok,
            "expected {count} messages in {}, found {}; log:\n{}",
            maildir.display(),
            files.len(),
            self.log_text()
        );
        files
    }

    /// Number of messages still in the queue (files in `mess/`).
    pub fn queued(&self) -> usize {
        rqmail_qfiles::Queue::new(&self.home)
            .list("mess")
            .unwrap()
            .len()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

/// A real rqmail-tcpserver on a loopback port, running one of the instance's servers per
/// connection.
pub struct Listener {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: Option<Child>,
}

impl Instance {
    /// Serves `program args...` with rqmail-tcpserver on a fresh loopback port; `env` is
    /// given to the server (as rules would, e.g. RELAYCLIENT).
    pub fn listen(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Listener {
        let mut cmd = command(self.bin("rqmail-tcpserver"));
        cmd.args([
            "-1",
            "-q",
            "-R",
            "-H",
            "-l",
            "mail.example.com",
            "-c",
            "400",
            "-b",
            "256",
            "127.0.0.1",
            "0",
        ])
        .arg(self.bin(program))
        .args(args)
        .current_dir(&self.home)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
        let (child, port) = spawn_server(&mut cmd, "rqmail-tcpserver");
        Listener {
            port,
            child: Some(child),
        }
    }

    /// Writes a self-signed certificate and key to `control/servercert.pem`.
    pub fn make_certificate(&self) {
        let dir = self.home.join("control");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=mail.example.com",
            ])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        let mut pem = std::fs::read(dir.join("cert.pem")).unwrap();
        pem.extend(std::fs::read(dir.join("key.pem")).unwrap());
        std::fs::write(dir.join("servercert.pem"), pem).unwrap();
        std::fs::set_permissions(
            dir.join("servercert.pem"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        chown_tree(&dir.join("servercert.pem"));
    }

    /// Runs a Python 3 script (with `PORT` and `HOME_DIR` in its environment); returns
    /// its output, asserting it succeeded.
    pub fn python(&self, port: u16, script: &str) -> String {
        let out = python_command(script)
            .env("PORT", port.to_string())
            .env("HOME_DIR", &self.home)
            .output()
            .expect("python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "python failed:\n{text}\nlog:\n{}",
            self.log_text()
        );
        text
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

/// A checkpassword stand-in for tests of the fronts: accepts `joe`/`secret` only, then, as
/// the real one would after changing uid, enters the home, sets HOME and USER, and runs
/// the post-login program (its arguments).
const FAKE_CHECKPASSWORD: &str = r#"#!/usr/bin/env python3
import os, sys
data = b""
while len(data) <= 512:
    chunk = os.read(3, 513)
    if not chunk:
        break
    data += chunk
os.close(3)
if data.split(b"\0")[:2] != [b"joe", b"secret"]:
    sys.exit(1)
os.chdir("@HOME@")
os.environ["HOME"] = "@HOME@"
os.environ["USER"] = "joe"
os.execv(sys.argv[1], sys.argv[1:])
"#;

impl Instance {
    /// Installs `fake-checkpassword` among the instance's binaries: joe/secret, whose
    /// home is `home`.
    pub fn install_fake_checkpassword(&self, home: &Path) {
        let path = self.bin("fake-checkpassword");
        std::fs::write(
            &path,
            FAKE_CHECKPASSWORD.replace("@HOME@", home.to_str().unwrap()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A POP3 or IMAP front (rqmail-login) served by rqmail-tcpserver, whose log and the stderr
/// of every session's processes go to a file; stopped with TERM when dropped. Made by
/// [`Instance::login_server`] or, for other command lines, [`LoginServer::new`].
pub struct LoginServer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: Option<Child>,
    /// The log file.
    pub log: PathBuf,
}

impl Instance {
    /// Starts a [`LoginServer`] for `protocol` (`pop3` or `imap`), with implicit TLS if
    /// `implicit_tls`, running the post-login program `post_login` (a binary of the
    /// instance) on `dir`; `env` is given to the server (as rules would).
    pub fn login_server(
        &self,
        protocol: &str,
        implicit_tls: bool,
        post_login: &str,
        dir: &str,
        env: &[(&str, &str)],
    ) -> LoginServer {
        let mut args: Vec<OsString> = vec![protocol.into()];
        if implicit_tls {
            args.push("-s".into());
        }
        args.push(self.bin("fake-checkpassword").into());
        args.push(self.bin(post_login).into());
        args.push(dir.into());
        self.serve_login(protocol, &["-v", "-c", "100"], &args, env, false)
    }

    /// Serves `rqmail-login ARGS...` (any command line) on a fresh loopback port, with the
    /// log in a file; as root (no uid change, the real deployment) if `as_root`, else as
    /// the instance's user.
    pub fn login_server_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        as_root: bool,
    ) -> LoginServer {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        self.serve_login("login", &["-q"], &args, env, as_root)
    }

    /// rqmail-tcpserver with `flags` running `rqmail-login ARGS...` on a fresh loopback
    /// port, its log in `NAME-N.log`.
    fn serve_login(
        &self,
        name: &str,
        flags: &[&str],
        args: &[OsString],
        env: &[(&str, &str)],
        as_root: bool,
    ) -> LoginServer {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let log = self.home.join(format!("{name}-{n}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = if as_root {
            Command::new(self.bin("rqmail-tcpserver"))
        } else {
            command(self.bin("rqmail-tcpserver"))
        };
        cmd.arg("-1")
            .args(flags)
            .args(["-R", "-H", "-l", "mail.example.com", "127.0.0.1", "0"])
            .arg(self.bin("rqmail-login"))
            .args(args)
            .current_dir(&self.home)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(log_file);
        let (child, port) = spawn_server(&mut cmd, "rqmail-tcpserver");
        LoginServer::new(child, port, log)
    }
}

impl LoginServer {
    /// A server already started (see [`spawn_server`]) whose stderr goes to `log`.
    pub fn new(child: Child, port: u16, log: PathBuf) -> LoginServer {
        LoginServer {
            port,
            child: Some(child),
            log,
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until every session has ended, and asserts that no process crashed (no
    /// panic or abort in the log).
    pub fn wait_idle(&self) {
        let done = wait_for(Duration::from_secs(15), || {
            let log = self.log_text();
            log.matches("rqmail-tcpserver: end ").count()
                >= log.matches("rqmail-tcpserver: ok ").count()
        });
        let log = self.log_text();
        assert!(done, "sessions still running:\n{log}");
        for crash in ["panicked", "fatal runtime error", "overflowed its stack"] {
            assert!(!log.contains(crash), "a process crashed:\n{log}");
        }
    }

    /// [`wait_idle`](Self::wait_idle), and every session ended with status 0 or 1.
    /// (rqmail-login ends with 0 whatever became of the post-login program, so the log's
    /// crash lines are what tell of those.)
    pub fn wait_idle_and_clean(&self) {
        self.wait_idle();
        let log = self.log_text();
        for line in log.lines().filter(|l| l.contains("rqmail-tcpserver: end ")) {
            let status = line.rsplit(' ').next().unwrap_or("");
            assert!(
                status == "0" || status == "1",
                "a session ended badly ({line}):\n{log}"
            );
        }
    }
}

impl Drop for LoginServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

/// tests/python: `rqtest.py`, the client helpers the test scripts share, and the longer
/// scripts themselves, one directory per test file.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// `python3 -c script` with [`python_dir`] on PYTHONPATH, so that the script can
/// `from rqtest import ...`; every Python the tests run starts here. Add arguments and
/// environment (ports, paths) to it.
pub fn python_command(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .env("PYTHONPATH", python_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Opens the file in argv[1] as descriptor argv[2], inheritable, as the user running the
/// tests (root, typically), then becomes nobody if root and execs argv[3...].
const INHERITING: &str = r#"
import os, sys
path, fd, program = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
opened = os.open(path, os.O_RDONLY)
os.dup2(opened, fd, inheritable=True)
os.close(opened)
if os.geteuid() == 0:
    nobody = int(os.environ["NOBODY_ID"])
    os.setgroups([])
    os.setgid(nobody)
    os.setuid(nobody)
os.execv(program[0], program)
"#;

/// A Command that runs `program` (as [`command`] would) with `file` open on descriptor
/// `fd`, opened before the uid change so that it may be a file only root can read. Add
/// the program's arguments to it.
pub fn inheriting(fd: u32, file: &Path, program: &Path) -> Command {
    let mut cmd = python_command(INHERITING);
    cmd.arg(file)
        .arg(fd.to_string())
        .arg(program)
        .env("NOBODY_ID", NOBODY.to_string());
    cmd
}

/// Spawns `cmd`, a server that prints the port it listens on as the first line of its
/// stdout (rqmail-tcpserver on port 0, or a test peer), and returns it with that port.
pub fn spawn_server(cmd: &mut Command, what: &str) -> (Child, u16) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what} printed {line:?}"));
    (child, port)
}

/// Polls `f` every 10 ms until it is true or `limit` passes; returns whether it became true.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The body of a delivered message after its Return-Path and Delivered-To lines.
pub fn strip_delivery_lines(bytes: &[u8]) -> &[u8] {
    let mut rest = bytes;
    for prefix in [&b"Return-Path: "[..], b"Delivered-To: "] {
        if rest.starts_with(prefix) {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            rest = &rest[end..];
        }
    }
    rest
}

/// The command line and environment systemd gives a unit's ExecStart, read from the unit
/// file as install.sh installs it (PREFIX substituted): continuation lines joined with a
/// space, `$$` turned into `$`, `Environment=` assignments collected. The listening
/// address `0 STANDARD_PORT` becomes `127.0.0.1 port`. The result is a shell command line
/// (the units use no quoting that sh and systemd read differently).
pub fn unit_command(
    unit_file: &Path,
    prefix: &Path,
    standard_port: u16,
    port: u16,
) -> (String, Vec<(String, String)>) {
    let unit = unit_file.display();
    let text = std::fs::read_to_string(unit_file)
        .unwrap_or_else(|e| panic!("{unit}: {e}"))
        .replace("/var/rqmail", prefix.to_str().unwrap());
    let mut lines: Vec<String> = Vec::new();
    let mut continued = false;
    for line in text.lines() {
        if continued {
            let last = lines.last_mut().unwrap();
            last.push(' ');
            last.push_str(line);
        } else {
            lines.push(line.to_string());
        }
        continued = lines.last().unwrap().ends_with('\\');
        if continued {
            lines.last_mut().unwrap().pop();
        }
    }
    let mut exec = None;
    let mut env = Vec::new();
    for line in &lines {
        if let Some(command) = line.strip_prefix("ExecStart=") {
            assert!(exec.is_none(), "{unit}: one ExecStart");
            exec = Some(command.to_string());
        } else if let Some(assignments) = line.strip_prefix("Environment=") {
            for assignment in assignments.split_whitespace() {
                let (name, value) = assignment.split_once('=').unwrap();
                env.push((name.to_string(), value.to_string()));
            }
        }
    }
    let exec = exec.unwrap_or_else(|| panic!("{unit}: no ExecStart"));
    assert!(
        !exec.contains('%'),
        "{unit}: systemd would expand a % specifier: {exec}"
    );
    // Any "$" systemd itself would expand must be written "$$".
    let unescaped = exec.replace("$$", "");
    assert!(
        !unescaped.contains('$'),
        "{unit}: a single $ is a systemd variable: {exec}"
    );
    let exec = exec.replace("$$", "$");
    let listen = format!(" 0 {standard_port} ");
    assert!(
        exec.contains(&listen),
        "{unit}: listens on 0 {standard_port}: {exec}"
    );
    (exec.replace(&listen, &format!(" 127.0.0.1 {port} ")), env)
}
