//! Recipient checks at RCPT time: relay control (rcpthosts, morercpthosts.cdb, RELAYCLIENT,
//! AUTH) and, for mail that stays here, whether the mailbox exists, decided exactly as the
//! local delivery would decide it, so unknown users are refused now and never bounced later.
//! Virtual users are checked in their domain's boxes.cdb (rqmail-virtual).

use crate::settings::Settings;
use rqmail_route::{LOCAL, classify};

/// What to answer to one RCPT.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 250.
    Accept,
    /// 553 5.7.1: not a domain this host accepts mail for, and the client may not relay.
    NoRelay,
    /// 550 5.1.1: a local address with no mailbox.
    NoMailbox,
    /// 451 4.3.0: the user database could not be read.
    TryLater,
}

/// Whether `domain` (lowercase) is in rcpthosts (exact or `.suffix`) or morercpthosts.cdb.
pub fn accepted_domain(settings: &Settings, domain: &str) -> bool {
    let mut keys = vec![domain.to_string()];
    for (i, c) in domain.char_indices() {
        if c == '.' {
            keys.push(domain[i..].to_string());
        }
    }
    if keys.iter().any(|k| settings.rcpthosts.contains(k)) {
        return true;
    }
    if let Some(path) = &settings.morercpthosts
        && let Ok(db) = cdb::CDB::open(path)
    {
        return keys.iter().any(|k| db.get(k.as_bytes()).is_some());
    }
    false
}

/// Checks one recipient. `may_relay` is true for RELAYCLIENT and authenticated clients.
pub fn check(settings: &Settings, address: &[u8], may_relay: bool) -> Verdict {
    let domain = rqmail_smtp::command::domain(address);
    if !address.contains(&b'@') {
        // qmail accepts these; the scheduler appends envnoathost.
    } else if !may_relay && !accepted_domain(settings, &domain) {
        return Verdict::NoRelay;
    }
    let (channel, rewritten) = classify(&settings.routing, address);
    if channel != LOCAL {
        return Verdict::Accept;
    }
    let at = rewritten
        .iter()
        .rposition(|&b| b == b'@')
        .unwrap_or(rewritten.len());
    let local = &rewritten[..at];
    if local.is_empty() {
        return Verdict::Accept; // the trash address
    }
    match rqmail_users::resolve(&settings.home, local) {
        Ok(entry) => {
            // A virtual domain's box: its account's .qmail-default runs rqmail-vdeliver,
            // which knows the box from boxes.cdb (world-readable, no hashes).
            let host = String::from_utf8_lossy(rewritten.get(at + 1..).unwrap_or_default());
            // Box names are UTF-8; an extension that is not is left to the delivery.
            if entry.dash == b"-"
                && let Ok(ext) = std::str::from_utf8(&entry.ext)
                && let Some(exists) = rqmail_virtual::box_exists(&entry.home, &host, ext)
            {
                return if exists {
                    Verdict::Accept
                } else {
                    Verdict::NoMailbox
                };
            }
            match rqmail_dotqmail::mailbox_exists(&entry.home, &entry.dash, &entry.ext) {
                Some(false) => Verdict::NoMailbox,
                _ => Verdict::Accept,
            }
        }
        Err(_) => Verdict::TryLater,
    }
}
