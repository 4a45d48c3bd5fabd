//! qmail's `.qmail` helpers (preline, bouncesaying, condredirect, forward, except,
//! datemail) named as qmail names them in `.qmail` lines, through real deliveries.

use rqmail_e2e::{Instance, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn dot_qmail(home: &Path, name: &str, text: &str) {
    let path = home.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    if rqmail_e2e::as_root() {
        std::process::Command::new("chown")
            .arg("65534:65534")
            .arg(&path)
            .status()
            .unwrap();
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

fn wait_file(path: &Path) -> String {
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)),
        "{} never appeared",
        path.display()
    );
    // The program that writes it may still be writing.
    std::thread::sleep(Duration::from_millis(100));
    read(path)
}

fn wait_log(inst: &Instance, text: &str) {
    assert!(
        wait_for(Duration::from_secs(20), || inst.log_text().contains(text)),
        "no {text:?} in the log:\n{}",
        inst.log_text()
    );
}

fn message(subject: &str) -> Vec<u8> {
    format!("Subject: {subject}\nFrom: alice@example.com\n\nFrom the start of a line\nbody\n")
        .into_bytes()
}

/// Checks `line` is an mbox From_ line for `sender`: `From SENDER Www Mmm DD HH:MM:SS YYYY`.
fn assert_from_line(line: &str, sender: &str) {
    let date = line
        .strip_prefix(&format!("From {sender} "))
        .unwrap_or_else(|| panic!("not a From_ line for {sender}: {line:?}"));
    let b = date.as_bytes();
    assert_eq!(b.len(), 24, "{date:?}");
    assert!(
        b[3] == b' ' && b[7] == b' ' && b[10] == b' ' && b[13] == b':' && b[16] == b':',
        "{date:?}"
    );
    assert!(
        b[8].is_ascii_digit() && b[9].is_ascii_digit(),
        "day zero-padded: {date:?}"
    );
}

#[test]
fn preline_writes_the_from_return_path_and_delivered_to_lines_before_the_message() {
    let mut inst = Instance::new("preline");
    let homes = inst.add_users(&["bob"]);
    let bob = &homes[0];
    dot_qmail(
        bob,
        ".qmail",
        "|preline cat > all.txt\n|preline -f cat > no-from.txt\n|preline -dr cat > from-only.txt\n",
    );
    inst.start();
    let msg = message("preline");
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], &msg),
        0
    );

    let all = wait_file(&bob.join("all.txt"));
    let (from, rest) = all.split_once('\n').unwrap();
    assert_from_line(from, "alice@example.com");
    assert!(
        rest.starts_with(
            "Return-Path: <alice@example.com>\nDelivered-To: bob@example.com\nReceived: (rqmail "
        ),
        "{all}"
    );
    // No >From quoting: that is the mbox writer's job (procmail's), not preline's.
    assert!(all.ends_with(std::str::from_utf8(&msg).unwrap()), "{all}");

    let no_from = wait_file(&bob.join("no-from.txt"));
    assert!(
        no_from.starts_with(
            "Return-Path: <alice@example.com>\nDelivered-To: bob@example.com\nReceived: (rqmail "
        ),
        "{no_from}"
    );
    let from_only = wait_file(&bob.join("from-only.txt"));
    let (from, rest) = from_only.split_once('\n').unwrap();
    assert_from_line(from, "alice@example.com");
    assert!(rest.starts_with("Received: (rqmail "), "{from_only}");
    wait_log(&inst, "success: did 0+0+3/");
}

#[test]
fn preline_of_a_bounce_says_mailer_daemon_and_an_empty_return_path() {
    let mut inst = Instance::new("preline-bounce");
    let homes = inst.add_users(&["bob"]);
    dot_qmail(&homes[0], ".qmail", "|preline cat > all.txt\n");
    inst.start();
    assert_eq!(
        inst.queue_raw("", &["bob@example.com"], &message("bounce")),
        0
    );
    let all = wait_file(&homes[0].join("all.txt"));
    let (from, rest) = all.split_once('\n').unwrap();
    assert_from_line(from, "MAILER-DAEMON");
    assert!(
        rest.starts_with("Return-Path: <>\nDelivered-To: bob@example.com\n"),
        "{all}"
    );
}

