//! The root half of rqmail-login: reads `user\0password\0` from the front, runs
//! checkpassword once per attempt, and reports each failure with one byte.
//!
//! This is all the code that runs as root after the fork (DESIGN.md, principle 1). It never
//! touches the client: it reads at most 511 bytes of a fixed form from the front (which a
//! client may have taken over), and passes them on unread. checkpassword becomes the user
//! and execs the post-login program on the session socket; its exit status is the answer.

use rqmail_login_front::handoff::{MAX_ATTEMPTS, MAX_CREDENTIALS, REFUSED, RootEnds, TEMPORARY};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
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
    /// The front sent something that is not `user\0password\0` (a bug, or a takeover).
    Malformed(String),
}

/// Serves login attempts until one succeeds, the front leaves or the attempts run out.
/// `command` is CHECKPASSWORD POSTLOGIN [ARGS...].
pub fn serve(ends: RootEnds, command: &[OsString]) -> End {
    let RootEnds {
        mut credentials,
        mut status,
        session,
    } = ends;
    for _ in 0..MAX_ATTEMPTS {
        // One more byte than the front may send, for checkpassword's empty timestamp.
        let mut message = [0u8; MAX_CREDENTIALS + 1];
        let len = match read_message(&mut credentials, &mut message[..MAX_CREDENTIALS]) {
            Ok(Some(len)) => len,
            Ok(None) => return End::FrontGone,
            Err(why) => {
                wipe(&mut message);
                return End::Malformed(why);
            }
        };
        // checkpassword's timestamp field, empty: `user\0password\0\0`.
        message[len] = 0;
        let result = check(command, &message[..len + 1], &session);
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

/// Reads one message into `buf`: exactly two NULs, the second one last. `Ok(None)` if the
/// front closed the pipe before sending anything.
fn read_message(pipe: &mut impl Read, buf: &mut [u8]) -> Result<Option<usize>, String> {
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
            0 | 1 if len < buf.len() => continue,
            2 if buf[len - 1] == 0 => return Ok(Some(len)),
            _ => {
                return Err(format!(
                    "credentials not in the form user\\0password\\0 ({len} bytes)"
                ));
            }
        }
    }
}

/// Runs CHECKPASSWORD POSTLOGIN [ARGS...] with `data` on fd 3 and the session socket as
/// stdin and stdout; returns its exit code (`Err` if it could not run or was killed).
fn check(
    command: &[OsString],
    data: &[u8],
    session: &std::os::unix::net::UnixStream,
) -> io::Result<i32> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::other("no checkpassword program"));
    };
    if !is_program(Path::new(program)) {
        return Err(io::Error::other("checkpassword is not an executable"));
    }
    let (read, mut write) = io::pipe()?;
    let raw = read.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(std::os::fd::OwnedFd::from(session.try_clone()?))
        .stdout(std::os::fd::OwnedFd::from(session.try_clone()?));
    // SAFETY: between fork and exec the child only calls dup2 or fcntl, which are
    // async-signal-safe, on descriptors it owns; it allocates nothing and takes no locks.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would leave close-on-exec set: clear it instead.
            let r = if raw == 3 {
                nix::libc::fcntl(3, nix::libc::F_SETFD, 0)
            } else {
                nix::libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    // The session socket's copies and the pipe's read end belong to the child now.
    drop(cmd);
    drop(read);
    let mut child = child?;
    // checkpassword may exit without reading (a broken one): that is its answer, not ours.
    let _ = write.write_all(data);
    drop(write);
    let status = child.wait()?;
    status
        .code()
        .ok_or_else(|| io::Error::other("checkpassword killed by a signal"))
}

/// True if `path` is an ELF binary or a `#!` script. exec falls back to running any other
/// file through /bin/sh, and an empty or truncated checkpassword run that way exits 0:
/// every password would be accepted.
fn is_program(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF" || magic.starts_with(b"#!"))
}

/// Overwrites a buffer that held a password; `black_box` keeps the writes from being
/// optimised away as dead stores.
fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Result<Option<usize>, String> {
        let mut buf = [0u8; MAX_CREDENTIALS];
        read_message(&mut &input[..], &mut buf)
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
                &session
            )
            .is_err()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn checkpassword_gets_the_credentials_on_fd_3_and_the_session_as_stdio() {
        let (session, mut other) = std::os::unix::net::UnixStream::pair().unwrap();
        // Echoes fd 3 to stdout (the session), and what it reads on stdin after that.
        let command: Vec<OsString> = ["/bin/sh", "-c", "cat <&3; head -c 5", "sh"]
            .into_iter()
            .map(OsString::from)
            .collect();
        other.write_all(b"hello").unwrap();
        assert_eq!(check(&command, b"joe\0secret\0\0", &session).unwrap(), 0);
        drop(session);
        let mut out = Vec::new();
        other.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"joe\0secret\0\0hello");
        let refuse: Vec<OsString> = ["/bin/sh", "-c", "exit 1"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let (session, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(check(&refuse, b"joe\0x\0\0", &session).unwrap(), 1);
    }
}
