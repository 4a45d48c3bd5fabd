//! rqmail-remote run by hand, as qmail-remote is: against our own rqmail-smtpd (plain,
//! opportunistic and verified STARTTLS, several recipients in one transaction, a refused
//! recipient) and against scripted Python servers that refuse, defer, drop the connection,
//! lack 8BITMIME or inject plaintext after STARTTLS, checking reports and wire bytes exactly.

use rqmail_e2e::{Instance, as_root, command, python_command, wait_for};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A stored message (LF line ends) with a line that is only a dot and a leading dot.
const MESSAGE: &[u8] =
    b"From: alice@remote.example\nSubject: remote test\n\nline one\n.\n.leading dot\nlast line\n";

/// Runs rqmail-remote with `message` on fd 0 as a regular file (as rspawn gives it the
/// queue file) and returns its stdout, checking that it exited 0.
fn remote(inst: &Instance, args: &[&str], message: &[u8]) -> Vec<u8> {
    let path = inst.home.join(format!(
        "message-{}",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, message).unwrap();
    let out = command(inst.bin("rqmail-remote"))
        .args(args)
        .current_dir(&inst.home)
        .stdin(std::fs::File::open(&path).unwrap())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rqmail-remote exits 0: {:?}",
        out.status
    );
    out.stdout
}

fn show(report: &[u8]) -> String {
    String::from_utf8_lossy(report).replace('\0', "\\0")
}

/// Serves rqmail-smtpd with its log (stderr) kept in `smtpd.log`.
fn listen_logged(inst: &Instance) -> rqmail_e2e::Listener {
    let wrapper = inst.bin("smtpd-logged");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nexec \"${0%/*}/rqmail-smtpd\" \"$@\" 2>>\"${0%/*}/../smtpd.log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    inst.listen("smtpd-logged", &[], &[])
}

fn smtpd_log(inst: &Instance) -> String {
    String::from_utf8_lossy(&std::fs::read(inst.home.join("smtpd.log")).unwrap_or_default())
        .into_owned()
}