#[test]
fn preline_exits_as_its_program_does() {
    let mut inst = Instance::new("preline-exit");
    let homes = inst.add_users(&["alice", "bob", "carol", "dave"]);
    dot_qmail(
        &homes[1],
        ".qmail",
        "|preline sh -c 'cat >/dev/null; echo no thanks; exit 100'\n",
    );
    dot_qmail(
        &homes[2],
        ".qmail",
        "|preline sh -c 'echo later; exit 111'\n",
    );
    // qmail's preline: a program that is not there is a permanent failure.
    dot_qmail(&homes[3], ".qmail", "|preline /nonexistent/procmail\n");
    inst.start();
    for rcpt in ["bob@example.com", "carol@example.com", "dave@example.com"] {
        assert_eq!(
            inst.queue_raw("alice@example.com", &[rcpt], &message("exit")),
            0
        );
    }
    wait_log(&inst, "deferral: later/");
    let bounces = inst.wait_for_mail(&homes[0].join("Maildir"), 2);
    let text: String = bounces.iter().map(|f| read(f)).collect();
    assert!(text.contains("<bob@example.com>:\nno thanks\n"), "{text}");
    assert!(
        text.contains("<dave@example.com>:\npreline: fatal: unable to run /nonexistent/procmail: "),
        "{text}"
    );
}

#[test]
fn bouncesaying_bounces_with_its_text_and_stops_the_delivery() {
    let mut inst = Instance::new("bouncesaying");
    let homes = inst.add_users(&["alice", "bob"]);
    dot_qmail(
        &homes[1],
        ".qmail",
        "|bouncesaying 'This address is closed.'\n./Maildir/\n",
    );
    inst.start();
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com"],
            &message("closed")
        ),
        0
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let bounce = read(&files[0]);
    assert!(
        bounce.contains("<bob@example.com>:\nThis address is closed.\n\n--- Below this line"),
        "{bounce}"
    );
    assert!(wait_for(Duration::from_secs(10), || inst.queued() == 0));
    assert!(Instance::maildir_new(&homes[1].join("Maildir")).is_empty());
}

#[test]
fn bouncesaying_with_a_program_bounces_only_when_it_exits_0() {
    let mut inst = Instance::new("bouncesaying-prog");
    let homes = inst.add_users(&["alice", "bob", "carol", "dave"]);
    dot_qmail(
        &homes[1],
        ".qmail",
        "|bouncesaying 'No mail from carol, please.' test \"$SENDER\" = carol@example.com\n./Maildir/\n",
    );
    dot_qmail(
        &homes[3],
        ".qmail",
        "|bouncesaying 'never said' sh -c 'exit 111'\n./Maildir/\n",
    );
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], &message("a")),
        0
    );
    assert_eq!(
        inst.queue_raw("carol@example.com", &["bob@example.com"], &message("c")),
        0
    );
    assert_eq!(
        inst.queue_raw("alice@example.com", &["dave@example.com"], &message("d")),
        0
    );
    // test exited 1 for alice: bob gets her message.
    let bob = inst.wait_for_mail(&homes[1].join("Maildir"), 1);
    assert!(read(&bob[0]).contains("Subject: a\n"));
    let carol = inst.wait_for_mail(&homes[2].join("Maildir"), 1);
    assert!(
        read(&carol[0]).contains("<bob@example.com>:\nNo mail from carol, please.\n"),
        "{}",
        read(&carol[0])
    );
    wait_log(
        &inst,
        "deferral: bouncesaying: fatal: temporary child error/",
    );
    assert!(Instance::maildir_new(&homes[3].join("Maildir")).is_empty());
    assert_eq!(Instance::maildir_new(&homes[1].join("Maildir")).len(), 1);
}

