//! Every dot-qmail line type, extensions and `-default`, loops, program exit codes,
//! bounces and double bounces, through the real queue, scheduler and lspawn.

use rqmail_e2e::{Instance, python_command, wait_for};
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
        wait_for(Duration::from_secs(20), || path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false)),
        "{} never appeared",
        path.display()
    );
    // Give a writer that just created it a moment to finish.
    std::thread::sleep(Duration::from_millis(50));
    read(path)
}

const MESSAGE: &[u8] =
    b"Subject: test\nFrom: alice@example.com\n\nFrom the start of a line\n>From quoted\nbody\n";

#[test]
fn every_line_type_is_followed() {
    let mut inst = Instance::new("lines");
    let homes = inst.add_users(&["bob", "carol", "dave"]);
    dot_qmail(
        &homes[0],
        ".qmail",
        "# a comment, then each kind of line\n\
         ./Maildir/\n\
         ./mbox\n\
         |cat > prog-out.txt; printf '%s|%s|%s|%s|%s|%s' \"$SENDER\" \"$RECIPIENT\" \"$LOCAL\" \"$HOST\" \"$USER\" \"$DTLINE\" > prog-env.txt\n\
         &carol@example.com\n\
         dave@example.com\n",
    );
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], MESSAGE),
        0
    );
    let bob = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let got = std::fs::read(&bob[0]).unwrap();
    assert!(got.starts_with(
        b"Return-Path: <alice@example.com>\nDelivered-To: bob@example.com\nReceived: (rqmail "
    ));
    assert!(got.ends_with(MESSAGE));

    let mbox = wait_file(&homes[0].join("mbox"));
    assert!(mbox.starts_with("From alice@example.com "), "{mbox}");
    assert!(mbox.contains(
        "\nReturn-Path: <alice@example.com>\nDelivered-To: bob@example.com\nReceived: (rqmail "
    ));
    // mboxrd quoting: one more > on each From line, and one blank line after the message.
    assert!(
        mbox.ends_with("\n\n>From the start of a line\n>>From quoted\nbody\n\n"),
        "{mbox:?}"
    );

    let prog = wait_file(&homes[0].join("prog-out.txt"));
    assert!(
        prog.starts_with("Received: (rqmail "),
        "a program gets the message without Return-Path/Delivered-To"
    );
    assert!(prog.ends_with(std::str::from_utf8(MESSAGE).unwrap()));
    let env = wait_file(&homes[0].join("prog-env.txt"));
    assert_eq!(
        env,
        "alice@example.com|bob@example.com|bob|example.com|bob|Delivered-To: bob@example.com\n"
    );

    for forwarded in [&homes[1], &homes[2]] {
        let files = inst.wait_for_mail(&forwarded.join("Maildir"), 1);
        let got = std::fs::read(&files[0]).unwrap();
        let text = String::from_utf8_lossy(&got);
        // The forward keeps bob's Delivered-To line and the original sender.
        assert!(
            text.starts_with("Return-Path: <alice@example.com>\nDelivered-To: "),
            "{text}"
        );
        assert!(
            text.contains("\nDelivered-To: bob@example.com\nReceived: (rqmail "),
            "{text}"
        );
        assert!(got.ends_with(MESSAGE));
    }
    assert!(
        wait_for(Duration::from_secs(10), || inst
            .log_text()
            .contains("success: did 2+2+1/qp ")),
        "{}",
        inst.log_text()
    );
}

