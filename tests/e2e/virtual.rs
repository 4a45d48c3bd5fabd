//! Virtual domains (rqmail-vusers, rqmail-vdeliver, rqmail-checkpassword, rqmail-smtpd):
//! two domains on one single-user instance, handed to the harness users vmaila and vmailb,
//! whose `.qmail-default` runs rqmail-vdeliver. Mail through SMTP reaches the right virtual
//! Maildirs, aliases and forwards work, a quota defers and then accepts, unknown boxes are
//! refused at RCPT, the user reads mail over POP3 and IMAP and authenticates over SMTP with
//! their own password, and a mistake in the text table leaves the old CDBs in use. The
//! hashes live in the instance's users/virtual, not in the account's home, and a table of
//! the old layout is moved there. The installed system (real accounts, rqmailp, rqmaild,
//! passwd.cdb's group) is tested in install.rs.

use rqmail_e2e::{Instance, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Setup {
    inst: Instance,
    a: PathBuf,
    b: PathBuf,
}

fn vusers(inst: &Instance, args: &[&str], input: &[u8]) -> (bool, String, String) {
    let out = inst.run("rqmail-vusers", args, input);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn setup(name: &str) -> Setup {
    let inst = Instance::new(name);
    let homes = inst.add_users(&["vmaila", "vmailb"]);
    inst.control("virtualdomains", "a.test:vmaila\nb.test:vmailb\n");
    inst.control("rcpthosts", "example.com\na.test\nb.test\n");
    inst.control("checkpassworddelay", "100\n");
    let vdeliver = inst.bin("rqmail-vdeliver");
    for home in &homes {
        std::fs::write(
            home.join(".qmail-default"),
            format!("|{}\n", vdeliver.display()),
        )
        .unwrap();
    }
    for (args, input) in [
        (&["a.test", "add", "alice"][..], &b"alice-a-pw\n"[..]),
        (&["a.test", "add", "bob", "1500"], b"bob-pw\n"),
        (&["b.test", "add", "alice"], b"alice-b-pw\n"),
        (&["a.test", "alias", "postmaster", "alice"], b""),
        (&["a.test", "forward", "carol", "alice@b.test"], b""),
    ] {
        let (ok, _, err) = vusers(&inst, args, input);
        assert!(ok, "rqmail-vusers {args:?}: {err}");
    }
    if rqmail_e2e::as_root() {
        // The harness's instance user is nobody; files made as root are given to it.
        let _ = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&homes[0])
            .arg(&homes[1])
            .status();
    }
    Setup {
        a: homes[0].join("a.test"),
        b: homes[1].join("b.test"),
        inst,
    }
}

fn maildir(domain_dir: &Path, user: &str) -> PathBuf {
    domain_dir.join(user).join("Maildir")
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

#[test]
fn virtual_domains_end_to_end() {
    let Setup { mut inst, a, b } = setup("virtual");
    // The text table holds hashes only; nothing prints them. It lives in the rqmail home,
    // and nothing with a hash is left in the account's domain directory.
    let ha = inst.home.join("users/virtual/a.test");
    let text = read(&ha.join("passwd"));
    assert!(text.contains("alice:$y$"), "{text}");
    assert!(!text.contains("alice-a-pw"));
    let (ok, list, _) = vusers(&inst, &["a.test", "list"], b"");
    assert!(ok);
    assert!(
        list.contains("user alice quota 0") && list.contains("user bob quota 1500"),
        "{list}"
    );
    assert!(!list.contains('$'), "list must not print hashes: {list}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ha.join("passwd")), 0o600);
    assert_eq!(mode(&a.join("boxes.cdb")), 0o644);
    assert_eq!(mode(&ha.join("passwd.cdb")) & 0o007, 0);
    for name in ["passwd", "passwd.cdb"] {
        assert!(!a.join(name).exists(), "{name} in the account's directory");
    }

    inst.start();
    let smtp = inst.listen("rqmail-smtpd", &[], &[]);
    inst.python(smtp.port, r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
s.ehlo("c")
code, msg = s.docmd("MAIL FROM:<sender@example.com>"); assert code == 250, msg
code, msg = s.docmd("RCPT TO:<unknown@a.test>"); assert code == 550 and msg.startswith(b"5.1.1"), (code, msg)
code, msg = s.docmd("RCPT TO:<Alice@A.test>"); assert code == 250, (code, msg)
s.rset()
for to, subject in [("alice@a.test", "to a"), ("alice@b.test", "to b"),
                    ("postmaster@a.test", "via alias"), ("carol@a.test", "via forward")]:
    refused = s.sendmail("sender@example.com", [to], ("Subject: %s\r\n\r\nhello %s\r\n" % (subject, to)).encode())
    assert refused == {}, refused
s.quit()
"#);
    let in_a = inst.wait_for_mail(&maildir(&a, "alice"), 2);
    let in_b = inst.wait_for_mail(&maildir(&b, "alice"), 2);
    let a_text: Vec<String> = in_a.iter().map(|p| read(p)).collect();
    let b_text: Vec<String> = in_b.iter().map(|p| read(p)).collect();
    assert!(
        a_text.iter().any(|t| t.contains("Subject: to a")),
        "{a_text:?}"
    );
    assert!(
        a_text.iter().any(|t| t.contains("Subject: via alias")),
        "{a_text:?}"
    );
    assert!(
        b_text.iter().any(|t| t.contains("Subject: to b")),
        "{b_text:?}"
    );
    assert!(
        b_text.iter().any(|t| t.contains("Subject: via forward")),
        "{b_text:?}"
    );
    assert!(
        !a_text
            .iter()
            .any(|t| t.contains("to b") || t.contains("via forward"))
    );
    assert!(
        a_text.iter().all(|t| t.contains("Delivered-To: vmaila-")),
        "{a_text:?}"
    );

    // Quota: bob has 1500 bytes; two 1000-byte messages do not fit.
    let bob = maildir(&a, "bob");
    let body = "x".repeat(900);
    for n in 1..=2 {
        let msg = format!("Subject: big {n}\n\n{body}\n");
        assert_eq!(
            inst.queue_raw("sender@example.com", &["bob@a.test"], msg.as_bytes()),
            0
        );
        if n == 1 {
            inst.wait_for_mail(&bob, 1);
        }
    }
    assert!(
        wait_for(Duration::from_secs(20), || inst
            .log_text()
            .contains("mailbox full")),
        "no deferral for the full mailbox:\n{}",
        inst.log_text()
    );
    assert_eq!(Instance::maildir_new(&bob).len(), 1);
    assert!(read(&bob.join("maildirsize")).starts_with("1500S\n"));
    let first = Instance::maildir_new(&bob).remove(0);
    assert!(read(&first).contains("Subject: big 1"));
    std::fs::remove_file(first).unwrap();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    let files = inst.wait_for_mail(&bob, 1);
    assert!(read(&files[0]).contains("Subject: big 2"));

    // POP3 through rqmail-login and rqmail-checkpassword, with the virtual user's password.
    let checkpassword = inst.bin("rqmail-checkpassword");
    let pop3d = inst.bin("rqmail-pop3d");
    let pop = inst.listen(
        "rqmail-login",
        &[
            "pop3",
            checkpassword.to_str().unwrap(),
            pop3d.to_str().unwrap(),
        ],
        &[("POP3_PLAINTEXT", "")],
    );
    let out = inst.python(
        pop.port,
        include_str!("../python/virtual/virtual_domains_end_to_end_pop3.py"),
    );
    assert!(out.contains("pop3 ok"), "{out}");

    // IMAP through the same front and checkpassword: the user's own Maildir, their password.
    let imapd = inst.bin("rqmail-imapd");
    let imap = inst.listen(
        "rqmail-login",
        &[
            "imap",
            checkpassword.to_str().unwrap(),
            imapd.to_str().unwrap(),
        ],
        &[("IMAP_PLAINTEXT", "")],
    );
    let out = inst.python(
        imap.port,
        include_str!("../python/virtual/virtual_domains_end_to_end_imap.py"),
    );
    assert!(out.contains("imap ok"), "{out}");
    // The expunge and the APPEND to a folder were recorded, and a recount agrees.
    let bob_maildir = maildir(&a, "bob");
    let size = read(&bob_maildir.join("maildirsize"));
    let lines: Vec<&str> = size.lines().collect();
    assert_eq!(lines[0], "1500S", "{size}");
    assert!(
        lines.iter().any(|l| l.starts_with('-')),
        "no removal recorded: {size}"
    );
    let total: i64 = lines[1..]
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse::<i64>().unwrap())
        .sum();
    let archived: u64 = std::fs::read_dir(bob_maildir.join(".Archive/cur"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(total, archived as i64, "{size}");
    // A message limit that the admin put in maildirsize (`C`) is kept by rqmail-vdeliver,
    // which knows only the bytes, and enforced: bob has one message, the limit is one.
    std::fs::write(
        bob_maildir.join("maildirsize"),
        format!("1500S,1C\n{archived} 1\n"),
    )
    .unwrap();
    let full_before = inst.log_text().matches("mailbox full").count();
    assert_eq!(
        inst.queue_raw(
            "sender@example.com",
            &["bob@a.test"],
            b"Subject: tiny\n\nx\n"
        ),
        0
    );
    assert!(
        wait_for(Duration::from_secs(20), || inst
            .log_text()
            .matches("mailbox full")
            .count()
            > full_before),
        "no deferral for the message limit:\n{}",
        inst.log_text()
    );
    assert!(Instance::maildir_new(&bob_maildir).is_empty());
    let size = read(&bob_maildir.join("maildirsize"));
    assert!(size.starts_with("1500S,1C\n"), "{size}");
    // The \Seen flag landed in the virtual user's own Maildir, as the domain account.
    let seen: Vec<_> = std::fs::read_dir(maildir(&b, "alice").join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(":2,S"))
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");

    // SMTP AUTH with a virtual user's password (inside TLS).
    inst.make_certificate();
    let auth = inst.listen(
        "rqmail-smtpd",
        &[
            "mail.example.com",
            checkpassword.to_str().unwrap(),
            "/bin/true",
        ],
        &[],
    );
    let out = inst.python(
        auth.port,
        r#"
import os, smtplib, ssl
from rqtest import tls_context; ctx = tls_context()
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
s.starttls(context=ctx)
s.ehlo("c")
try:
    s.login("alice@a.test", "wrong")
    raise SystemExit("wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.login("alice@a.test", "alice-a-pw")
code, msg = s.docmd("MAIL FROM:<alice@a.test>"); assert code == 250, msg
code, msg = s.docmd("RCPT TO:<far@elsewhere.example>"); assert code == 250, (code, msg)
s.quit()
print("auth ok")
"#,
    );
    assert!(out.contains("auth ok"), "{out}");

    // A mistake in the text: compile names the line, the old CDBs stay in use.
    let mut text = read(&ha.join("passwd"));
    text.push_str("dave:$y$xyz:lots:\n");
    let bad_line = text.lines().count();
    std::fs::write(ha.join("passwd"), text).unwrap();
    let (ok, _, err) = vusers(&inst, &["a.test", "compile"], b"");
    assert!(!ok);
    assert!(err.contains(&format!("line {bad_line}")), "{err}");
    let (ok, _, err) = vusers(&inst, &["a.test", "add", "erin"], b"pw\n");
    assert!(!ok && err.contains(&format!("line {bad_line}")), "{err}");
    inst.python(
        smtp.port,
        r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
s.ehlo("c")
code, msg = s.docmd("MAIL FROM:<sender@example.com>"); assert code == 250, msg
code, msg = s.docmd("RCPT TO:<alice@a.test>"); assert code == 250, (code, msg)
code, msg = s.docmd("RCPT TO:<dave@a.test>"); assert code == 550, (code, msg)
s.quit()
"#,
    );
}

#[test]
fn removed_users_are_refused_and_vdeliver_says_100_for_nobody() {
    let Setup { inst, a, .. } = setup("virtual-remove");
    let (ok, _, err) = vusers(&inst, &["a.test", "remove", "alice"], b"");
    assert!(ok, "{err}");
    // The alias that pointed only at alice went with her.
    let text = read(&inst.home.join("users/virtual/a.test/passwd"));
    assert!(
        !text.contains("alice:") && !text.contains("postmaster"),
        "{text}"
    );
    let out = inst.run_env(
        "rqmail-vdeliver",
        &[],
        b"Subject: x\n\nx\n",
        &[
            ("EXT", "alice"),
            ("HOST", "a.test"),
            ("HOME", a.parent().unwrap().to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(100));
    assert!(String::from_utf8_lossy(&out.stdout).contains("#5.1.1"));
    let (ok, _, err) = vusers(&inst, &["a.test", "add", "Bad/Name"], b"pw\n");
    assert!(!ok && err.contains("bad name"), "{err}");
    let (ok, _, err) = vusers(&inst, &["c.test", "list"], b"");
    assert!(!ok && err.contains("not a virtual domain"), "{err}");
}

#[test]
fn a_table_of_the_old_layout_moves_out_of_the_accounts_directory() {
    let Setup { inst, a, .. } = setup("virtual-migrate");
    // Put the domain back as an older rqmail left it: table and hashes beside the mailboxes.
    let ha = inst.home.join("users/virtual/a.test");
    let table = read(&ha.join("passwd"));
    std::fs::write(a.join("passwd"), &table).unwrap();
    std::fs::copy(ha.join("passwd.cdb"), a.join("passwd.cdb")).unwrap();
    std::fs::remove_dir_all(&ha).unwrap();
    let (ok, out, err) = vusers(&inst, &["a.test", "compile"], b"");
    assert!(ok, "{err}");
    assert!(out.contains("moved the table of a.test"), "{out}");
    assert_eq!(read(&ha.join("passwd")), table);
    assert!(ha.join("passwd.cdb").exists());
    assert!(!a.join("passwd").exists() && !a.join("passwd.cdb").exists());
    let (ok, list, _) = vusers(&inst, &["a.test", "list"], b"");
    assert!(ok && list.contains("user alice quota 0"), "{list}");
}

/// `RPLINE` and `DTLINE` as rqmail-local sets them, for rqmail-vdeliver run by hand: 57
/// bytes in all.
const RPLINE: &str = "Return-Path: <sender@example.com>\n";
const DTLINE: &str = "Delivered-To: a.test-x\n";

/// Writes a message of exactly `size` bytes (at least 14): a header, then lines of `x`.
fn write_message(out: &mut impl std::io::Write, size: usize) -> std::io::Result<()> {
    let head = b"Subject: big\n\n";
    out.write_all(head)?;
    let line = [b"x".repeat(79), b"\n".to_vec()].concat();
    let chunk = line.repeat(64 * 1024 / 80);
    let mut left = size - head.len();
    while left > 0 {
        let n = left.min(chunk.len());
        out.write_all(&chunk[..n])?;
        left -= n;
    }
    Ok(())
}

/// Runs rqmail-vdeliver for `ext@a.test` under an address space of `limit` bytes (prlimit),
/// the message of `size` bytes fed through a pipe or, as rqmail-local gives it, a file;
/// returns its exit code and what it printed.
fn vdeliver_limited(
    inst: &Instance,
    a: &Path,
    ext: &str,
    size: usize,
    limit: u64,
    from_file: bool,
) -> (Option<i32>, String) {
    use std::process::Stdio;
    let mut cmd = rqmail_e2e::command("prlimit");
    cmd.arg(format!("--as={limit}"))
        .arg(inst.bin("rqmail-vdeliver"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("EXT", ext)
        .env("HOST", "a.test")
        .env("HOME", a.parent().unwrap())
        .env("RPLINE", RPLINE)
        .env("DTLINE", DTLINE)
        .env("NEWSENDER", "sender@example.com")
        .current_dir(a.parent().unwrap())
        .stdout(Stdio::piped());
    let file = inst.home.join("message");
    if from_file {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        write_message(&mut f, size).unwrap();
        drop(f);
        cmd.stdin(std::fs::File::open(&file).unwrap());
    } else {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("prlimit (util-linux)");
    let writer = child.stdin.take().map(|mut stdin| {
        // A refused message is not read to its end: the broken pipe is expected.
        std::thread::spawn(move || {
            let _ = write_message(&mut stdin, size);
        })
    });
    let out = child.wait_with_output().unwrap();
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let _ = std::fs::remove_file(&file);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Issue 12, item 7: rqmail-vdeliver read the whole message into memory. It now streams
/// it into the Maildir, and through the queue to forwards, so a message twice the size of
/// its address space is delivered; the quota is still held to the byte while it streams.
#[test]
fn vdeliver_streams_a_message_larger_than_its_memory_and_keeps_the_quota_exact() {
    let Setup { inst, a, .. } = setup("virtual-stream");
    for (args, input) in [
        (&["a.test", "add", "big"][..], &b"pw\n"[..]),
        (&["a.test", "add", "both"], b"pw\n"),
        (&["a.test", "forward", "both", "alice@b.test"], b""),
        (&["a.test", "add", "exact", "1000"], b"pw\n"),
        (&["a.test", "add", "small", "1048576"], b"pw\n"),
    ] {
        let (ok, _, err) = vusers(&inst, args, input);
        assert!(ok, "rqmail-vusers {args:?}: {err}");
    }
    if rqmail_e2e::as_root() {
        let _ = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(a.parent().unwrap())
            .status();
    }
    let prefix = RPLINE.len() + DTLINE.len();
    const MIB: usize = 1024 * 1024;
    // 32 MiB of address space; the messages have 64 MiB.
    let limit = 32 * MIB as u64;
    let big = 64 * MIB;
    let only_file = |user: &str| {
        let files = Instance::maildir_new(&maildir(&a, user));
        assert_eq!(files.len(), 1, "{user}: {files:?}");
        files[0].clone()
    };
    let tmp_is_empty = |user: &str| {
        std::fs::read_dir(maildir(&a, user).join("tmp"))
            .unwrap()
            .next()
            .is_none()
    };

    // From a pipe into one Maildir: streamed.
    let (code, out) = vdeliver_limited(&inst, &a, "big", big, limit, false);
    assert_eq!(code, Some(0), "{out}");
    let file = only_file("big");
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        (prefix + big) as u64
    );
    assert!(tmp_is_empty("big"));
    std::fs::remove_file(file).unwrap();
    // From a file, as rqmail-local runs it.
    let (code, out) = vdeliver_limited(&inst, &a, "big", big, limit, true);
    assert_eq!(code, Some(0), "{out}");
    std::fs::remove_file(only_file("big")).unwrap();

    // From a pipe, a mailbox and a forward: read twice, from a scratch copy in tmp/ that
    // is gone afterwards; the forward streams through rqmail-queue (under the same limit).
    let (code, out) = vdeliver_limited(&inst, &a, "both", big, limit, false);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        std::fs::metadata(only_file("both")).unwrap().len(),
        (prefix + big) as u64
    );
    assert!(tmp_is_empty("both"));
    assert_eq!(inst.queued(), 1, "the forward is queued");
    let mess: Vec<_> = walk(&inst.home.join("queue/mess"));
    assert_eq!(mess.len(), 1, "{mess:?}");
    // rqmail-queue's Received line, then DTLINE and the whole message.
    let mut head = [0u8; 200];
    use std::io::Read;
    std::fs::File::open(&mess[0])
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    let received = head.iter().position(|&b| b == b'\n').unwrap() + 1;
    assert!(
        head[received..].starts_with(format!("{DTLINE}Subject: big\n").as_bytes()),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(
        std::fs::metadata(&mess[0]).unwrap().len(),
        (received + DTLINE.len() + big) as u64,
    );

    // The quota, to the byte, from a pipe (size unknown until the end) and from a file.
    for from_file in [false, true] {
        let (code, out) = vdeliver_limited(&inst, &a, "exact", 1001 - prefix, limit, from_file);
        assert_eq!(code, Some(111), "{out}");
        assert!(
            out.contains("mailbox full") && out.contains("(#4.2.2)"),
            "{out}"
        );
        assert!(Instance::maildir_new(&maildir(&a, "exact")).is_empty());
        assert!(tmp_is_empty("exact"), "an aborted copy is removed");
        let (code, out) = vdeliver_limited(&inst, &a, "exact", 1000 - prefix, limit, from_file);
        assert_eq!(code, Some(0), "{out}");
        let file = only_file("exact");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 1000);
        std::fs::remove_file(file).unwrap();
    }
    // A message far over the quota, from a pipe, is refused part way, not read whole.
    let (code, out) = vdeliver_limited(&inst, &a, "small", big, limit, false);
    assert_eq!(code, Some(111), "{out}");
    assert!(out.contains("mailbox full"), "{out}");
    assert!(Instance::maildir_new(&maildir(&a, "small")).is_empty());
    assert!(tmp_is_empty("small"));
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Issue 12, item 7: rqmail-imapd learned a quota only from `maildirsize`, which
/// rqmail-vdeliver makes at the first delivery, so a virtual user who had received nothing
/// yet could APPEND and COPY without limit. rqmail-checkpassword now passes the quota on
/// (`MAILDIRQUOTA`), and the first check makes `maildirsize` by counting the Maildir.
#[test]
fn imap_holds_a_virtual_user_to_the_quota_before_maildirsize_exists() {
    let Setup { inst, a, .. } = setup("virtual-imap-quota");
    let bob = maildir(&a, "bob");
    assert!(!bob.join("maildirsize").exists());
    // 1000 of bob's 1500 bytes, put there by hand (no S= in the name: counted by stat).
    let mut message = b"Subject: by hand\n\n".to_vec();
    message.resize(999, b'z');
    message.push(b'\n');
    std::fs::write(bob.join("cur/1.by-hand.host:2,S"), &message).unwrap();
    if rqmail_e2e::as_root() {
        let _ = std::process::Command::new("chown")
            .args(["65534:65534"])
            .arg(bob.join("cur/1.by-hand.host:2,S"))
            .status();
    }
    let checkpassword = inst.bin("rqmail-checkpassword");
    let imapd = inst.bin("rqmail-imapd");
    let imap = inst.listen(
        "rqmail-login",
        &[
            "imap",
            checkpassword.to_str().unwrap(),
            imapd.to_str().unwrap(),
        ],
        &[("IMAP_PLAINTEXT", ""), ("MAILDIRQUOTA", "99999999S")],
    );
    let out = inst.python(
        imap.port,
        include_str!(
            "../python/virtual/imap_holds_a_virtual_user_to_the_quota_before_maildirsize_exists.py"
        ),
    );
    assert!(out.contains("imap quota ok"), "{out}");
    assert_eq!(
        read(&bob.join("maildirsize")).lines().next(),
        Some("1500S"),
        "the first check made maildirsize"
    );
    let stored: u64 = ["new", "cur", ".Archive/new", ".Archive/cur"]
        .iter()
        .flat_map(|d| std::fs::read_dir(bob.join(d)).unwrap())
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(stored, 1500, "bob's Maildir is full to the byte, no more");
    assert!(!maildir(&a, "alice").join("maildirsize").exists());
}
