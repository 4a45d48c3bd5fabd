//! Remote delivery end to end with a real Postfix as the other MTA (issue 4): rqmail-remote
//! delivers into Postfix's Maildirs with and without STARTTLS, sends several recipients in
//! one transaction, bounces a recipient Postfix refuses with 550, retries one it defers with
//! 451, retries a peer that is down (refusing, or silent after connecting) until Postfix
//! answers there, and skips one whose connects time out while the tcpto table remembers
//! it dead; and Postfix relays into rqmail-smtpd.
//!
//! Connect timeouts come from a listener whose backlog is full (the kernel then drops
//! SYNs), so no root-only network tricks are needed; the passage of time the tcpto rules
//! depend on (two timeouts 120 s apart, a dead period of about an hour) is simulated by
//! moving the table's timestamp back.
//!
//! Each test starts its own Postfix (Debian's `postfix` package, installed unconfigured)
//! from a private configuration directory in a scratch directory: `master` runs as root
//! and drops to the postfix user, smtpd listens on a free loopback port, and `peer.test`
//! is delivered by the `virtual` agent into Maildirs under `mail/`. The configuration is
//! in `tests/fixtures/postfix/`. Without root, or without Postfix, the tests print
//! `SKIPPED` and pass.

use rqmail_e2e::{Instance, python_command, wait_for};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rqmail_e2e::postfix::{PATIENCE, Postfix, postfix_daemons};

/// A message exercising SMTP transparency: a line that is only a dot, lines starting with
/// dots, 8-bit text, a folded header, trailing white space and a "From " line. It must
/// arrive at Postfix exactly as queued.
const MESSAGE: &[u8] = b"From: Alice <alice@example.com>\n\
To: Bob <bob@peer.test>\n\
Subject: byte for byte\n\
Date: Mon, 23 Nov 2026 17:00:00 +0000\n\
Message-ID: <postfix-e2e@example.com>\n\
X-Folded: one\n\ttwo\n\
\n\
.\n\
.a line starting with a dot\n\
..two dots\n\
not the end\n\
\xc3\xa9t\xc3\xa9 in 8 bits\n\
trailing space \n\
From the start of a line\n\
last line\n";

/// An rqmail instance with a local user alice (the senders' mailbox, for bounces) whose
/// mail for peer.test goes to 127.0.0.1:`port`.
fn rqmail(name: &str, port: u16) -> (Instance, PathBuf) {
    let inst = Instance::new(name);
    let homes = inst.add_users(&["alice"]);
    inst.control("smtproutes", &format!("peer.test:127.0.0.1:{port}\n"));
    (inst, homes[0].join("Maildir"))
}

/// Splits a message in a Postfix Maildir into Postfix's Received header and what follows
/// it, after the Return-Path, X-Original-To and Delivered-To lines its virtual agent adds.
fn split_postfix_trace(bytes: &[u8]) -> (String, &[u8]) {
    let mut rest = bytes;
    let line_end = |s: &[u8]| {
        s.iter()
            .position(|&b| b == b'\n')
            .map_or(s.len(), |i| i + 1)
    };
    for prefix in [&b"Return-Path: "[..], b"X-Original-To: ", b"Delivered-To: "] {
        if rest.starts_with(prefix) {
            rest = &rest[line_end(rest)..];
        }
    }
    assert!(
        rest.starts_with(b"Received: from "),
        "no Postfix Received line:\n{}",
        String::from_utf8_lossy(bytes)
    );
    let mut end = line_end(rest);
    while matches!(rest.get(end), Some(b' ' | b'\t')) {
        end += line_end(&rest[end..]);
    }
    (
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        &rest[end..],
    )
}

/// Checks that a message Postfix delivered is rqmail-queue's Received line and then the
/// queued message, byte for byte; returns Postfix's Received header.
fn assert_arrived_intact(file: &Path, message: &[u8]) -> String {
    let bytes = std::fs::read(file).unwrap();
    let (received, rest) = split_postfix_trace(&bytes);
    assert!(
        rest.starts_with(b"Received: (rqmail "),
        "rqmail-queue's Received line is missing:\n{}",
        String::from_utf8_lossy(&bytes)
    );
    let body = &rest[rest.iter().position(|&b| b == b'\n').unwrap() + 1..];
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(message),
        "the message changed on the way"
    );
    assert_eq!(body, message);
    received
}

