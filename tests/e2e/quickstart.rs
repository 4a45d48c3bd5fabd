//! The quick start end to end: install/quickstart.sh sets up an instance in a scratch
//! directory from the workspace's binaries (`--bindir`, instead of a release build), runs
//! it in the foreground, takes messages over SMTP on base+25, base+587 and base+465, lets
//! the test user read them with curl over POP3 on base+995 (implicit TLS) and base+110,
//! and over IMAP on base+993 (implicit TLS) and base+143, stops every program it started on TERM, and keeps an edited control file on a second
//! run. Run as root, the instance runs as nobody, as the quick start does for root.

use rqmail_e2e::{python_command, target_dir, wait_for};
use rqmail_rules::{Action, Cdb, Client};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The ports of one base that the quick start serves: SMTP, submission, SMTPS, POP3, POP3S,
/// IMAP, IMAPS.
fn ports(base: u16) -> [u16; 7] {
    [
        base + 25,
        base + 587,
        base + 465,
        base + 110,
        base + 995,
        base + 143,
        base + 993,
    ]
}

/// A base port in 20000-40000 whose ports are all free right now.
fn free_base() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..200u32 {
        let base = 20000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 20000) as u16;
        let free = ports(base)
            .iter()
            .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free base port found");
}

/// The processes whose executable lies under `dir` (the instance's bin/).
fn processes_under(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(entry.path().join("exe"))
            && exe.starts_with(dir)
        {
            found.push((pid, exe));
        }
    }
    found
}

/// The scratch directory and the running quick start; everything is stopped and removed
/// on drop, panic or not.
struct Scratch {
    base: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    running: Option<Child>,
}

