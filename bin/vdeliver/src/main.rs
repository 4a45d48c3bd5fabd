//! rqmail-vdeliver: delivers one message to a virtual user, run by rqmail-local from the
//! domain account's `.qmail-default` as `|/path/to/bin/rqmail-vdeliver`.
//!
//! It takes the virtual box from `$EXT` and the domain from `$HOST`, looks the box up in
//! `$HOME/DOMAIN/boxes.cdb` and delivers the message (after `$RPLINE` and `$DTLINE`) into
//! each target mailbox's Maildir, within its Maildir++ quota, then queues a copy (after
//! `$DTLINE`) to every forward address, with `$NEWSENDER` as sender. Exit codes are those
//! of a .qmail program: 0 delivered, 100 no such box (#5.1.1), 111 try again later (a full
//! mailbox is #4.2.2); the text on stdout goes into the delivery report.
#![forbid(unsafe_code)]

use rqmail_mailbox::quota::Quota;
use rqmail_virtual::Target;
use std::io::{Cursor, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// The Maildir's quota: `bytes` from the domain's users file, and a message limit (`C`)
/// if its `maildirsize` has one, kept rather than dropped by the recount.
fn quota_of(maildir: &std::path::Path, bytes: u64) -> Quota {
    Quota {
        bytes,
        count: rqmail_mailbox::quota::limit(maildir).map_or(0, |q| q.count),
    }
}

fn main() -> ExitCode {
    let (code, text) = run();
    if !text.is_empty() {
        let mut out = std::io::stdout();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
    ExitCode::from(code)
}

fn temporary(text: impl Into<String>) -> (u8, String) {
    (111, text.into())
}

fn run() -> (u8, String) {
    let ext = env("EXT").to_ascii_lowercase();
    let host = env("HOST").to_ascii_lowercase();
    if !rqmail_virtual::valid_domain(&host) {
        return (100, format!("Bad HOST {host:?}. (#5.1.1)"));
    }
    let home = match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h),
        None => return temporary("HOME is not set. (#4.3.0)"),
    };
    let dir = home.join(&host);
    let targets = match rqmail_virtual::lookup_box(&dir, &ext) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return (
                100,
                format!("Sorry, no mailbox here by that name: {ext}@{host}. (#5.1.1)"),
            );
        }
        Err(e) => {
            return temporary(format!(
                "Unable to read {}/{}: {e}. (#4.3.0)",
                dir.display(),
                rqmail_virtual::BOXES_CDB
            ));
        }
    };
    let mut message = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut message) {
        return temporary(format!("Unable to read the message: {e}. (#4.3.0)"));
    }
    let mut prefix = env("RPLINE").into_bytes();
    prefix.extend_from_slice(env("DTLINE").as_bytes());
    let size = (prefix.len() + message.len()) as u64;
    // Check every quota before writing anything, so a full mailbox defers the whole
    // delivery without leaving copies in the others.
    let mailboxes: Vec<(String, u64)> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Mailbox { name, quota } => Some((name.clone(), *quota)),
            Target::Forward(_) => None,
        })
        .collect();
    for (name, quota) in &mailboxes {
        let maildir = rqmail_virtual::user_dir(&dir, name).join("Maildir");
        match rqmail_mailbox::quota::fits(&maildir, &quota_of(&maildir, *quota), size) {
            Ok(true) => {}
            Ok(false) => {
                return temporary(format!(
                    "The mailbox of {name}@{host} is full: mailbox full (quota {quota} bytes). (#4.2.2)"
                ));
            }
            Err(e) => {
                return temporary(format!(
                    "Unable to check the quota of {name}@{host}: {e}. (#4.3.0)"
                ));
            }
        }
    }
    for (name, quota) in &mailboxes {
        let maildir = rqmail_virtual::user_dir(&dir, name).join("Maildir");
        let mut cursor = Cursor::new(&message[..]);
        if let Err(e) = rqmail_mailbox::deliver_maildir(&maildir, &prefix, &mut cursor) {
            return temporary(e.text);
        }
        // The message is delivered; a stale maildirsize is recounted later.
        let _ = rqmail_mailbox::quota::add(&maildir, &quota_of(&maildir, *quota), size);
    }
    let forwards: Vec<&[u8]> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Forward(a) => Some(a.as_bytes()),
            Target::Mailbox { .. } => None,
        })
        .collect();
    if !forwards.is_empty() {
        let rqmail_home = match rqmail_control::home() {
            Ok(h) => h,
            Err(e) => return temporary(format!("Unable to find the rqmail home: {e}. (#4.3.0)")),
        };
        let mut copy = env("DTLINE").into_bytes();
        copy.extend_from_slice(&message);
        let sender = std::env::var("NEWSENDER").unwrap_or_else(|_| env("SENDER"));
        if let Err(e) =
            rqmail_qfiles::client::queue_message(&rqmail_home, &copy, sender.as_bytes(), &forwards)
        {
            return temporary(format!("Unable to forward the message: {e}"));
        }
    }
    (0, String::new())
}
