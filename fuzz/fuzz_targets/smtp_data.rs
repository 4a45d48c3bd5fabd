//! Arbitrary bytes as DATA: the first byte chooses a point to split the rest at, and the
//! rest is decoded whole and in two pieces. Both must give the same bytes, event, bytes
//! used, size and hops; size must be the output's length; only CR LF . CR LF may end the
//! message; and the result must match a plain line-by-line reading of the same input.
#![no_main]

use rqmail_smtp::data::{Decoder, Event};

/// What the decoder must do, read line by line: lines end with CR LF only, a line of just
/// "." ends the message, a leading dot is dropped, a bare LF or CR stops the transfer.
fn reference(data: &[u8]) -> (Vec<u8>, usize, Option<Event>) {
    let unstuff = |line: &[u8]| line.strip_prefix(b".").unwrap_or(line).to_vec();
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let Some(off) = data[start..].iter().position(|&b| b == b'\r' || b == b'\n') else {
            out.extend(unstuff(&data[start..]));
            return (out, data.len(), None);
        };
        let end = start + off;
        let line = &data[start..end];
        match (data[end], data.get(end + 1)) {
            (b'\n', _) => {
                out.extend(unstuff(line));
                return (out, end + 1, Some(Event::BareLf));
            }
            (_, None) => {
                out.extend(unstuff(line));
                return (out, data.len(), None);
            }
            (_, Some(&b)) if b != b'\n' => {
                out.extend(unstuff(line));
                return (out, end + 2, Some(Event::BareCr));
            }
            _ if line == b"." => return (out, end + 2, Some(Event::End)),
            _ => {
                out.extend(unstuff(line));
                out.push(b'\n');
                start = end + 2;
            }
        }
    }
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let at = data.len() * first as usize / 255;

    let mut whole = Decoder::new();
    let mut out = Vec::new();
    let (used, event) = whole.feed(data, &mut out);
    assert!(used <= data.len());
    assert!(event.is_some() || used == data.len(), "stopped early without an event");
    assert_eq!(whole.size, out.len() as u64, "size is not the output's length");
    assert!(!out.contains(&b'\r'), "a CR was stored");

    // Only CR LF . CR LF (or . CR LF as the first line) ends a message.
    let consumed = &data[..used];
    match event {
        Some(Event::End) => assert!(
            consumed == b".\r\n" || consumed.ends_with(b"\r\n.\r\n"),
            "ended at {consumed:?}"
        ),
        Some(Event::BareLf) => {
            assert!(consumed.ends_with(b"\n") && !consumed.ends_with(b"\r\n"))
        }
        Some(Event::BareCr) => {
            assert!(used >= 2 && consumed[used - 2] == b'\r' && consumed[used - 1] != b'\n')
        }
        None => {}
    }
    assert_eq!(reference(data), (out.clone(), used, event), "differs from the reference");

    // The same input in two pieces.
    let mut split = Decoder::new();
    let mut out2 = Vec::new();
    let (u1, e1) = split.feed(&data[..at], &mut out2);
    let (used2, event2) = if e1.is_some() {
        (u1, e1)
    } else {
        assert_eq!(u1, at, "first piece not used up without an event");
        let (u2, e2) = split.feed(&data[at..], &mut out2);
        (at + u2, e2)
    };
    assert_eq!((used2, event2), (used, event), "split at {at} changes the result");
    assert_eq!(out2, out, "split at {at} changes the output");
    assert_eq!(split.size, whole.size);
    assert_eq!(split.hops, whole.hops);
    assert_eq!(split.size, out2.len() as u64);
});