#[test]
fn extensions_and_defaults_choose_the_file_qmail_would() {
    let mut inst = Instance::new("ext");
    let homes = inst.add_users(&["bob"]);
    let bob = &homes[0];
    dot_qmail(bob, ".qmail-foo", "./foo.mbox\n");
    dot_qmail(
        bob,
        ".qmail-bar-default",
        "|printf '%s|%s|%s' \"$DEFAULT\" \"$EXT\" \"$EXT2\" > default.txt\n",
    );
    dot_qmail(bob, ".qmail-john:doe", "./johndoe.mbox\n");
    dot_qmail(bob, ".qmail-default", "./Maildir/\n");
    inst.start();
    for rcpt in [
        "bob-FOO@example.com",
        "bob-bar-Baz.Qux@example.com",
        "bob-john.doe@example.com",
        "bob-other@example.com",
    ] {
        assert_eq!(inst.queue_raw("alice@example.com", &[rcpt], MESSAGE), 0);
    }
    assert!(wait_file(&bob.join("foo.mbox")).contains("Delivered-To: bob-FOO@example.com\n"));
    assert_eq!(
        wait_file(&bob.join("default.txt")),
        "Baz.Qux|bar-Baz.Qux|Baz.Qux"
    );
    assert!(
        wait_file(&bob.join("johndoe.mbox")).contains("Delivered-To: bob-john.doe@example.com\n")
    );
    let files = inst.wait_for_mail(&bob.join("Maildir"), 1);
    assert!(read(&files[0]).contains("Delivered-To: bob-other@example.com\n"));
}

#[test]
fn unknown_users_bounce_to_the_sender_in_qsbmf() {
    let mut inst = Instance::new("bounce");
    let homes = inst.add_users(&["alice"]);
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["nosuch@example.com"], MESSAGE),
        0
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let bounce = read(&files[0]);
    assert!(
        bounce.starts_with("Return-Path: <>\nDelivered-To: alice@example.com\nReceived: (rqmail "),
        "{bounce}"
    );
    let body_start = bounce.find("\n\n").unwrap() + 2;
    let header = &bounce[..body_start];
    assert!(
        header.contains("\nFrom: MAILER-DAEMON@example.com\n"),
        "{header}"
    );
    assert!(header.contains("\nTo: alice@example.com\n"), "{header}");
    assert!(header.contains("\nSubject: failure notice\n"), "{header}");
    let body = &bounce[body_start..];
    assert!(body.starts_with("Hi. This is the"), "{body}");
    assert!(body.contains("\n\n<nosuch@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n--- Below this line is a copy of the message.\n\nReturn-Path: <alice@example.com>\nReceived: (rqmail "), "{body}");
    assert!(body.ends_with(std::str::from_utf8(MESSAGE).unwrap()));
    assert!(wait_for(Duration::from_secs(10), || inst.queued() == 0));
    let log = inst.log_text();
    assert!(log.contains("bounce msg "), "{log}");
}

#[test]
fn a_bounce_that_bounces_goes_to_doublebounceto() {
    let mut inst = Instance::new("double");
    inst.add_users(&["alice"]);
    let alias = inst.home.join("alias");
    for sub in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir_all(alias.join(sub)).unwrap();
    }
    if rqmail_e2e::as_root() {
        std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&alias)
            .status()
            .unwrap();
    }
    dot_qmail(&alias, ".qmail-postmaster", "./Maildir/\n");
    inst.start();
    // The sender does not exist either: its bounce bounces, and the postmaster gets it.
    assert_eq!(
        inst.queue_raw("ghost@example.com", &["nosuch@example.com"], MESSAGE),
        0
    );
    let files = inst.wait_for_mail(&alias.join("Maildir"), 1);
    let double = read(&files[0]);
    assert!(
        double.starts_with("Return-Path: <#@[]>\nDelivered-To: postmaster@example.com\n"),
        "{double}"
    );
    assert!(
        double.contains("\nTo: postmaster@example.com\n"),
        "{double}"
    );
    assert!(double.contains("bounce bounced"), "{double}");
    assert!(
        double.contains("<ghost@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n"),
        "{double}"
    );
    assert!(
        double.contains("--- Below this line is the original bounce.\n\nReturn-Path: <>\n"),
        "{double}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || inst.queued() == 0),
        "{}",
        inst.log_text()
    );
}

#[test]
fn a_forwarding_loop_is_stopped_and_bounced() {
    let mut inst = Instance::new("loop");
    let homes = inst.add_users(&["alice", "bob", "carol"]);
    dot_qmail(&homes[1], ".qmail", "&carol@example.com\n");
    dot_qmail(&homes[2], ".qmail", "&bob@example.com\n");
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], MESSAGE),
        0
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let bounce = read(&files[0]);
    assert!(bounce.contains("<bob@example.com>:\nThis message is looping: it already has my Delivered-To line. (#5.4.6)\n"), "{bounce}");
    assert!(
        wait_for(Duration::from_secs(10), || inst.queued() == 0),
        "{}",
        inst.log_text()
    );
}

