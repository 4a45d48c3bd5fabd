//! Runs the real sendmail binary in a scratch rqmail home whose queue program (`QMAILQUEUE`)
//! is a shell script that saves the message (fd 0) and the envelope (fd 1) to files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test's unwrap is its assertion

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch home: `bin/sendmail`, control files, and the fake queue program.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str) -> Home {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sendmail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("control")).unwrap();
        install(env!("CARGO_BIN_EXE_sendmail"), &dir.join("bin/sendmail"));
        for (file, value) in [
            ("defaulthost", "box"),
            ("defaultdomain", "example.com"),
            ("idhost", "id.example.com"),
        ] {
            std::fs::write(dir.join("control").join(file), format!("{value}\n")).unwrap();
        }
        let d = dir.display();
        write_script(
            &dir.join("fake-queue"),
            &format!(
                "cat > '{d}/message' || exit 54\n\
                 cat 0<&1 > '{d}/envelope' || exit 54\n\
                 exit ${{FAKE_QUEUE_EXIT:-0}}\n"
            ),
        );
        Home { dir }
    }

    /// Runs `bin/<program>` with a clean environment plus `env`, feeding `stdin`.
    fn run(&self, program: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
        let mut child = Command::new(self.dir.join("bin").join(program))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("USER", "joe")
            .env("QMAILQUEUE", self.dir.join("fake-queue"))
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The program may exit without reading everything; that is fine here.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        child.wait_with_output().unwrap()
    }

    fn sendmail(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.run("sendmail", args, &[], stdin)
    }

    fn message(&self) -> String {
        std::fs::read_to_string(self.dir.join("message")).unwrap()
    }

    fn envelope(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("envelope")).unwrap()
    }

    fn queued(&self) -> bool {
        self.dir.join("message").exists()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Hard-links the binary into place (its home is found from its own path), else copies it.
fn install(from: &str, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn t_takes_recipients_from_the_header_removes_bcc_and_stops_at_a_lone_dot() {
    let home = Home::new("t");
    let out = home.sendmail(
        &["-t", "-oem"],
        b"From: Joe <joe@x.org>\n\
          To: bob, carol@y.org\n\
          Bcc: dave\n\
          Date: Mon, 23 Nov 2026 16:05:09 +0000\n\
          Message-ID: <fixed@x.org>\n\
          Subject: hello\n\
          \n\
          body line\n\
          .\n\
          after the dot\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        home.message(),
        "From: Joe <joe@x.org>\n\
         To: bob@box.example.com, carol@y.org\n\
         Date: Mon, 23 Nov 2026 16:05:09 +0000\n\
         Message-ID: <fixed@x.org>\n\
         Subject: hello\n\
         \n\
         body line\n"
    );
    assert_eq!(
        home.envelope(),
        b"Fjoe@box.example.com\0Tbob@box.example.com\0Tcarol@y.org\0Tdave@box.example.com\0\0"
    );
}

#[test]
fn without_t_the_arguments_are_the_recipients_and_i_keeps_dots() {
    let home = Home::new("args");
    let out = home.sendmail(
        &[
            "-i",
            "-f",
            "list@x.org",
            "-F",
            "List Owner",
            "bob@z.org",
            "ann",
        ],
        b"To: someone@else.org\r\nSubject: hi\r\n\r\n.\r\nend\r\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let message = home.message();
    let (date, rest) = message.split_once('\n').unwrap();
    let (id, rest) = rest.split_once('\n').unwrap();
    assert!(
        date.starts_with("Date: ") && date.ends_with(" +0000"),
        "{date}"
    );
    assert!(
        id.starts_with("Message-ID: <") && id.ends_with("@id.example.com>"),
        "{id}"
    );
    assert_eq!(
        rest,
        "From: List Owner <list@x.org>\n\
         To: someone@else.org\n\
         Subject: hi\n\
         \n\
         .\n\
         end\n"
    );
    assert_eq!(
        home.envelope(),
        b"Flist@x.org\0Tbob@z.org\0Tann@box.example.com\0\0"
    );
}

#[test]
fn no_recipients_is_a_permanent_failure() {
    let home = Home::new("none");
    let out = home.sendmail(&[], b"To: bob@x.org\n\nhi\n");
    assert_eq!(out.status.code(), Some(100));
    assert!(stderr(&out).contains("sendmail: fatal: no recipients"));
    let out = home.sendmail(&["-t"], b"Subject: nobody\n\nhi\n");
    assert_eq!(out.status.code(), Some(100));
    assert!(stderr(&out).contains("no recipients"), "{}", stderr(&out));
    assert!(!home.queued());
}

#[test]
fn queue_failures_keep_their_class() {
    let home = Home::new("fail");
    let msg = b"Subject: x\n\nhi\n";
    let out = home.run("sendmail", &["bob"], &[("FAKE_QUEUE_EXIT", "31")], msg);
    assert_eq!(out.status.code(), Some(100), "{}", stderr(&out));
    assert!(stderr(&out).contains("permanently rejected"));
    let out = home.run("sendmail", &["bob"], &[("FAKE_QUEUE_EXIT", "71")], msg);
    assert_eq!(out.status.code(), Some(111), "{}", stderr(&out));
}

#[test]
fn unknown_options_are_usage_errors() {
    let home = Home::new("usage");
    let out = home.sendmail(&["-q"], b"");
    assert_eq!(out.status.code(), Some(100));
    assert!(stderr(&out).starts_with("sendmail: usage: sendmail"));
    assert!(!home.queued());
}

#[test]
fn bs_without_smtpd_fails_clearly() {
    let home = Home::new("bs");
    let out = home.sendmail(&["-bs"], b"");
    assert_eq!(out.status.code(), Some(111));
    assert!(
        stderr(&out).contains("unable to run") && stderr(&out).contains("bin/rqmail-smtpd"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bp_and_mailq_run_qread() {
    let home = Home::new("bp");
    write_script(
        &home.dir.join("bin/rqmail-qread"),
        "echo \"queue listing from $(pwd)\"\n",
    );
    let out = home.sendmail(&["-bp"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = format!("queue listing from {}\n", home.dir.display());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    install(env!("CARGO_BIN_EXE_sendmail"), &home.dir.join("bin/mailq"));
    let out = home.run("mailq", &[], &[], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}
