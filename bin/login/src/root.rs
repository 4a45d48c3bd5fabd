//! The root half of rqmail-login: reads `user\0password\0` from the front, runs
//! checkpassword once per attempt, and reports each failure with one byte. For IMAP the
//! message is `user\0password\0tag\0`, and the post-login program (which answers the login
//! command itself) gets the tag as `IMAPLOGINTAG`.
//!
//! This is all the code that runs as root after the fork (DESIGN.md, principle 1). It never
//! touches the client: it reads at most 511 bytes (and a tag of 64) of a fixed form from the front (which a
//! client may have taken over), and passes them on unread. checkpassword becomes the user
//! and execs the post-login program on the session socket; its exit status is the answer.

use rqmail_checkpw::{is_program, wipe};
use rqmail_login_front::Protocol;
use rqmail_login_front::handoff::{
    MAX_ATTEMPTS, MAX_CREDENTIALS, MAX_TAG, REFUSED, RootEnds, TEMPORARY, valid_tag,
};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;

/// How the root half ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// A session ran and the post-login program exited 0.
    SessionDone,
    /// The front went away (the client left, or logged in and the session ended).
    FrontGone,
    /// [`MAX_ATTEMPTS`] logins failed.
    TooManyAttempts,
    /// The front sent something that is not `user\0password\0` (or for IMAP
    /// `user\0password\0tag\0`): a bug, or a takeover.
    Malformed(String),
}

/// Serves login attempts until one succeeds, the front leaves or the attempts run out.
/// `command` is CHECKPASSWORD POSTLOGIN [ARGS...].
pub fn serve(ends: RootEnds, command: &[OsString], protocol: Protocol) -> End {
    let RootEnds {
        mut credentials,
        mut status,
        session,
    } = ends;
    let (fields, most) = match protocol {
        Protocol::Pop3 => (2, MAX_CREDENTIALS),
        Protocol::Imap => (3, MAX_CREDENTIALS + MAX_TAG + 1),
    };
    for _ in 0..MAX_ATTEMPTS {
        // One more byte than the front may send, for checkpassword's empty timestamp.
        let mut message = [0u8; MAX_CREDENTIALS + MAX_TAG + 2];
        let read = read_message(&mut credentials, &mut message[..most], fields);
        let (len, tag) = match read.and_then(|len| match (len, protocol) {
            (Some(len), Protocol::Imap) => take_tag(&message[..len]).map(Some),
            (len, _) => Ok(len.map(|len| (len, None))),
        }) {
            Ok(Some(found)) => found,
            Ok(None) => return End::FrontGone,
            Err(why) => {
                wipe(&mut message);
                return End::Malformed(why);
            }
        };
        // checkpassword's timestamp field, empty: `user\0password\0\0` (over the tag).
        message[len] = 0;
        let result = check(command, &message[..len + 1], &session, tag.as_deref());
        wipe(&mut message);
        let byte = match result {
            Ok(0) => return End::SessionDone,
            Ok(1) => REFUSED,
            // 2 (misuse), 111, other codes and deaths by signal: not the client's fault.
            _ => TEMPORARY,
        };
        if status.write_all(&[byte]).is_err() {
            return End::FrontGone;
        }
    }
    End::TooManyAttempts
}

/// Reads one message into `buf`: exactly `fields` NULs, the last one last. `Ok(None)` if
/// the front closed the pipe before sending anything.
fn read_message(
    pipe: &mut impl Read,
    buf: &mut [u8],
    fields: usize,
) -> Result<Option<usize>, String> {
    let mut len = 0;
    loop {
        let n = match pipe.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("unable to read credentials: {e}")),
        };
        if n == 0 {
            return if len == 0 {
                Ok(None)
            } else {
                Err("credentials cut short".into())
            };
        }
        len += n;
        let nuls = buf[..len].iter().filter(|&&b| b == 0).count();
        match nuls {
            n if n < fields && len < buf.len() => continue,
            n if n == fields && buf[len - 1] == 0 => return Ok(Some(len)),
            _ => {
                return Err(format!(
                    "credentials of {fields} fields malformed ({len} bytes)"
                ));
            }
        }
    }
}

/// Splits IMAP's `user\0password\0tag\0` (three NULs, as read) into the length of
/// `user\0password\0`, held to POP3's bound, and the tag, which must be a valid one.
fn take_tag(message: &[u8]) -> Result<(usize, Option<String>), String> {
    let len = message
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == 0)
        .nth(1)
        .map_or(0, |(i, _)| i + 1);
    let tag = message.get(len..message.len() - 1).unwrap_or_default();
    if len == 0 || len > MAX_CREDENTIALS || !valid_tag(tag) {
        return Err(format!(
            "credentials or tag malformed ({} bytes)",
            message.len()
        ));
    }
    Ok((len, Some(String::from_utf8_lossy(tag).into_owned())))
}