#[test]
fn program_exit_111_is_retried_and_exit_100_bounces() {
    let mut inst = Instance::new("exits");
    let homes = inst.add_users(&["alice", "bob", "carol"]);
    dot_qmail(
        &homes[1],
        ".qmail",
        "|test -f ready || { echo not ready yet; exit 111; }; cat > got.txt\n",
    );
    dot_qmail(&homes[2], ".qmail", "|echo carol refuses this; exit 100\n");
    inst.start();
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com", "carol@example.com"],
            MESSAGE
        ),
        0
    );
    // qmail sends one bounce per message, once every recipient is finished: carol's
    // failure waits in bounce/ while bob's delivery is deferred.
    assert!(
        wait_for(Duration::from_secs(20), || {
            let log = inst.log_text();
            log.contains("deferral: not ready yet/") && log.contains("failure: carol refuses this/")
        }),
        "{}",
        inst.log_text()
    );
    assert_eq!(rqmail_qfiles_bounces(&inst), 1);
    assert!(Instance::maildir_new(&homes[0].join("Maildir")).is_empty());
    assert!(!homes[1].join("got.txt").exists());
    std::fs::write(homes[1].join("ready"), "").unwrap();
    // ALRM: retry now rather than in 100 seconds.
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    let got = wait_file(&homes[1].join("got.txt"));
    assert!(got.ends_with(std::str::from_utf8(MESSAGE).unwrap()));
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let bounce = read(&files[0]);
    assert!(
        bounce.contains("<carol@example.com>:\ncarol refuses this\n"),
        "{bounce}"
    );
    assert!(!bounce.contains("<bob@example.com>"), "{bounce}");
    assert!(
        wait_for(Duration::from_secs(10), || inst.queued() == 0),
        "{}",
        inst.log_text()
    );
    assert_eq!(Instance::maildir_new(&homes[0].join("Maildir")).len(), 1);
}

fn rqmail_qfiles_bounces(inst: &Instance) -> usize {
    std::fs::read_dir(inst.home.join("queue/bounce"))
        .unwrap()
        .count()
}

#[test]
fn virtualdomains_reread_on_hup_route_to_the_prepended_user() {
    let mut inst = Instance::new("virtual");
    let homes = inst.add_users(&["alice", "bob"]);
    dot_qmail(&homes[1], ".qmail-default", "./Maildir/\n");
    inst.start();
    inst.control("virtualdomains", "# virtual domains\nvirt.org:bob\n");
    inst.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(wait_for(Duration::from_secs(10), || inst
        .log_text()
        .contains("reread locals and virtualdomains")));
    assert_eq!(
        inst.queue_raw("alice@example.com", &["Info@virt.org"], MESSAGE),
        0
    );
    let files = inst.wait_for_mail(&homes[1].join("Maildir"), 1);
    assert!(
        read(&files[0]).contains("\nDelivered-To: bob-Info@virt.org\n"),
        "{}",
        read(&files[0])
    );
    // An unknown virtual user bounces under its own address, without the prefix.
    std::fs::remove_file(homes[1].join(".qmail-default")).unwrap();
    dot_qmail(&homes[1], ".qmail-info", "./Maildir/\n");
    assert_eq!(
        inst.queue_raw("alice@example.com", &["nobody@virt.org"], MESSAGE),
        0
    );
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    assert!(
        read(&files[0]).contains("\n<nobody@virt.org>:\n"),
        "{}",
        read(&files[0])
    );
}

