//! The installer end to end, as root: install/install.sh into a scratch prefix with the
//! real accounts, then mail from a real user through every uid change to their Maildir,
//! and over SMTP through the SMTP services' systemd command lines (run as root, on high
//! ports), with AUTH through the installed setgid-shadow rqmail-checkpassword; then read
//! over POP3 (STLS and POP3S) through the POP3 services' command lines, with the front of
//! rqmail-login as rqmaild and rqmail-pop3d as the user; and over IMAP (STARTTLS and
//! IMAPS) through the IMAP services' command lines, with rqmail-imapd as the user.
//!
//! The prefix lives under the workspace's `target/`, not /tmp, because a set-uid
//! rqmail-queue only works on a filesystem mounted without `nosuid`, which /tmp often is.
//! Accounts and groups the installer creates here are removed again at the end; ones that
//! existed before the test (a real install) are left alone.

use rqmail_e2e::{python_command, target_dir, unit_command, wait_for};
use rqmail_rules::{Action, Cdb, Client};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The test's mail user; its home lives under the scratch directory.
const USER: &str = "rqtest1";
/// control/me of the scratch install.
const HOST: &str = "install-test.example";
/// The accounts and groups install.sh creates (crates/privs/src/lib.rs).
const ACCOUNTS: [&str; 7] = [
    "rqmaild", "rqmaill", "alias", "rqmailq", "rqmails", "rqmailr", "rqmailp",
];
const GROUPS: [&str; 3] = ["rqmail", "rqnofiles", "shadow"];
/// A clean PATH, as the service managers give rqmail-start.
const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn uid_of(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .unwrap()
        .map(|u| u.uid.as_raw())
}

fn gid_of(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .unwrap()
        .map(|g| g.gid.as_raw())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a system command (useradd, userdel, ...) and returns whether it succeeded.
fn system(program: &str, args: &[&str]) -> bool {
    let out = Command::new(program)
        .args(args)
        .env("PATH", PATH)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("{program} {args:?}: {}", text(&out.stderr));
    }
    out.status.success()
}

/// Everything the test made outside its scratch directory, undone on drop, panic or not.
struct Scratch {
    base: PathBuf,
    prefix: PathBuf,
    start: Option<Child>,
    log: PathBuf,
    accounts_before: Vec<&'static str>,
    groups_before: Vec<&'static str>,
    user_created: bool,
    /// The SMTP servers started from the systemd units' command lines.
    servers: Vec<Child>,
}

