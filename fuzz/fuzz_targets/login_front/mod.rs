//! Drives rqmail-login's front (`pop3::authorize`, `imap::authorize`) as the login targets
//! do: the client's input from a file, and a root half played by the target with its
//! answers written ahead, so that no attempt waits and no checkpassword runs.

use crate::common;
use rqmail_login_front::conn::Conn;
use rqmail_login_front::handoff::{self, MAX_ATTEMPTS, MAX_CREDENTIALS, MAX_TAG, RootEnds};
use rqmail_login_front::settings::Settings;
use rqmail_login_front::{Protocol, imap, pop3};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// What the post-login program writes first when a login works.
pub const FIRST_OUTPUT: &[u8] = b"+OK from the post-login program\r\n";

/// How the root half answers every attempt, chosen by bits 1 and 2 of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootHalf {
    /// Refuses (status byte `F`).
    Refuses,
    /// Temporary failure, then refusals (`T`, `F`, `F`).
    TemporaryThenRefuses,
    /// The post-login program answers at once: logged in.
    Accepts,
    /// The root half has exited.
    Gone,
}

/// One run of the front.
pub struct Run {
    /// The input as the front saw it.
    pub input: Vec<u8>,
    pub plaintext: bool,
    pub root: RootHalf,
    /// Everything the front wrote to the client.
    pub output: Vec<u8>,
    /// Everything the front sent the root half on the credentials pipe.
    pub credentials: Vec<u8>,
    /// On a login: the post-login program's first output as the front passed it on, the
    /// user name, and the client's bytes the front read ahead of the login (for the relay).
    pub logged_in: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch_dir("login"))
}

/// Runs the front on `data`: bit 0 of the first byte allows plaintext logins, bits 1 and 2
/// choose the root half's answer (see [`RootHalf`]); the rest is the client's input.
pub fn run(protocol: Protocol, data: &[u8]) -> Option<Run> {
    let (&first, input) = data.split_first()?;
    let plaintext = first & 1 == 1;
    let root = match (first >> 1) & 3 {
        0 => RootHalf::Refuses,
        1 => RootHalf::TemporaryThenRefuses,
        2 => RootHalf::Accepts,
        _ => RootHalf::Gone,
    };
    let settings = Settings {
        hostname: "fuzz.example".into(),
        remote_ip: "192.0.2.1".into(),
        // Never reached: the input is a file, and every attempt is answered in advance. A
        // wait would last past libFuzzer's -timeout (run.sh: 10 s) and be reported.
        timeout: Duration::from_secs(30),
        fail_delay: Duration::ZERO,
        servercert: None,
        implicit_tls: false,
        plaintext_auth: plaintext,
    };
    let dir = scratch();
    let (input_file, output_file) = common::client_files(dir, input);
    let conn = Conn::new(input_file, output_file, settings.timeout);
    let (handoff, ends) = handoff::channel().expect("make the handoff channel");
    let RootEnds {
        credentials: mut credentials_pipe,
        status: mut status_pipe,
        session: mut session_socket,
    } = ends;
    match root {
        RootHalf::Refuses => status_pipe.write_all(&[handoff::REFUSED; 3]).unwrap(),
        RootHalf::TemporaryThenRefuses => status_pipe
            .write_all(&[handoff::TEMPORARY, handoff::REFUSED, handoff::REFUSED])
            .unwrap(),
        RootHalf::Accepts => session_socket.write_all(FIRST_OUTPUT).unwrap(),
        RootHalf::Gone => {}
    }
    assert_eq!(
        MAX_ATTEMPTS, 3,
        "the status bytes above answer three attempts"
    );
    // The root half's ends stay open for the whole session, unless it is gone.
    let held = if root == RootHalf::Gone {
        drop((status_pipe, session_socket));
        None
    } else {
        Some((status_pipe, session_socket))
    };
    let logged_in = match protocol {
        Protocol::Pop3 => pop3::authorize(&settings, conn, handoff),
        Protocol::Imap => imap::authorize(&settings, conn, handoff),
    };
    let logged_in = logged_in.map(|l| {
        let parts = l.conn.into_parts().expect("flush to a file");
        (l.first, l.user, parts.pending)
    });
    drop(held);
    // The front's end of the pipe is closed by now (the handoff has been dropped).
    let mut credentials = Vec::new();
    credentials_pipe.read_to_end(&mut credentials).unwrap();
    let output = common::server_output(dir);
    if common::show_output() {
        eprintln!("{}", String::from_utf8_lossy(&output));
    }
    Some(Run {
        input: input.to_vec(),
        plaintext,
        root,
        output,
        credentials,
        logged_in,
    })
}

/// Checks what every front must do, whatever the protocol: credentials only where
/// plaintext logins are allowed (there is no TLS here), each well-formed and within the
/// root half's limits, at most [`MAX_ATTEMPTS`] of them (one if the root half is gone); no
/// sentinel password in the output; on a login, the post-login program's output passed on
/// unchanged, the user the one sent, and the bytes read ahead a part of the input starting
/// at a line.
pub fn check_common(run: &Run, fields: usize) {
    assert!(
        !common::contains(&run.output, common::SENTINEL),
        "the password is in the output"
    );
    if !run.plaintext {
        assert!(
            run.credentials.is_empty(),
            "credentials sent without TLS or plaintext allowed: {:?}",
            common::show(&run.credentials)
        );
    }
    let mut messages = Vec::new();
    let mut rest = &run.credentials[..];
    while !rest.is_empty() {
        let mut message = Vec::new();
        for _ in 0..fields {
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .unwrap_or_else(|| panic!("credentials not NUL-ended: {:?}", rest));
            message.push(&rest[..nul]);
            rest = &rest[nul + 1..];
        }
        let (user, password) = (message[0], message[1]);
        assert!(
            !user.is_empty() && !password.is_empty(),
            "empty user or password"
        );
        assert!(
            user.len() + password.len() + 2 <= MAX_CREDENTIALS,
            "credentials too long"
        );
        if fields == 3 {
            assert!(message[2].len() <= MAX_TAG && handoff::valid_tag(message[2]));
        }
        messages.push(message);
    }
    let most = if run.root == RootHalf::Gone {
        1
    } else {
        MAX_ATTEMPTS as usize
    };
    assert!(messages.len() <= most, "{} attempts", messages.len());
    match &run.logged_in {
        Some((first, user, pending)) => {
            assert_eq!(
                run.root,
                RootHalf::Accepts,
                "logged in without the root half's yes"
            );
            assert_eq!(first, FIRST_OUTPUT);
            let last = messages.last().expect("logged in without credentials");
            assert_eq!(user.as_slice(), last[0], "logged in as someone else");
            let input = &run.input;
            let at_line = (1..=input.len().saturating_sub(pending.len()))
                .any(|i| input[i - 1] == b'\n' && input[i..].starts_with(pending));
            assert!(
                at_line,
                "read-ahead {:?} is not the input after a line",
                common::show(pending)
            );
        }
        None => {}
    }
}
