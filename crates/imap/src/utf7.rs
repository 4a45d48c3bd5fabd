//! Mailbox names in modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for itself,
//! `&` is `&-`, and other characters are UTF-16 in modified base64 (`,` for `/`) between
//! `&` and `-`.
//!
//! Folder names are kept on disk as they travel (the Maildir++ custom that Courier and
//! Dovecot follow), so the server only checks names from clients, turns 8-bit UTF-8 names
//! into modified UTF-7, and encodes names that other tools left on disk in UTF-8.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// `name` (UTF-8) in modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut units: Vec<u16> = Vec::new();
    let flush = |units: &mut Vec<u16>, out: &mut String| {
        if units.is_empty() {
            return;
        }
        out.push('&');
        let mut bits = 0u32;
        let mut nbits = 0;
        for &u in units.iter() {
            bits = (bits << 16) | u32::from(u);
            nbits += 16;
            while nbits >= 6 {
                nbits -= 6;
                out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
            }
        }
        if nbits > 0 {
            out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
        }
        out.push('-');
        units.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut units, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut units, &mut out);
    out
}

/// The UTF-8 form of a modified UTF-7 name; `None` if it is not valid modified UTF-7
/// (8-bit or control bytes, bad base64, an encoded printable character, `&` unclosed).
pub fn decode(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..0x7f).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let end = i + 1 + bytes[i + 1..].iter().position(|&c| c == b'-')?;
        let run = &bytes[i + 1..end];
        i = end + 1;
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let mut units = Vec::new();
        let mut bits = 0u32;
        let mut nbits = 0;
        for &c in run {
            bits = (bits << 6) | value(c)?;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push(((bits >> nbits) & 0xffff) as u16);
            }
        }
        // Leftover bits must be zero padding of less than one unit.
        if nbits >= 6 || bits & ((1 << nbits) - 1) != 0 || units.is_empty() {
            return None;
        }
        let text = String::from_utf16(&units).ok()?;
        if text.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&text);
    }
    Some(out)
}

/// A mailbox name from a client as kept on disk: ASCII names must be valid modified UTF-7;
/// UTF-8 names (which some clients send) are encoded. `None` for anything else.
pub fn from_client(name: &[u8]) -> Option<String> {
    if name.is_ascii() {
        let name = std::str::from_utf8(name).ok()?;
        decode(name)?;
        Some(name.to_string())
    } else {
        let name = std::str::from_utf8(name).ok()?;
        if name.chars().any(char::is_control) {
            return None;
        }
        Some(encode(name))
    }
}

/// A name found on disk as sent to clients: modified UTF-7 as it is, UTF-8 encoded.
pub fn to_client(name: &str) -> String {
    if name.is_ascii() {
        name.to_string()
    } else {
        encode(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3501_examples_round_trip() {
        let name = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(encode(name), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(), name);
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").unwrap(), "Tom & Jerry");
        assert_eq!(encode("Entw\u{fc}rfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").unwrap(), "Entw\u{fc}rfe");
        // A character outside the BMP goes as a surrogate pair.
        let emoji = "a\u{1f600}";
        assert_eq!(decode(&encode(emoji)).unwrap(), emoji);
    }

    #[test]
    fn invalid_names_are_refused() {
        assert!(decode("&Jjo!").is_none()); // unclosed
        assert!(decode("&U,BTFw").is_none()); // unclosed
        assert!(decode("&AGE-").is_none()); // encodes "a", printable
        assert!(decode("&U,BTF2-").is_none()); // non-zero padding bits
        assert!(decode("caf\u{e9}").is_none());
        assert_eq!(from_client("caf\u{e9}".as_bytes()).unwrap(), "caf&AOk-");
        assert_eq!(from_client(b"Sent").unwrap(), "Sent");
        assert!(from_client(b"bad&").is_none());
        assert!(from_client(b"\xff").is_none());
        assert_eq!(to_client("caf\u{e9}"), "caf&AOk-");
        assert_eq!(to_client("caf&AOk-"), "caf&AOk-");
    }
}
