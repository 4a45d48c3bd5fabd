//! Deliveries: requests written to the spawns, their reports read back, and each
//! recipient's result recorded (qmail-send.c's DELIVERIES).

use crate::bounce;
use crate::finish::append_bounce;
use crate::passes::Pass;
use crate::schedule::{CHANNEL_NAMES, LOCAL, REMOTE};
use crate::send::{Scheduler, now};
use rqmail_log::{addr, escape, line as log};
use rqmail_qfiles::Queue;
use rqmail_route::strip_virtual_prefix;
use rqmail_spawn::{Decoded, Report, ReportDecoder, ReportStatus, encode_request};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

/// Cap on one delivery report from a spawn.
pub(crate) const REPORT_MAX: usize = 10_000;
/// One recipient's entry in a spawn's report; `None` if its status byte was mangled.
type Entry = Option<Report>;

/// A delivery running in a spawn slot.
pub(crate) struct Job {
    pub(crate) delivery: u64,
    pub(crate) pass: u64,
    /// (offset of the record, recipient) for each recipient of this delivery.
    pub(crate) items: Vec<(u64, Vec<u8>)>,
}

/// Seconds before a delivery killed from outside (a spawn's `R` report) is tried again.
const RETRY_INTERRUPTED: i64 = 10;

/// Most recipients handed to one remote delivery (one SMTP transaction).
const REMOTE_BATCH: usize = 100;

/// The domain of an address, lowercase, for grouping remote recipients.
fn domain_key(recipient: &[u8]) -> Vec<u8> {
    let at = recipient
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(recipient.len(), |i| i + 1);
    recipient[at..].to_ascii_lowercase()
}

/// The spawn side of one channel.
pub(crate) struct Channel {
    pub(crate) to: File,
    pub(crate) from: File,
    pub(crate) outbuf: Vec<u8>,
    pub(crate) reports: ReportDecoder,
    pub(crate) slots: Vec<Option<Job>>,
    pub(crate) limit: usize,
    pub(crate) busy: usize,
    pub(crate) queue: BinaryHeap<Reverse<(i64, u64)>>,
    pub(crate) passes: HashMap<u64, Pass>,
    /// Passes in the order they may take slots.
    pub(crate) order: VecDeque<u64>,
    pub(crate) alive: bool,
}

impl Scheduler {
    pub(crate) fn dispatch(&mut self) {
        for c in [LOCAL, REMOTE] {
            let ch = &mut self.channels[c];
            if !ch.alive {
                continue;
            }
            let mut idx = 0;
            while ch.busy < ch.limit && idx < ch.order.len() {
                let id = ch.order[idx];
                let Some(pass) = ch.passes.get_mut(&id) else {
                    idx += 1;
                    continue;
                };
                let Some(first) = pass.todo.pop_front() else {
                    idx += 1;
                    continue;
                };
                let Some(slot) = ch.slots.iter().position(Option::is_none) else {
                    pass.todo.push_front(first);
                    break;
                };
                let sender = spawn_sender(&pass.sender, &first.1);
                let mut items = vec![first];
                // One SMTP transaction per destination domain: the other recipients at the
                // same domain go along (not with VERP, whose sender differs per recipient).
                if c == REMOTE && !pass.sender.ends_with(b"-@[]") {
                    let domain = domain_key(&items[0].1);
                    let mut rest = VecDeque::with_capacity(pass.todo.len());
                    while let Some(item) = pass.todo.pop_front() {
                        if items.len() < REMOTE_BATCH && domain_key(&item.1) == domain {
                            items.push(item);
                        } else {
                            rest.push_back(item);
                        }
                    }
                    pass.todo = rest;
                }
                pass.outstanding += 1;
                let delivery = self.next_delivery;
                self.next_delivery += 1;
                for (_, recipient) in &items {
                    log(&format!(
                        "starting delivery {delivery}: msg {id} to {} {}",
                        CHANNEL_NAMES[c],
                        addr(recipient)
                    ));
                }
                encode_request(
                    &mut ch.outbuf,
                    slot as u8,
                    &Queue::mess_name(id),
                    &sender,
                    items.iter().map(|(_, r)| r.as_slice()),
                );
                ch.slots[slot] = Some(Job {
                    delivery,
                    pass: id,
                    items,
                });
                ch.busy += 1;
            }
        }
    }