/// Waits until rqmail's log holds `count` lines containing `what`.
fn wait_log(inst: &Instance, pf: &Postfix, what: &str, count: usize) {
    assert!(
        wait_for(PATIENCE, || inst.log_text().matches(what).count() >= count),
        "expected {count} times {what:?} in rqmail's log:\n{}\nPostfix log:\n{}",
        inst.log_text(),
        pf.log()
    );
}

/// Waits until every message has left rqmail's queue.
fn wait_queue_empty(inst: &Instance, pf: &Postfix) {
    assert!(
        wait_for(PATIENCE, || inst.queued() == 0),
        "the queue did not empty:\n{}\nPostfix log:\n{}",
        inst.log_text(),
        pf.log()
    );
}

/// What rqmail-send logs when Postfix accepted a recipient (a local delivery, such as a
/// bounce to alice, logs "success: did ...").
const REMOTE_SUCCESS: &str = ": success: 127.0.0.1 accepted message";

/// The rqmail log lines containing `what`.
fn log_lines(inst: &Instance, what: &str) -> Vec<String> {
    inst.log_text()
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

#[test]
fn plain_delivery_to_postfix_is_byte_exact() {
    let Some(daemons) = postfix_daemons("plain_delivery_to_postfix_is_byte_exact") else {
        return;
    };
    let mut pf = Postfix::new("plain", daemons, &["bob"], None);
    pf.start();
    let (mut inst, _) = rqmail("pf-plain", pf.port);
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@peer.test"], MESSAGE),
        0
    );

    let files = pf.wait_for_mail(&inst, "bob", 1);
    let received = assert_arrived_intact(&files[0], MESSAGE);
    assert!(received.contains(" with ESMTP id "), "{received}");
    let bytes = std::fs::read(&files[0]).unwrap();
    assert!(bytes.starts_with(b"Return-Path: <alice@example.com>\n"));
    wait_queue_empty(&inst, &pf);
    let success = log_lines(&inst, REMOTE_SUCCESS);
    assert_eq!(success.len(), 1, "{}", inst.log_text());
    assert!(
        success[0].contains(" accepted message./Remote host said: 250 2.0.0 Ok: queued as ")
            && !success[0].contains("TLS"),
        "{}",
        success[0]
    );
    assert!(
        !pf.log().contains("TLS connection established"),
        "{}",
        pf.log()
    );
}

#[test]
fn starttls_delivery_to_postfix_is_byte_exact_and_logged() {
    let Some(daemons) = postfix_daemons("starttls_delivery_to_postfix_is_byte_exact_and_logged")
    else {
        return;
    };
    let mut pf = Postfix::new("tls", daemons, &["bob"], None);
    pf.offer_starttls();
    pf.start();
    let (mut inst, _) = rqmail("pf-tls", pf.port);
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@peer.test"], MESSAGE),
        0
    );

    let files = pf.wait_for_mail(&inst, "bob", 1);
    let received = assert_arrived_intact(&files[0], MESSAGE);
    // smtpd_tls_received_header: Postfix records the session it saw.
    assert!(
        received.contains("(using TLSv1.") && received.contains(" with ESMTPS id "),
        "{received}"
    );
    assert!(
        pf.log()
            .contains("TLS connection established from unknown[127.0.0.1]: TLSv1."),
        "{}",
        pf.log()
    );
    wait_queue_empty(&inst, &pf);
    let success = log_lines(&inst, REMOTE_SUCCESS);
    assert_eq!(success.len(), 1, "{}", inst.log_text());
    assert!(
        success[0].contains(" accepted message (TLSv1."),
        "the success line names TLS and its version: {}",
        success[0]
    );
}

