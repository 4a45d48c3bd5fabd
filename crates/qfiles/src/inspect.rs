//! What rqmail-qread and rqmail-qstat print: the queue's messages, their senders and the
//! recipients not yet done, and counts.

use crate::layout::{Queue, records};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;

/// Counts messages in the queue and those not yet preprocessed (qmail-qstat's lines).
pub fn stat(queue: &Queue, out: &mut impl Write) -> io::Result<()> {
    let messages = queue.list("mess")?.len();
    let todo = queue.list("todo")?.len();
    writeln!(out, "messages in queue: {messages}")?;
    writeln!(out, "messages in queue but not yet preprocessed: {todo}")
}

/// Lists each preprocessed message: date, number, size, sender, then each recipient,
/// marked `done` when finished (qmail-qread's layout).
pub fn read(queue: &Queue, out: &mut impl Write) -> io::Result<()> {
    let mut ids = queue.list("info")?;
    ids.sort_unstable();
    for id in ids {
        let Ok(info) = std::fs::read(queue.path("info", id)) else {
            continue;
        };
        let birth = std::fs::metadata(queue.path("info", id))
            .map(|m| m.mtime())
            .unwrap_or(0);
        let size = std::fs::metadata(queue.path("mess", id))
            .map(|m| m.len())
            .unwrap_or(0);
        let sender = records(&info)
            .find(|(_, k, _)| *k == b'F')
            .map(|(_, _, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let date = rqmail_date::Utc::from_unix(birth)
            .received()
            .replace(" -0000", " GMT");
        writeln!(out, "{date}  #{id}  {size}  <{sender}>")?;
        for channel in ["local", "remote"] {
            let Ok(data) = std::fs::read(queue.path(channel, id)) else {
                continue;
            };
            for (_, kind, recipient) in records(&data) {
                let done = if kind == b'D' { "done" } else { "" };
                writeln!(
                    out,
                    "\t{done}\t{channel}\t{}",
                    String::from_utf8_lossy(recipient)
                )?;
            }
        }
    }
    let todo = queue.list("todo")?.len();
    if todo > 0 {
        writeln!(out, "({todo} messages not yet preprocessed)")?;
    }
    Ok(())
}