#[test]
fn condredirect_forwards_and_stops_on_0_goes_on_on_1_and_defers_on_111() {
    let mut inst = Instance::new("condredirect");
    let homes = inst.add_users(&["bob", "carol", "dave"]);
    dot_qmail(
        &homes[0],
        ".qmail",
        "|condredirect carol@example.com grep -q '^Subject: for carol'\n./Maildir/\n",
    );
    dot_qmail(
        &homes[2],
        ".qmail",
        "|condredirect carol@example.com sh -c 'exit 111'\n./Maildir/\n",
    );
    inst.start();
    let for_carol = message("for carol");
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], &for_carol),
        0
    );
    let carol = inst.wait_for_mail(&homes[1].join("Maildir"), 1);
    let got = read(&carol[0]);
    // The envelope sender is $SENDER, and bob's Delivered-To line goes with the message.
    assert!(
        got.starts_with("Return-Path: <alice@example.com>\nDelivered-To: carol@example.com\n"),
        "{got}"
    );
    assert!(
        got.contains("\nDelivered-To: bob@example.com\nReceived: (rqmail "),
        "{got}"
    );
    assert!(
        got.ends_with(std::str::from_utf8(&for_carol).unwrap()),
        "{got}"
    );
    wait_log(&inst, "success: condredirect: qp ");
    // Exit 99: the Maildir line after it was not run.
    assert!(Instance::maildir_new(&homes[0].join("Maildir")).is_empty());

    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com"],
            &message("for bob")
        ),
        0
    );
    let bob = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    assert!(read(&bob[0]).contains("Subject: for bob\n"));

    assert_eq!(
        inst.queue_raw("alice@example.com", &["dave@example.com"], &message("d")),
        0
    );
    wait_log(
        &inst,
        "deferral: condredirect: fatal: temporary child error/",
    );
    assert!(Instance::maildir_new(&homes[2].join("Maildir")).is_empty());
    assert!(wait_for(Duration::from_secs(10), || inst.queued() == 1));
    assert_eq!(Instance::maildir_new(&homes[1].join("Maildir")).len(), 1);
}

#[test]
fn forward_sends_to_every_address_with_newsender_and_the_delivery_goes_on() {
    let mut inst = Instance::new("forward");
    let homes = inst.add_users(&["bob", "carol", "dave"]);
    dot_qmail(
        &homes[0],
        ".qmail-list",
        "|forward carol@example.com dave@example.com\n./list-copy\n",
    );
    // An owner file makes NEWSENDER bob-list-owner@example.com.
    dot_qmail(&homes[0], ".qmail-list-owner", "./Maildir/\n");
    inst.start();
    let msg = message("to the list");
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob-list@example.com"], &msg),
        0
    );
    for home in [&homes[1], &homes[2]] {
        let files = inst.wait_for_mail(&home.join("Maildir"), 1);
        let got = read(&files[0]);
        assert!(
            got.starts_with("Return-Path: <bob-list-owner@example.com>\nDelivered-To: "),
            "{got}"
        );
        assert!(
            got.contains("\nDelivered-To: bob-list@example.com\nReceived: (rqmail "),
            "{got}"
        );
        assert!(got.ends_with(std::str::from_utf8(&msg).unwrap()), "{got}");
    }
    // forward exits 0: the next line is delivered too.
    assert!(wait_file(&homes[0].join("list-copy")).contains("Subject: to the list\n"));
    wait_log(&inst, "success: forward: qp ");
    assert!(wait_for(Duration::from_secs(10), || inst.queued() == 0));
}

#[test]
fn except_turns_success_into_a_bounce_and_failure_into_success() {
    let mut inst = Instance::new("except");
    let homes = inst.add_users(&["alice", "bob", "carol"]);
    dot_qmail(
        &homes[1],
        ".qmail",
        "|except sh -c 'grep -q \"^Subject: refused\" && echo refused by the filter'\n./Maildir/\n",
    );
    dot_qmail(
        &homes[2],
        ".qmail",
        "|except sh -c 'exit 111'\n./Maildir/\n",
    );
    inst.start();
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com"],
            &message("refused")
        ),
        0
    );
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], &message("fine")),
        0
    );
    assert_eq!(
        inst.queue_raw("alice@example.com", &["carol@example.com"], &message("c")),
        0
    );
    let bounce = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    assert!(
        read(&bounce[0]).contains("<bob@example.com>:\nrefused by the filter\n"),
        "{}",
        read(&bounce[0])
    );
    let bob = inst.wait_for_mail(&homes[1].join("Maildir"), 1);
    assert!(read(&bob[0]).contains("Subject: fine\n"));
    wait_log(&inst, "deferral: except: fatal: temporary child error/");
    assert!(Instance::maildir_new(&homes[2].join("Maildir")).is_empty());
    assert_eq!(Instance::maildir_new(&homes[1].join("Maildir")).len(), 1);
}