#[test]
fn three_recipients_at_postfix_share_one_transaction() {
    let Some(daemons) = postfix_daemons("three_recipients_at_postfix_share_one_transaction") else {
        return;
    };
    let mut pf = Postfix::new("three", daemons, &["bob", "carol", "dave"], None);
    pf.start();
    let (mut inst, _) = rqmail("pf-three", pf.port);
    inst.start();
    let rcpts = ["bob@peer.test", "carol@peer.test", "dave@peer.test"];
    assert_eq!(inst.queue_raw("alice@example.com", &rcpts, MESSAGE), 0);

    for user in ["bob", "carol", "dave"] {
        let files = pf.wait_for_mail(&inst, user, 1);
        assert_eq!(files.len(), 1);
        assert_arrived_intact(&files[0], MESSAGE);
    }
    wait_queue_empty(&inst, &pf);
    // rqmail-send started one delivery for all three...
    let starts = log_lines(&inst, "starting delivery ");
    assert_eq!(starts.len(), 3, "{}", inst.log_text());
    let number = |l: &str| {
        l.split("starting delivery ")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    assert!(
        starts.iter().all(|l| number(l) == number(&starts[0])),
        "{}",
        inst.log_text()
    );
    assert_eq!(
        log_lines(&inst, REMOTE_SUCCESS).len(),
        3,
        "{}",
        inst.log_text()
    );
    // ...and Postfix saw one connection and one message with three recipients.
    let log = pf.log();
    assert_eq!(log.matches("]: connect from ").count(), 1, "{log}");
    assert_eq!(log.matches(", nrcpt=3 (queue active)").count(), 1, "{log}");
    assert_eq!(log.matches("(queue active)").count(), 1, "{log}");
}

#[test]
fn recipient_postfix_refuses_bounces_while_the_others_arrive() {
    let Some(daemons) =
        postfix_daemons("recipient_postfix_refuses_bounces_while_the_others_arrive")
    else {
        return;
    };
    let mut pf = Postfix::new("550", daemons, &["bob", "carol"], None);
    pf.start();
    let (mut inst, alice) = rqmail("pf-550", pf.port);
    inst.start();
    let rcpts = ["bob@peer.test", "nosuch@peer.test", "carol@peer.test"];
    assert_eq!(inst.queue_raw("alice@example.com", &rcpts, MESSAGE), 0);

    for user in ["bob", "carol"] {
        let files = pf.wait_for_mail(&inst, user, 1);
        assert_arrived_intact(&files[0], MESSAGE);
    }
    let bounces = inst.wait_for_mail(&alice, 1);
    let bounce = String::from_utf8_lossy(&std::fs::read(&bounces[0]).unwrap()).into_owned();
    assert!(bounce.contains("\nSubject: failure notice\n"), "{bounce}");
    assert!(
        bounce.contains("<nosuch@peer.test>:\n")
            && bounce.contains("Remote host said: 550 5.1.1 <nosuch@peer.test>"),
        "{bounce}"
    );
    let failures = bounce.split("--- Below this line").next().unwrap();
    assert!(
        !failures.contains("<bob@peer.test>") && !failures.contains("<carol@peer.test>"),
        "only the refused recipient bounces:\n{bounce}"
    );
    assert!(
        bounce.contains("Subject: byte for byte"),
        "a copy of the message: {bounce}"
    );
    wait_queue_empty(&inst, &pf);
    assert_eq!(
        log_lines(&inst, REMOTE_SUCCESS).len(),
        2,
        "{}",
        inst.log_text()
    );
    let log = pf.log();
    assert!(
        log.contains("reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 <nosuch@peer.test>"),
        "{log}"
    );
    assert_eq!(log.matches(", nrcpt=2 (queue active)").count(), 1, "{log}");
}

#[test]
fn recipient_postfix_defers_with_451_is_retried_and_arrives() {
    let Some(daemons) = postfix_daemons("recipient_postfix_defers_with_451_is_retried_and_arrives")
    else {
        return;
    };
    let mut pf = Postfix::new("451", daemons, &["bob", "carol"], None);
    pf.set_access("bob@peer.test 451 4.7.1 try later\n");
    pf.start();
    let (mut inst, alice) = rqmail("pf-451", pf.port);
    inst.start();
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@peer.test", "carol@peer.test"],
            MESSAGE
        ),
        0
    );
    // carol is accepted at once, bob deferred.
    pf.wait_for_mail(&inst, "carol", 1);
    wait_log(&inst, &pf, ": deferral: ", 1);
    let deferral = log_lines(&inst, ": deferral: ");
    assert!(deferral[0].contains("451 4.7.1"), "{}", deferral[0]);
    assert!(Instance::maildir_new(&pf.maildir("bob")).is_empty());
    assert_eq!(inst.queued(), 1, "bob's copy waits in the queue");

    // Postfix changes its mind; rqmail retries now rather than in 400 s.
    pf.set_access("");
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    let files = pf.wait_for_mail(&inst, "bob", 1);
    assert_arrived_intact(&files[0], MESSAGE);
    wait_queue_empty(&inst, &pf);
    // The retry went to bob alone: carol has one copy, and nothing bounced.
    assert_eq!(Instance::maildir_new(&pf.maildir("carol")).len(), 1);
    assert_eq!(
        log_lines(&inst, REMOTE_SUCCESS).len(),
        2,
        "{}",
        inst.log_text()
    );
    assert!(Instance::maildir_new(&alice).is_empty(), "no bounce");
    let log = pf.log();
    assert!(
        log.contains("451 4.7.1 <bob@peer.test>: Recipient address rejected: try later"),
        "{log}"
    );
    assert_eq!(log.matches(", nrcpt=1 (queue active)").count(), 2, "{log}");
}

