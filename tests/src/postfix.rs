//! A real Postfix as the other MTA, for the tests of remote delivery (postfix.rs) and of
//! the installed system (install.rs): a private configuration in a scratch directory
//! (`tests/fixtures/postfix/`), `master` run as root dropping to the postfix user, smtpd
//! on a loopback port, `peer.test` delivered into Maildirs under `mail/`.

use crate::{Instance, wait_for};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const MAIN_CF: &str = include_str!("../fixtures/postfix/main.cf");
const MASTER_CF: &str = include_str!("../fixtures/postfix/master.cf");

/// The uid and gid Postfix's virtual agent writes Maildirs as: nobody, which the test
/// (root) can read.
const MAIL_ID: u32 = 65534;

/// How long to wait for anything to happen.
pub const PATIENCE: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Postfix's `daemon_directory` (where `master` is) when the tests can run Postfix;
/// otherwise prints why they are skipped and returns None.
pub fn postfix_daemons(test: &str) -> Option<PathBuf> {
    if !crate::as_root() {
        println!("SKIPPED: {test} needs root to run Postfix");
        return None;
    }
    let out = Command::new(postconf_path())
        .args(["-d", "-h", "daemon_directory"])
        .stderr(Stdio::null())
        .output();
    let dir = match out {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => {
            println!("SKIPPED: postfix not installed");
            return None;
        }
    };
    if !dir.join("master").exists() {
        println!("SKIPPED: postfix not installed");
        return None;
    }
    Some(dir)
}

/// `postconf`, which root's PATH may lack under a test runner.
fn postconf_path() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/postconf");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("postconf")
    }
}

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

