//! rqmail-vdeliver: delivers one message to a virtual user, run by rqmail-local from the
//! domain account's `.qmail-default` as `|/path/to/bin/rqmail-vdeliver`.
//!
//! It takes the virtual box from `$EXT` and the domain from `$HOST`, looks the box up in
//! `$HOME/DOMAIN/boxes.cdb` and delivers the message (after `$RPLINE` and `$DTLINE`) into
//! each target mailbox's Maildir, within its Maildir++ quota, then queues a copy (after
//! `$DTLINE`) to every forward address, with `$NEWSENDER` as sender. Exit codes are those
//! of a .qmail program: 0 delivered, 100 no such box (#5.1.1), 111 try again later (a full
//! mailbox is #4.2.2); the text on stdout goes into the delivery report.
//!
//! The message is copied through a fixed buffer, never held whole: read again from stdin
//! for each copy when stdin is a file (as rqmail-local gives it), else, when a pipe must be
//! read more than once, from a scratch copy in the first Maildir's `tmp/`. A copy is held
//! to its quota as it is written, since a pipe's size is known only at its end.
#![forbid(unsafe_code)]

use rqmail_mailbox::WithinError;
use rqmail_mailbox::quota::Quota;
use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};
use rqmail_qfiles::client::Submission;
use rqmail_virtual::Target;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
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
    (EXIT_TEMPORARY, text.into())
}

fn run() -> (u8, String) {
    let ext = env("EXT").to_ascii_lowercase();
    let host = env("HOST").to_ascii_lowercase();
    if !rqmail_virtual::valid_domain(&host) {
        return (EXIT_PERMANENT, format!("Bad HOST {host:?}. (#5.1.1)"));
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
                EXIT_PERMANENT,
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
    let mut prefix = env("RPLINE").into_bytes();
    prefix.extend_from_slice(env("DTLINE").as_bytes());
    let mailboxes: Vec<(String, u64)> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Mailbox { name, quota } => Some((name.clone(), *quota)),
            Target::Forward(_) => None,
        })
        .collect();
    let forwards: Vec<&[u8]> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Forward(a) => Some(a.as_bytes()),
            Target::Mailbox { .. } => None,
        })
        .collect();
    let maildir_of = |name: &str| rqmail_virtual::user_dir(&dir, name).join("Maildir");
    // Every copy is written through a fixed buffer, never from memory: messages may be
    // as large as databytes allows (or larger, when it is 0).
    let readings = mailboxes.len() + usize::from(!forwards.is_empty());
    let mut message = match Message::from_stdin() {
        Ok(m) => m,
        Err(e) => return temporary(format!("Unable to read the message: {e}. (#4.3.0)")),
    };
    if readings > 1
        && let Message::Stream(stdin) = &mut message
    {
        // A pipe read once: the copies come from a scratch file in the first Maildir.
        match rqmail_mailbox::spool(&maildir_of(&mailboxes[0].0), stdin) {
            Ok((file, size)) => {
                message = Message::File {
                    file,
                    start: 0,
                    size,
                }
            }
            Err(e) => return temporary(e.text),
        }
    }
    // With the size known, check every quota before writing anything, so a full mailbox
    // defers the whole delivery without leaving copies in the others.
    if let Message::File { size, .. } = &message {
        let size = prefix.len() as u64 + size;
        for (name, quota) in &mailboxes {
            let maildir = maildir_of(name);
            match rqmail_mailbox::quota::fits(&maildir, &quota_of(&maildir, *quota), size) {
                Ok(true) => {}
                Ok(false) => return full(name, &host, *quota),
                Err(e) => return quota_error(name, &host, e),
            }
        }
    }
    for (name, quota) in &mailboxes {
        let maildir = maildir_of(name);
        let q = quota_of(&maildir, *quota);
        // Held to the quota as the copy is written, too: a message read from a pipe has
        // no size until its end, and another delivery may have used the room meanwhile.
        let mut room = match rqmail_mailbox::quota::Room::new(&maildir, &q) {
            Ok(r) => r,
            Err(e) => return quota_error(name, &host, e),
        };
        if let Err(e) = message.rewind() {
            return temporary(format!("Unable to rewind the message: {e}. (#4.3.0)"));
        }
        let size = match rqmail_mailbox::deliver_maildir_within(
            &maildir,
            &prefix,
            &mut message,
            &mut |n| room.allows(n),
        ) {
            Ok((_, size)) => size,
            Err(WithinError::TooLarge) => return full(name, &host, *quota),
            Err(WithinError::Failed(e)) => return temporary(e.text),
        };
        // The message is delivered; a stale maildirsize is recounted later.
        let _ = rqmail_mailbox::quota::add(&maildir, &q, size);
    }
    if !forwards.is_empty() {
        let rqmail_home = match rqmail_control::home() {
            Ok(h) => h,
            Err(e) => return temporary(format!("Unable to find the rqmail home: {e}. (#4.3.0)")),
        };
        if let Err(e) = message.rewind() {
            return temporary(format!("Unable to rewind the message: {e}. (#4.3.0)"));
        }
        let sender = std::env::var("NEWSENDER").unwrap_or_else(|_| env("SENDER"));
        if let Err(e) = forward(&rqmail_home, &mut message, sender.as_bytes(), &forwards) {
            return temporary(format!("Unable to forward the message: {e}"));
        }
    }
    (0, String::new())
}