/// Waits for `n` "accepted message" lines in smtpd's log and returns them.
fn accepted_lines(inst: &Instance, n: usize) -> Vec<String> {
    wait_for(Duration::from_secs(10), || {
        smtpd_log(inst).matches("accepted message").count() >= n
    });
    smtpd_log(inst)
        .lines()
        .filter(|l| l.contains("accepted message"))
        .map(str::to_string)
        .collect()
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

/// An instance with users bob, carol and dave, whose mail for example.com goes to its own
/// rqmail-smtpd (through smtproutes).
fn own_server(name: &str, tls: bool) -> (Instance, Vec<PathBuf>, rqmail_e2e::Listener) {
    let mut inst = Instance::new(name);
    let homes = inst.add_users(&["bob", "carol", "dave"]);
    if tls {
        inst.make_certificate();
    }
    inst.start();
    let l = listen_logged(&inst);
    inst.control("smtproutes", &format!("example.com:127.0.0.1:{}\n", l.port));
    (inst, homes, l)
}

fn assert_delivered(inst: &Instance, home: &Path) -> String {
    let files = inst.wait_for_mail(&home.join("Maildir"), 1);
    assert_eq!(files.len(), 1);
    let text = read(&files[0]);
    assert!(
        text.ends_with("Subject: remote test\n\nline one\n.\n.leading dot\nlast line\n"),
        "{text:?}"
    );
    text
}

#[test]
fn several_recipients_share_one_plain_transaction() {
    let (inst, homes, _l) = own_server("remote-plain", false);
    let report = remote(
        &inst,
        &[
            "example.com",
            "alice@remote.example",
            "bob@example.com",
            "carol@example.com",
            "dave@example.com",
        ],
        MESSAGE,
    );
    let text = show(&report);
    assert!(
        text.starts_with(
            "r\\0r\\0r\\0K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 ok "
        ),
        "{text}"
    );
    assert!(text.ends_with("\n\\0") && text.contains(" qp "), "{text}");
    for home in &homes {
        let mail = assert_delivered(&inst, home);
        assert!(
            mail.contains("(HELO example.com) (127.0.0.1)\n  by mail.example.com with ESMTP;"),
            "{mail}"
        );
    }
    let accepted = accepted_lines(&inst, 1);
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert!(
        accepted[0].contains("from <alice@remote.example> to 3 recipients")
            && !accepted[0].contains("TLS"),
        "{accepted:?}"
    );
}

#[test]
fn starttls_is_used_when_offered_and_named_in_the_report() {
    let (inst, homes, _l) = own_server("remote-tls", true);
    let report = remote(
        &inst,
        &[
            "example.com",
            "alice@remote.example",
            "bob@example.com",
            "carol@example.com",
        ],
        MESSAGE,
    );
    let text = show(&report);
    assert!(
        text.starts_with("r\\0r\\0K127.0.0.1 accepted message (TLSv1.3 TLS13_"),
        "{text}"
    );
    assert!(
        text.contains(").\nRemote host said: 250 2.0.0 ok "),
        "{text}"
    );
    for home in &homes[..2] {
        let mail = assert_delivered(&inst, home);
        assert!(mail.contains("with ESMTPS (TLSv1.3 TLS13_"), "{mail}");
    }
    let accepted = accepted_lines(&inst, 1);
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert!(accepted[0].contains("to 2 recipients") && accepted[0].contains("TLSv1.3"));

    // control/notlshosts/HOST turns TLS off for that host.
    std::fs::create_dir_all(inst.home.join("control/notlshosts")).unwrap();
    std::fs::write(inst.home.join("control/notlshosts/127.0.0.1"), "").unwrap();
    let text = show(&remote(
        &inst,
        &["example.com", "alice@remote.example", "dave@example.com"],
        MESSAGE,
    ));
    assert!(
        text.starts_with("r\\0K127.0.0.1 accepted message.\n"),
        "{text}"
    );
    let mail = assert_delivered(&inst, &homes[2]);
    assert!(mail.contains("with ESMTP;"), "{mail}");
}

#[test]
fn a_refused_recipient_is_reported_while_the_others_are_delivered() {
    let (inst, homes, _l) = own_server("remote-refused", false);
    let text = show(&remote(
        &inst,
        &[
            "example.com",
            "alice@remote.example",
            "bob@example.com",
            "nosuch@example.com",
            "carol@example.com",
        ],
        MESSAGE,
    ));
    assert!(
        text.starts_with("r\\0h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 "),
        "{text}"
    );
    assert!(
        text.contains("\n\\0r\\0K127.0.0.1 accepted message.\nRemote host said: 250 "),
        "{text}"
    );
    assert_delivered(&inst, &homes[0]);
    assert_delivered(&inst, &homes[1]);
    let accepted = accepted_lines(&inst, 1);
    assert!(accepted[0].contains("to 2 recipients"), "{accepted:?}");
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

/// Makes a CA and a certificate it signs for 127.0.0.1 and mail.example.com; installs the
/// certificate as smtpd's and returns the CA file.
fn install_ca_signed_certificate(inst: &Instance) -> PathBuf {
    let dir = inst.home.join("ca");
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=rqmail test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=mail.example.com",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
        &dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:mail.example.com\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "leaf.pem",
            "-extfile",
            "ext.cnf",
        ],
        &dir,
    );
    let mut pem = std::fs::read(dir.join("leaf.pem")).unwrap();
    pem.extend(std::fs::read(dir.join("leaf.key")).unwrap());
    let cert = inst.home.join("control/servercert.pem");
    std::fs::write(&cert, pem).unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o600)).unwrap();
    if as_root() {
        std::os::unix::fs::chown(&cert, Some(65534), Some(65534)).unwrap();
    }
    dir.join("ca.pem")
}

#[test]
fn required_tls_verifies_the_certificate_and_refuses_one_that_does_not_verify() {
    let (inst, homes, _l) = own_server("remote-verify", true);
    // tlsdestinations: the self-signed certificate does not chain to the system's roots.
    inst.control("tlsdestinations", "example.com\n");
    let text = show(&remote(
        &inst,
        &["example.com", "alice@remote.example", "bob@example.com"],
        MESSAGE,
    ));
    assert!(
        text.starts_with(
            "ZConnected to 127.0.0.1 but the TLS handshake failed: invalid peer certificate"
        ),
        "{text}"
    );
    assert!(text.ends_with(" (#4.7.5)\n\\0"), "{text}");

    // tlshosts/HOST.pem: a CA file; the server's certificate is signed by it, for this IP.
    let ca = install_ca_signed_certificate(&inst);
    std::fs::create_dir_all(inst.home.join("control/tlshosts")).unwrap();
    std::fs::copy(&ca, inst.home.join("control/tlshosts/127.0.0.1.pem")).unwrap();
    let text = show(&remote(
        &inst,
        &["example.com", "alice@remote.example", "bob@example.com"],
        MESSAGE,
    ));
    assert!(
        text.starts_with("r\\0K127.0.0.1 accepted message (TLSv1.3 TLS13_"),
        "{text}"
    );
    assert_delivered(&inst, &homes[0]);

    // The same CA file does not make a certificate valid for another name.
    std::fs::remove_file(inst.home.join("control/tlshosts/127.0.0.1.pem")).unwrap();
    let other = install_other_name(&inst);
    std::fs::copy(&ca, inst.home.join("control/tlshosts/127.0.0.1.pem")).unwrap();
    let text = show(&remote(
        &inst,
        &["example.com", "alice@remote.example", "carol@example.com"],
        MESSAGE,
    ));
    assert!(
        text.starts_with("ZConnected to 127.0.0.1 but the TLS handshake failed: ")
            && text.contains("certificate not valid for name \"127.0.0.1\""),
        "{text} ({other:?})"
    );
    assert_eq!(Instance::maildir_new(&homes[1].join("Maildir")).len(), 0);
}