#[test]
fn postfix_down_is_retried_and_then_delivered_to() {
    let Some(daemons) = postfix_daemons("postfix_down_is_retried_and_then_delivered_to") else {
        return;
    };
    // Postfix is configured but not running: connects to its port are refused.
    let mut pf = Postfix::new("down", daemons, &["bob"], None);
    let (mut inst, alice) = rqmail("pf-down", pf.port);
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@peer.test"], MESSAGE),
        0
    );
    wait_log(&inst, &pf, ": deferral: ", 1);
    let deferral = log_lines(&inst, ": deferral: ");
    assert!(deferral[0].contains("(#4.4.1)"), "{}", deferral[0]);
    // A refusal is not a timeout: the tcpto table does not hold it against the host.
    assert_eq!(tcpto_record(&inst), None);

    pf.start();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    let files = pf.wait_for_mail(&inst, "bob", 1);
    assert_arrived_intact(&files[0], MESSAGE);
    wait_queue_empty(&inst, &pf);
    assert!(Instance::maildir_new(&alice).is_empty(), "no bounce");
}

/// A stand-in for a broken peer on a fresh loopback port: a Python script that binds
/// `127.0.0.1:0`, prints the port and misbehaves until its stdin closes. When it is
/// dropped the port is free again, for a Postfix to take over.
struct BrokenPeer {
    port: u16,
    child: Child,
}

/// Connects to it time out: a listener with a backlog of 0 that never accepts, its queue
/// filled by two connects, so the kernel drops further SYNs as a host behind a firewall
/// that drops packets would (no iptables, no network namespace needed).
const CONNECTS_TIME_OUT: &str = r#"
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(2):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fill.append(c)
print(port, flush=True)
sys.stdin.read()
"#;

/// Connects succeed, but it never says a word.
const NEVER_GREETS: &str = r#"
import socket, sys, threading
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
def accept():
    while True:
        held.append(s.accept())
threading.Thread(target=accept, daemon=True).start()
sys.stdin.read()
"#;

impl BrokenPeer {
    fn new(script: &str) -> BrokenPeer {
        let (child, port) = rqmail_e2e::spawn_server(
            python_command(script).stdin(Stdio::piped()),
            "the broken peer",
        );
        // Let the filling connects settle in the queue.
        std::thread::sleep(Duration::from_millis(200));
        BrokenPeer { port, child }
    }
}

impl Drop for BrokenPeer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tcpto table's record for 127.0.0.1 (crates/mx/src/tcpto.rs: 128 records of 32
/// bytes; bytes 0-15 the address as IPv4-mapped IPv6, 16 the failure count, 24-31 the last
/// failure's time, little-endian): (record index, count, time), None if there is none.
fn tcpto_record(inst: &Instance) -> Option<(usize, u8, u64)> {
    let table = std::fs::read(inst.home.join("queue/lock/tcpto")).ok()?;
    let key = Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets();
    table.chunks_exact(32).enumerate().find_map(|(i, rec)| {
        (rec[..16] == key && rec[16] != 0).then(|| {
            (
                i,
                rec[16],
                u64::from_le_bytes(rec[24..32].try_into().unwrap()),
            )
        })
    })
}

