//! The dialogue against scripted servers on loopback: what is sent, byte for byte, and how
//! each reply is reported.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// One step of a scripted server.
enum Act {
    /// Send these bytes.
    Say(&'static str),
    /// Read this many lines.
    Lines(usize),
    /// Read up to and including CRLF.CRLF.
    Data,
    /// Close the connection.
    Hang,
}
use Act::*;

/// Starts a server that follows `script` and returns everything it received.
fn server(script: Vec<Act>) -> (TcpStream, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut writer = sock.try_clone().unwrap();
        let mut reader = BufReader::new(sock);
        let mut got = Vec::new();
        for act in script {
            match act {
                Say(text) => writer.write_all(text.as_bytes()).unwrap(),
                Lines(n) => {
                    for _ in 0..n {
                        reader.read_until(b'\n', &mut got).unwrap();
                    }
                }
                Data => {
                    while !got.ends_with(b"\r\n.\r\n") {
                        if reader.read_until(b'\n', &mut got).unwrap() == 0 {
                            break;
                        }
                    }
                }
                Hang => return got,
            }
        }
        // Whatever else comes (QUIT) until the client closes.
        let _ = reader.read_to_end(&mut got);
        got
    });
    (TcpStream::connect(addr).unwrap(), handle)
}

fn options() -> Options {
    Options {
        helo: "me.example".to_string(),
        timeouts: Timeouts::default().capped(Duration::from_secs(5)),
        tls: TlsPolicy::Opportunistic,
        server_name: None,
    }
}

fn message(text: &[u8]) -> Message {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "rqmail-smtpclient-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::write(&path, text).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    Message::new(file).unwrap()
}

fn rcpts(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|r| r.as_bytes().to_vec()).collect()
}

fn run(script: Vec<Act>, opts: &Options, recipients: &[&str], msg: &[u8]) -> (Outcome, String) {
    let (stream, handle) = server(script);
    let outcome = deliver(
        stream,
        opts,
        b"alice@a.example",
        &rcpts(recipients),
        &mut message(msg),
    );
    let got = handle.join().unwrap();
    (outcome, String::from_utf8_lossy(&got).into_owned())
}

const EHLO_PIPELINING: &str =
    "250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000\r\n";

#[test]
fn pipelines_several_recipients_and_reports_each() {
    let (outcome, got) = run(
        vec![
            Say("220 mx.example ESMTP\r\n"),
            Lines(1),
            Say(EHLO_PIPELINING),
            Lines(5),
            Say("250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 go\r\n"),
            Data,
            Say("250 2.0.0 ok 123 qp 9\r\n"),
        ],
        &options(),
        &["b@x.example", "nobody@x.example", "c@x.example"],
        b"Subject: hi\n\nbody\n",
    );
    assert_eq!(
        got,
        "EHLO me.example\r\n\
         MAIL FROM:<alice@a.example> SIZE=21\r\n\
         RCPT TO:<b@x.example>\r\n\
         RCPT TO:<nobody@x.example>\r\n\
         RCPT TO:<c@x.example>\r\n\
         DATA\r\n\
         Subject: hi\r\n\r\nbody\r\n.\r\n\
         QUIT\r\n"
    );
    assert_eq!(
        outcome.report(),
        b"r\0h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n\0r\0\
          K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 ok 123 qp 9\n\0"
    );
    assert_eq!(outcome.tls, None);
}