/// Runs CHECKPASSWORD POSTLOGIN [ARGS...] with `data` on fd 3, the session socket as
/// stdin and stdout, and `IMAPLOGINTAG` set to `tag` if there is one; returns its exit
/// code (`Err` if it could not run or was killed).
fn check(
    command: &[OsString],
    data: &[u8],
    session: &std::os::unix::net::UnixStream,
    tag: Option<&str>,
) -> io::Result<i32> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::other("no checkpassword program"));
    };
    if !is_program(Path::new(program)) {
        return Err(io::Error::other("checkpassword is not an executable"));
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(std::os::fd::OwnedFd::from(session.try_clone()?))
        .stdout(std::os::fd::OwnedFd::from(session.try_clone()?));
    if let Some(tag) = tag {
        cmd.env("IMAPLOGINTAG", tag);
    }
    // The session socket's copies and the pipe's read end belong to the child alone once
    // it runs; checkpassword may exit without reading (a broken one): that is its answer.
    let mut child = rqmail_checkpw::spawn_with_fd3(cmd, data)?;
    let status = child.wait()?;
    status
        .code()
        .ok_or_else(|| io::Error::other("checkpassword killed by a signal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Result<Option<usize>, String> {
        let mut buf = [0u8; MAX_CREDENTIALS];
        read_message(&mut &input[..], &mut buf, 2)
    }

    #[test]
    fn imap_messages_carry_a_tag_that_is_checked() {
        let read = |input: &[u8]| {
            let mut buf = [0u8; MAX_CREDENTIALS + MAX_TAG + 1];
            read_message(&mut &input[..], &mut buf, 3)
                .and_then(|len| take_tag(&buf[..len.unwrap_or(0)]))
        };
        assert_eq!(read(b"joe\0secret\0a1\0"), Ok((11, Some("a1".into()))));
        assert!(read(b"joe\0secret\0").is_err());
        assert!(read(b"joe\0secret\0\0").is_err());
        assert!(read(b"joe\0secret\0a b\0").is_err());
        assert!(read(b"joe\0secret\0a+\0").is_err());
        assert!(read(b"joe\0secret\0a1\0x\0").is_err());
        let mut tag = b"joe\0secret\0".to_vec();
        tag.extend_from_slice(&[b't'; MAX_TAG]);
        tag.push(0);
        assert!(read(&tag).is_ok());
        tag.insert(0, b'j');
        assert!(read(&tag).is_ok());
        tag.insert(15, b't');
        assert!(read(&tag).is_err());
        // user\0password\0 itself stays within POP3's bound.
        let mut long = vec![b'u'; MAX_CREDENTIALS - 3];
        long.extend_from_slice(b"\0p\0a\0");
        assert!(read(&long).is_ok());
        long.insert(0, b'u');
        assert!(read(&long).is_err());
    }

    #[test]
    fn accepts_only_user_nul_password_nul() {
        assert_eq!(read_all(b"joe\0secret\0"), Ok(Some(11)));
        assert_eq!(read_all(b""), Ok(None));
        assert!(read_all(b"joe\0secret").is_err());
        assert!(read_all(b"joe\0secret\0extra").is_err());
        assert!(read_all(b"joe\0secret\0\0").is_err());
        assert!(read_all(b"joe\0se\0cret\0").is_err());
        let mut long = vec![b'u'; MAX_CREDENTIALS - 3];
        long.extend_from_slice(b"\0p\0");
        assert_eq!(read_all(&long), Ok(Some(MAX_CREDENTIALS)));
        let mut longer = vec![b'u'; MAX_CREDENTIALS];
        longer.extend_from_slice(b"\0p\0");
        assert!(read_all(&longer).is_err());
    }

    #[test]
    fn an_empty_or_scriptless_checkpassword_is_never_run() {
        let dir = std::env::temp_dir().join(format!("rqmail-login-root-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        let bare = dir.join("bare");
        std::fs::write(&bare, b"exit 0\n").unwrap();
        assert!(!is_program(&empty));
        assert!(!is_program(&bare));
        assert!(is_program(Path::new("/bin/true")));
        let (session, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(
            check(
                &[empty.into_os_string(), "/bin/true".into()],
                b"u\0p\0\0",
                &session,
                None
            )
            .is_err()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn checkpassword_gets_the_credentials_on_fd_3_and_the_session_as_stdio() {
        let (session, mut other) = std::os::unix::net::UnixStream::pair().unwrap();
        // Echoes fd 3 to stdout (the session), and what it reads on stdin after that.
        let command: Vec<OsString> = [
            "/bin/sh",
            "-c",
            "cat <&3; head -c 5; echo \"$IMAPLOGINTAG\"",
            "sh",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        other.write_all(b"hello").unwrap();
        assert_eq!(
            check(&command, b"joe\0secret\0\0", &session, Some("a1")).unwrap(),
            0
        );
        drop(session);
        let mut out = Vec::new();
        other.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"joe\0secret\0\0helloa1\n");
        let refuse: Vec<OsString> = ["/bin/sh", "-c", "exit 1"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let (session, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(check(&refuse, b"joe\0x\0\0", &session, None).unwrap(), 1);
    }
}
