//! Checks a password against the crypt(3) hash the system keeps for an account: finds the
//! hash (shadow or passwd entry) and recomputes it with libxcrypt, as pam_unix does.
//!
//! Hashing is libxcrypt's own `crypt_rn`, the library Debian's passwd, chpasswd and PAM use
//! to write these hashes, so every scheme they write or have written verifies: yescrypt
//! (`$y$`), sha512-crypt (`$6$`), sha256-crypt (`$5$`), md5-crypt (`$1$`), bcrypt (`$2b$`,
//! `$2a$`, `$2y$`) and traditional DES (which, like bcrypt past 72 bytes, ignores the end of
//! long passwords: a property of the scheme, not of this crate).
#![deny(missing_docs)]

mod crypt;

pub use crypt::wipe;

use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Where the system keeps password hashes.
pub const SHADOW: &str = "/etc/shadow";

/// Why a password could not be checked. A wrong password is not an error: it is
/// `Ok(false)`. Only [`Error::UnsupportedHash`] is permanent; the rest mean "try again later"
/// (a checkpassword program exits 111).
#[derive(Debug)]
pub enum Error {
    /// The shadow file exists but could not be read (permissions, I/O).
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The stored hash is in a scheme libxcrypt lacks (e.g. argon2) or is malformed: no
    /// password can match it until an administrator fixes the account.
    UnsupportedHash {
        /// The hash's `$id$` prefix (or its first characters), never the whole hash.
        scheme: String,
    },
    /// crypt failed for another reason, e.g. no memory for yescrypt.
    Crypt(io::Error),
}

impl Error {
    /// True when trying again later may succeed.
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Error::UnsupportedHash { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreadable { path, source } => {
                write!(f, "unable to read {}: {source}", path.display())
            }
            Error::UnsupportedHash { scheme } => {
                write!(f, "unsupported or malformed password hash ({scheme})")
            }
            Error::Crypt(e) => write!(f, "crypt failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unreadable { source, .. } => Some(source),
            Error::Crypt(e) => Some(e),
            Error::UnsupportedHash { .. } => None,
        }
    }
}

/// True for hashes no password may match: empty (`passwd -d`), locked with `!` (`passwd
/// -l`, `usermod -L`, `!!` from useradd) or `*` (system accounts).
pub fn is_locked(hash: &str) -> bool {
    hash.is_empty() || hash.starts_with('!') || hash.starts_with('*')
}

/// Whether `password` hashes to `hash`, a crypt(3) string as stored in /etc/shadow.
/// Locked and empty hashes, empty passwords and passwords with NUL bytes or of 512 bytes
/// or more never match. The computed and stored hashes are compared in constant time.
pub fn verify(hash: &str, password: &[u8]) -> Result<bool, Error> {
    if is_locked(hash)
        || password.is_empty()
        || password.contains(&0)
        || password.len() >= crypt::MAX_PASSPHRASE
    {
        return Ok(false);
    }
    match crypt::hash(password, hash.as_bytes()) {
        Ok(mut computed) => {
            let equal = constant_time_eq(&computed, hash.as_bytes());
            crypt::wipe(&mut computed);
            Ok(equal)
        }
        Err(crypt::Failure::Invalid) => Err(Error::UnsupportedHash {
            scheme: scheme_of(hash),
        }),
        Err(crypt::Failure::Other(e)) => Err(Error::Crypt(e)),
    }
}