    pub(crate) fn flush_requests(&mut self, c: usize) -> io::Result<()> {
        let ch = &mut self.channels[c];
        while !ch.outbuf.is_empty() && ch.alive {
            match ch.to.write(&ch.outbuf) {
                Ok(n) => {
                    ch.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log(&format!(
                        "alert: lost connection to {}spawn: {e}",
                        &CHANNEL_NAMES[c][..1]
                    ));
                    ch.alive = false;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn read_reports(&mut self, c: usize) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.channels[c].from.read(&mut buf) {
                Ok(0) => {
                    log(&format!(
                        "alert: lost connection to {}spawn",
                        if c == LOCAL { "l" } else { "r" }
                    ));
                    self.channels[c].alive = false;
                    // Deliveries still out will never report. They were cut off, not tried
                    // and refused: their messages go back to the front of the schedule, to
                    // be tried again at once when rqmail-send runs again, not after the
                    // next step of the retry schedule (as Postfix returns its active queue
                    // to incoming at a restart).
                    let slots: Vec<usize> = (0..self.channels[c].slots.len())
                        .filter(|&s| self.channels[c].slots[s].is_some())
                        .collect();
                    let t = now();
                    for s in slots {
                        let Some(job) = self.channels[c].slots[s].as_ref() else {
                            continue;
                        };
                        let n = job.items.len();
                        if let Some(pass) = self.channels[c].passes.get_mut(&job.pass) {
                            pass.retry = pass.retry.min(t);
                            pass.dying = false;
                        }
                        let lost = vec![
                            Some(Report::defer(
                                "lost connection to the spawn; will be tried again at once"
                            ));
                            n
                        ];
                        self.results(c, s, lost);
                    }
                    return;
                }
                Ok(n) => self.channels[c].reports.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        while let Some((slot, entries)) = self.next_report(c) {
            self.results(c, slot, entries);
        }
    }

    /// Takes one complete report off the channel's input, one entry per recipient of that
    /// slot's delivery. `None` until a whole report is there.
    fn next_report(&mut self, c: usize) -> Option<(usize, Vec<Entry>)> {
        loop {
            let ch = &mut self.channels[c];
            let slots = &ch.slots;
            let decoded = ch.reports.next(|slot| {
                slots
                    .get(usize::from(slot))
                    .and_then(|j| j.as_ref())
                    .map(|j| j.items.len())
            })?;
            match decoded {
                Decoded::Report { slot, entries } => return Some((usize::from(slot), entries)),
                Decoded::UnknownSlot(_) => {
                    log("warning: internal error: delivery report out of range");
                }
                Decoded::TooLong => {
                    log("warning: delivery report too long, will defer");
                    return None;
                }
            }
        }
    }

    fn results(&mut self, c: usize, slot: usize, entries: Vec<Entry>) {
        let ch = &mut self.channels[c];
        let Some(job) = ch.slots[slot].take() else {
            return;
        };
        ch.busy -= 1;
        let d = job.delivery;
        let Some(pass) = ch.passes.get_mut(&job.pass) else {
            return;
        };
        pass.outstanding -= 1;
        for ((offset, recipient), entry) in job.items.iter().zip(entries) {
            let Some(Report { status, text }) = entry else {
                log(&format!("delivery {d}: report mangled, will defer"));
                continue;
            };
            // A message past its lifetime gets no more tries: a temporary failure bounces.
            let give_up =
                matches!(status, ReportStatus::Temporary | ReportStatus::Interrupted) && pass.dying;
            match (status, give_up) {
                (ReportStatus::Success, _) => {
                    log(&format!("delivery {d}: success: {}", escape(&text, true)));
                    mark_done(pass, *offset);
                }
                (ReportStatus::Permanent, _)
                | (ReportStatus::Temporary | ReportStatus::Interrupted, true) => {
                    let mut report = text;
                    if give_up {
                        if !report.ends_with(b"\n") && !report.is_empty() {
                            report.push(b'\n');
                        }
                        report.extend_from_slice(
                            b"I'm not going to try again; this message has been in the queue too long.",
                        );
                    }
                    let shown = if c == LOCAL {
                        strip_virtual_prefix(&self.config.routing, recipient)
                    } else {
                        recipient.clone()
                    };
                    let paragraph = bounce::paragraph(&shown, &report);
                    if let Some(msg) = self.messages.get_mut(&job.pass) {
                        msg.bounce = true;
                    }
                    match append_bounce(&self.queue.path("bounce", job.pass), &paragraph) {
                        Ok(()) => {
                            log(&format!("delivery {d}: failure: {}", escape(&report, true)));
                            mark_done(pass, *offset);
                        }
                        Err(e) => log(&format!(
                            "alert: unable to append to bounce message: {e}; delivery {d} will be retried"
                        )),
                    }
                }
                (ReportStatus::Temporary, false) => {
                    log(&format!("delivery {d}: deferral: {}", escape(&text, true)))
                }
                (ReportStatus::Interrupted, false) => {
                    // Killed from outside, not refused: soon again, not at the schedule's
                    // next step (a floor, so that something killing every try is no loop).
                    pass.retry = pass.retry.min(now() + RETRY_INTERRUPTED);
                    log(&format!("delivery {d}: deferral: {}", escape(&text, true)));
                }
            }
        }
        let id = job.pass;
        self.maybe_finish_pass(c, id);
    }
}

/// Marks a recipient finished: its record's `T` becomes `D` in place. A failed mark only
/// means the delivery will be repeated.
fn mark_done(pass: &mut Pass, offset: u64) {
    match pass.file.write_all_at(b"D", offset) {
        Ok(()) => pass.remaining = pass.remaining.saturating_sub(1),
        Err(e) => log(&format!(
            "warning: trouble marking msg {} done: {e}; delivery will be repeated",
            pass.id
        )),
    }
}

/// The sender handed to a spawn: a VERP request `prefix-@host-@[]` becomes
/// `prefix-box=rhost@host` for recipient `box@rhost`.
pub fn spawn_sender(sender: &[u8], recipient: &[u8]) -> Vec<u8> {
    let Some(base) = sender.strip_suffix(b"-@[]") else {
        return sender.to_vec();
    };
    let Some(at) = base.iter().rposition(|&b| b == b'@') else {
        return sender.to_vec();
    };
    let (prefix, host) = (&base[..at], &base[at + 1..]);
    let mut out = prefix.to_vec();
    match recipient.iter().rposition(|&b| b == b'@') {
        Some(r) => {
            out.extend_from_slice(&recipient[..r]);
            out.push(b'=');
            out.extend_from_slice(&recipient[r + 1..]);
        }
        None => out.extend_from_slice(recipient),
    }
    out.push(b'@');
    out.extend_from_slice(host);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verp_senders_name_each_recipient() {
        assert_eq!(
            spawn_sender(b"list-owner-@lists.org-@[]", b"joe@far.net"),
            b"list-owner-joe=far.net@lists.org"
        );
        assert_eq!(spawn_sender(b"a@b", b"c@d"), b"a@b");
        assert_eq!(spawn_sender(b"", b"c@d"), b"");
    }
}
