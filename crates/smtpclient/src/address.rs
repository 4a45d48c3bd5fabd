//! Envelope addresses as they go into MAIL FROM and RCPT TO: the local part quoted where it
//! is not a dot-atom (qmail's quote.c), and addresses no SMTP command may carry refused.
//! Only the local part can be quoted; a domain is written as it is, so one that is not a
//! host name or an address literal is refused rather than sent.

/// What stops an address from being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsendable {
    /// A control byte (CR, LF, NUL, ...): RFC 5321 has no way to carry it, and a CR or LF
    /// would end the command and start another one.
    Control,
    /// 8-bit bytes, and the server does not offer SMTPUTF8.
    NeedsSmtpUtf8,
    /// The domain is not a host name or an address literal (`rqmail_smtp::domain`): it
    /// cannot be quoted, and a `>` or space in it would end the path and add parameters
    /// (`a@x> NOTIFY=SUCCESS`).
    Domain,
}

/// True if the address has 8-bit bytes (then it needs SMTPUTF8).
pub fn is_non_ascii(address: &[u8]) -> bool {
    address.iter().any(|&b| b >= 0x80)
}

/// Checks that `address` can be sent to a server that does (or does not) offer SMTPUTF8.
pub fn check(address: &[u8], smtputf8: bool) -> Result<(), Unsendable> {
    if address.iter().any(|&b| b < 32 || b == 127) {
        return Err(Unsendable::Control);
    }
    if !rqmail_smtp::domain::address_is_valid(address) {
        return Err(Unsendable::Domain);
    }
    if is_non_ascii(address) && !smtputf8 {
        return Err(Unsendable::NeedsSmtpUtf8);
    }
    Ok(())
}

/// Quotes the local part (the text before the last `@`) with `"…"` where it is not a
/// dot-atom ([`rqmail_address::quote`]). UTF-8 bytes count as atom text (RFC 6531 §3.3);
/// they are only ever sent with SMTPUTF8. Callers refuse control bytes first (`check`).
pub fn quote(address: &[u8]) -> Vec<u8> {
    rqmail_address::quote(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_local_parts_that_are_not_dot_atoms() {
        assert_eq!(quote(b"bob@example.com"), b"bob@example.com");
        assert_eq!(quote(b""), b"");
        assert_eq!(quote(b"a b@x"), b"\"a b\"@x");
        assert_eq!(quote(b"a..b@x"), b"\"a..b\"@x");
        assert_eq!(quote(b".a@x"), b"\".a\"@x");
        assert_eq!(quote(b"a\"q\\@x"), b"\"a\\\"q\\\\\"@x");
        assert_eq!(quote(b"a@b@x"), b"\"a@b\"@x");
        assert_eq!(quote("j\u{f6}rg@x".as_bytes()), "j\u{f6}rg@x".as_bytes());
    }

    #[test]
    fn refuses_control_bytes_and_utf8_without_smtputf8() {
        assert_eq!(check(b"a\r\nRSET@x", true), Err(Unsendable::Control));
        assert_eq!(check(b"a\0@x", true), Err(Unsendable::Control));
        assert_eq!(
            check("j\u{f6}rg@x".as_bytes(), false),
            Err(Unsendable::NeedsSmtpUtf8)
        );
        assert_eq!(check("j\u{f6}rg@x".as_bytes(), true), Ok(()));
        assert_eq!(check(b"a b@x", false), Ok(()));
    }

    #[test]
    fn refuses_domains_that_are_not_host_names_and_quotes_local_parts() {
        assert_eq!(check(b"a@x> NOTIFY=SUCCESS", true), Err(Unsendable::Domain));
        assert_eq!(check(b"a@\"x\"", true), Err(Unsendable::Domain));
        assert_eq!(check(b"a@", true), Err(Unsendable::Domain));
        assert_eq!(check(b"#@[]", false), Ok(()));
        assert_eq!(check(b"", false), Ok(()));
        // A local part that looks like parameters is quoted, so it cannot become any.
        let local = b"a> NOTIFY=SUCCESS@x.org";
        assert_eq!(check(local, false), Ok(()));
        assert_eq!(quote(local), b"\"a> NOTIFY=SUCCESS\"@x.org");
    }
}