#[test]
fn a_message_past_queuelifetime_bounces_on_its_last_attempt() {
    let mut inst = Instance::new("lifetime");
    let homes = inst.add_users(&["alice", "bob"]);
    inst.control("queuelifetime", "1\n");
    dot_qmail(&homes[1], ".qmail", "|echo mailbox busy; exit 111\n");
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], MESSAGE),
        0
    );
    assert!(wait_for(Duration::from_secs(20), || inst
        .log_text()
        .contains("deferral: mailbox busy/")));
    std::thread::sleep(Duration::from_millis(2100));
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    let files = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let bounce = read(&files[0]);
    assert!(bounce.contains("<bob@example.com>:\nmailbox busy\nI'm not going to try again; this message has been in the queue too long.\n"), "{bounce}");
    assert!(wait_for(Duration::from_secs(10), || inst.queued() == 0));
}

#[test]
fn a_world_writable_home_defers_until_it_is_fixed() {
    let mut inst = Instance::new("perms");
    let homes = inst.add_users(&["bob"]);
    std::fs::set_permissions(&homes[0], std::fs::Permissions::from_mode(0o777)).unwrap();
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], MESSAGE),
        0
    );
    assert!(
        wait_for(Duration::from_secs(20), || inst.log_text().contains(
            "deferral: Uh-oh: home directory is writable. (#4.7.0)"
        )),
        "{}",
        inst.log_text()
    );
    std::fs::set_permissions(&homes[0], std::fs::Permissions::from_mode(0o1755)).unwrap();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    assert!(
        wait_for(Duration::from_secs(20), || inst
            .log_text()
            .contains("user is editing")),
        "{}",
        inst.log_text()
    );
    std::fs::set_permissions(&homes[0], std::fs::Permissions::from_mode(0o755)).unwrap();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    inst.wait_for_mail(&homes[0].join("Maildir"), 1);
}

#[test]
fn a_list_with_an_owner_file_forwards_with_the_owner_as_sender() {
    let mut inst = Instance::new("owner");
    let homes = inst.add_users(&["bob", "carol", "dave"]);
    dot_qmail(&homes[0], ".qmail-list", "carol@example.com\n");
    dot_qmail(&homes[0], ".qmail-list-owner", "./Maildir/\n");
    dot_qmail(&homes[0], ".qmail-verp", "dave@example.com\n");
    dot_qmail(&homes[0], ".qmail-verp-owner", "./Maildir/\n");
    dot_qmail(&homes[0], ".qmail-verp-owner-default", "./Maildir/\n");
    // The x bit: a mailing-list file may only forward.
    dot_qmail(&homes[0], ".qmail-xlist", "./Maildir/\n");
    std::fs::set_permissions(
        homes[0].join(".qmail-xlist"),
        std::fs::Permissions::from_mode(0o744),
    )
    .unwrap();
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob-list@example.com"], MESSAGE),
        0
    );
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob-verp@example.com"], MESSAGE),
        0
    );
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob-xlist@example.com"], MESSAGE),
        0
    );
    let carol = inst.wait_for_mail(&homes[1].join("Maildir"), 1);
    assert!(
        read(&carol[0]).starts_with("Return-Path: <bob-list-owner@example.com>\n"),
        "{}",
        read(&carol[0])
    );
    let dave = inst.wait_for_mail(&homes[2].join("Maildir"), 1);
    // VERP: the owner address names the recipient.
    assert!(
        read(&dave[0]).starts_with("Return-Path: <bob-verp-owner-dave=example.com@example.com>\n"),
        "{}",
        read(&dave[0])
    );
    assert!(
        wait_for(Duration::from_secs(20), || inst
            .log_text()
            .contains("has file delivery but has x bit set. (#4.7.0)")),
        "{}",
        inst.log_text()
    );
}

#[test]
fn a_program_exiting_99_stops_later_lines_but_earlier_forwards_go_out() {
    let mut inst = Instance::new("exit99");
    let homes = inst.add_users(&["bob", "carol"]);
    dot_qmail(
        &homes[0],
        ".qmail",
        "&carol@example.com\n|exit 99\n./Maildir/\n",
    );
    inst.start();
    assert_eq!(
        inst.queue_raw("alice@example.com", &["bob@example.com"], MESSAGE),
        0
    );
    inst.wait_for_mail(&homes[1].join("Maildir"), 1);
    assert!(wait_for(Duration::from_secs(10), || inst.queued() == 0));
    assert!(Instance::maildir_new(&homes[0].join("Maildir")).is_empty());
    assert!(
        inst.log_text().contains("success: did 0+1+1/qp "),
        "{}",
        inst.log_text()
    );
}