/// Moves the record's last failure `secs` into the past, as if that long had passed, in
/// place (the file keeps its owner).
fn age_tcpto_record(inst: &Instance, secs: u64) {
    let (i, _, when) = tcpto_record(inst).expect("a tcpto record for 127.0.0.1");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(inst.home.join("queue/lock/tcpto"))
        .unwrap();
    f.seek(SeekFrom::Start((i * 32 + 24) as u64)).unwrap();
    f.write_all(&(when - secs).to_le_bytes()).unwrap();
    let mut check = [0u8; 8];
    f.seek(SeekFrom::Start((i * 32 + 24) as u64)).unwrap();
    f.read_exact(&mut check).unwrap();
    assert_eq!(u64::from_le_bytes(check), when - secs);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// ALRM, then waits for deferral number `n`; returns how long the attempt took.
fn retry_until_deferral(inst: &Instance, pf: &Postfix, n: usize) -> Duration {
    let t = Instant::now();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    wait_log(inst, pf, ": deferral: ", n);
    t.elapsed()
}

#[test]
fn peer_whose_connects_time_out_is_remembered_dead_and_skipped() {
    let Some(daemons) =
        postfix_daemons("peer_whose_connects_time_out_is_remembered_dead_and_skipped")
    else {
        return;
    };
    let hole = BrokenPeer::new(CONNECTS_TIME_OUT);
    let mut pf = Postfix::new("tcpto", daemons, &["bob"], Some(hole.port));
    let (mut inst, alice) = rqmail("pf-tcpto", hole.port);
    inst.control("timeoutconnect", "3\n");
    inst.start();
    let queued = Instant::now();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@peer.test"], MESSAGE),
        0
    );

    // 1. The connect times out: deferred, and the table counts one timeout.
    wait_log(&inst, &pf, ": deferral: ", 1);
    let took = queued.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "{took:?}: {}",
        inst.log_text()
    );
    let deferrals = log_lines(&inst, ": deferral: ");
    assert!(
        deferrals[0].contains("(#4.4.1)") && !deferrals[0].contains("recently"),
        "{}",
        deferrals[0]
    );
    let (_, count, when) = tcpto_record(&inst).expect("the timeout is in the tcpto table");
    assert_eq!(count, 1);
    assert!(unix_now().abs_diff(when) < 30);

    // 2. Timeouts within 120 s of each other count once, so move the first one 130 s back:
    //    the next timeout makes two, and the host counts as dead.
    age_tcpto_record(&inst, 130);
    let took = retry_until_deferral(&inst, &pf, 2);
    assert!(
        took >= Duration::from_secs(3),
        "{took:?}: {}",
        inst.log_text()
    );
    let (_, count, when) = tcpto_record(&inst).unwrap();
    assert_eq!(count, 2, "{}", inst.log_text());

    // 3. Remembered dead: the next attempt does not even try to connect.
    let took = retry_until_deferral(&inst, &pf, 3);
    assert!(
        took < Duration::from_millis(2500),
        "a dead host is skipped at once, not after a connect timeout: {took:?}\n{}",
        inst.log_text()
    );
    let (_, count, unchanged) = tcpto_record(&inst).unwrap();
    assert_eq!(
        (count, unchanged),
        (2, when),
        "a skip is not another failure"
    );
    let deferrals = log_lines(&inst, ": deferral: ");
    assert!(
        deferrals[2].contains("timed out recently") && deferrals[2].contains("(#4.4.1)"),
        "{}",
        deferrals[2]
    );

    // 4. An hour and a half later the host is tried again; now Postfix answers there.
    age_tcpto_record(&inst, 6000);
    drop(hole);
    pf.start();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    let files = pf.wait_for_mail(&inst, "bob", 1);
    assert_arrived_intact(&files[0], MESSAGE);
    wait_queue_empty(&inst, &pf);
    assert!(Instance::maildir_new(&alice).is_empty(), "no bounce");
    // A successful connect clears the record.
    assert_eq!(tcpto_record(&inst), None, "{}", inst.log_text());
}