/// Re-signs the server's certificate with the test CA for another name only.
fn install_other_name(inst: &Instance) -> PathBuf {
    let dir = inst.home.join("ca");
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:elsewhere.example\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "leaf.pem",
            "-extfile",
            "ext.cnf",
        ],
        &dir,
    );
    let mut pem = std::fs::read(dir.join("leaf.pem")).unwrap();
    pem.extend(std::fs::read(dir.join("leaf.key")).unwrap());
    let cert = inst.home.join("control/servercert.pem");
    std::fs::write(&cert, pem).unwrap();
    cert
}

/// A one-connection SMTP server in Python. It prints its port, answers by command (the
/// scenario changes some answers), records every byte it receives in OUT, and exits.
const SCRIPTED_SERVER: &str = include_str!("../python/remote_client/scripted_server.py");

/// A running scripted server.
struct Scripted {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Scripted {
    fn start(inst: &Instance, scenario: &str) -> Scripted {
        let out = inst.home.join(format!(
            "transcript-{scenario}-{}",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let mut child = python_command(SCRIPTED_SERVER)
            .arg(scenario)
            .arg(&out)
            .arg(inst.home.join("control/servercert.pem"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("port");
        inst.control("smtproutes", &format!("x.test:127.0.0.1:{port}\n"));
        Scripted { child, port, out }
    }

    /// Waits for the server to finish and returns what it received.
    fn transcript(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "scripted server failed: {status:?}");
                return read(&self.out);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("scripted server on port {} did not finish", self.port);
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scripted(name: &str) -> Instance {
    let inst = Instance::new(name);
    inst.make_certificate();
    inst
}

#[test]
fn rcpt_451_defers_each_recipient_and_gives_up_on_the_message() {
    let inst = scripted("remote-451");
    let server = Scripted::start(&inst, "rcpt451");
    let report = remote(
        &inst,
        &[
            "x.test",
            "alice@remote.example",
            "bob@x.test",
            "carol@x.test",
        ],
        MESSAGE,
    );
    assert_eq!(
        show(&report),
        "s127.0.0.1 does not like recipient.\nRemote host said: 451 4.2.1 try later\n\\0\
         s127.0.0.1 does not like recipient.\nRemote host said: 451 4.2.1 try later\n\\0\
         DGiving up on 127.0.0.1.\n\\0"
    );
    assert_eq!(
        server.transcript(),
        "EHLO example.com\r\nMAIL FROM:<alice@remote.example> SIZE=90\r\n\
         RCPT TO:<bob@x.test>\r\nRCPT TO:<carol@x.test>\r\nDATA\r\nQUIT\r\n"
    );
}

#[test]
fn greeting_554_is_a_temporary_failure() {
    let inst = scripted("remote-554");
    let server = Scripted::start(&inst, "greeting554");
    let report = remote(
        &inst,
        &["x.test", "alice@remote.example", "bob@x.test"],
        MESSAGE,
    );
    assert_eq!(
        show(&report),
        "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 5.7.1 no SMTP service here\n\\0"
    );
    assert_eq!(server.transcript(), "QUIT\r\n");
}

#[test]
fn connection_dropped_at_data_is_temporary_without_duplicate_warning() {
    let inst = scripted("remote-drop-data");
    let server = Scripted::start(&inst, "drop_at_data");
    let report = remote(
        &inst,
        &["x.test", "alice@remote.example", "bob@x.test"],
        MESSAGE,
    );
    assert_eq!(
        show(&report),
        "r\\0ZConnected to 127.0.0.1 but connection died (closed by the server). (#4.4.2)\n\\0"
    );
    server.transcript();
}

#[test]
fn connection_dropped_after_the_dot_warns_of_a_possible_duplicate() {
    let inst = scripted("remote-drop-dot");
    let server = Scripted::start(&inst, "drop_after_dot");
    let report = remote(
        &inst,
        &["x.test", "alice@remote.example", "bob@x.test"],
        MESSAGE,
    );
    assert_eq!(
        show(&report),
        "r\\0ZConnected to 127.0.0.1 but connection died (closed by the server). Possible duplicate! (#4.4.2)\n\\0"
    );
    assert!(server.transcript().ends_with("last line\r\n.\r\n"));
}

#[test]
fn eight_bit_message_to_a_seven_bit_server_is_deferred_not_converted() {
    let inst = scripted("remote-7bit");
    let server = Scripted::start(&inst, "7bit");
    let report = remote(
        &inst,
        &["x.test", "alice@remote.example", "bob@x.test"],
        "Subject: x\n\ncaf\u{e9}\n".as_bytes(),
    );
    assert_eq!(
        show(&report),
        "ZConnected to 127.0.0.1 but it does not offer 8BITMIME: 8-bit message to a 7-bit server: not converting. (#4.3.0)\n\\0"
    );
    assert_eq!(server.transcript(), "EHLO example.com\r\nQUIT\r\n");

    // A 7-bit message goes through, without BODY=.
    let server = Scripted::start(&inst, "7bit");
    let report = remote(
        &inst,
        &["x.test", "alice@remote.example", "bob@x.test"],
        MESSAGE,
    );
    assert_eq!(
        show(&report),
        "r\\0K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 ok queued as 42\n\\0"
    );
    assert!(
        server
            .transcript()
            .starts_with("EHLO example.com\r\nMAIL FROM:<alice@remote.example> SIZE=90\r\n")
    );
}

#[test]
fn wire_format_has_crlf_dot_stuffing_a_final_line_end_and_no_bare_cr() {
    let inst = scripted("remote-wire");
    let server = Scripted::start(&inst, "capture");
    // A stored message with leading dots, a bare CR, the CR . CR LF smuggling sequence
    // of spec/smtp.md §9, 8-bit text and a last line without LF.
    let stored: &[u8] = b"Subject: wire\n\n.leading\n..two\nbare\rcr\nsmuggle\r.\r\nMAIL FROM:<ceo@x.test>\n\xc3\xa9\nlast";
    let report = remote(&inst, &["x.test", "", "bob@x.test", "c d@x.test"], stored);
    assert_eq!(
        show(&report),
        "r\\0r\\0K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 ok queued as 42\n\\0"
    );
    assert_eq!(
        server.transcript().into_bytes(),
        b"EHLO example.com\r\n\
          MAIL FROM:<> SIZE=90 BODY=8BITMIME\r\n\
          RCPT TO:<bob@x.test>\r\n\
          RCPT TO:<\"c d\"@x.test>\r\n\
          DATA\r\n\
          Subject: wire\r\n\r\n..leading\r\n...two\r\nbare\r\ncr\r\nsmuggle\r\n..\r\n\
          MAIL FROM:<ceo@x.test>\r\n\xc3\xa9\r\nlast\r\n.\r\n\
          QUIT\r\n"
    );
}

#[test]
fn plaintext_injected_after_starttls_is_discarded() {
    let inst = scripted("remote-inject");
    let server = Scripted::start(&inst, "inject");
    let report = remote(
        &inst,
        &["x.test", "alice@remote.example", "bob@x.test"],
        MESSAGE,
    );
    let text = show(&report);
    assert!(
        text.starts_with("r\\0K127.0.0.1 accepted message (TLSv1.3 TLS13_"),
        "{text}"
    );
    let transcript = server.transcript();
    assert!(
        transcript.starts_with(
            "EHLO example.com\r\nSTARTTLS\r\n<TLS>\r\nEHLO example.com\r\nMAIL FROM:<alice@remote.example> SIZE=90\r\n"
        ),
        "{transcript}"
    );
}

#[test]
fn no_server_listening_is_no_smtp_connection() {
    let inst = Instance::new("remote-refused-connect");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    inst.control("smtproutes", &format!("x.test:127.0.0.1:{port}\n"));
    let text = show(&remote(&inst, &["x.test", "a@b", "bob@x.test"], MESSAGE));
    assert!(
        text.starts_with("ZSorry, I wasn't able to establish an SMTP connection (127.0.0.1: ")
            && text.ends_with("). (#4.4.1)\n\\0"),
        "{text}"
    );
}

#[test]
fn usage_and_control_errors_are_reports_with_exit_0() {
    let inst = Instance::new("remote-usage");
    assert_eq!(
        show(&remote(&inst, &["x.test", "a@b"], MESSAGE)),
        "DI (rqmail-remote) was invoked improperly. (#5.3.5)\n\\0"
    );
    std::fs::remove_file(inst.home.join("control/me")).unwrap();
    assert_eq!(
        show(&remote(&inst, &["x.test", "a@b", "c@x.test"], MESSAGE)),
        "ZUnable to read control files: neither control/helohost nor control/me exists. (#4.3.0)\n\\0"
    );
    // A message piped in (not a file) is read into memory and works the same.
    inst.control("me", "example.com\n");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    inst.control("smtproutes", &format!("x.test:127.0.0.1:{port}\n"));
    let out = inst.run("rqmail-remote", &["x.test", "a@b", "c@x.test"], MESSAGE);
    assert!(out.status.success());
    assert!(
        show(&out.stdout).starts_with("ZSorry, I wasn't able to establish an SMTP connection"),
        "{}",
        show(&out.stdout)
    );
}