#[test]
fn remote_recipients_stay_queued_and_show_in_qread_and_mailq() {
    let mut inst = Instance::new("remote");
    let homes = inst.add_users(&["bob"]);
    inst.start();
    assert_eq!(
        inst.queue_raw(
            "alice@example.com",
            &["bob@example.com", "far@remote.example.net"],
            MESSAGE
        ),
        0
    );
    inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    assert!(wait_for(Duration::from_secs(10), || inst
        .log_text()
        .contains("to remote far@remote.example.net")));
    let qstat = inst.run("rqmail-qstat", &[], b"");
    assert_eq!(
        String::from_utf8_lossy(&qstat.stdout),
        "messages in queue: 1\nmessages in queue but not yet preprocessed: 0\n"
    );
    let qread = String::from_utf8_lossy(&inst.run("rqmail-qread", &[], b"").stdout).into_owned();
    assert!(qread.contains("  <alice@example.com>\n"), "{qread}");
    // The local channel is finished, so only the remote recipient is listed.
    assert!(!qread.contains("bob@example.com"), "{qread}");
    assert!(
        qread.contains("\t\tremote\tfar@remote.example.net\n"),
        "{qread}"
    );
    let mailq = String::from_utf8_lossy(&inst.run("sendmail", &["-bp"], b"").stdout).into_owned();
    assert_eq!(mailq, qread);
    // A restart keeps it queued: the remote recipient is deferred again, never dropped.
    inst.stop();
    assert!(inst.log_text().contains("status: exiting"));
    inst.start();
    inst.signal(nix::sys::signal::Signal::SIGALRM);
    assert!(
        wait_for(Duration::from_secs(10), || inst
            .log_text()
            .matches("deferral: ")
            .count()
            >= 2),
        "{}",
        inst.log_text()
    );
    assert_eq!(inst.queued(), 1);
}

/// The programs's variables, one file each, byte for byte (`unset` when it is not set).
const PRINT_ENV: &[u8] = b"|for v in EXT DEFAULT LOCAL RECIPIENT; do eval \"printf '%s' \\\"\\${$v-unset}\\\"\" > env-$v; done\n";