#[test]
fn speaks_one_command_at_a_time_and_falls_back_to_helo() {
    let (outcome, got) = run(
        vec![
            Say("220-mx.example\r\n220 second line\r\n"),
            Lines(1),
            Say("502 unknown\r\n"),
            Lines(1),
            Say("250 hi\r\n"),
            Lines(1),
            Say("250 ok\r\n"),
            Lines(1),
            Say("451 later\r\n"),
            Lines(1),
            Say("250 ok\r\n"),
            Lines(1),
            Say("354 go\r\n"),
            Data,
            Say("250 ok\r\n"),
        ],
        &options(),
        &["b@x.example", "c@x.example"],
        b"x\n",
    );
    assert_eq!(
        got,
        "EHLO me.example\r\nHELO me.example\r\nMAIL FROM:<alice@a.example>\r\n\
         RCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
    );
    assert_eq!(outcome.status, Status::Success);
    assert_eq!(outcome.recipients[0].status, Status::Temporary);
    assert_eq!(outcome.recipients[1].status, Status::Success);
}

#[test]
fn a_refused_greeting_says_so_and_suggests_the_next_host() {
    let (outcome, got) = run(vec![Say("554 go away\r\n")], &options(), &["b@x"], b"x\n");
    assert_eq!(got, "QUIT\r\n");
    assert_eq!(
        outcome.report(),
        b"ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 go away\n\0"
    );
    assert!(outcome.try_next_host);
}

#[test]
fn a_refused_sender_ends_without_recipient_reports() {
    for (code, letter) in [("451", b'Z'), ("553", b'D')] {
        let reply: &'static str =
            Box::leak(format!("{code} no\r\n503 x\r\n503 x\r\n").into_boxed_str());
        let (outcome, _) = run(
            vec![
                Say("220 hi\r\n"),
                Lines(1),
                Say(EHLO_PIPELINING),
                Lines(3),
                Say(reply),
            ],
            &options(),
            &["b@x"],
            b"x\n",
        );
        let mut want = vec![letter];
        want.extend_from_slice(
            format!(
                "Connected to 127.0.0.1 but sender was rejected.\nRemote host said: {code} no\n\0"
            )
            .as_bytes(),
        );
        assert_eq!(outcome.report(), want);
        assert!(!outcome.try_next_host, "the dialogue reached MAIL");
    }
}

#[test]
fn no_accepted_recipient_gives_up_and_ends_a_pipelined_data() {
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say(EHLO_PIPELINING),
            Lines(4),
            Say("250 ok\r\n550 no\r\n550 no\r\n354 go anyway\r\n"),
            Lines(1),
            Say("554 no valid recipients\r\n"),
        ],
        &options(),
        &["b@x", "c@x"],
        b"x\n",
    );
    assert!(got.ends_with("DATA\r\n.\r\nQUIT\r\n"), "{got:?}");
    assert_eq!(outcome.status, Status::Permanent);
    assert_eq!(outcome.text, "Giving up on 127.0.0.1.\n");
    assert_eq!(outcome.recipients.len(), 2);
}

#[test]
fn unpipelined_sends_no_data_when_nobody_was_accepted() {
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say("250-mx\r\n250 8BITMIME\r\n"),
            Lines(1),
            Say("250 ok\r\n"),
            Lines(1),
            Say("550 no\r\n"),
        ],
        &options(),
        &["b@x"],
        b"x\n",
    );
    assert!(got.ends_with("RCPT TO:<b@x>\r\nQUIT\r\n"), "{got:?}");
    assert_eq!(
        outcome.report(),
        b"h127.0.0.1 does not like recipient.\nRemote host said: 550 no\n\0DGiving up on 127.0.0.1.\n\0"
    );
}

#[test]
fn a_connection_lost_after_the_dot_warns_of_a_duplicate() {
    let (outcome, _) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say(EHLO_PIPELINING),
            Lines(3),
            Say("250 ok\r\n250 ok\r\n354 go\r\n"),
            Data,
            Hang,
        ],
        &options(),
        &["b@x"],
        b"x\n",
    );
    assert_eq!(
        outcome.report(),
        b"r\0ZConnected to 127.0.0.1 but connection died (closed by the server). Possible duplicate! (#4.4.2)\n\0"
    );
    assert!(!outcome.try_next_host);
}

