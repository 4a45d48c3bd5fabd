//! The one call into libxcrypt: `crypt_rn`, which hashes a passphrase with the scheme,
//! cost and salt of an existing hash, and reports failure as NULL plus errno.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::io;

/// `CRYPT_MAX_PASSPHRASE_SIZE` in <crypt.h>, counting the terminating NUL: crypt_rn
/// refuses longer phrases.
pub const MAX_PASSPHRASE: usize = 512;

/// `sizeof(struct crypt_data)` in libxcrypt 4 (<crypt.h>: 384 + 384 + 512 + 767 + 1 +
/// 30720). crypt_rn is told the real size and refuses a buffer that is too small (ERANGE),
/// so a future, larger struct fails safely as a temporary error instead of overflowing.
const DATA_SIZE: usize = 32768;

// SAFETY: these declarations match libxcrypt's <crypt.h> prototypes exactly; every call
// below passes NUL-terminated strings and a buffer of the size it states.
#[link(name = "crypt")]
unsafe extern "C" {
    /// `char *crypt_rn(const char *phrase, const char *setting, void *data, int size)`.
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;

    /// `char *crypt_gensalt_rn(const char *prefix, unsigned long count, const char *rbytes,
    /// int nrbytes, char *output, int output_size)`.
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: std::ffi::c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;
}

/// `CRYPT_GENSALT_OUTPUT_SIZE` in <crypt.h>.
const GENSALT_SIZE: usize = 192;

/// A fresh setting for `prefix` (e.g. `$y$`) at the scheme's default cost, salted from the
/// operating system's random source (libxcrypt reads it itself when given no bytes).
pub fn gensalt(prefix: &[u8]) -> Result<Vec<u8>, Failure> {
    if prefix.contains(&0) {
        return Err(Failure::Invalid);
    }
    let mut prefix_c = prefix.to_vec();
    prefix_c.push(0);
    let mut out = vec![0u8; GENSALT_SIZE];
    // SAFETY: `prefix_c` is NUL-terminated; a NULL `rbytes` with `nrbytes` 0 asks libxcrypt
    // for its own random bytes; `out` is GENSALT_SIZE writable bytes and that size is
    // passed, so crypt_gensalt_rn writes only inside it. It returns NULL or `out`.
    let result = unsafe {
        crypt_gensalt_rn(
            prefix_c.as_ptr().cast(),
            0,
            std::ptr::null(),
            0,
            out.as_mut_ptr().cast(),
            GENSALT_SIZE as c_int,
        )
    };
    if result.is_null() {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::InvalidInput {
            Err(Failure::Invalid)
        } else {
            Err(Failure::Other(err))
        };
    }
    // SAFETY: a non-NULL result is a NUL-terminated string in `out`, which is alive.
    Ok(unsafe { CStr::from_ptr(result) }.to_bytes().to_vec())
}

/// Why crypt_rn produced no hash.
#[derive(Debug)]
pub enum Failure {
    /// EINVAL: the setting names a scheme libxcrypt lacks, or is malformed.
    Invalid,
    /// Anything else (ENOMEM for yescrypt's memory, ERANGE, ...).
    Other(io::Error),
}

/// Overwrites a buffer that held a password or state derived from it. `black_box` keeps
/// the compiler from dropping the writes as dead stores to memory about to be freed.
pub fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

/// The crypt(3) hash of `phrase` under `setting` (a whole stored hash will do: only its
/// scheme, cost and salt are read). Neither may contain NUL; `phrase` must be shorter than
/// [`MAX_PASSPHRASE`].
pub fn hash(phrase: &[u8], setting: &[u8]) -> Result<Vec<u8>, Failure> {
    if phrase.contains(&0) || setting.contains(&0) || phrase.len() >= MAX_PASSPHRASE {
        return Err(Failure::Invalid);
    }
    let mut phrase_c = Vec::with_capacity(phrase.len() + 1);
    phrase_c.extend_from_slice(phrase);
    phrase_c.push(0);
    let mut setting_c = Vec::with_capacity(setting.len() + 1);
    setting_c.extend_from_slice(setting);
    setting_c.push(0);
    // Zeroed, as libxcrypt requires of a fresh `struct crypt_data` (its `initialized`).
    let mut data = vec![0u8; DATA_SIZE];
    // SAFETY: both strings are NUL-terminated with no interior NUL (checked above) and
    // outlive the call; `data` is DATA_SIZE writable bytes (struct crypt_data is all
    // `char`, so alignment 1 suffices) and DATA_SIZE is passed as its size, so crypt_rn
    // writes only inside it. It returns NULL or a pointer into `data`.
    let out = unsafe {
        crypt_rn(
            phrase_c.as_ptr().cast(),
            setting_c.as_ptr().cast(),
            data.as_mut_ptr().cast(),
            DATA_SIZE as c_int,
        )
    };
    let result = if out.is_null() {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::InvalidInput {
            Err(Failure::Invalid)
        } else {
            Err(Failure::Other(err))
        }
    } else {
        // SAFETY: a non-NULL result is a NUL-terminated string in `data`'s `output` field
        // (at most 384 bytes), and `data` is alive and untouched until it is copied here.
        Ok(unsafe { CStr::from_ptr(out) }.to_bytes().to_vec())
    };
    wipe(&mut phrase_c);
    wipe(&mut data);
    result
}
