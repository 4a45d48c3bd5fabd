//! Header fields read from the raw bytes: split into fields, one value unfolded, and
//! the lines HEADER.FIELDS selects.

/// The fields of a header block: name and raw value (continuation lines included), up to
/// the empty line.
fn header_fields_raw(header: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut fields: Vec<(&[u8], Vec<u8>)> = Vec::new();
    let mut current = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if current && let Some((_, value)) = fields.last_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        current = false;
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
            let value = line.get(colon + 1..).unwrap_or_default();
            fields.push((name, value.to_vec()));
            current = true;
        }
    }
    fields
}

/// The first field `name`'s value, unfolded (CR and LF dropped, RFC 5322 §2.2.3) and
/// trimmed; encoded-words stay as written.
pub(super) fn header_value(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let (_, value) = header_fields_raw(header)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))?;
    let unfolded: Vec<u8> = value
        .into_iter()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    Some(unfolded.trim_ascii().to_vec())
}

/// The header lines (with continuations) whose names are (or, with `not`, are not) in
/// `names`, then the empty line (RFC 3501 §6.4.5 HEADER.FIELDS).
pub(super) fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line
                .split(|&b| b == b':')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            let listed = names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}