impl Scratch {
    fn new() -> Scratch {
        let base = std::env::temp_dir().join(format!("rqmail-quickstart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        // Run as root, the instance runs as nobody, who must reach DIR.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch {
            dir: base.join("run"),
            log: base.join("quickstart.log"),
            base,
            running: None,
        }
    }

    fn quickstart(&self, base_port: u16) -> Command {
        let mut cmd = Command::new(repo().join("install/quickstart.sh"));
        cmd.arg("--dir")
            .arg(&self.dir)
            .arg("--base-port")
            .arg(base_port.to_string())
            .arg("--bindir")
            .arg(target_dir())
            .current_dir(&self.base);
        cmd
    }

    fn setup_only(&self, base_port: u16) -> Output {
        let out = self
            .quickstart(base_port)
            .arg("--setup-only")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "quickstart.sh --setup-only failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn log_text(&self) -> String {
        text(&std::fs::read(&self.log).unwrap_or_default())
    }

    fn control(&self, name: &str) -> PathBuf {
        self.dir.join("control").join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut child) = self.running.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            if !wait_for(Duration::from_secs(30), || {
                matches!(child.try_wait(), Ok(Some(_)))
            }) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Whatever is left was started from this test's directory.
        for (pid, _) in processes_under(&self.dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if std::thread::panicking() {
            eprintln!("the quick start's output:\n{}", self.log_text());
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// What the rules CDB says about a client IP.
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

#[test]
fn quickstart_serves_smtp_and_pop3_stops_on_term_and_keeps_edits() {
    let mut s = Scratch::new();
    let base = free_base();
    let [smtp, submission, smtps, pop3, pop3s, imap, imaps] = ports(base);

    // 1. Setup only: the instance, the rules, the certificate; nothing keeps running.
    let out = s.setup_only(base);
    let said = text(&out.stdout);
    let maildir_new = said
        .lines()
        .skip_while(|l| !l.contains(" lands in"))
        .nth(1)
        .map(|l| PathBuf::from(l.trim()))
        .unwrap_or_else(|| panic!("no Maildir printed:\n{said}"));
    assert!(maildir_new.ends_with("Maildir/new"), "{said}");
    assert!(
        said.contains(&format!("--port {smtp}")),
        "how to send over SMTP:\n{said}"
    );
    assert!(said.contains("python3 -c"), "{said}");
    assert!(
        said.contains(&format!("--bindir {}", target_dir().display())),
        "how to start it again:\n{said}"
    );
    assert!(
        processes_under(&s.dir).is_empty(),
        "--setup-only leaves nothing running: {:?}",
        processes_under(&s.dir)
    );
    let cdb = s.control("tcp.smtp.cdb");
    assert_eq!(
        rules_for(&cdb, "127.0.0.1"),
        (
            Action::Allow,
            vec![("RELAYCLIENT".to_string(), String::new())]
        ),
        "loopback may relay (and must AUTH to submit)"
    );
    // The test user is a virtual user of rqmail's own: its hash is in users/virtual, out of
    // the account's home, and the quick start runs no stand-in checkpassword.
    let table = text(&std::fs::read(s.dir.join("users/virtual/example.test/passwd")).unwrap());
    assert!(table.contains("test:$y$"), "{table}");
    assert!(!s.dir.join("bin/quickstart-checkpassword").exists());
    assert!(
        said.contains("test user:         test@example.test, password 'test'"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "swaks --server 127.0.0.1 --port {submission} -tls --auth-user test@example.test --auth-password test"
        )),
        "how to submit with AUTH:\n{said}"
    );
    assert_eq!(
        rules_for(&s.control("tcp.pop3.cdb"), "127.0.0.1"),
        (
            Action::Allow,
            vec![("POP3_PLAINTEXT".to_string(), String::new())]
        ),
        "loopback may log in to POP3 without TLS"
    );
    assert!(
        said.contains(&format!(
            "curl -k --user test@example.test:test pop3s://127.0.0.1:{pop3s}/1"
        )),
        "how to read mail over POP3:\n{said}"
    );
    assert_eq!(
        rules_for(&s.control("tcp.imap.cdb"), "127.0.0.1"),
        (
            Action::Allow,
            vec![("IMAP_PLAINTEXT".to_string(), String::new())]
        ),
        "loopback may log in to IMAP without TLS"
    );
    assert!(
        said.contains(&format!(
            "curl -k --user test@example.test:test 'imaps://127.0.0.1:{imaps}/INBOX;UID=1'"
        )),
        "how to read mail over IMAP:\n{said}"
    );
    // The README's quick reference is what the quick start prints (issue 13, item 9): each
    // of its commands, for this instance's directory and ports (and, started as root,
    // behind the setpriv that the quick start puts before the commands run as nobody).
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(2)
        .and_then(|b| b.split("```").next())
        .expect("the README's second sh block: the quick reference");
    let printed = said
        .replace("setpriv --reuid=65534 --regid=65534 --clear-groups ", "")
        .replace(&format!("{}/", s.dir.display()), "run/");
    let mut checked = 0;
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let mut expected = line.to_string();
        for n in [25, 587, 465, 110, 995, 143, 993] {
            expected = expected.replace(&format!(":{}", 10000 + n), &format!(":{}", base + n));
            expected = expected.replace(&format!(" {} ", 10000 + n), &format!(" {} ", base + n));
        }
        assert!(
            printed
                .lines()
                .any(|l| l.trim_start().starts_with(&expected)),
            "the README's {expected:?} is not what the quick start prints:\n{said}"
        );
        checked += 1;
    }
    assert!(checked >= 8, "{block}");
    let cert = std::fs::read(s.control("servercert.pem")).unwrap();
    assert!(text(&cert).contains("PRIVATE KEY-----"));

    // 2. In the foreground (here: in the background, as a terminal would run it).
    let log = std::fs::File::create(&s.log).unwrap();
    let child = s
        .quickstart(base)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let script_pid = child.id();
    s.running = Some(child);
    let started = wait_for(Duration::from_secs(30), || {
        let log = s.log_text();
        log.contains("status: local")
            && [smtp, submission, smtps, pop3, pop3s, imap, imaps]
                .iter()
                .all(|p| log.contains(&format!("listening on 127.0.0.1:{p}")))
    });
    assert!(started, "the quick start did not start:\n{}", s.log_text());

    // 3. One message on each port: plain SMTP (loopback may relay), submission with
    //    STARTTLS and implicit TLS, both with AUTH as the virtual user, through the real
    //    rqmail-checkpassword; without AUTH, submission refuses.
    let script = include_str!(
        "../python/quickstart/quickstart_serves_smtp_and_pop3_stops_on_term_and_keeps_edits.py"
    );
    let out = python_command(script)
        .env("PORTS", format!("{smtp} {submission} {smtps}"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}{}\nquick start:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        s.log_text()
    );
    let delivered = |marker: &str| {
        std::fs::read_dir(&maildir_new)
            .map(|d| {
                d.flatten()
                    .any(|f| text(&std::fs::read(f.path()).unwrap_or_default()).contains(marker))
            })
            .unwrap_or(false)
    };
    for marker in ["marker-smtp", "marker-submission", "marker-smtps"] {
        assert!(
            wait_for(Duration::from_secs(30), || delivered(marker)),
            "{marker} not in {}:\n{}",
            maildir_new.display(),
            s.log_text()
        );
    }

    // 4. The test user reads the messages over POP3 with curl, logging in as the virtual
    //    user through rqmail-checkpassword.
    let curl = |args: &[&str]| -> Output {
        Command::new("curl")
            .args(["-sS", "--max-time", "30"])
            .args(args)
            .output()
            .expect("curl")
    };
    const LOGIN: &str = "test@example.test:test";
    let pop3s_url = format!("pop3s://127.0.0.1:{pop3s}/");
    let out = curl(&["-k", "--user", LOGIN, &pop3s_url]);
    assert!(
        out.status.success(),
        "curl {pop3s_url}: {}\n{}",
        text(&out.stderr),
        s.log_text()
    );
    let listing = text(&out.stdout);
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let mut markers = Vec::new();
    for n in 1..=3 {
        // One session at a time: the previous one's rqmail-pop3d may still hold the lock.
        let mut out = curl(&["-k", "--user", LOGIN, &format!("{pop3s_url}{n}")]);
        for _ in 0..50 {
            if out.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            out = curl(&["-k", "--user", LOGIN, &format!("{pop3s_url}{n}")]);
        }
        assert!(
            out.status.success(),
            "curl {pop3s_url}{n}: {}\n{}",
            text(&out.stderr),
            s.log_text()
        );
        let message = text(&out.stdout);
        assert!(message.contains("Subject: quick start\r\n"), "{message}");
        let on_disk = std::fs::read_dir(&maildir_new)
            .unwrap()
            .chain(std::fs::read_dir(maildir_new.with_file_name("cur")).unwrap())
            .flatten()
            .map(|f| text(&std::fs::read(f.path()).unwrap()).replace('\n', "\r\n"))
            .any(|m| m == message);
        assert!(
            on_disk,
            "message {n} is not a file of the Maildir byte for byte:\n{message}"
        );
        markers.extend(
            message
                .lines()
                .filter(|l| l.starts_with("marker-"))
                .map(str::to_string),
        );
    }
    markers.sort();
    assert_eq!(
        markers,
        ["marker-smtp", "marker-smtps", "marker-submission"]
    );
    // base+110: loopback may log in without TLS (the quick start's tcp.pop3); a wrong
    // password is refused.
    let pop3_url = format!("pop3://127.0.0.1:{pop3}/");
    let mut out = curl(&["--user", LOGIN, &pop3_url]);
    for _ in 0..50 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = curl(&["--user", LOGIN, &pop3_url]);
    }
    assert!(
        out.status.success(),
        "curl {pop3_url}: {}\n{}",
        text(&out.stderr),
        s.log_text()
    );
    assert_eq!(text(&out.stdout).lines().count(), 3);
    let out = curl(&[
        "-k",
        "--user",
        "test@example.test:wrong",
        &format!("pop3s://127.0.0.1:{pop3s}/"),
    ]);
    assert_eq!(out.status.code(), Some(67), "{}", text(&out.stderr));
    assert!(
        s.log_text()
            .contains("login failed for test@example.test (1 of 3)"),
        "{}",
        s.log_text()
    );

    // 4b. Over IMAP: base+993 (implicit TLS) gives message UID 1 byte for byte (a file of
    //     the Maildir with CRLF line ends); base+143 lets loopback log in without TLS.
    let maildir_files = || -> Vec<String> {
        std::fs::read_dir(&maildir_new)
            .unwrap()
            .chain(std::fs::read_dir(maildir_new.with_file_name("cur")).unwrap())
            .flatten()
            .map(|f| text(&std::fs::read(f.path()).unwrap()).replace('\n', "\r\n"))
            .collect()
    };
    let imaps_url = format!("imaps://127.0.0.1:{imaps}/INBOX;UID=1");
    let out = curl(&["-k", "--user", LOGIN, &imaps_url]);
    assert!(
        out.status.success(),
        "curl {imaps_url}: {}\n{}",
        text(&out.stderr),
        s.log_text()
    );
    let message = text(&out.stdout);
    assert!(message.contains("Subject: quick start\r\n"), "{message}");
    assert!(
        maildir_files().contains(&message),
        "IMAP UID 1 is not a file of the Maildir byte for byte:\n{message}"
    );
    let imap_url = format!("imap://127.0.0.1:{imap}/INBOX;UID=1");
    let out = curl(&["--user", LOGIN, &imap_url]);
    assert!(
        out.status.success(),
        "curl {imap_url}: {}\n{}",
        text(&out.stderr),
        s.log_text()
    );
    assert_eq!(text(&out.stdout), message);
    let out = curl(&[
        "-k",
        "--user",
        "test@example.test:wrong",
        &format!("imaps://127.0.0.1:{imaps}/"),
    ]);
    assert_eq!(out.status.code(), Some(67), "{}", text(&out.stderr));

    // 4c. The round trip the quick start promises: a message submitted with AUTH on
    //     base+587 is read over IMAP with the same password.
    let script = r#"
import imaplib, os, smtplib, ssl, time
from rqtest import tls_context; ctx = tls_context()
submission, imaps = (int(p) for p in os.environ["PORTS"].split())
s = smtplib.SMTP("127.0.0.1", submission); s.starttls(context=ctx)
s.login("test@example.test", "test")
s.sendmail("test@example.test", ["test@example.test"], b"Subject: round trip\r\n\r\nmarker-round-trip\r\n")
s.quit()
for _ in range(100):
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
    m.login("test@example.test", "test")
    m.select("INBOX")
    typ, data = m.search(None, "BODY", "marker-round-trip")
    m.logout()
    if data[0]:
        print("read over IMAP")
        break
    time.sleep(0.2)
"#;
    let out = python_command(script)
        .env("PORTS", format!("{submission} {imaps}"))
        .output()
        .expect("python3");
    assert!(
        text(&out.stdout).contains("read over IMAP"),
        "{}{}\nquick start:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        s.log_text()
    );

    // 5. TERM to the script stops everything it started, and it says so.
    let mut child = s.running.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(script_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || matches!(
            child.try_wait(),
            Ok(Some(_))
        )),
        "the quick start did not stop on TERM:\n{}",
        s.log_text()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}:\n{}", s.log_text());
    assert!(s.log_text().contains("quickstart: rqmail stopped"));
    assert!(
        wait_for(Duration::from_secs(10), || processes_under(&s.dir)
            .is_empty()),
        "still running after TERM: {:?}",
        processes_under(&s.dir)
    );
    for port in [smtp, submission, smtps, pop3, pop3s, imap, imaps] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} closed"
        );
    }

    // 6. A second run on the same directory keeps an edited control file (and compiles
    //    the edited rules) and the certificate.
    let rules = std::fs::read_to_string(s.control("tcp.smtp")).unwrap();
    let edited = format!("{rules}10.:deny\n");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(s.control("tcp.smtp"), &edited).unwrap();
    let out = s.setup_only(base);
    assert!(
        text(&out.stdout).contains("created this run:  nothing"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(s.control("tcp.smtp")).unwrap(),
        edited
    );
    assert_eq!(
        rules_for(&cdb, "10.1.2.3").0,
        Action::Deny,
        "edited rules compiled"
    );
    assert_eq!(std::fs::read(s.control("servercert.pem")).unwrap(), cert);
}