/// A new yescrypt (`$y$`) hash of `password` with a fresh random salt, as Debian's passwd
/// writes them. Empty passwords, passwords with NUL and passwords of 512 bytes or more are
/// refused ([`Error::UnsupportedHash`] is not used for that: they are `Crypt(InvalidInput)`).
pub fn hash_password(password: &[u8]) -> Result<String, Error> {
    if password.is_empty() || password.contains(&0) || password.len() >= crypt::MAX_PASSPHRASE {
        return Err(Error::Crypt(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty password, NUL in it or 512 bytes or more",
        )));
    }
    let failure = |f| match f {
        crypt::Failure::Invalid => Error::UnsupportedHash {
            scheme: "$y$".into(),
        },
        crypt::Failure::Other(e) => Error::Crypt(e),
    };
    let setting = crypt::gensalt(b"$y$").map_err(failure)?;
    let hash = crypt::hash(password, &setting).map_err(failure)?;
    String::from_utf8(hash).map_err(|_| Error::Crypt(io::Error::other("hash is not ASCII")))
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// an attacker how much of a guessed hash was right. Lengths are not secret (each scheme
/// has a fixed one) and are compared directly.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// The `$id$` of a hash for error messages, without its salt or digest.
fn scheme_of(hash: &str) -> String {
    let prefix: String = match hash.strip_prefix('$') {
        Some(rest) => match rest.find('$') {
            Some(end) => format!("${}$", &rest[..end]),
            None => "$".to_string(),
        },
        None => "no $id$ prefix".to_string(),
    };
    prefix.chars().take(16).collect()
}

/// A name that can be looked up in a colon-separated file without matching something
/// else: no separators, and not a NIS `+`/`-` line.
fn is_plain_name(user: &str) -> bool {
    !user.is_empty() && !user.starts_with(['+', '-']) && !user.contains([':', '\n', '\0'])
}

/// The hash field of `user`'s line in /etc/shadow; `Ok(None)` if the file does not exist
/// or has no line for `user`. Reading needs root or group `shadow`.
pub fn shadow_hash(user: &str) -> Result<Option<String>, Error> {
    shadow_hash_in(Path::new(SHADOW), user)
}

/// [`shadow_hash`] in a given file. The file is parsed directly (`name:hash:...` lines)
/// rather than through NSS: nothing is loaded into a process that may hold group shadow.
pub fn shadow_hash_in(path: &Path, user: &str) -> Result<Option<String>, Error> {
    if !is_plain_name(user) {
        return Ok(None);
    }
    let unreadable = |source| Error::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(unreadable)?;
        let mut fields = line.splitn(3, |&b| b == b':');
        if fields.next() == Some(user.as_bytes()) {
            let hash = fields.next().unwrap_or(b"");
            return Ok(Some(String::from_utf8_lossy(hash).into_owned()));
        }
    }
    Ok(None)
}

/// The hash to check `user`'s password against, given the password field of their passwd
/// entry: as pam_unix decides, the shadow entry when that field is `x`, else the field
/// itself (a hash, or a lock such as `*`). `Ok(None)`: `x` but no shadow entry.
pub fn account_hash(user: &str, passwd_field: &str) -> Result<Option<String>, Error> {
    account_hash_in(Path::new(SHADOW), user, passwd_field)
}