impl Scratch {
    fn new() -> Scratch {
        let base = target_dir()
            .parent()
            .unwrap()
            .join(format!("install-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch {
            prefix: base.join("rqmail"),
            log: base.join("send.log"),
            base,
            start: None,
            accounts_before: ACCOUNTS
                .into_iter()
                .filter(|a| uid_of(a).is_some())
                .collect(),
            groups_before: GROUPS.into_iter().filter(|g| gid_of(g).is_some()).collect(),
            user_created: false,
            servers: Vec::new(),
        }
    }

    fn install(&self, extra: &[&str]) -> Output {
        let out = Command::new(repo().join("install/install.sh"))
            .arg("--prefix")
            .arg(&self.prefix)
            .arg("--bindir")
            .arg(target_dir())
            .args(extra)
            .env_clear()
            .env("PATH", PATH)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "install.sh failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn log_text(&self) -> String {
        text(&std::fs::read(&self.log).unwrap_or_default())
    }

    /// Starts rqmail-start as root with a clean environment, as systemd would.
    fn start(&mut self) -> u32 {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(self.prefix.join("bin/rqmail-start"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.start = Some(child);
        assert!(
            wait_for(Duration::from_secs(15), || self
                .log_text()
                .contains("status: local")),
            "rqmail-send did not start:\n{}",
            self.log_text()
        );
        pid
    }

    /// TERM to rqmail-send; it finishes what is in flight and exits. Returns whether it
    /// exited within the time limit (else it is killed).
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.start.take() else {
            return true;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let exited = wait_for(Duration::from_secs(30), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(server.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if !wait_for(Duration::from_secs(10), || {
                matches!(server.try_wait(), Ok(Some(_)))
            }) {
                let _ = server.kill();
                let _ = server.wait();
            }
        }
        self.stop();
        // The spawns exit when send's pipes close; give them a moment before the files go.
        wait_for(Duration::from_secs(10), || daemons(&self.prefix).is_empty());
        if self.user_created {
            system("userdel", &[USER]);
        }
        for account in ACCOUNTS {
            if !self.accounts_before.contains(&account) && uid_of(account).is_some() {
                system("userdel", &[account]);
            }
        }
        for group in GROUPS {
            if !self.groups_before.contains(&group) && gid_of(group).is_some() {
                system("groupdel", &[group]);
            }
        }
        if std::thread::panicking() {
            eprintln!("rqmail-send's log:\n{}", self.log_text());
            for name in [
                "smtpd",
                "submission",
                "smtps",
                "pop3d",
                "pop3s",
                "imapd",
                "imaps",
            ] {
                let log = self.base.join(format!("{name}.log"));
                let log = text(&std::fs::read(log).unwrap_or_default());
                eprintln!("{name}'s log:\n{log}");
            }
        }
        // Removed even after a failure: it holds a set-uid binary.
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The mount options of the filesystem holding `path` (findmnt), if findmnt works.
fn mount_options(path: &Path) -> Option<String> {
    let out = Command::new("findmnt")
        .args(["-n", "-o", "OPTIONS", "-T"])
        .arg(path)
        .env("PATH", PATH)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_string())
}

/// One field of /proc/PID/status, e.g. `Uid:` -> its numbers (real, effective, saved, fs).
fn status_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn parent_pid(pid: u32) -> Option<u32> {
    status_ids(pid, "PPid:").first().copied()
}

/// The running programs of this install: program name -> pids, found through the
/// executable each process runs (/proc/PID/exe), so other instances do not count.
fn daemons(prefix: &Path) -> HashMap<String, Vec<u32>> {
    let bin = prefix.join("bin");
    let mut found: HashMap<String, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        if exe.parent() == Some(bin.as_path()) {
            let name = exe.file_name().unwrap().to_string_lossy().into_owned();
            found.entry(name).or_default().push(pid);
        }
    }
    found
}

/// Owner, group and permission bits (with set-uid and friends) of a path.
fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

fn maildir_new(maildir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Waits until `maildir/new` holds a message containing `marker`; returns its path.
fn wait_for_message(s: &Scratch, maildir: &Path, marker: &str) -> PathBuf {
    let find = || {
        maildir_new(maildir)
            .into_iter()
            .find(|f| text(&std::fs::read(f).unwrap_or_default()).contains(marker))
    };
    assert!(
        wait_for(Duration::from_secs(30), || find().is_some()),
        "no message with {marker:?} in {}; log:\n{}",
        maildir.display(),
        s.log_text()
    );
    find().unwrap()
}

/// Runs `program` as the test user with a clean environment plus `env`, message on stdin.
fn run_as_user(
    program: &Path,
    args: &[&str],
    home: &Path,
    ids: (u32, u32),
    input: &[u8],
) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .uid(ids.0)
        .gid(ids.1)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("USER", USER)
        .env("LOGNAME", USER)
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A program that refuses at once may not read its input: that is no error here.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// Checks owner, group and mode of each path against the install's specification.
fn check_modes(prefix: &Path) {
    let q = uid_of("rqmailq").unwrap();
    let s = uid_of("rqmails").unwrap();
    let r = uid_of("rqmailr").unwrap();
    let a = uid_of("alias").unwrap();
    let g = gid_of("rqmail").unwrap();
    let expected: Vec<(String, u32, u32)> = vec![
        ("bin/rqmail-queue".into(), q, 0o4711),
        ("bin/rqmail-lspawn".into(), 0, 0o700),
        ("bin/rqmail-start".into(), 0, 0o700),
        ("bin/rqmail-newu".into(), 0, 0o700),
        ("bin/rqmail-send".into(), 0, 0o711),
        ("bin/rqmail-clean".into(), 0, 0o711),
        ("bin/rqmail-rspawn".into(), 0, 0o711),
        ("bin/rqmail-remote".into(), 0, 0o711),
        ("bin/rqmail-local".into(), 0, 0o711),
        ("bin/rqmail-inject".into(), 0, 0o755),
        ("bin/sendmail".into(), 0, 0o755),
        ("bin/rqmail-qread".into(), 0, 0o755),
        ("bin/rqmail-qstat".into(), 0, 0o755),
        ("bin/rqmail-maildirmake".into(), 0, 0o755),
        ("bin/preline".into(), 0, 0o755),
        ("bin/bouncesaying".into(), 0, 0o755),
        ("bin/condredirect".into(), 0, 0o755),
        ("bin/forward".into(), 0, 0o755),
        ("bin/except".into(), 0, 0o755),
        ("bin/datemail".into(), 0, 0o755),
        ("bin/rqmail-tcpserver".into(), 0, 0o755),
        ("bin/rqmail-tcprules".into(), 0, 0o755),
        ("bin/rqmail-smtpd".into(), 0, 0o755),
        ("bin/rqmail-login".into(), 0, 0o755),
        ("bin/rqmail-pop3d".into(), 0, 0o755),
        ("bin/rqmail-imapd".into(), 0, 0o755),
        ("bin/rqmail-checkpassword".into(), 0, 0o2755),
        (
            "bin/rqmail-vusers".into(),
            uid_of("rqmailp").unwrap(),
            0o4711,
        ),
        ("users/virtual".into(), uid_of("rqmailp").unwrap(), 0o2750),
        ("users/loginfailures".into(), 0, 0o660),
        ("control".into(), 0, 0o755),
        ("control/tcp.smtp".into(), 0, 0o644),
        ("control/tcp.smtp.cdb".into(), 0, 0o644),
        ("control/tcp.pop3".into(), 0, 0o644),
        ("control/tcp.pop3.cdb".into(), 0, 0o644),
        ("control/timeoutpop3d".into(), 0, 0o644),
        ("control/tcp.imap".into(), 0, 0o644),
        ("control/tcp.imap.cdb".into(), 0, 0o644),
        ("control/timeoutimapd".into(), 0, 0o644),
        ("control/logindelay".into(), 0, 0o644),
        (
            "control/servercert.pem".into(),
            uid_of("rqmaild").unwrap(),
            0o400,
        ),
        ("users".into(), 0, 0o755),
        ("alias".into(), a, 0o2755),
        ("queue".into(), q, 0o750),
        ("queue/pid".into(), q, 0o700),
        ("queue/intd".into(), q, 0o700),
        ("queue/todo".into(), q, 0o750),
        ("queue/mess".into(), q, 0o750),
        ("queue/mess/0".into(), q, 0o750),
        ("queue/mess/22".into(), q, 0o750),
        ("queue/info/22".into(), s, 0o700),
        ("queue/local/0".into(), s, 0o700),
        ("queue/remote/11".into(), s, 0o700),
        ("queue/bounce".into(), s, 0o700),
        ("queue/lock".into(), q, 0o750),
        ("queue/lock/trigger".into(), s, 0o622),
        ("queue/lock/sendmutex".into(), s, 0o600),
        ("queue/lock/tcpto".into(), r, 0o644),
        ("alias/.qmail-postmaster".into(), a, 0o644),
        ("alias/.qmail-mailer-daemon".into(), a, 0o644),
        ("alias/.qmail-root".into(), a, 0o644),
    ];
    for (path, uid, mode) in expected {
        let (got_uid, _, got_mode) = owner_mode(&prefix.join(&path));
        assert!(
            (got_uid, got_mode) == (uid, mode),
            "{path}: owner {got_uid} mode {got_mode:04o}, expected owner {uid} mode {mode:04o}"
        );
    }
    for path in [
        "queue",
        "queue/mess/5",
        "queue/info/5",
        "queue/lock/trigger",
        "bin/rqmail-queue",
    ] {
        assert_eq!(owner_mode(&prefix.join(path)).1, g, "group of {path}");
    }
    // Set-gid shadow, so that rqmail-smtpd (rqmaild) can have a system password checked;
    // the virtual domains' hashes and the table of login attempts are group shadow too.
    for path in [
        "bin/rqmail-checkpassword",
        "users/virtual",
        "users/loginfailures",
    ] {
        assert_eq!(
            owner_mode(&prefix.join(path)).1,
            gid_of("shadow").unwrap(),
            "group of {path}"
        );
    }
    let split = std::fs::read_dir(prefix.join("queue/local"))
        .unwrap()
        .count();
    assert_eq!(split, 23, "queue/local has the 23 split subdirectories");
    assert!(
        std::fs::symlink_metadata(prefix.join("queue/lock/trigger"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        std::fs::metadata(prefix.join("queue/lock/tcpto"))
            .unwrap()
            .len(),
        1024
    );
    for sub in ["tmp", "new", "cur"] {
        assert_eq!(
            owner_mode(&prefix.join("alias/Maildir").join(sub)).0,
            a,
            "alias/Maildir/{sub}"
        );
    }
}

/// What a rules CDB decides for a client IP: allowed or not, and the variables it sets.
fn rules_for(cdb: &Path, ip: &str) -> (Action, Vec<(String, String)>) {
    let db = Cdb::open(cdb).unwrap_or_else(|e| panic!("{}: {e}", cdb.display()));
    let client = Client {
        ip: ip.as_bytes(),
        host: None,
        info: None,
    };
    let decision = rqmail_rules::lookup(&db, &client).unwrap();
    let vars = decision
        .vars
        .iter()
        .map(|(n, v)| (text(n), text(v)))
        .collect();
    (decision.action, vars)
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a unit's ExecStart as systemd would (as root, in /, with only the unit's
/// environment) on a high loopback port; returns the server once it has bound the port
/// and changed its uid (its first "status:" line), with its log file.
fn start_unit(s: &mut Scratch, unit: &str, name: &str, standard_port: u16) -> (u32, u16) {
    let port = free_port();
    let unit_file = repo().join("install/systemd").join(unit);
    let (command, env) = unit_command(&unit_file, &s.prefix, standard_port, port);
    let log = s.base.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .env_clear()
        .envs(env)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let pid = child.id();
    s.servers.push(child);
    let log_text = || text(&std::fs::read(&log).unwrap_or_default());
    assert!(
        wait_for(Duration::from_secs(15), || log_text()
            .contains("status: 0/")),
        "{unit} did not start listening on {port}:\n{}",
        log_text()
    );
    (pid, port)
}

/// Runs a Python 3 script with PORT set; asserts it succeeded.
fn python(port: u16, script: &str) {
    let out = python_command(script)
        .env("PORT", port.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Children of `parent` running `program` of this install.
fn children_running(prefix: &Path, program: &str, parent: u32) -> Vec<u32> {
    daemons(prefix)
        .get(program)
        .into_iter()
        .flatten()
        .copied()
        .filter(|&p| parent_pid(p) == Some(parent))
        .collect()
}

#[test]
fn installs_with_real_accounts_and_delivers_as_each_uid() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root (real account separation)");
        return;
    }
    let mut s = Scratch::new();
    if let Some(options) = mount_options(&s.base)
        && options.split(',').any(|o| o == "nosuid")
    {
        eprintln!(
            "SKIPPED: {} is on a nosuid mount ({options})",
            s.base.display()
        );
        return;
    }
    // A user left behind by a killed earlier run of this test goes first.
    if let Some(user) = nix::unistd::User::from_name(USER).unwrap() {
        assert!(
            user.dir.to_string_lossy().contains("/install-test-"),
            "an account {USER} exists that this test did not make; refusing to touch it"
        );
        assert!(system("userdel", &[USER]));
    }

    // 1. A fresh install: accounts, tree, binaries, control files, run scripts.
    let out = s.install(&["--hostname", HOST, "--daemontools"]);
    let said = text(&out.stdout);
    assert!(
        said.contains("rqmail-start"),
        "install.sh says how to start:\n{said}"
    );
    let prefix = s.prefix.clone();
    for account in ACCOUNTS {
        assert!(uid_of(account).is_some(), "install.sh created {account}");
    }
    // Every program the workspace builds is installed (one list: install/programs.sh).
    for program in rqmail_e2e::programs() {
        assert!(
            prefix.join("bin").join(&program).is_file(),
            "install.sh did not install {program}"
        );
    }
    check_modes(&prefix);
    let control =
        |name: &str| std::fs::read_to_string(prefix.join("control").join(name)).unwrap_or_default();
    assert_eq!(control("me"), format!("{HOST}\n"));
    assert_eq!(control("locals"), format!("{HOST}\nlocalhost\n"));
    assert_eq!(control("rcpthosts"), format!("{HOST}\nlocalhost\n"));
    assert_eq!(
        control("defaultdelivery").lines().next(),
        Some("./Maildir/")
    );
    assert_eq!(control("concurrencylocal").lines().next(), Some("10"));
    // A fresh install has a message size limit (issue 12, item 7).
    assert_eq!(control("databytes").lines().next(), Some("36700160"));
    assert!(
        !prefix.join("control/bouncehost").exists(),
        "host-specific files are only samples"
    );
    assert!(prefix.join("control/bouncehost.sample").exists());
    let run = std::fs::read_to_string(prefix.join("service/rqmail/run")).unwrap();
    assert!(
        run.contains(&format!("{}/bin/rqmail-start", prefix.display())),
        "{run}"
    );
    assert!(
        !run.contains("/var/rqmail"),
        "the prefix is substituted:\n{run}"
    );
    for (service, port) in [
        ("rqmail-smtpd", 25),
        ("rqmail-submission", 587),
        ("rqmail-smtps", 465),
        ("rqmail-pop3d", 110),
        ("rqmail-pop3s", 995),
        ("rqmail-imapd", 143),
        ("rqmail-imaps", 993),
    ] {
        let run = std::fs::read_to_string(prefix.join("service").join(service).join("run"))
            .unwrap_or_else(|e| panic!("service/{service}/run: {e}"));
        assert!(
            run.contains(&format!("home={}\n", prefix.display())) && !run.contains("/var/rqmail"),
            "the prefix is substituted:\n{run}"
        );
        assert!(
            run.contains(&format!(" 0 {port} ")),
            "{service} listens on {port}:\n{run}"
        );
        let sh = Command::new("sh")
            .arg("-n")
            .arg(prefix.join("service").join(service).join("run"))
            .status()
            .unwrap();
        assert!(sh.success(), "service/{service}/run is a valid sh script");
        assert_eq!(
            owner_mode(&prefix.join("service").join(service).join("log/main")).0,
            uid_of("rqmaill").unwrap(),
            "{service}/log/main belongs to rqmaill"
        );
    }
    // The SMTP services' files: the rules (loopback may relay), the limit, the certificate.
    assert_eq!(control("concurrencyincoming").lines().next(), Some("40"));
    let tcp_smtp = control("tcp.smtp");
    assert!(
        tcp_smtp.contains("\n127.:allow,RELAYCLIENT=\"\"\n"),
        "{tcp_smtp}"
    );
    let cdb = prefix.join("control/tcp.smtp.cdb");
    let relay = (
        Action::Allow,
        vec![("RELAYCLIENT".to_string(), String::new())],
    );
    assert_eq!(rules_for(&cdb, "127.0.0.1"), relay);
    assert_eq!(rules_for(&cdb, "::1"), relay);
    assert_eq!(rules_for(&cdb, "192.0.2.1"), (Action::Allow, vec![]));
    // The POP3 services' files: loopback may log in without TLS, others inside TLS only.
    let pop3_cdb = prefix.join("control/tcp.pop3.cdb");
    let plaintext = (
        Action::Allow,
        vec![("POP3_PLAINTEXT".to_string(), String::new())],
    );
    assert_eq!(rules_for(&pop3_cdb, "127.0.0.1"), plaintext);
    assert_eq!(rules_for(&pop3_cdb, "::1"), plaintext);
    assert_eq!(rules_for(&pop3_cdb, "192.0.2.1"), (Action::Allow, vec![]));
    assert_eq!(control("timeoutpop3d").lines().next(), Some("1200"));
    assert_eq!(control("logindelay").lines().next(), Some("1000"));
    let said_pop3 = said.contains("rqmail-pop3d") && said.contains("rqmail-pop3s");
    assert!(said_pop3, "install.sh says how to start POP3:\n{said}");
    // The IMAP services' files: likewise.
    let imap_cdb = prefix.join("control/tcp.imap.cdb");
    let imap_plaintext = (
        Action::Allow,
        vec![("IMAP_PLAINTEXT".to_string(), String::new())],
    );
    assert_eq!(rules_for(&imap_cdb, "127.0.0.1"), imap_plaintext);
    assert_eq!(rules_for(&imap_cdb, "::1"), imap_plaintext);
    assert_eq!(rules_for(&imap_cdb, "192.0.2.1"), (Action::Allow, vec![]));
    assert_eq!(control("timeoutimapd").lines().next(), Some("1800"));
    let said_imap = said.contains("rqmail-imapd") && said.contains("rqmail-imaps");
    assert!(said_imap, "install.sh says how to start IMAP:\n{said}");
    let cert = std::fs::read(prefix.join("control/servercert.pem")).unwrap();
    let cert_text = text(&cert);
    assert!(
        cert_text.contains("-----BEGIN CERTIFICATE-----") && cert_text.contains("PRIVATE KEY-----"),
        "servercert.pem holds the certificate and its key"
    );
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(prefix.join("control/servercert.pem"))
        .output()
        .unwrap();
    assert!(
        text(&subject.stdout).contains(&format!("CN = {HOST}")),
        "certificate for control/me: {}",
        text(&subject.stdout)
    );

    // 2. A real user with a Maildir in a home under the scratch directory.
    let home = s.base.join("home").join(USER);
    std::fs::create_dir_all(home.parent().unwrap()).unwrap();
    let home_arg = home.to_str().unwrap();
    assert!(system(
        "useradd",
        &[
            "--home-dir",
            home_arg,
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            USER
        ]
    ));
    s.user_created = true;
    let user = nix::unistd::User::from_name(USER).unwrap().unwrap();
    let ids = (user.uid.as_raw(), user.gid.as_raw());
    for sub in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir_all(home.join(sub)).unwrap();
    }
    assert!(system(
        "chown",
        &["-R", &format!("{}:{}", ids.0, ids.1), home_arg]
    ));
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let maildir = home.join("Maildir");

    // 3. The admin edits things; a second run keeps every edit, compiles users/assign
    //    and still leaves a working install.
    std::fs::write(prefix.join("control/concurrencylocal"), "5\n").unwrap();
    std::fs::write(
        prefix.join("alias/.qmail-root"),
        "&nobody@elsewhere.example\n",
    )
    .unwrap();
    let assign = format!(
        "=rqalias:{USER}:{}:{}:{}:::\n.\n",
        ids.0,
        ids.1,
        home.display()
    );
    std::fs::write(prefix.join("users/assign"), assign).unwrap();
    // An edited tcp.smtp (made newer than its cdb) is kept and compiled again.
    let edited_rules = format!("{tcp_smtp}192.0.2.:deny\n");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(prefix.join("control/tcp.smtp"), &edited_rules).unwrap();
    std::fs::write(prefix.join("control/checkpassworddelay"), "100\n").unwrap();
    s.install(&["--hostname", "other.example"]);
    assert_eq!(control("tcp.smtp"), edited_rules, "an edited tcp.smtp kept");
    assert_eq!(
        rules_for(&cdb, "192.0.2.1").0,
        Action::Deny,
        "the edited tcp.smtp compiled again"
    );
    assert_eq!(rules_for(&cdb, "127.0.0.1"), relay);
    assert_eq!(
        std::fs::read(prefix.join("control/servercert.pem")).unwrap(),
        cert,
        "the certificate kept"
    );
    assert_eq!(control("me"), format!("{HOST}\n"), "control/me kept");
    assert_eq!(
        control("concurrencylocal"),
        "5\n",
        "an edited control file kept"
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join("alias/.qmail-root")).unwrap(),
        "&nobody@elsewhere.example\n"
    );
    assert!(
        prefix.join("users/cdb").exists(),
        "install.sh ran rqmail-newu"
    );
    check_modes(&prefix);

    // 4. rqmail-start as root: each daemon under its own uid.
    let send_pid = s.start();
    let running = daemons(&prefix);
    let child_of_send = |name: &str| -> u32 {
        let pids: Vec<u32> = running
            .get(name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&p| parent_pid(p) == Some(send_pid))
            .collect();
        assert_eq!(
            pids.len(),
            1,
            "one {name} started by rqmail-start: {running:?}"
        );
        pids[0]
    };
    let g = gid_of("rqmail").unwrap();
    let expect = [
        ("rqmail-lspawn", child_of_send("rqmail-lspawn"), 0),
        (
            "rqmail-rspawn",
            child_of_send("rqmail-rspawn"),
            uid_of("rqmailr").unwrap(),
        ),
        (
            "rqmail-clean",
            child_of_send("rqmail-clean"),
            uid_of("rqmailq").unwrap(),
        ),
        ("rqmail-send", send_pid, uid_of("rqmails").unwrap()),
    ];
    assert_eq!(
        running.get("rqmail-send"),
        Some(&vec![send_pid]),
        "rqmail-start became rqmail-send"
    );
    for (name, pid, uid) in expect {
        let uids = status_ids(pid, "Uid:");
        assert_eq!(
            &uids[..2],
            &[uid, uid],
            "{name} (pid {pid}) real and effective uid"
        );
        let gids = status_ids(pid, "Gid:");
        assert_eq!(
            &gids[..2],
            &[g, g],
            "{name} (pid {pid}) real and effective gid"
        );
    }

    // 5. sendmail run by the user: delivered by rqmail-local as the user.
    let sendmail = prefix.join("bin/sendmail");
    let to = format!("{USER}@{HOST}");
    let out = run_as_user(
        &sendmail,
        &[&to],
        &home,
        ids,
        b"Subject: one\n\nfrom sendmail, as the user\n",
    );
    assert!(out.status.success(), "sendmail: {}", text(&out.stderr));
    let file = wait_for_message(&s, &maildir, "from sendmail, as the user");
    assert_eq!(
        owner_mode(&file).0,
        ids.0,
        "the delivered file belongs to the user"
    );
    let got = text(&std::fs::read(&file).unwrap());
    assert!(got.contains(&format!("invoked by uid {}", ids.0)), "{got}");
    assert!(got.contains(&format!("Delivered-To: {to}\n")), "{got}");

    // 5a. qmail's helpers by their qmail names in the user's .qmail lines (issue 13,
    //     item 5): program deliveries find PREFIX/bin first on their PATH although
    //     rqmail-start was given only /usr/bin:/bin.
    let helpers = home.join(".qmail-helpers");
    std::fs::write(
        &helpers,
        format!("|preline -f cat > preline.out\n|forward {to}\n"),
    )
    .unwrap();
    std::os::unix::fs::chown(&helpers, Some(ids.0), Some(ids.1)).unwrap();
    let helper_to = format!("{USER}-helpers@{HOST}");
    let out = run_as_user(
        &sendmail,
        &[&helper_to],
        &home,
        ids,
        b"Subject: helpers\n\nthrough preline and forward\n",
    );
    assert!(out.status.success(), "sendmail: {}", text(&out.stderr));
    let file = wait_for_message(&s, &maildir, "through preline and forward");
    let got = text(&std::fs::read(&file).unwrap());
    assert!(
        got.contains(&format!("\nDelivered-To: {helper_to}\n")),
        "forward kept the first delivery's Delivered-To line: {got}"
    );
    let prelined = text(&std::fs::read(home.join("preline.out")).unwrap_or_default());
    assert!(
        prelined.starts_with(&format!("Return-Path: <{to}>\nDelivered-To: {helper_to}\n")),
        "{prelined}\n{}",
        s.log_text()
    );
    std::fs::remove_file(&helpers).unwrap();

    // 5b. Mail to another host leaves (issue 13, item 1): rqmail-remote is installed, and
    //     a message for peer.test, routed by smtproutes to a real Postfix on loopback,
    //     arrives there.
    if let Some(daemons) =
        rqmail_e2e::postfix::postfix_daemons("the install test's remote delivery")
    {
        let mut pf = rqmail_e2e::postfix::Postfix::new("install", daemons, &["bob"], None);
        pf.start();
        std::fs::write(
            prefix.join("control/smtproutes"),
            format!("peer.test:127.0.0.1:{}\n", pf.port),
        )
        .unwrap();
        let out = run_as_user(
            &sendmail,
            &["bob@peer.test"],
            &home,
            ids,
            b"Subject: out\n\nto another host, through rqmail-remote\n",
        );
        assert!(out.status.success(), "sendmail: {}", text(&out.stderr));
        let bob = pf.maildir("bob").join("new");
        let arrived = wait_for(Duration::from_secs(30), || {
            std::fs::read_dir(&bob).is_ok_and(|d| {
                d.flatten().any(|f| {
                    text(&std::fs::read(f.path()).unwrap_or_default())
                        .contains("to another host, through rqmail-remote")
                })
            })
        });
        assert!(
            arrived,
            "nothing arrived at Postfix:\n{}\nPostfix:\n{}",
            s.log_text(),
            pf.log()
        );
        assert!(s.log_text().contains("delivery"), "{}", s.log_text());
        std::fs::remove_file(prefix.join("control/smtproutes")).unwrap();
    }

    // 6. rqmail-queue is set-uid: variables that would move its home change nothing.
    // Close-on-exec, so that rqmail-queue holds no write end and sees EOF on both.
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (message_read, message_write) = pipe();
    let (envelope_read, envelope_write) = pipe();
    let mut queue = Command::new(prefix.join("bin/rqmail-queue"))
        .uid(ids.0)
        .gid(ids.1)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("QMAILHOME", "/nonexistent")
        .env("RQMAIL_HOME", "/nonexistent")
        .env("HOME", "/nonexistent")
        .current_dir("/")
        .stdin(Stdio::from(message_read))
        .stdout(Stdio::from(envelope_read))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut message = std::fs::File::from(message_write);
    message
        .write_all(b"Subject: two\n\nqueued directly, hostile environment\n")
        .unwrap();
    drop(message);
    let mut envelope = std::fs::File::from(envelope_write);
    envelope
        .write_all(format!("F{to}\0T{to}\0\0").as_bytes())
        .unwrap();
    drop(envelope);
    let status = queue.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "rqmail-queue with a hostile environment"
    );
    let file = wait_for_message(&s, &maildir, "queued directly, hostile environment");
    assert_eq!(owner_mode(&file).0, ids.0);
    let got = text(&std::fs::read(&file).unwrap());
    assert!(got.contains(&format!("invoked by uid {}", ids.0)), "{got}");
    assert!(!Path::new("/nonexistent").exists());

    // 7. users/assign (compiled by install.sh) and the alias account's home.
    let out = run_as_user(
        &sendmail,
        &[&format!("rqalias@{HOST}")],
        &home,
        ids,
        b"Subject: three\n\nvia users/assign\n",
    );
    assert!(out.status.success(), "sendmail: {}", text(&out.stderr));
    wait_for_message(&s, &maildir, "via users/assign");
    // An alias account from a real install keeps its home there: then mail for the
    // postmaster would land in the real install's mailbox, so that part is left out.
    let alias_home = nix::unistd::User::from_name("alias").unwrap().unwrap().dir;
    if alias_home == prefix.join("alias") {
        let out = run_as_user(
            &sendmail,
            &[&format!("postmaster@{HOST}")],
            &home,
            ids,
            b"Subject: four\n\nfor the postmaster\n",
        );
        assert!(out.status.success(), "sendmail: {}", text(&out.stderr));
        let file = wait_for_message(&s, &prefix.join("alias/Maildir"), "for the postmaster");
        assert_eq!(
            owner_mode(&file).0,
            uid_of("alias").unwrap(),
            "alias mail belongs to alias"
        );
    } else {
        eprintln!(
            "note: the alias account's home is {}, not this install's; postmaster mail not tried",
            alias_home.display()
        );
    }

    // 8. The SMTP services, started from the systemd units' own command lines, as root.
    let rqmaild = uid_of("rqmaild").unwrap();
    let nofiles = gid_of("rqnofiles").unwrap();
    let (smtpd_pid, smtp_port) = start_unit(&mut s, "rqmail-smtpd.service", "smtpd", 25);
    let (submission_pid, submission_port) =
        start_unit(&mut s, "rqmail-submission.service", "submission", 587);
    let (smtps_pid, smtps_port) = start_unit(&mut s, "rqmail-smtps.service", "smtps", 465);
    for pid in [smtpd_pid, submission_pid, smtps_pid] {
        // The shell became rqmail-tcpserver, which bound the port and became rqmaild.
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
            prefix.join("bin/rqmail-tcpserver")
        );
        assert_eq!(
            &status_ids(pid, "Uid:")[..],
            &[rqmaild; 4],
            "tcpserver {pid} uids"
        );
        assert_eq!(
            &status_ids(pid, "Gid:")[..],
            &[nofiles; 4],
            "tcpserver {pid} gids"
        );
        assert_eq!(
            status_ids(pid, "Groups:"),
            vec![nofiles],
            "tcpserver {pid} groups"
        );
    }
    // A session in progress: rqmail-smtpd, the server's child, runs as rqmaild too.
    {
        use std::io::{BufRead, BufReader};
        let stream = std::net::TcpStream::connect(("127.0.0.1", smtp_port)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        assert!(
            greeting.starts_with(&format!("220 {HOST} ESMTP")),
            "{greeting}"
        );
        let smtpd = children_running(&prefix, "rqmail-smtpd", smtpd_pid);
        assert_eq!(smtpd.len(), 1, "one rqmail-smtpd under the server");
        assert_eq!(&status_ids(smtpd[0], "Uid:")[..2], &[rqmaild, rqmaild]);
        assert_eq!(&status_ids(smtpd[0], "Gid:")[..2], &[nofiles, nofiles]);
        (&stream).write_all(b"QUIT\r\n").unwrap();
        let mut bye = String::new();
        reader.read_line(&mut bye).unwrap();
        assert!(bye.starts_with("221 "), "{bye}");
    }
    // Port 25: loopback may relay (tcp.smtp); a message to the user lands in the Maildir.
    python(
        smtp_port,
        &format!(
            r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
code, caps = s.ehlo("client.example")
assert b"STARTTLS" in caps, caps
s.sendmail("someone@remote.example", ["{USER}@{HOST}"], b"Subject: five\r\n\r\nover SMTP, port 25\r\n")
s.quit()
"#
        ),
    );
    let file = wait_for_message(&s, &maildir, "over SMTP, port 25");
    let got = text(&std::fs::read(&file).unwrap());
    assert!(
        got.contains("invoked from network"),
        "queued by rqmaild:\n{got}"
    );
    assert!(
        got.contains(&format!("(127.0.0.1)\n  by {HOST} with ESMTP")),
        "the Received line names control/me:\n{got}"
    );
    // Submission: AUTH is required, offered after STARTTLS, and the installed set-gid
    // rqmail-checkpassword checks the system password (a wrong one is refused).
    let mut chpasswd = Command::new("chpasswd")
        .env("PATH", PATH)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{USER}:correct horse\n").as_bytes())
        .unwrap();
    assert!(chpasswd.wait().unwrap().success());
    let tls = r#"
import os, smtplib, ssl
from rqtest import tls_context; ctx = tls_context()
"#;
    python(
        submission_port,
        &format!(
            r#"{tls}
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
s.ehlo("client.example")
code, reply = s.mail("{USER}@{HOST}")
assert code == 530, (code, reply)
s.rset()
s.starttls(context=ctx)
code, caps = s.ehlo("client.example")
assert b"AUTH" in caps and b"PLAIN" in caps, caps
try:
    s.login("{USER}", "wrong horse"); raise SystemExit("accepted a wrong password")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.login("{USER}", "correct horse")
s.sendmail("{USER}@{HOST}", ["{USER}@{HOST}"], b"Subject: six\r\n\r\nsubmitted on 587\r\n")
s.quit()
"#
        ),
    );
    let file = wait_for_message(&s, &maildir, "submitted on 587");
    let got = text(&std::fs::read(&file).unwrap());
    assert!(got.contains(&format!("({USER}@127.0.0.1)")), "{got}");
    // SMTPS: TLS from the first byte, then AUTH.
    python(
        smtps_port,
        &format!(
            r#"{tls}
s = smtplib.SMTP_SSL("127.0.0.1", int(os.environ["PORT"]), context=ctx)
code, caps = s.ehlo("client.example")
assert b"AUTH" in caps and b"STARTTLS" not in caps, caps
s.login("{USER}", "correct horse")
s.sendmail("{USER}@{HOST}", ["{USER}@{HOST}"], b"Subject: seven\r\n\r\nsubmitted on 465\r\n")
s.quit()
"#
        ),
    );
    wait_for_message(&s, &maildir, "submitted on 465");

    // 9. The POP3 services, from their units' command lines: rqmail-tcpserver stays root
    //    (no -u), the front of rqmail-login becomes rqmaild, and rqmail-checkpassword runs
    //    rqmail-pop3d as the user, who reads every message byte for byte.
    let (pop3d_pid, pop3d_port) = start_unit(&mut s, "rqmail-pop3d.service", "pop3d", 110);
    let (pop3s_pid, pop3s_port) = start_unit(&mut s, "rqmail-pop3s.service", "pop3s", 995);
    for pid in [pop3d_pid, pop3s_pid] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
            prefix.join("bin/rqmail-tcpserver")
        );
        assert_eq!(
            &status_ids(pid, "Uid:")[..],
            &[0; 4],
            "tcpserver {pid} uids"
        );
    }
    let pop3_prelude = format!(
        r#"{tls}
import poplib, re
MAILDIR = "{maildir}"
def status(pid):
    fields = {{}}
    try:
        for line in open("/proc/%d/status" % pid):
            key, _, value = line.partition(":")
            fields[key] = value.split()
    except OSError:
        pass
    return fields
def files():
    found = {{}}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(MAILDIR, sub)):
            wire = open(os.path.join(MAILDIR, sub, name), "rb").read().replace(b"\n", b"\r\n")
            found[name.split(":")[0]] = wire if wire.endswith(b"\r\n") else wire + b"\r\n"
    return found
def check_processes(p, tcpserver):
    front = int(re.match(rb"\+OK <(\d+)\.", p.getwelcome()).group(1))
    f = status(front)
    assert f["Uid"] == ["{rqmaild}"] * 4 and f["Gid"] == ["{nofiles}"] * 4, (f["Uid"], f["Gid"])
    assert f["Groups"] == ["{nofiles}"], f["Groups"]
    root = int(f["PPid"][0])
    r = status(root)
    assert r["Uid"] == ["0"] * 4 and r["PPid"] == [str(tcpserver)], (r["Uid"], r["PPid"])
    # The root half's other child: rqmail-checkpassword, now rqmail-pop3d as the user.
    sessions = [int(d) for d in os.listdir("/proc") if d.isdigit() and int(d) != front
                and status(int(d)).get("PPid") == [str(root)]]
    assert len(sessions) == 1, sessions
    pop3d = sessions[0]
    assert os.readlink("/proc/%d/exe" % pop3d) == "{prefix}/bin/rqmail-pop3d"
    s = status(pop3d)
    assert s["Uid"] == ["{uid}"] * 4 and s["Gid"] == ["{gid}"] * 4, (s["Uid"], s["Gid"])
    assert s["Groups"] == ["{gid}"], s["Groups"]
    assert os.readlink("/proc/%d/cwd" % pop3d) == MAILDIR
def read_all(p):
    want = files()
    count, total = p.stat()
    assert count == len(want) and total == sum(map(len, want.values())), (count, total)
    resp, uidls, _ = p.uidl()
    for line in uidls:
        n, uid = line.split()
        resp, lines, octets = p.retr(int(n))
        assert b"".join(l + b"\r\n" for l in lines) == want[uid.decode()], (n, lines[:5])
    assert p.quit().startswith(b"+OK")
    return count
"#,
        maildir = maildir.display(),
        prefix = prefix.display(),
        uid = ids.0,
        gid = ids.1,
    );
    python(
        pop3d_port,
        &format!(
            r#"{pop3_prelude}
p = poplib.POP3("127.0.0.1", int(os.environ["PORT"]), timeout=30)
assert "STLS" in p.capa()
p.stls(ctx)
p.user("{USER}")
try:
    p.pass_("wrong horse"); raise SystemExit("accepted a wrong password")
except poplib.error_proto as e:
    assert b"[AUTH]" in e.args[0], e
p.user("{USER}")
assert p.pass_("correct horse").startswith(b"+OK")
check_processes(p, {pop3d_pid})
assert read_all(p) >= 5
"#
        ),
    );
    // QUIT moved them to cur/; over POP3S the same messages, again as the user.
    let pop3d_log = s.base.join("pop3d.log");
    assert!(
        wait_for(Duration::from_secs(10), || text(
            &std::fs::read(&pop3d_log).unwrap_or_default()
        )
        .contains(" status 0")),
        "the POP3 session did not end"
    );
    assert!(
        maildir_new(&maildir).is_empty(),
        "rqmail-pop3d moved the messages to cur/"
    );
    python(
        pop3s_port,
        &format!(
            r#"{pop3_prelude}
p = poplib.POP3_SSL("127.0.0.1", int(os.environ["PORT"]), context=ctx, timeout=30)
p.user("{USER}")
assert p.pass_("correct horse").startswith(b"+OK")
check_processes(p, {pop3s_pid})
assert read_all(p) >= 5
"#
        ),
    );
    let log = text(&std::fs::read(&pop3d_log).unwrap_or_default());
    assert!(
        log.contains(&format!("login failed for {USER} (1 of 3)")),
        "{log}"
    );
    assert!(!log.contains("horse"), "password logged:\n{log}");

    // 9b. The IMAP services, from their units' command lines: as for POP3, rqmail-tcpserver
    //     and the root half of rqmail-login stay root, the front becomes rqmaild, and
    //     rqmail-imapd runs as the user in their home. IMAPS: every message byte for byte,
    //     then \Seen gives the file its ":2,S". Then STARTTLS on the other unit.
    let (imapd_pid, imapd_port) = start_unit(&mut s, "rqmail-imapd.service", "imapd", 143);
    let (imaps_pid, imaps_port) = start_unit(&mut s, "rqmail-imaps.service", "imaps", 993);
    for pid in [imapd_pid, imaps_pid] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
            prefix.join("bin/rqmail-tcpserver")
        );
        assert_eq!(
            &status_ids(pid, "Uid:")[..],
            &[0; 4],
            "tcpserver {pid} uids"
        );
    }
    let imap_prelude = format!(
        r#"{tls}
import imaplib, re
MAILDIR = "{maildir}"
def status(pid):
    fields = {{}}
    try:
        for line in open("/proc/%d/status" % pid):
            key, _, value = line.partition(":")
            fields[key] = value.split()
    except OSError:
        pass
    return fields
def children(pid):
    return [int(d) for d in os.listdir("/proc") if d.isdigit()
            and status(int(d)).get("PPid") == [str(pid)]]
def files():
    found = {{}}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(MAILDIR, sub)):
            wire = open(os.path.join(MAILDIR, sub, name), "rb").read().replace(b"\n", b"\r\n")
            found[name.split(":")[0]] = wire
    return found
def check_processes(tcpserver):
    # tcpserver -> rqmail-login's root half -> the front (rqmaild) and rqmail-imapd (user).
    roots = children(tcpserver)
    assert len(roots) == 1, roots
    root = roots[0]
    r = status(root)
    assert r["Uid"] == ["0"] * 4, r["Uid"]
    assert os.readlink("/proc/%d/exe" % root) == "{prefix}/bin/rqmail-login"
    front = imapd = None
    for pid in children(root):
        exe = os.readlink("/proc/%d/exe" % pid)
        if exe == "{prefix}/bin/rqmail-imapd":
            imapd = pid
        elif exe == "{prefix}/bin/rqmail-login":
            front = pid
    assert front and imapd, children(root)
    f = status(front)
    assert f["Uid"] == ["{rqmaild}"] * 4 and f["Gid"] == ["{nofiles}"] * 4, (f["Uid"], f["Gid"])
    assert f["Groups"] == ["{nofiles}"], f["Groups"]
    s = status(imapd)
    assert s["Uid"] == ["{uid}"] * 4 and s["Gid"] == ["{gid}"] * 4, (s["Uid"], s["Gid"])
    assert s["Groups"] == ["{gid}"], s["Groups"]
    assert os.readlink("/proc/%d/cwd" % imapd) == MAILDIR
def read_all(m):
    want = files()
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) == len(want), (typ, data, len(want))
    got = []
    for n in range(1, len(want) + 1):
        typ, data = m.fetch(str(n), "(BODY.PEEK[])")
        assert typ == "OK", (typ, data)
        got.append(data[0][1])
    assert sorted(got) == sorted(want.values()), "FETCH BODY[] is not the files"
    return len(want)