#[test]
fn datemail_queues_through_sendmail_with_a_date_line_first() {
    let mut inst = Instance::new("datemail");
    let homes = inst.add_users(&["bob"]);
    inst.start();
    let out = inst.run(
        "datemail",
        &["-f", "alice@example.com", "bob@example.com"],
        b"Subject: dated\n\nhi\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let got = read(&files[0]);
    let date = got
        .lines()
        .find(|l| l.starts_with("Date: "))
        .unwrap_or_else(|| panic!("no Date: {got}"));
    // predate's shape: `Date: 8 Dec 2026 02:15:42 +0000`, and sendmail added no other.
    let fields: Vec<&str> = date.split(' ').collect();
    assert_eq!(fields.len(), 6, "{date}");
    assert_eq!(fields[5], "+0000", "{date}");
    assert_eq!(got.matches("\nDate: ").count(), 1, "{got}");
    assert!(got.contains("Subject: dated\n"), "{got}");
}

#[test]
fn helpers_without_their_arguments_or_environment_exit_100_with_a_usage_line() {
    let inst = Instance::new("helpers-usage");
    let delivery_env = [
        ("UFLINE", "From a@b Thu Jan 01 00:00:00 1970\n"),
        ("RPLINE", "Return-Path: <a@b>\n"),
        ("DTLINE", "Delivered-To: c@d\n"),
    ];
    // program, arguments, environment, what it says
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("preline", &[], &delivery_env, "preline: usage: preline cmd"),
        ("preline", &["-x", "cat"], &delivery_env, "preline: usage:"),
        ("preline", &["cat"], &[], "preline: usage:"),
        (
            "bouncesaying",
            &[],
            &[],
            "bouncesaying: usage: bouncesaying error",
        ),
        (
            "condredirect",
            &["a@b"],
            &[],
            "condredirect: usage: condredirect newaddress program",
        ),
        ("forward", &[], &[], "forward: usage: forward address"),
        (
            "forward",
            &["a@b"],
            &[("DTLINE", "Delivered-To: c@d\n")],
            "forward: fatal: NEWSENDER not set",
        ),
        ("except", &[], &[], "except: usage: except program"),
    ];
    for (program, args, env, expected) in cases {
        let out = inst.run_env(program, args, b"", env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{program} {args:?}: {stderr}");
        assert!(stderr.contains(expected), "{program} {args:?}: {stderr}");
    }
}

#[test]
fn helpers_whose_program_cannot_run_exit_as_qmails_do() {
    let inst = Instance::new("helpers-missing");
    let env = [
        ("UFLINE", "From a@b Thu Jan 01 00:00:00 1970\n"),
        ("RPLINE", "Return-Path: <a@b>\n"),
        ("DTLINE", "Delivered-To: c@d\n"),
        ("SENDER", "a@b"),
    ];
    // preline reports it (100: not found is permanent). bouncesaying, condredirect and
    // except see a program that exited 100, which is "not this message" to the first two
    // (0) and a failure turned into success by except (0).
    for (program, args, code) in [
        ("preline", &["/nonexistent/procmail"][..], 100),
        ("bouncesaying", &["closed", "/nonexistent/filter"][..], 0),
        ("condredirect", &["a@b", "/nonexistent/filter"][..], 0),
        ("except", &["/nonexistent/filter"][..], 0),
    ] {
        let out = inst.run_env(program, args, b"Subject: x\n\nhi\n", &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{program}: {stderr}");
        assert!(
            stderr.contains("unable to run /nonexistent/"),
            "{program}: {stderr}"
        );
    }
    // condredirect must read the message again from the start: a pipe cannot be rewound.
    let out = inst.run_env(
        "condredirect",
        &["a@b", "true"],
        b"Subject: x\n\nhi\n",
        &env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{stderr}");
    assert!(
        stderr.contains("condredirect: fatal: unable to rewind"),
        "{stderr}"
    );
}
