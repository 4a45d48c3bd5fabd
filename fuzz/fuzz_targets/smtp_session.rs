//! Arbitrary bytes as an SMTP client's input to rqmail-smtpd's whole session
//! (`rqmail_smtpd_session::session::Session::run`: HELO/EHLO, STARTTLS, AUTH PLAIN and
//! LOGIN with their base64, MAIL/RCPT with parameters, DATA, RSET, errors), run by
//! `Session::without_programs`: AUTH accepts `joe` with the sentinel password (and says
//! 454 to `tempfail`), a refusal is not delayed, and an accepted message is thrown away
//! instead of queued, so nothing is spawned and nothing waits. The first byte's bits
//! choose the settings: 0 AUTH without TLS, 1 a checkpassword (AUTH offered), 2 AUTH
//! required, 3 databytes 64, 4 RELAYCLIENT, 5 maxrcpt 2, 6 a badmailfrom.
//!
//! No input may panic. Every reply line must be three digits from 200 to 599, then `-`
//! (a continuation, whose next line has the same code) or a space, then text and CRLF,
//! with no other CR or LF and no NUL; the greeting comes first; 221, 421 and the 451 for
//! a bare LF or CR come last; AUTH is offered, and succeeds, only where a checkpassword is
//! set and AUTH allowed without TLS; and the sentinel password never appears in the output.
#![no_main]

mod common;

use rqmail_control::Control;
use rqmail_route::Routing;
use rqmail_smtpd_session::conn::Conn;
use rqmail_smtpd_session::session::Session;
use rqmail_smtpd_session::settings::Settings;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch_dir("smtpd"))
}

fn settings(home: &std::path::Path, bits: u8) -> Settings {
    let bit = |n: u8| bits >> n & 1 == 1;
    Settings {
        home: home.to_path_buf(),
        control: Control::new(home),
        greeting: "fuzz.example".into(),
        local_host: "fuzz.example".into(),
        remote_ip: "192.0.2.1".into(),
        remote_host: Some("client.example".into()),
        remote_info: None,
        relayclient: bit(4).then(String::new),
        // Never reached: the input is a file. A wait would last past libFuzzer's -timeout
        // (run.sh: 10 s) and be reported.
        timeout: Duration::from_secs(30),
        databytes: if bit(3) { 64 } else { 0 },
        maxrcpt: if bit(5) { 2 } else { 100 },
        rcpthosts: vec!["example.org".into(), ".example.net".into()],
        morercpthosts: None,
        badmailfrom: if bit(6) {
            vec!["bad@example.com".into(), "@spam.example".into()]
        } else {
            Vec::new()
        },
        // Nothing is local, so no RCPT looks up a user on this machine.
        routing: Routing {
            locals: Vec::new(),
            virtualdomains: Vec::new(),
            percenthack: vec!["example.net".into()],
            envnoathost: "example.org".into(),
        },
        servercert: None,
        smtps: false,
        // Never run: the session is without programs.
        checkpassword: bit(1).then(Vec::new),
        auth_required: bit(2),
        auth_plaintext: bit(0),
    }
}

fn check_output(out: &[u8], auth_offered: bool) {
    assert!(
        !common::contains(out, common::SENTINEL),
        "the password is in the output"
    );
    let lines = common::crlf_lines(out);
    assert_eq!(
        lines.first().copied(),
        Some(&b"220 fuzz.example ESMTP"[..]),
        "greeting"
    );
    let mut continued: Option<&[u8]> = None;
    for (i, line) in lines.iter().enumerate() {
        let code = &line[..line.len().min(3)];
        assert!(
            line.len() >= 4
                && code.iter().all(u8::is_ascii_digit)
                && (b'2'..=b'5').contains(&code[0])
                && matches!(line[3], b' ' | b'-'),
            "not an SMTP reply line: {:?}",
            common::show(line)
        );
        if let Some(previous) = continued {
            assert_eq!(
                previous,
                code,
                "continuation with another code: {:?}",
                common::show(line)
            );
        }
        continued = (line[3] == b'-').then_some(code);
        let text = &line[4..];
        assert_ne!(
            *line, b"421 4.4.2 timeout, closing connection",
            "the session waited"
        );
        if code == b"250" && text.starts_with(b"AUTH") {
            assert!(auth_offered, "AUTH offered without TLS or checkpassword");
        }
        if code == b"235" {
            assert!(auth_offered, "AUTH succeeded where it is not offered");
        }
        let last =
            code == b"221" || code == b"421" || (code == b"451" && text.starts_with(b"4.5.0 bare"));
        if last {
            assert_eq!(i + 1, lines.len(), "a reply after {:?}", common::show(line));
        }
    }
    assert_eq!(continued, None, "the last reply is unfinished");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&bits, input)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let settings = settings(dir, bits);
    let auth_offered = settings.checkpassword.is_some() && settings.auth_plaintext;
    let (input_file, output_file) = common::client_files(dir, input);
    let conn = Conn::new(input_file, output_file, settings.timeout);
    let end = Session::new(settings, conn)
        .without_programs("joe", common::SENTINEL)
        .run();
    let out = common::server_output(dir);
    if common::show_output() {
        eprintln!("{end:?}\n{}", String::from_utf8_lossy(&out));
    }
    check_output(&out, auth_offered);
});
