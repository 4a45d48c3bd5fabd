//! rqmail-checkpassword end to end: the real binary, credentials on a real fd 3, and (as
//! root) real system accounts made with useradd and chpasswd, removed again at the end.
//!
//! The binary is copied into a scratch home's `bin/` so that its `control/` is the
//! scratch one (checkpassworddelay = 100 ms). The scratch home lives under the workspace's
//! `target/`, not /tmp, because the set-group-ID test needs a filesystem without `nosuid`.

use rqmail_e2e::target_dir;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BINARY: &str = "rqmail-checkpassword";
/// control/checkpassworddelay in the scratch home.
const DELAY: Duration = Duration::from_millis(100);
/// Well under the 2000 ms default, so a refusal this fast proves the control file counted.
const DEFAULT_DELAY_FLOOR: Duration = Duration::from_millis(1900);
const NOBODY: u32 = 65534;
const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";
/// Test accounts: passwords set by chpasswd's default (yescrypt through PAM on Debian 12)
/// and by `chpasswd -c SHA512`.
const YESCRYPT_USER: &str = "rqcpw-y";
const SHA512_USER: &str = "rqcpw-s";
const PASSWORD: &str = "correct horse ☃ battery";
/// Debian's group `users`, given to the yescrypt account as a supplementary group.
const USERS_GID: u32 = 100;
/// Prints what PROG sees: ids, environment, working directory, and whether it could read
/// the shadow file.
const REPORT: &str = r#"echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
echo "USER=$USER HOME=$HOME SHELL=$SHELL"
echo "PWD=$(pwd -P)"
if test -r /etc/shadow; then echo "shadow=readable"; else echo "shadow=unreadable"; fi"#;

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Root tests change /etc/passwd; one at a time.
static ACCOUNTS: Mutex<()> = Mutex::new(());

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A scratch rqmail home holding a copy of the binary and the short delay.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str) -> Home {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = target_dir().parent().unwrap().join(format!(
            "checkpassword-test-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["bin", "control", "homes", "users"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let from = target_dir().join(BINARY);
        assert!(
            from.exists(),
            "{} is not built: run `cargo build --workspace` first",
            from.display()
        );
        std::fs::copy(&from, dir.join("bin").join(BINARY)).unwrap();
        std::fs::write(
            dir.join("control/checkpassworddelay"),
            format!("{}\n", DELAY.as_millis()),
        )
        .unwrap();
        Home { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.join("bin").join(BINARY)
    }

    /// Runs the binary with `input` on fd 3 and `prog` as PROG [ARG...]: `sh` puts its
    /// stdin on fd 3 (std cannot place a pipe on fd 3 itself). `uid` runs it as that user.
    fn run(&self, input: &[u8], prog: &[&str], uid: Option<u32>) -> (Output, Duration) {
        self.run_script(r#"exec "$0" "$@" 3<&0"#, input, prog, uid)
    }

    fn run_script(
        &self,
        script: &str,
        input: &[u8],
        prog: &[&str],
        uid: Option<u32>,
    ) -> (Output, Duration) {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .arg(self.bin())
            .args(prog)
            .env("PATH", PATH)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Over-long input may be cut off by an early exit; that is the point of the test.
        let _ = stdin.write_all(input);
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (out, started.elapsed())
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Removed even after a failure: it may hold a set-group-ID binary.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn credentials(user: &str, password: &str) -> Vec<u8> {
    format!("{user}\0{password}\0<1234.5678@test.example>\0").into_bytes()
}

/// PROG for tests where it must not run: it would print this.
const MUST_NOT_RUN: [&str; 2] = ["/bin/echo", "PROG-RAN"];

fn assert_refused(out: &Output, elapsed: Duration, user: &str, reason: &str) {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "PROG ran: {}", text(&out.stdout));
    let log = text(&out.stderr);
    assert!(
        log.contains(&format!("login failed for {user}: {reason}")),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "password logged: {log}");
    assert!(elapsed >= DELAY, "refused after only {elapsed:?}");
    assert!(
        elapsed < DEFAULT_DELAY_FLOOR,
        "refused after {elapsed:?}: control/checkpassworddelay ignored?"
    );
}

#[test]
fn unknown_user_is_refused_after_the_configured_delay() {
    let home = Home::new("unknown");
    let (out, elapsed) = home.run(
        &credentials("rqcpw-nosuchuser", PASSWORD),
        &MUST_NOT_RUN,
        None,
    );
    assert_refused(&out, elapsed, "rqcpw-nosuchuser", "no such user");
}

#[test]
fn root_is_refused_whatever_the_password() {
    let home = Home::new("root");
    let (out, elapsed) = home.run(&credentials("root", PASSWORD), &MUST_NOT_RUN, None);
    assert_refused(&out, elapsed, "root", "root may not log in");
}

#[test]
fn empty_password_is_refused() {
    let home = Home::new("empty");
    let (out, elapsed) = home.run(b"nobody\0\0\0", &MUST_NOT_RUN, None);
    assert_refused(&out, elapsed, "nobody", "empty password");
}

#[test]
fn unprintable_user_names_are_escaped_in_the_log() {
    let home = Home::new("escape");
    let (out, elapsed) = home.run(
        &credentials(
            "evil\nrqmail-checkpassword: login succeeded for root",
            PASSWORD,
        ),
        &MUST_NOT_RUN,
        None,
    );
    assert_refused(
        &out,
        elapsed,
        "evil\\x0arqmail-checkpassword: login succeeded for root",
        "no such user",
    );
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn exactly_512_bytes_are_read_and_513_are_misuse() {
    let home = Home::new("limit");
    let user = "rqcpw-nosuchuser";
    let mut input = credentials(user, "");
    input.truncate(user.len() + 1);
    let padding = 512 - input.len() - 2;
    input.extend(std::iter::repeat_n(b'p', padding));
    input.extend_from_slice(b"\0\0");
    assert_eq!(input.len(), 512);
    let (out, elapsed) = home.run(&input, &MUST_NOT_RUN, None);
    assert_refused(&out, elapsed, user, "no such user");

    input.insert(user.len() + 1, b'p');
    assert_eq!(input.len(), 513);
    let (out, elapsed) = home.run(&input, &MUST_NOT_RUN, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("more than 512 bytes"));
    assert!(elapsed < DELAY, "misuse should not be delayed: {elapsed:?}");

    let (out, _) = home.run(&vec![b'x'; 100_000], &MUST_NOT_RUN, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn input_without_both_nuls_is_misuse() {
    let home = Home::new("malformed");
    for input in [&b""[..], b"rqcpw-nosuchuser", b"rqcpw-nosuchuser\0secret"] {
        let (out, _) = home.run(input, &MUST_NOT_RUN, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{input:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        assert!(!text(&out.stderr).contains("secret"));
    }
}

#[test]
fn missing_prog_or_fd_3_is_misuse() {
    let home = Home::new("usage");
    let (out, _) = home.run(&credentials("nobody", PASSWORD), &[], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let (out, _) = home.run_script(
        r#"exec "$0" "$@" 3<&-"#,
        &credentials("nobody", PASSWORD),
        &MUST_NOT_RUN,
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("fd 3 is not open"));
}

/// Runs `program` with a clean PATH; panics with its stderr if it fails.
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
        text(&out.stderr)
    );
}

fn user_exists(name: &str) -> bool {
    nix::unistd::User::from_name(name).unwrap().is_some()
}

fn shadow_hash(name: &str) -> String {
    shadow_line(name).split(':').nth(1).unwrap().to_string()
}

fn shadow_line(name: &str) -> String {
    std::fs::read_to_string("/etc/shadow")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} not in /etc/shadow"))
        .to_string()
}

/// The two test accounts, with 0700 homes in the scratch home; removed on drop.
struct Accounts<'a> {
    home: &'a Home,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl<'a> Accounts<'a> {
    fn new(home: &'a Home) -> Accounts<'a> {
        let lock = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        for name in [YESCRYPT_USER, SHA512_USER] {
            // Left over from an interrupted run.
            if user_exists(name) {
                system("userdel", &[name], b"");
            }
        }
        let accounts = Accounts { home, _lock: lock };
        for (name, extra) in [(YESCRYPT_USER, &["-G", "users"][..]), (SHA512_USER, &[])] {
            let dir = accounts.user_home(name);
            let mut args = vec!["-M", "-d", dir.to_str().unwrap(), "-s", "/bin/sh"];
            args.extend_from_slice(extra);
            args.push(name);
            system("useradd", &args, b"");
            std::fs::create_dir(&dir).unwrap();
            let user = nix::unistd::User::from_name(name).unwrap().unwrap();
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid)).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let line = |name| format!("{name}:{PASSWORD}\n").into_bytes();
        system("chpasswd", &[], &line(YESCRYPT_USER));
        system("chpasswd", &["-c", "SHA512"], &line(SHA512_USER));
        assert!(shadow_hash(YESCRYPT_USER).starts_with("$y$"));
        assert!(shadow_hash(SHA512_USER).starts_with("$6$"));
        accounts
    }

    fn user_home(&self, name: &str) -> PathBuf {
        self.home.dir.join("homes").join(name)
    }

    fn uid(name: &str) -> u32 {
        nix::unistd::User::from_name(name)
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    }
}

impl Drop for Accounts<'_> {
    fn drop(&mut self) {
        for name in [YESCRYPT_USER, SHA512_USER] {
            if user_exists(name) {
                let _ = Command::new("userdel").arg(name).env("PATH", PATH).status();
            }
        }
    }
}

/// The `key=value` words PROG printed (REPORT).
fn report(out: &Output) -> std::collections::HashMap<String, String> {
    text(&out.stdout)
        .split([' ', '\n'])
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn needs_root(test: &str) -> bool {
    if !as_root() {
        eprintln!("SKIPPED: {test} needs root");
        return false;
    }
    true
}

#[test]
fn correct_password_runs_prog_as_the_user_with_its_environment() {
    if !needs_root("correct_password_runs_prog_as_the_user_with_its_environment") {
        return;
    }
    let home = Home::new("login");
    let accounts = Accounts::new(&home);
    for name in [YESCRYPT_USER, SHA512_USER] {
        let (out, _) = home.run(
            &credentials(name, PASSWORD),
            &["/bin/sh", "-c", REPORT],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let r = report(&out);
        let user = nix::unistd::User::from_name(name).unwrap().unwrap();
        let dir = accounts.user_home(name);
        assert_eq!(r["uid"], user.uid.to_string(), "{r:?}");
        assert_eq!(r["gid"], user.gid.to_string(), "{r:?}");
        assert_eq!(r["USER"], name);
        assert_eq!(Path::new(&r["HOME"]), dir);
        assert_eq!(r["SHELL"], "/bin/sh");
        assert_eq!(Path::new(&r["PWD"]), dir);
        assert_eq!(r["shadow"], "unreadable");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("login succeeded for {name}")),
            "{stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
    // Supplementary groups come from the group database (initgroups), and only those.
    let (out, _) = home.run(
        &credentials(YESCRYPT_USER, PASSWORD),
        &["/bin/sh", "-c", REPORT],
        None,
    );
    let text_out = text(&out.stdout);
    let groups_line = text_out.lines().next().unwrap();
    let groups: Vec<u32> = groups_line
        .split("groups=")
        .nth(1)
        .unwrap()
        .split(' ')
        .map(|g| g.parse().unwrap())
        .collect();
    assert!(groups.contains(&USERS_GID), "{groups_line}");
    assert!(!groups.contains(&0), "{groups_line}");

    // A PROG that cannot be run is the system's problem, not the user's.
    let (out, _) = home.run(
        &credentials(SHA512_USER, PASSWORD),
        &["/nonexistent/rqmail-pop3d"],
        None,
    );
    assert_eq!(out.status.code(), Some(111), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unable to run /nonexistent/rqmail-pop3d"));
}

#[test]
fn wrong_or_locked_password_is_refused_after_the_delay() {
    if !needs_root("wrong_or_locked_password_is_refused_after_the_delay") {
        return;
    }
    let home = Home::new("wrong");
    let _accounts = Accounts::new(&home);
    for name in [YESCRYPT_USER, SHA512_USER] {
        let (out, elapsed) = home.run(
            &credentials(name, "correct horse ☃ batterY"),
            &MUST_NOT_RUN,
            None,
        );
        assert_refused(&out, elapsed, name, "bad password");
    }
    system("usermod", &["-L", SHA512_USER], b"");
    let (out, elapsed) = home.run(&credentials(SHA512_USER, PASSWORD), &MUST_NOT_RUN, None);
    assert_refused(
        &out,
        elapsed,
        SHA512_USER,
        "account locked or without a password",
    );
}

#[test]
fn unreadable_shadow_is_a_temporary_failure() {
    if !needs_root("unreadable_shadow_is_a_temporary_failure") {
        return;
    }
    let home = Home::new("unreadable");
    let _accounts = Accounts::new(&home);
    let (out, _) = home.run(
        &credentials(YESCRYPT_USER, PASSWORD),
        &MUST_NOT_RUN,
        Some(NOBODY),
    );
    assert_eq!(out.status.code(), Some(111), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("temporary failure"));
}

/// The mount options of the filesystem holding `path`, if findmnt works.
fn mount_options(path: &Path) -> Option<String> {
    let out = Command::new("findmnt")
        .args(["-n", "-o", "OPTIONS", "-T"])
        .arg(path)
        .env("PATH", PATH)
        .output()
        .ok()?;
    out.status.success().then(|| text(&out.stdout))
}

#[test]
fn setgid_shadow_copy_verifies_for_an_unprivileged_caller_and_drops_the_group() {
    let test = "setgid_shadow_copy_verifies_for_an_unprivileged_caller_and_drops_the_group";
    if !needs_root(test) {
        return;
    }
    let home = Home::new("setgid");
    if let Some(options) = mount_options(&home.dir)
        && options.split(',').any(|o| o == "nosuid")
    {
        eprintln!(
            "SKIPPED: {test}: {} is on a nosuid mount",
            home.dir.display()
        );
        return;
    }
    let Some(shadow) = nix::unistd::Group::from_name("shadow").unwrap() else {
        eprintln!("SKIPPED: {test}: no group shadow");
        return;
    };
    nix::unistd::chown(&home.bin(), None, Some(shadow.gid)).unwrap();
    std::fs::set_permissions(home.bin(), std::fs::Permissions::from_mode(0o2755)).unwrap();
    // The table of login attempts, as install.sh makes it: only group shadow may write it.
    let table = home.dir.join("users/loginfailures");
    std::fs::write(&table, b"").unwrap();
    nix::unistd::chown(&table, None, Some(shadow.gid)).unwrap();
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o660)).unwrap();
    let _accounts = Accounts::new(&home);

    // Another local user (nobody) gets one answer whatever it sends: the same refusal at
    // once, before fd 3 is read, for the right password, a wrong one and no such user.
    let mut answers = Vec::new();
    for (user, password) in [
        (YESCRYPT_USER, PASSWORD),
        (YESCRYPT_USER, "not the password"),
        ("rqcpw-nosuchuser", PASSWORD),
    ] {
        let (out, elapsed) = home.run(
            &credentials(user, password),
            &["/bin/sh", "-p", "-c", REPORT],
            Some(NOBODY),
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            out.stdout.is_empty(),
            "PROG ran for nobody: {}",
            text(&out.stdout)
        );
        assert!(elapsed < DELAY * 5, "answered after {elapsed:?}");
        answers.push(text(&out.stderr));
    }
    assert!(
        answers[0].contains("may not use this program"),
        "{}",
        answers[0]
    );
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "the answers tell the cases apart: {answers:?}"
    );

    // rqmaild, the account rqmail-smtpd runs as, is served. It cannot enter the user's
    // 0700 home: verification must succeed anyway. `sh -p` keeps whatever effective gid it
    // is given (dash and bash otherwise reset it themselves).
    let rqmaild = Rqmaild::new();
    let (out, _) = home.run(
        &credentials(YESCRYPT_USER, PASSWORD),
        &["/bin/sh", "-p", "-c", REPORT],
        Some(rqmaild.uid),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(r["uid"], rqmaild.uid.to_string(), "{r:?}");
    assert_eq!(r["shadow"], "unreadable", "PROG kept group shadow: {r:?}");
    assert_eq!(r["USER"], YESCRYPT_USER);
    assert_eq!(r["PWD"], "/");
    assert_ne!(Accounts::uid(YESCRYPT_USER), rqmaild.uid);

    // A refusal says nothing of its reason to rqmaild, and nothing before the delay: killed
    // early, the process has written nothing and exited with no answer.
    for (user, password) in [
        (YESCRYPT_USER, "not the password"),
        ("rqcpw-nosuchuser", PASSWORD),
    ] {
        let (out, elapsed) = home.run(
            &credentials(user, password),
            &MUST_NOT_RUN,
            Some(rqmaild.uid),
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(elapsed >= DELAY, "refused after only {elapsed:?}");
        assert_eq!(
            text(&out.stderr).trim_end(),
            format!("rqmail-checkpassword: login failed for {user}"),
            "the reason reached rqmaild"
        );
    }
    std::fs::write(home.dir.join("control/checkpassworddelay"), "3000\n").unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" 3<&0"#)
        .arg(home.bin())
        .args(MUST_NOT_RUN)
        .env("PATH", PATH)
        .current_dir("/")
        .uid(rqmaild.uid)
        .gid(rqmaild.gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&credentials("rqcpw-nosuchuser", PASSWORD))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "answered before the delay"
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.code().is_none(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "spoke before the delay: {}",
        text(&out.stderr)
    );
}

/// The account rqmaild (made for the test if the system has none), whom a set-gid
/// rqmail-checkpassword serves.
struct Rqmaild {
    uid: u32,
    gid: u32,
    created: bool,
}

impl Rqmaild {
    fn new() -> Rqmaild {
        let created = !user_exists("rqmaild");
        if created {
            system(
                "useradd",
                &[
                    "--system",
                    "-M",
                    "-d",
                    "/nonexistent",
                    "-s",
                    "/usr/sbin/nologin",
                    "rqmaild",
                ],
                b"",
            );
        }
        let user = nix::unistd::User::from_name("rqmaild").unwrap().unwrap();
        Rqmaild {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            created,
        }
    }
}

impl Drop for Rqmaild {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("userdel")
                .arg("rqmaild")
                .env("PATH", PATH)
                .status();
        }
    }
}

#[test]
fn attempts_at_one_account_are_spaced_out_across_processes() {
    // Eight guesses at one name at once, each its own process (as eight connections from
    // eight addresses would be): five pass, then each waits behind the one before (1 s,
    // then 2 s more), whether or not the name exists. Another name is not slowed.
    let home = Home::new("throttle");
    let run = |user: &'static str| {
        let home = &home;
        move || home.run(&credentials(user, "guess"), &MUST_NOT_RUN, None)
    };
    let (results, other) = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..8)
            .map(|_| scope.spawn(run("rqcpw-throttled")))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let other = run("rqcpw-other")();
        let results: Vec<(Output, Duration)> =
            guesses.into_iter().map(|g| g.join().unwrap()).collect();
        (results, other)
    });
    let mut times: Vec<Duration> = results.iter().map(|(_, t)| *t).collect();
    times.sort();
    for (out, _) in &results {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    }
    assert!(times[7] >= Duration::from_millis(2900), "{times:?}");
    assert!(times[5] < Duration::from_millis(900), "{times:?}");
    assert!(
        other.1 < Duration::from_millis(900),
        "another name waited: {:?}",
        other.1
    );
    let logs: String = results.iter().map(|(o, _)| text(&o.stderr)).collect();
    assert!(logs.contains("throttled for"), "{logs}");
    // Each log line is whole: one write each, so none runs into another.
    for line in logs.lines() {
        assert!(line.starts_with("rqmail-checkpassword: "), "{line:?}");
    }
}

#[test]
fn log_lines_of_parallel_runs_share_one_log_whole() {
    // Issue 12, item 8: many runs at once write to one log (as under rqmail-login's
    // supervisor); each line must come out whole, which needs one write per line.
    let home = Home::new("log-lines");
    let log_path = home.dir.join("shared.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let names: Vec<String> = (0..24)
        .map(|i| format!("rqcpw-parallel-{i}-{}", "x".repeat(100)))
        .collect();
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"exec "$0" "$@" 3<&0"#)
                .arg(home.bin())
                .args(MUST_NOT_RUN)
                .env("PATH", PATH)
                .current_dir("/")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(&credentials(name, "guess"))
                .unwrap();
            child
        })
        .collect();
    for mut child in children {
        assert_eq!(child.wait().unwrap().code(), Some(1));
    }
    let text = text(&std::fs::read(&log_path).unwrap());
    let mut seen = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("rqmail-checkpassword: login failed for ") else {
            panic!("a broken or interleaved line: {line:?}\n{text}");
        };
        let (name, reason) = rest.split_once(": ").unwrap_or((rest, ""));
        assert!(names.iter().any(|n| n == name), "{line:?}");
        assert_eq!(reason, "no such user", "{line:?}");
        seen += 1;
    }
    assert_eq!(seen, names.len(), "{text}");
}