#[test]
fn a_connection_lost_before_mail_suggests_the_next_host() {
    let (outcome, _) = run(
        vec![Say("220 hi\r\n"), Lines(1), Hang],
        &options(),
        &["b@x"],
        b"x\n",
    );
    assert_eq!(
        outcome.text,
        "Connected to 127.0.0.1 but connection died (closed by the server). (#4.4.2)\n"
    );
    assert!(outcome.try_next_host);
}

#[test]
fn a_silent_server_times_out() {
    let mut opts = options();
    opts.timeouts = Timeouts::default().capped(Duration::from_millis(300));
    let (outcome, _) = run(
        vec![Say("220 hi\r\n"), Lines(1), Lines(1)],
        &opts,
        &["b@x"],
        b"x\n",
    );
    assert_eq!(
        outcome.text,
        "Connected to 127.0.0.1 but connection died (timed out). (#4.4.2)\n"
    );
}

#[test]
fn eight_bit_needs_8bitmime_and_gets_body_8bitmime() {
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say("250-mx\r\n250 PIPELINING\r\n"),
        ],
        &options(),
        &["b@x"],
        "caf\u{e9}\n".as_bytes(),
    );
    assert_eq!(got, "EHLO me.example\r\nQUIT\r\n");
    assert_eq!(
        outcome.text,
        "Connected to 127.0.0.1 but it does not offer 8BITMIME: 8-bit message to a 7-bit server: not converting. (#4.3.0)\n"
    );
    assert_eq!(outcome.status, Status::Temporary);
    assert!(outcome.try_next_host);

    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say(EHLO_PIPELINING),
            Lines(3),
            Say("250 ok\r\n250 ok\r\n354 go\r\n"),
            Data,
            Say("250 ok\r\n"),
        ],
        &options(),
        &["b@x"],
        "caf\u{e9}\n".as_bytes(),
    );
    assert!(
        got.contains("MAIL FROM:<alice@a.example> SIZE=7 BODY=8BITMIME\r\n"),
        "{got}"
    );
    assert_eq!(outcome.status, Status::Success);
}

#[test]
fn a_message_over_the_servers_size_fails_permanently() {
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say("250-mx\r\n250 SIZE 10\r\n"),
        ],
        &options(),
        &["b@x"],
        b"0123456789\n",
    );
    assert_eq!(got, "EHLO me.example\r\nQUIT\r\n");
    assert_eq!(
        outcome.report(),
        b"DConnected to 127.0.0.1 but the message is too big for it: 12 bytes, it accepts at most 10. (#5.3.4)\n\0"
    );
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say(EHLO_PIPELINING),
            Lines(3),
            Say("250 ok\r\n250 ok\r\n354 go\r\n"),
            Data,
            Say("250 ok\r\n"),
        ],
        &options(),
        &["j\u{f6}rg@x", "b@x", "bad\r\nRSET@x"],
        b"x\n",
    );
    assert!(!got.contains("rg@x") && !got.contains("RSET"), "{got}");
    let letters: Vec<Status> = outcome.recipients.iter().map(|r| r.status).collect();
    assert_eq!(
        letters,
        [Status::Permanent, Status::Success, Status::Permanent]
    );
    assert!(outcome.recipients[0].text.contains("(#5.6.7)"));
    assert!(outcome.recipients[2].text.contains("(#5.1.3)"));

    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say("250-mx\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"),
            Lines(3),
            Say("250 ok\r\n250 ok\r\n354 go\r\n"),
            Data,
            Say("250 ok\r\n"),
        ],
        &options(),
        &["j\u{f6}rg@x"],
        b"x\n",
    );
    assert!(
        got.contains("MAIL FROM:<alice@a.example> SMTPUTF8\r\nRCPT TO:<j\u{f6}rg@x>\r\n"),
        "{got}"
    );
    assert_eq!(outcome.status, Status::Success);
}