fn mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One Postfix instance in a scratch directory. Stopped (and its directory removed unless
/// the test failed) when dropped.
pub struct Postfix {
    dir: PathBuf,
    conf: PathBuf,
    daemons: PathBuf,
    /// The loopback port its smtpd listens on.
    pub port: u16,
    master: Option<Child>,
}

impl Postfix {
    /// Configures (but does not start) a Postfix with Maildirs for `users` at peer.test,
    /// STARTTLS off, listening on `port` (a free one if None).
    pub fn new(name: &str, daemons: PathBuf, users: &[&str], port: Option<u16>) -> Postfix {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("rqmail-postfix-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        mode(&dir, 0o755);
        let port = port.unwrap_or_else(free_port);
        let postfix = nix::unistd::User::from_name("postfix")
            .unwrap()
            .expect("the postfix account (installed with the package)");
        let postdrop = nix::unistd::Group::from_name("postdrop")
            .unwrap()
            .expect("the postdrop group (installed with the package)");
        let (pf_uid, pf_gid) = (postfix.uid.as_raw(), postfix.gid.as_raw());

        let conf = dir.join("conf");
        std::fs::create_dir(&conf).unwrap();
        mode(&conf, 0o755);
        let fill = |template: &str| {
            template
                .replace("@DIR@", dir.to_str().unwrap())
                .replace("@PORT@", &port.to_string())
                .replace("@UID@", &MAIL_ID.to_string())
                .replace("@GID@", &MAIL_ID.to_string())
        };
        std::fs::write(conf.join("main.cf"), fill(MAIN_CF)).unwrap();
        std::fs::write(conf.join("master.cf"), fill(MASTER_CF)).unwrap();

        // The queue as `postfix set-permissions` would make it: root owns the top, the
        // postfix user each queue, and postdrop may drop into maildrop and reach public.
        let queue = dir.join("queue");
        std::fs::create_dir(&queue).unwrap();
        mode(&queue, 0o755);
        for sub in [
            "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
            "private", "saved", "trace",
        ] {
            let d = queue.join(sub);
            std::fs::create_dir(&d).unwrap();
            chown(&d, pf_uid, 0);
            mode(&d, 0o700);
        }
        for (sub, m) in [("maildrop", 0o730), ("public", 0o710)] {
            let d = queue.join(sub);
            std::fs::create_dir(&d).unwrap();
            chown(&d, pf_uid, postdrop.gid.as_raw());
            mode(&d, m);
        }
        std::fs::create_dir(queue.join("pid")).unwrap();
        mode(&queue.join("pid"), 0o755);
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        chown(&data, pf_uid, pf_gid);
        mode(&data, 0o700);
        let mail = dir.join("mail");
        std::fs::create_dir(&mail).unwrap();
        chown(&mail, MAIL_ID, MAIL_ID);
        mode(&mail, 0o755);

        let vmailbox: String = users
            .iter()
            .map(|u| format!("{u}@peer.test {u}/\n"))
            .collect();
        std::fs::write(dir.join("vmailbox"), vmailbox).unwrap();
        let pf = Postfix {
            dir,
            conf,
            daemons,
            port,
            master: None,
        };
        pf.set_access("");
        pf
    }

    /// Changes main.cf settings with `postconf -e`.
    pub fn set(&self, settings: &[(&str, &str)]) {
        let out = Command::new(postconf_path())
            .arg("-c")
            .arg(&self.conf)
            .arg("-e")
            .args(settings.iter().map(|(k, v)| format!("{k}={v}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postconf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Offers STARTTLS with a fresh self-signed certificate.
    pub fn offer_starttls(&self) {
        let (cert, key) = (self.conf.join("cert.pem"), self.conf.join("key.pem"));
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
                "/CN=mx.peer.test",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        self.set(&[
            ("smtpd_tls_security_level", "may"),
            ("smtpd_tls_cert_file", cert.to_str().unwrap()),
            ("smtpd_tls_key_file", key.to_str().unwrap()),
        ]);
    }

    /// Replaces the recipient access table (texthash: `address action`), e.g.
    /// `bob@peer.test 451 4.7.1 try later`.
    pub fn set_access(&self, lines: &str) {
        std::fs::write(
            self.dir.join("access"),
            format!("# recipient access for the test\n{lines}"),
        )
        .unwrap();
    }

    /// Starts `master` in the foreground (in a process group of its own, so stopping it
    /// stops its children) and waits until it has bound its port.
    pub fn start(&mut self) {
        assert!(self.master.is_none());
        let out = std::fs::File::create(self.dir.join("master.out")).unwrap();
        let child = Command::new(self.daemons.join("master"))
            .arg("-c")
            .arg(&self.conf)
            .arg("-d")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("postfix master");
        self.master = Some(child);
        // master binds its services before it says it started; probing the port instead
        // would show up in the tests' connection counts.
        let started = wait_for(PATIENCE, || {
            self.log().contains("daemon started")
                || self
                    .master
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
        });
        assert!(
            started && self.log().contains("daemon started"),
            "Postfix did not start:\n{}\n{}",
            String::from_utf8_lossy(
                &std::fs::read(self.dir.join("master.out")).unwrap_or_default()
            ),
            self.log()
        );
    }

    /// Stops master with TERM (it passes it to its process group) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.master.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let exited = wait_for(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Postfix's log (maillog_file) so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("postfix.log")).unwrap_or_default())
            .into_owned()
    }

    /// A peer.test user's Maildir.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join("mail").join(user)
    }

    /// Waits until `user`'s Maildir holds `count` new messages; returns them.
    pub fn wait_for_mail(&self, inst: &Instance, user: &str, count: usize) -> Vec<PathBuf> {
        let dir = self.maildir(user);
        let ok = wait_for(PATIENCE, || Instance::maildir_new(&dir).len() >= count);
        let files = Instance::maildir_new(&dir);
        assert!(
            ok,
            "expected {count} messages for {user}@peer.test, found {}\nrqmail log:\n{}\nPostfix log:\n{}",
            files.len(),
            inst.log_text(),
            self.log()
        );
        files
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