fn full(name: &str, host: &str, quota: u64) -> (u8, String) {
    temporary(format!(
        "The mailbox of {name}@{host} is full: mailbox full (quota {quota} bytes). (#4.2.2)"
    ))
}

fn quota_error(name: &str, host: &str, e: std::io::Error) -> (u8, String) {
    temporary(format!(
        "Unable to check the quota of {name}@{host}: {e}. (#4.3.0)"
    ))
}

/// Queues `$DTLINE` and the message to the forward addresses, copied through a fixed
/// buffer into rqmail-queue.
fn forward(
    home: &Path,
    message: &mut Message,
    sender: &[u8],
    recipients: &[&[u8]],
) -> Result<u32, String> {
    let mut sub = Submission::start(home)
        .map_err(|_| "unable to run the queue program (#4.3.0)".to_string())?;
    sub.write_body(env("DTLINE").as_bytes());
    // Writes to a submission do not fail (finish reports them), so an error is a read's.
    std::io::copy(message, &mut sub)
        .map_err(|e| format!("unable to read the message: {e} (#4.3.0)"))?;
    sub.finish(sender, recipients).map_err(|e| e.text)
}

/// The message on stdin.
enum Message {
    /// A regular file (what rqmail-local gives, the queue's copy) or a scratch copy of a
    /// pipe: read again from `start`, `size` bytes, for each copy.
    File { file: File, start: u64, size: u64 },
    /// A pipe, read once.
    Stream(std::io::Stdin),
}

impl Message {
    fn from_stdin() -> std::io::Result<Message> {
        let stdin = std::io::stdin();
        let mut file = File::from(stdin.as_fd().try_clone_to_owned()?);
        if file.metadata()?.is_file()
            && let Ok(start) = file.stream_position()
        {
            let size = file.metadata()?.len().saturating_sub(start);
            return Ok(Message::File { file, start, size });
        }
        Ok(Message::Stream(stdin))
    }

    /// Back to the start of the message, for the next copy (a pipe is read once anyway).
    fn rewind(&mut self) -> std::io::Result<()> {
        match self {
            Message::File { file, start, .. } => file.seek(SeekFrom::Start(*start)).map(|_| ()),
            Message::Stream(_) => Ok(()),
        }
    }
}

impl Read for Message {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Message::File { file, .. } => file.read(buf),
            Message::Stream(stdin) => stdin.read(buf),
        }
    }
}