#[test]
fn required_tls_without_starttls_is_a_temporary_failure() {
    let mut opts = options();
    opts.tls = TlsPolicy::Required {
        name: "mx.example".to_string(),
        ca_file: None,
    };
    let (outcome, got) = run(
        vec![Say("220 hi\r\n"), Lines(1), Say(EHLO_PIPELINING)],
        &opts,
        &["b@x"],
        b"x\n",
    );
    assert_eq!(got, "EHLO me.example\r\nQUIT\r\n");
    assert_eq!(outcome.status, Status::Temporary);
    assert!(outcome.text.contains("does not offer STARTTLS"));
    assert!(outcome.try_next_host);
}

#[test]
fn sends_the_stored_message_transparently() {
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say(EHLO_PIPELINING),
            Lines(3),
            Say("250 ok\r\n250 ok\r\n354 go\r\n"),
            Data,
            Say("250 ok\r\n"),
        ],
        &options(),
        &["b@x"],
        b".one\n..two\nbare\rcr\nsmuggle\r.\r\nlast",
    );
    assert_eq!(outcome.status, Status::Success);
    let data = &got[got.find("DATA\r\n").unwrap() + 6..];
    assert_eq!(
        data,
        "..one\r\n...two\r\nbare\r\ncr\r\nsmuggle\r\n..\r\nlast\r\n.\r\nQUIT\r\n"
    );
}

#[test]
fn groups_pipelined_commands_so_buffers_cannot_deadlock() {
    let many: Vec<String> = (0..150).map(|i| format!("u{i}@x")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let first = "250 ok\r\n".repeat(PIPELINE_GROUP);
    let rest = format!("{}354 go\r\n", "250 ok\r\n".repeat(151 - PIPELINE_GROUP));
    let (outcome, _) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say(EHLO_PIPELINING),
            Lines(PIPELINE_GROUP),
            Say(Box::leak(first.into_boxed_str())),
            Lines(152 - PIPELINE_GROUP),
            Say(Box::leak(rest.into_boxed_str())),
            Data,
            Say("250 ok\r\n"),
        ],
        &options(),
        &names,
        b"x\n",
    );
    assert_eq!(outcome.status, Status::Success);
    assert_eq!(outcome.recipients.len(), 150);
}

#[test]
fn a_refused_opportunistic_starttls_goes_on_in_plaintext() {
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say("250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n"),
            Lines(1),
            Say("454 4.7.0 TLS not available\r\n"),
            Lines(3),
            Say("250 ok\r\n250 ok\r\n354 go\r\n"),
            Data,
            Say("250 ok\r\n"),
        ],
        &options(),
        &["b@x"],
        b"x\n",
    );
    assert!(
        got.starts_with("EHLO me.example\r\nSTARTTLS\r\nMAIL FROM:<alice@a.example>\r\n"),
        "{got}"
    );
    assert_eq!(outcome.status, Status::Success);
    assert_eq!(outcome.tls, None);
    assert_eq!(
        outcome.text,
        "127.0.0.1 accepted message.\nRemote host said: 250 ok\n"
    );
}

#[test]
fn a_refused_required_starttls_gives_up_on_the_host() {
    let mut opts = options();
    opts.tls = TlsPolicy::Required {
        name: "mx.example".to_string(),
        ca_file: None,
    };
    let (outcome, got) = run(
        vec![
            Say("220 hi\r\n"),
            Lines(1),
            Say("250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n"),
            Lines(1),
            Say("454 4.7.0 TLS not available\r\n"),
        ],
        &opts,
        &["b@x"],
        b"x\n",
    );
    assert_eq!(got, "EHLO me.example\r\nSTARTTLS\r\nQUIT\r\n");
    assert_eq!(
        outcome.report(),
        b"ZConnected to 127.0.0.1 but STARTTLS was refused, and TLS is required for it.\nRemote host said: 454 4.7.0 TLS not available\n\0"
    );
    assert!(outcome.try_next_host);
}