#[test]
fn peer_that_never_greets_times_out_and_is_not_remembered_dead() {
    let Some(daemons) =
        postfix_daemons("peer_that_never_greets_times_out_and_is_not_remembered_dead")
    else {
        return;
    };
    let silent = BrokenPeer::new(NEVER_GREETS);
    let mut pf = Postfix::new("silent", daemons, &["bob"], Some(silent.port));
    let (mut inst, alice) = rqmail("pf-silent", silent.port);
    inst.control("timeoutremote", "3\n");
    inst.start();
    let queued = Instant::now();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@peer.test"], MESSAGE),
        0
    );
    // The greeting never comes: deferred after timeoutremote, not after qmail's 1200 s.
    wait_log(&inst, &pf, ": deferral: ", 1);
    let took = queued.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "{took:?}: {}",
        inst.log_text()
    );
    let deferral = log_lines(&inst, ": deferral: ");
    assert!(
        deferral[0].contains("Connected to 127.0.0.1 but") && deferral[0].contains("timed out"),
        "{}",
        deferral[0]
    );
    // Only connect timeouts count in tcpto: this host connected fine.
    assert_eq!(tcpto_record(&inst), None);

    // Postfix takes the port over; the retry delivers.
    drop(silent);
    pf.start();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    let files = pf.wait_for_mail(&inst, "bob", 1);
    assert_arrived_intact(&files[0], MESSAGE);
    wait_queue_empty(&inst, &pf);
    assert!(Instance::maildir_new(&alice).is_empty(), "no bounce");
}

#[test]
fn postfix_relays_into_rqmail_smtpd() {
    let Some(daemons) = postfix_daemons("postfix_relays_into_rqmail_smtpd") else {
        return;
    };
    let mut inst = Instance::new("pf-reverse");
    let homes = inst.add_users(&["bob"]);
    inst.make_certificate();
    inst.start();
    let smtpd = inst.listen("rqmail-smtpd", &[], &[]);

    // Postfix sends everything not its own to rqmail-smtpd, with STARTTLS if offered.
    let mut pf = Postfix::new("reverse", daemons, &[], None);
    pf.set(&[
        ("relayhost", &format!("[127.0.0.1]:{}", smtpd.port)),
        ("smtp_tls_security_level", "may"),
    ]);
    pf.start();
    inst.python(
        pf.port,
        r#"
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
s.ehlo("client.example")
body = b"From: carol@elsewhere.example\r\nTo: bob@example.com\r\nSubject: via Postfix\r\nMessage-ID: <reverse@elsewhere.example>\r\nDate: Mon, 23 Nov 2026 17:00:00 +0000\r\n\r\n.leading dot\r\n\xc3\xa9 8bit\r\nend\r\n"
refused = s.sendmail("carol@elsewhere.example", ["bob@example.com"], body)
assert refused == {}, refused
s.quit()
"#,
    );
    let ok = wait_for(PATIENCE, || {
        !Instance::maildir_new(&homes[0].join("Maildir")).is_empty()
    });
    assert!(
        ok,
        "nothing arrived\nrqmail log:\n{}\nPostfix log:\n{}",
        inst.log_text(),
        pf.log()
    );
    let files = Instance::maildir_new(&homes[0].join("Maildir"));
    let text = String::from_utf8_lossy(&std::fs::read(&files[0]).unwrap()).into_owned();
    assert!(
        text.starts_with("Return-Path: <carol@elsewhere.example>\nDelivered-To: bob@example.com\n"),
        "{text}"
    );
    // rqmail-smtpd's Received line: Postfix's HELO name, over STARTTLS.
    assert!(
        text.contains("(HELO mx.peer.test) (127.0.0.1)\n  by mail.example.com with ESMTPS (TLSv1."),
        "{text}"
    );
    // Postfix's Received line, then the message as injected (in LF form).
    assert!(
        text.contains("by mx.peer.test (Postfix) with ESMTP id "),
        "{text}"
    );
    assert!(
        text.ends_with(
            "From: carol@elsewhere.example\nTo: bob@example.com\nSubject: via Postfix\n\
             Message-ID: <reverse@elsewhere.example>\nDate: Mon, 23 Nov 2026 17:00:00 +0000\n\n\
             .leading dot\n\u{e9} 8bit\nend\n"
        ),
        "{text:?}"
    );
    let log = pf.log();
    assert!(
        log.contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", smtpd.port))
            && log.contains("status=sent"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "TLS connection established to 127.0.0.1[127.0.0.1]:{}: TLSv1.",
            smtpd.port
        )),
        "{log}"
    );
}
