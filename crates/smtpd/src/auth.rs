//! SMTP AUTH PLAIN and LOGIN (RFC 4954, 4616), checked by running a checkpassword program
//! with `user\0password\0\0` on its fd 3. The password never leaves this module.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rqmail_checkpw::{is_program, wipe};
use rqmail_outcome::EXIT_TEMPORARY;
use std::ffi::OsString;
use std::process::{Command, Stdio};

/// Most bytes of `user\0password\0timestamp\0` checkpassword accepts.
const CHECKPASSWORD_MAX: usize = 512;

/// Credentials decoded from the client.
pub struct Credentials {
    /// The login name.
    pub user: String,
    password: Vec<u8>,
}

/// Decodes one base64 line; `None` if it is not base64.
pub fn decode(line: &[u8]) -> Option<Vec<u8>> {
    STANDARD.decode(line.trim_ascii()).ok()
}

/// Encodes a server challenge.
pub fn encode(text: &[u8]) -> String {
    STANDARD.encode(text)
}

/// Decodes a PLAIN response: `authzid\0authcid\0password`.
pub fn plain(response: &[u8]) -> Option<Credentials> {
    let mut parts = response.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() || user.is_empty() || password.is_empty() {
        return None;
    }
    Some(Credentials {
        user: String::from_utf8(user.to_vec()).ok()?,
        password: password.to_vec(),
    })
}

/// Credentials from LOGIN's two answers.
pub fn login(user: Vec<u8>, password: Vec<u8>) -> Option<Credentials> {
    if user.is_empty() || password.is_empty() || user.contains(&0) || password.contains(&0) {
        return None;
    }
    Some(Credentials {
        user: String::from_utf8(user).ok()?,
        password,
    })
}

/// A stand-in for checkpassword that runs nothing, for tests and fuzzing: accepts `user`
/// with `password`, answers Temporary for the user `tempfail`, and refuses the rest.
pub(crate) fn verify_fixed(creds: &Credentials, user: &str, password: &[u8]) -> Outcome {
    if creds.user == user && creds.password == password {
        Outcome::Accepted
    } else if creds.user == "tempfail" {
        Outcome::Temporary
    } else {
        Outcome::Refused
    }
}

/// What checkpassword said.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: the password is right.
    Accepted,
    /// Exit 1 (or other non-zero): wrong user or password.
    Refused,
    /// Exit 111, or it could not be run: try again later.
    Temporary,
}

/// Runs `command` (checkpassword and the program it runs) with the credentials on fd 3.
pub fn verify(command: &[OsString], creds: &Credentials) -> Outcome {
    let mut data = Vec::with_capacity(creds.user.len() + creds.password.len() + 3);
    data.extend_from_slice(creds.user.as_bytes());
    data.push(0);
    data.extend_from_slice(&creds.password);
    data.extend_from_slice(b"\0\0");
    if data.len() > CHECKPASSWORD_MAX || creds.user.contains('\0') {
        return Outcome::Refused;
    }
    let Some((program, args)) = command.split_first() else {
        return Outcome::Temporary;
    };
    if !is_program(std::path::Path::new(program)) {
        return Outcome::Temporary;
    }
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    let child = rqmail_checkpw::spawn_with_fd3(cmd, &data);
    wipe(&mut data);
    let Ok(mut child) = child else {
        return Outcome::Temporary;
    };
    match child.wait().map(|s| s.code()) {
        Ok(Some(0)) => Outcome::Accepted,
        Ok(Some(code)) if code == i32::from(EXIT_TEMPORARY) => Outcome::Temporary,
        Err(_) => Outcome::Temporary,
        _ => Outcome::Refused,
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        wipe(&mut self.password);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plain_and_login() {
        let c = plain(b"\0joe\0secret").unwrap();
        assert_eq!(c.user, "joe");
        assert!(plain(b"joe\0secret").is_none());
        assert!(plain(b"\0\0secret").is_none());
        assert!(plain(b"\0joe\0").is_none());
        assert_eq!(decode(b"AGpvZQBzZWNyZXQ=").unwrap(), b"\0joe\0secret");
        assert!(decode(b"not base64!").is_none());
        assert!(login(b"joe".to_vec(), b"".to_vec()).is_none());
    }

    #[test]
    fn an_empty_or_scriptless_checkpassword_is_never_run() {
        let dir = std::env::temp_dir().join(format!("rqmail-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        let script = dir.join("script");
        std::fs::write(&script, b"#!/bin/sh\nexit 1\n").unwrap();
        let bare = dir.join("bare");
        std::fs::write(&bare, b"exit 0\n").unwrap();
        assert!(!is_program(&empty));
        assert!(!is_program(&bare));
        assert!(is_program(&script));
        assert!(is_program(std::path::Path::new("/bin/true")));
        let creds = plain(b"\0joe\0secret").unwrap();
        assert_eq!(
            verify(&[empty.into_os_string()], &creds),
            Outcome::Temporary
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
