//! The bounce file (one paragraph per failed recipient) and the QSBMF bounce message
//! built from it when a message is finished.

use crate::config::Config;
use std::io::{self, Read};

/// Messages up to this size are returned whole in a bounce; larger ones by their header
/// only, so a bounce never carries a huge attachment back.
pub const RETURN_WHOLE_MAX: u64 = 128 * 1024;

/// One paragraph of `bounce/N`: `<recipient>:` then the report, with no blank lines
/// inside (they become `/`), then a blank line.
pub fn paragraph(recipient: &[u8], report: &[u8]) -> Vec<u8> {
    let mut out = b"<".to_vec();
    out.extend(recipient.iter().map(|&b| if b == b'\n' { b'_' } else { b }));
    out.extend_from_slice(b">:\n");
    let mut text = report.to_vec();
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    for line in text[..text.len() - 1].split(|&b| b == b'\n') {
        if line.is_empty() {
            out.push(b'/');
        } else {
            out.extend_from_slice(line);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// What to do with a finished message's bounce file.
#[derive(Debug, PartialEq, Eq)]
pub enum BounceKind {
    /// Bounce to the original sender, from `<>`.
    Single {
        /// The original sender.
        to: Vec<u8>,
    },
    /// A bounce bounced: send it to the postmaster, from `#@[]`.
    Double {
        /// `doublebounceto@doublebouncehost`.
        to: Vec<u8>,
    },
    /// A double bounce bounced: discard.
    Triple,
}

/// The original sender with a VERP request (`-@[]`) reduced: `owner-@host-@[]` -> `owner-@host`.
pub fn reduce_verp(sender: &[u8]) -> Vec<u8> {
    match sender.strip_suffix(b"-@[]") {
        Some(s) => s.to_vec(),
        None => sender.to_vec(),
    }
}

/// Decides who gets the bounce of a message from `sender`.
pub fn kind(config: &Config, sender: &[u8]) -> BounceKind {
    if sender == b"#@[]" {
        BounceKind::Triple
    } else if sender.is_empty() {
        let to = format!("{}@{}", config.doublebounceto, config.doublebouncehost);
        BounceKind::Double {
            to: to.into_bytes(),
        }
    } else {
        BounceKind::Single {
            to: reduce_verp(sender),
        }
    }
}

/// Builds the QSBMF bounce: header, the "Hi. This is the" paragraph, the recipient
/// paragraphs from the bounce file, a break line, then the original message (or its header
/// when large) after a `Return-Path:` line.
pub fn message(
    config: &Config,
    original_sender: &[u8],
    double: bool,
    failures: &[u8],
    original: &mut (impl Read + ?Sized),
    original_size: u64,
    now: i64,
) -> io::Result<Vec<u8>> {
    let sender = reduce_verp(original_sender);
    let mut m = Vec::with_capacity(failures.len() + 2048);
    let date = rqmail_date::Utc::from_unix(now).received();
    m.extend_from_slice(format!("Date: {date}\n").as_bytes());
    // Every address in the header is quoted where it is not a dot-atom (`"a b"@x`), so
    // that a reader parses it as the address it is.
    let from = format!("{}@{}", config.bouncefrom, config.bouncehost);
    m.extend_from_slice(b"From: ");
    m.extend(rqmail_address::quote(from.as_bytes()));
    m.extend_from_slice(b"\nTo: ");
    if double {
        let to = format!("{}@{}", config.doublebounceto, config.doublebouncehost);
        m.extend(rqmail_address::quote(to.as_bytes()));
    } else {
        m.extend(rqmail_address::quote(&sender));
    }
    m.extend_from_slice(b"\nSubject: failure notice\n\n");
    m.extend_from_slice(
        format!(
            "Hi. This is the rqmail-send program at {}.\n",
            config.bouncehost
        )
        .as_bytes(),
    );
    if double {
        m.extend_from_slice(
            b"I tried to deliver a bounce message to this address, but the bounce bounced!\n\n",
        );
    } else {
        m.extend_from_slice(
            b"I'm afraid I wasn't able to deliver your message to the following addresses.\n\
              This is a permanent error; I've given up. Sorry it didn't work out.\n\n",
        );
    }
    m.extend_from_slice(failures);
    let whole = original_size <= RETURN_WHOLE_MAX;
    if double {
        m.extend_from_slice(b"--- Below this line is the original bounce.\n\n");
    } else if whole {
        m.extend_from_slice(b"--- Below this line is a copy of the message.\n\n");
    } else {
        m.extend_from_slice(b"--- Below this line is the header of the message.\n\n");
    }
    m.extend_from_slice(b"Return-Path: <");
    m.extend(rqmail_address::quote(&sender));
    m.extend_from_slice(b">\n");
    if whole {
        original.read_to_end(&mut m)?;
    } else {
        let mut reader = io::BufReader::new(original);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = io::BufRead::read_until(&mut reader, b'\n', &mut line)?;
            if n == 0 || line == b"\n" {
                break;
            }
            m.extend_from_slice(&line);
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_have_no_blank_lines() {
        assert_eq!(
            paragraph(b"a@b", b"first\n\nsecond"),
            b"<a@b>:\nfirst\n/\nsecond\n\n".to_vec()
        );
        assert_eq!(paragraph(b"a@b", b"x\n"), b"<a@b>:\nx\n\n".to_vec());
    }

    #[test]
    fn reduces_verp_senders() {
        assert_eq!(reduce_verp(b"list-owner-@h-@[]"), b"list-owner-@h");
        assert_eq!(reduce_verp(b"a@b"), b"a@b");
    }
}