"#,
        maildir = maildir.display(),
        prefix = prefix.display(),
        uid = ids.0,
        gid = ids.1,
    );
    python(
        imaps_port,
        &format!(
            r#"{imap_prelude}
m = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["PORT"]), ssl_context=ctx, timeout=30)
try:
    m.login("{USER}", "wrong horse"); raise SystemExit("accepted a wrong password")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
m.login("{USER}", "correct horse")
check_processes({imaps_pid})
assert read_all(m) >= 5
typ, data = m.store("1", "+FLAGS", "(\\Seen)")
assert typ == "OK", (typ, data)
m.logout()
assert any(n.endswith(":2,S") for n in os.listdir(os.path.join(MAILDIR, "cur"))), \
    os.listdir(os.path.join(MAILDIR, "cur"))
"#
        ),
    );
    python(
        imapd_port,
        &format!(
            r#"{imap_prelude}
m = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]), timeout=30)
assert "STARTTLS" in m.capabilities and "LOGINDISABLED" not in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
m.login("{USER}", "correct horse")
check_processes({imapd_pid})
assert read_all(m) >= 5
m.logout()
"#
        ),
    );
    let imap_log = text(&std::fs::read(s.base.join("imaps.log")).unwrap_or_default())
        + &text(&std::fs::read(s.base.join("imapd.log")).unwrap_or_default());
    assert!(
        imap_log.contains(&format!("login for {USER} (TLS")),
        "{imap_log}"
    );
    assert!(!imap_log.contains("horse"), "password logged:\n{imap_log}");

    // 9b. A virtual domain on the installed system, handed to the test user: rqmail-vusers
    //     as root, rqmail-smtpd (rqmaild) checking recipients through the account's home
    //     (mode 0711, as a dedicated domain account's home may be), delivery by
    //     rqmail-vdeliver as the account, and IMAP with the virtual user's own password
    //     through the installed rqmail-checkpassword, which reads passwd.cdb as root.
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::write(
        prefix.join("control/virtualdomains"),
        format!("v.test:{USER}\n"),
    )
    .unwrap();
    let rcpthosts = std::fs::read_to_string(prefix.join("control/rcpthosts")).unwrap();
    std::fs::write(
        prefix.join("control/rcpthosts"),
        format!("{rcpthosts}v.test\n"),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(send_pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let vdeliver = prefix.join("bin/rqmail-vdeliver");
    std::fs::write(
        home.join(".qmail-default"),
        format!("|{}\n", vdeliver.display()),
    )
    .unwrap();
    std::os::unix::fs::chown(home.join(".qmail-default"), Some(ids.0), Some(ids.1)).unwrap();
    let mut vusers = Command::new(prefix.join("bin/rqmail-vusers"))
        .args(["v.test", "add", "vic"])
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    vusers
        .stdin
        .take()
        .unwrap()
        .write_all(b"vic's own pw\n")
        .unwrap();
    let out = vusers.wait_with_output().unwrap();
    assert!(out.status.success(), "rqmail-vusers: {}", text(&out.stderr));
    let domain = home.join("v.test");
    let vic = domain.join("vic").join("Maildir");
    assert_eq!(
        owner_mode(&domain).0,
        ids.0,
        "the domain directory belongs to the account"
    );
    assert_eq!(std::fs::metadata(&vic).unwrap().uid(), ids.0);

    // 9c. The hashes are out of the account's reach (issue 12, item 5): they live in
    //     users/virtual/v.test, rqmailp's and group shadow's; nothing with a hash is in the
    //     account's directory; the account can read neither the text nor passwd.cdb, and
    //     yet manages its users itself through the set-uid rqmail-vusers. Another user may
    //     not.
    let hashes = prefix.join("users/virtual/v.test");
    for name in ["passwd", "passwd.cdb"] {
        let (uid, gid, mode) = owner_mode(&hashes.join(name));
        assert_eq!(uid, uid_of("rqmailp").unwrap(), "owner of {name}");
        assert_eq!(gid, gid_of("shadow").unwrap(), "group of {name}");
        assert_eq!(mode & 0o007, 0, "{name} is not world-readable");
        assert!(
            !domain.join(name).exists(),
            "{name} in the account's directory"
        );
    }
    assert!(text(&std::fs::read(hashes.join("passwd")).unwrap()).contains("vic:$y$"));
    let cat = run_as_user(
        Path::new("/bin/cat"),
        &[
            hashes.join("passwd").to_str().unwrap(),
            hashes.join("passwd.cdb").to_str().unwrap(),
        ],
        &home,
        ids,
        b"",
    );
    assert!(!cat.status.success(), "the account read the hashes");
    assert!(!text(&cat.stdout).contains("$y$"));
    let vusers_bin = prefix.join("bin/rqmail-vusers");
    let out = run_as_user(
        &vusers_bin,
        &["v.test", "add", "val"],
        &home,
        ids,
        b"val's pw\n",
    );
    assert!(
        out.status.success(),
        "the account's own rqmail-vusers: {}",
        text(&out.stderr)
    );
    let out = run_as_user(&vusers_bin, &["v.test", "list"], &home, ids, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("user val quota 0"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains('$'), "list printed a hash");
    assert_eq!(owner_mode(&domain.join("val/Maildir/new")).0, ids.0);
    assert_eq!(
        owner_mode(&hashes.join("passwd")).0,
        uid_of("rqmailp").unwrap()
    );
    let nobody = (65534, 65534);
    let out = run_as_user(
        &vusers_bin,
        &["v.test", "passwd", "vic"],
        &home,
        nobody,
        b"taken\n",
    );
    assert_eq!(out.status.code(), Some(100), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only root and the account"),
        "{}",
        text(&out.stderr)
    );

    // 9d. Root following the account's links (issue 12, item 1): the account plants a
    //     Maildir link to a root-owned directory and links where temporary files might
    //     go; root's `add` must neither chown nor fill the target, nor write through them.
    let victim_dir = s.base.join("root-only");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::set_permissions(&victim_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim_file = s.base.join("root-only-file");
    std::fs::write(&victim_file, b"root's own\n").unwrap();
    std::fs::create_dir(domain.join("mallory")).unwrap();
    std::os::unix::fs::chown(domain.join("mallory"), Some(ids.0), Some(ids.1)).unwrap();
    std::os::unix::fs::symlink(&victim_dir, domain.join("mallory/Maildir")).unwrap();
    for name in [
        "passwd",
        "passwd.tmp",
        "boxes.cdb.tmp",
        "passwd.cdb.tmp",
        "passwd.cdb",
    ] {
        std::os::unix::fs::symlink(&victim_file, domain.join(name)).unwrap();
    }
    let root = (0, 0);
    let out = run_as_user(
        &vusers_bin,
        &["v.test", "add", "mallory"],
        &home,
        root,
        b"m pw\n",
    );
    eprintln!(
        "rqmail-vusers add mallory: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    let untouched = |what: &str| {
        assert_eq!(
            owner_mode(&victim_dir).0,
            0,
            "{what}: root chowned the link's target"
        );
        assert_eq!(
            std::fs::read_dir(&victim_dir).unwrap().count(),
            0,
            "{what}: root wrote into the link's target"
        );
    };
    untouched("add");
    assert_eq!(owner_mode(&victim_file).0, 0);
    assert_eq!(std::fs::read(&victim_file).unwrap(), b"root's own\n");
    for name in [
        "passwd",
        "passwd.tmp",
        "boxes.cdb.tmp",
        "passwd.cdb.tmp",
        "passwd.cdb",
        "mallory",
    ] {
        let _ = std::fs::remove_file(domain.join(name));
    }
    let _ = std::fs::remove_file(domain.join("mallory/Maildir"));
    let _ = std::fs::remove_dir(domain.join("mallory"));
    // And a link in place of the whole domain directory leads root nowhere either.
    std::fs::rename(&domain, home.join("v.test.real")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, &domain).unwrap();
    let out = run_as_user(&vusers_bin, &["v.test", "compile"], &home, root, b"");
    eprintln!(
        "rqmail-vusers compile: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    untouched("compile");
    std::fs::remove_file(&domain).unwrap();
    std::fs::rename(home.join("v.test.real"), &domain).unwrap();

    // 9e. The installed rqmail-checkpassword is no password oracle (issue 12, item 2): the
    //     test user gets one answer at once for the right password, a wrong one and no
    //     such user; rqmaild alone is served (through SMTP AUTH, above and below).
    let mut answers = Vec::new();
    for creds in [
        &b"vic@v.test\0vic's own pw\0\0"[..],
        b"vic@v.test\0wrong\0\0",
        b"nobody@v.test\0wrong\0\0",
        format!("{USER}\0correct horse\0\0").as_bytes(),
    ] {
        let started = std::time::Instant::now();
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"exec "$0" /bin/true 3<&0"#)
            .arg(prefix.join("bin/rqmail-checkpassword"))
            .uid(ids.0)
            .gid(ids.1)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(creds);
        let out = child.wait_with_output().unwrap();
        assert!(started.elapsed() < Duration::from_millis(1500));
        answers.push((out.status.code(), text(&out.stderr)));
    }
    assert_eq!(answers[0].0, Some(1), "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    python(
        smtp_port,
        r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
s.ehlo("client.example")
code, reply = s.docmd("MAIL FROM:<someone@remote.example>")
assert code == 250, (code, reply)
code, reply = s.docmd("RCPT TO:<nobody@v.test>")
assert code == 550, ("an unknown virtual user accepted", code, reply)
code, reply = s.docmd("RCPT TO:<vic@v.test>")
assert code == 250, (code, reply)
code, reply = s.data(b"Subject: virtual\r\n\r\nto a virtual user\r\n")
assert code == 250, (code, reply)
s.quit()
"#,
    );
    let file = wait_for_message(&s, &vic, "to a virtual user");
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), ids.0);
    python(
        imaps_port,
        &format!(
            r#"{tls}
import imaplib
m = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["PORT"]), ssl_context=ctx, timeout=30)
try:
    m.login("vic@v.test", "correct horse"); raise SystemExit("the account's password let vic in")
except imaplib.IMAP4.error:
    pass
m = imaplib.IMAP4_SSL("127.0.0.1", int(os.environ["PORT"]), ssl_context=ctx, timeout=30)
m.login("vic@v.test", "vic's own pw")
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
typ, data = m.fetch("1", "(BODY.PEEK[TEXT])")
assert typ == "OK" and data[0][1] == b"to a virtual user\r\n", data
m.logout()
"#
        ),
    );

    // TERM stops each server; it exits 0 once its sessions are over.
    for mut server in std::mem::take(&mut s.servers) {
        let pid = nix::unistd::Pid::from_raw(server.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(
            wait_for(Duration::from_secs(10), || matches!(
                server.try_wait(),
                Ok(Some(_))
            )),
            "rqmail-tcpserver {pid} did not exit on TERM"
        );
        assert!(
            server.wait().unwrap().success(),
            "rqmail-tcpserver {pid} exit status"
        );
    }

    // 10. TERM stops rqmail-send; the spawns follow when their pipes close.
    assert!(wait_for(Duration::from_secs(10), || s
        .log_text()
        .contains("end msg")));
    assert!(
        s.stop(),
        "rqmail-send did not exit on TERM:\n{}",
        s.log_text()
    );
    assert!(s.log_text().contains("status: exiting"), "{}", s.log_text());
    assert!(
        wait_for(Duration::from_secs(10), || daemons(&prefix).is_empty()),
        "still running after TERM: {:?}",
        daemons(&prefix)
    );
}
