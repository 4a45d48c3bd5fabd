//! The quick start end to end: install/quickstart.sh sets up an instance in a scratch
//! directory from the workspace's binaries (`--bindir`, instead of a release build), runs
//! it in the foreground, takes messages over SMTP on base+25, base+587 and base+465, stops
//! every program it started on TERM, and keeps an edited control file on a second run.
//! Run as root, the instance runs as nobody, as the quick start does for root.

use rqmail_e2e::{target_dir, wait_for};
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

/// The ports of one base that the quick start serves.
fn smtp_ports(base: u16) -> [u16; 3] {
    [base + 25, base + 587, base + 465]
}

/// A base port in 20000-40000 whose SMTP ports are all free right now.
fn free_base() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..200u32 {
        let base = 20000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 20000) as u16;
        let free = smtp_ports(base)
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
fn quickstart_serves_smtp_stops_on_term_and_keeps_edits() {
    let mut s = Scratch::new();
    let base = free_base();
    let [smtp, submission, smtps] = smtp_ports(base);

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
            vec![
                ("RELAYCLIENT".to_string(), String::new()),
                ("SMTPAUTH".to_string(), String::new())
            ]
        ),
        "loopback may relay and submit without AUTH"
    );
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
            && [smtp, submission, smtps]
                .iter()
                .all(|p| log.contains(&format!("listening on 127.0.0.1:{p}")))
    });
    assert!(started, "the quick start did not start:\n{}", s.log_text());

    // 3. One message on each port: plain SMTP, submission with STARTTLS, implicit TLS. The
    //    quick start's rules let loopback clients submit without AUTH.
    let script = r#"
import os, smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
smtp, submission, smtps = (int(p) for p in os.environ["PORTS"].split())
msg = lambda n: ("Subject: quick start\r\n\r\nmarker-%s\r\n" % n).encode()
s = smtplib.SMTP("127.0.0.1", smtp)
code, caps = s.ehlo("client.example")
assert b"STARTTLS" in caps, caps
s.sendmail("someone@remote.example", ["test@example.test"], msg("smtp"))
s.quit()
s = smtplib.SMTP("127.0.0.1", submission)
s.ehlo("client.example"); s.starttls(context=ctx); s.ehlo("client.example")
s.sendmail("test@example.test", ["test@example.test"], msg("submission"))
s.quit()
s = smtplib.SMTP_SSL("127.0.0.1", smtps, context=ctx)
s.ehlo("client.example")
s.sendmail("test@example.test", ["test@example.test"], msg("smtps"))
s.quit()
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
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

    // 4. TERM to the script stops everything it started, and it says so.
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
    for port in [smtp, submission, smtps] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} closed"
        );
    }

    // 5. A second run on the same directory keeps an edited control file (and compiles
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