/// Issue 13, item 6: a local part is bytes end to end, as in qmail. An extension holding a
/// raw Latin-1 byte finds the `.qmail-EXT` named with that byte, and the program gets it
/// in EXT and DEFAULT unchanged (it used to become U+FFFD, so the file was not found).
#[test]
fn an_extension_that_is_not_utf8_reaches_its_dot_qmail_and_the_environment_unchanged() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mut inst = Instance::new("latin1");
    let homes = inst.add_users(&["bob", "carol"]);
    let (bob, carol) = (&homes[0], &homes[1]);
    let write = |home: &Path, name: &[u8], text: &[u8]| {
        let path = home.join(OsStr::from_bytes(name));
        std::fs::write(&path, text).unwrap();
        if rqmail_e2e::as_root() {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
    };
    write(
        bob,
        b".qmail-caf\xe9",
        &[b"./Maildir/\n", PRINT_ENV].concat(),
    );
    write(
        carol,
        b".qmail-default",
        &[b"./Maildir/\n", PRINT_ENV].concat(),
    );
    inst.start();
    assert_eq!(
        inst.queue_raw_bytes(b"alice@example.com", &[b"bob-caf\xe9@example.com"], MESSAGE),
        0
    );
    assert_eq!(
        inst.queue_raw_bytes(
            b"alice@example.com",
            &[b"carol-Th\xe9-x@example.com"],
            MESSAGE
        ),
        0
    );
    let env = |home: &Path, name: &str| {
        let path = home.join(format!("env-{name}"));
        assert!(
            wait_for(Duration::from_secs(20), || path.exists()),
            "{} never appeared; log:\n{}",
            path.display(),
            inst.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read(path).unwrap()
    };
    assert_eq!(env(bob, "EXT"), b"caf\xe9");
    assert_eq!(env(bob, "DEFAULT"), b"unset");
    assert_eq!(env(bob, "LOCAL"), b"bob-caf\xe9");
    assert_eq!(env(bob, "RECIPIENT"), b"bob-caf\xe9@example.com");
    assert_eq!(env(carol, "EXT"), b"Th\xe9-x");
    assert_eq!(env(carol, "DEFAULT"), b"Th\xe9-x");
    assert_eq!(env(carol, "RECIPIENT"), b"carol-Th\xe9-x@example.com");
    for (home, to) in [
        (bob, &b"bob-caf\xe9@example.com"[..]),
        (carol, b"carol-Th\xe9-x@example.com"),
    ] {
        let files = inst.wait_for_mail(&home.join("Maildir"), 1);
        let got = std::fs::read(&files[0]).unwrap();
        let dtline = [b"\nDelivered-To: ", to, b"\n"].concat();
        assert!(
            got.windows(dtline.len()).any(|w| w == dtline),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert!(got.ends_with(MESSAGE));
    }
}

/// Parses the message in argv[1] with Python's email package (RFC 5322, `policy.default`)
/// and checks address fields: each `FIELD USER DOMAIN` triple after it names a field
/// that must parse without defects into one address with that username and domain. A
/// field named `copy.NAME` is NAME in the copy of the message a bounce returns.
const CHECK_ADDRESSES: &str = include_str!("../python/dotqmail/check_addresses.py");

fn check_addresses(inst: &Instance, file: &Path, want: &[&str]) {
    let out = python_command(CHECK_ADDRESSES)
        .arg(file)
        .args(want)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        read(file),
        inst.log_text()
    );
}

/// Issue 13, item 7: every address written into a header is quoted where it is not a
/// dot-atom. A bounce to `a b@example.com` (envelope form) used to say `To: a
/// b@example.com`, and its From (with a `bouncefrom` holding a space) and the
/// Return-Path of the delivery and of the returned copy were not quoted either.
#[test]
fn a_bounce_to_a_quoted_local_part_is_rfc5322_valid() {
    let mut inst = Instance::new("quoted");
    let homes = inst.add_users(&["bob"]);
    let alias = inst.home.join("alias");
    for sub in ["Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir_all(alias.join(sub)).unwrap();
    }
    if rqmail_e2e::as_root() {
        std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&alias)
            .status()
            .unwrap();
    }
    // "a b" is no user: the alias user's .qmail-a b takes its mail; nosuch has no file.
    dot_qmail(&alias, ".qmail-a b", "./Maildir/\n");
    inst.control("bouncefrom", "MAILER DAEMON\n");
    inst.start();
    assert_eq!(
        inst.queue_raw(
            "a b@example.com",
            &["bob@example.com", "nosuch@example.com"],
            MESSAGE
        ),
        0
    );
    // bob's copy: the Return-Path of a local delivery.
    let bob = inst.wait_for_mail(&homes[0].join("Maildir"), 1);
    let text = read(&bob[0]);
    assert!(
        text.starts_with("Return-Path: <\"a b\"@example.com>\n"),
        "{text}"
    );
    // The bounce for nosuch, to "a b".
    let bounce = &inst.wait_for_mail(&alias.join("Maildir"), 1)[0];
    let text = read(bounce);
    let header = &text[..text.find("\n\n").unwrap() + 1];
    assert!(
        header.contains("\nFrom: \"MAILER DAEMON\"@example.com\nTo: \"a b\"@example.com\n"),
        "{header}"
    );
    assert!(
        text.contains("\nReturn-Path: <\"a b\"@example.com>\nReceived: (rqmail "),
        "{text}"
    );
    check_addresses(
        &inst,
        bounce,
        &[
            "From",
            "MAILER DAEMON",
            "example.com",
            "To",
            "a b",
            "example.com",
            "copy.Return-Path",
            "a b",
            "example.com",
        ],
    );
    check_addresses(&inst, &bob[0], &["Return-Path", "a b", "example.com"]);
}