fn account_hash_in(shadow: &Path, user: &str, passwd_field: &str) -> Result<Option<String>, Error> {
    if passwd_field == "x" {
        shadow_hash_in(shadow, user)
    } else {
        Ok(Some(passwd_field.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (hash, password). Sources: Drepper's SHA-crypt specification and `openssl passwd`
    /// for `$5$`/`$6$`; `openssl passwd -1` for `$1$`; Openwall's crypt_blowfish test
    /// vectors for `$2a$`; Apache's own bcrypt (`htpasswd -B`) for `$2y$`; Debian 12's
    /// `mkpasswd` (whois) for `$y$`, `$2b$` and the rest.
    const VECTORS: &[(&str, &str)] = &[
        (
            "$y$j9T$.cs9gEzEYBRaZiQpoeM.h0$l9gtjSt2cP9ifDnZrZetbvFfptm6W3dqdbzYkywhag6",
            "correct horse battery staple",
        ),
        (
            "$y$j9T$ji4OGmmFk/FLXaIdAleT9/$V4xJkuF3VaVQBo8kPTtdPL6z4Sza5E61O8BPiVsr435",
            "pässwörd",
        ),
        (
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "Hello world!",
        ),
        (
            "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
            "Hello world!",
        ),
        (
            "$6$rdW/uCUtBPN9FcsA$ZQRxLKLEiwgttMivVB8QoSdrmcUkARBBD0UckiWGMPbNYy.3fcnd9lkLylg9lQFMCipTOxWqTRpcsOJISCTvs.",
            "pässwörd",
        ),
        (
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
            "Hello world!",
        ),
        (
            "$5$rounds=5000$saltsaltsaltsalt$bPJpWK7vm672W79VQB0m5/jkpFJLCXVgRFgJGTHMelA",
            "correct horse battery staple",
        ),
        ("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", "password"),
        ("$1$abcdefgh$.wdCdvQsRh/VbvglujkV31", "mail pass"),
        (
            "$2b$05$k159B/XDKqnW5dm1D44UkOdILuxyLkstMZOVF3pg11EdLRrfZ3eLq",
            "hunter2",
        ),
        (
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "U*U",
        ),
        (
            "$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a",
            "U*U*U",
        ),
        (
            "$2y$05$ADtGoj0gMh0GaCl/z74kmOY23qZYSohfNV/JTKv2teZSydDWNLAhe",
            "hunter2",
        ),
        (
            "$2y$04$9vP59vsI83IqKe4XhrLXVe0ZoWxZ6ldTAhWU.yaj7uQ8RRjrJDaoO",
            "correct horse battery staple",
        ),
        ("abJnggxhB/yWI", "password"),
    ];

    #[test]
    fn accepts_the_right_password_in_every_debian_scheme() {
        for (hash, password) in VECTORS {
            assert!(
                verify(hash, password.as_bytes()).unwrap(),
                "{hash} should accept {password:?}"
            );
        }
    }

    #[test]
    fn rejects_wrong_passwords_in_every_debian_scheme() {
        for (hash, password) in VECTORS {
            let mut wrong = password.as_bytes().to_vec();
            wrong[0] ^= 0x20;
            for candidate in [&wrong[..], b"x", &password.as_bytes()[1..]] {
                assert!(
                    !verify(hash, candidate).unwrap(),
                    "{hash} should reject {:?}",
                    String::from_utf8_lossy(candidate)
                );
            }
        }
    }

    #[test]
    fn rejects_a_hash_differing_only_in_its_last_character() {
        let (hash, password) = VECTORS[0];
        let mut tampered = hash.to_string();
        tampered.pop();
        tampered.push('7');
        assert!(!verify(&tampered, password.as_bytes()).unwrap());
    }

    #[test]
    fn locked_and_empty_hashes_match_nothing() {
        let (hash, password) = VECTORS[2];
        for locked in [
            format!("!{hash}"),
            format!("*{hash}"),
            "!".into(),
            "!!".into(),
            "*".into(),
            "*LK*".into(),
            String::new(),
        ] {
            assert!(!verify(&locked, password.as_bytes()).unwrap(), "{locked}");
            assert!(!verify(&locked, b"").unwrap(), "{locked}");
        }
    }

    #[test]
    fn empty_password_never_matches_even_its_own_hash() {
        // crypt("", "$6$emptypw$") from libxcrypt.
        let hash = "$6$emptypw$TWmzQ8/uLn1BFSZ5Lkfum8lAba5vixF9Nl3Aiof.Praatq9nh0kkPuTdoVrIL6du0L6LAoadbPq.q.D7keveg/";
        assert!(!verify(hash, b"").unwrap());
    }

    #[test]
    fn passwords_with_nul_or_over_511_bytes_never_match() {
        let (hash, password) = VECTORS[7];
        let mut with_nul = password.as_bytes().to_vec();
        with_nul.push(0);
        assert!(!verify(hash, &with_nul).unwrap());
        assert!(!verify(hash, &[b'a'; 512]).unwrap());
    }

    #[test]
    fn bcrypt_ignores_bytes_after_the_72nd_as_the_scheme_does() {
        let hash = "$2b$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i";
        let long = format!("{}tail", "x".repeat(72));
        assert!(verify(hash, long.as_bytes()).unwrap());
        assert!(verify(hash, "x".repeat(72).as_bytes()).unwrap());
        assert!(!verify(hash, "x".repeat(71).as_bytes()).unwrap());
    }

    #[test]
    fn unknown_schemes_are_a_permanent_error_naming_only_the_scheme() {
        for (hash, scheme) in [
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "$argon2id$",
            ),
            ("$zz$salt$digest", "$zz$"),
            ("x", "no $id$ prefix"),
        ] {
            match verify(hash, b"secret") {
                Err(e @ Error::UnsupportedHash { .. }) => {
                    assert!(!e.is_temporary());
                    assert!(e.to_string().contains(scheme), "{e}");
                    assert!(!e.to_string().contains("digest"), "{e}");
                }
                other => panic!("{hash}: {other:?}"),
            }
        }
    }

    #[test]
    fn hash_password_makes_fresh_yescrypt_hashes_that_verify() {
        let a = hash_password(b"s3cret pass").unwrap();
        let b = hash_password(b"s3cret pass").unwrap();
        assert!(a.starts_with("$y$"), "{a}");
        assert_ne!(a, b, "salts must differ");
        assert!(verify(&a, b"s3cret pass").unwrap());
        assert!(!verify(&a, b"s3cret pasS").unwrap());
        assert!(hash_password(b"").is_err());
        assert!(hash_password(b"a\0b").is_err());
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"xbc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rqmail-passwd-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const SHADOW_TEXT: &str = "root:*:19000:0:99999:7:::\n\
        alice:$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/:19000:0:99999:7:::\n\
        bob:!$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/:19000:0:99999:7:::\n\
        carol::19000:0:99999:7:::\n\
        dave\n\
        +nis:$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/:::::::\n";

    #[test]
    fn finds_the_hash_field_of_the_exact_name() {
        let dir = scratch("find");
        let shadow = dir.join("shadow");
        std::fs::write(&shadow, SHADOW_TEXT).unwrap();
        let hash = |user| shadow_hash_in(&shadow, user).unwrap();
        assert_eq!(
            hash("alice").as_deref(),
            Some("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/")
        );
        assert_eq!(
            hash("bob").as_deref(),
            Some("!$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/")
        );
        assert_eq!(hash("carol").as_deref(), Some(""));
        assert_eq!(hash("dave").as_deref(), Some(""));
        for absent in [
            "ali",
            "alice:$1$saltsalt",
            "eve",
            "",
            "+nis",
            "-nis",
            "a\nb",
        ] {
            assert_eq!(hash(absent), None, "{absent:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_shadow_file_means_no_entry() {
        let dir = scratch("missing");
        assert_eq!(shadow_hash_in(&dir.join("shadow"), "alice").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unreadable_shadow_file_is_a_temporary_error() {
        // A directory opens but cannot be read, even by root (EISDIR).
        let dir = scratch("unreadable");
        match shadow_hash_in(&dir, "alice") {
            Err(e @ Error::Unreadable { .. }) => assert!(e.is_temporary()),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn account_hash_reads_shadow_only_for_x() {
        let dir = scratch("account");
        let shadow = dir.join("shadow");
        std::fs::write(&shadow, SHADOW_TEXT).unwrap();
        assert_eq!(
            account_hash_in(&shadow, "alice", "x").unwrap().as_deref(),
            Some("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/")
        );
        assert_eq!(account_hash_in(&shadow, "eve", "x").unwrap(), None);
        assert_eq!(
            account_hash_in(&shadow, "alice", "*").unwrap().as_deref(),
            Some("*")
        );
        assert_eq!(
            account_hash_in(&dir.join("none"), "frank", "abJnggxhB/yWI")
                .unwrap()
                .as_deref(),
            Some("abJnggxhB/yWI")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
