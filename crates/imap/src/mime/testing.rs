//! What the unit tests of the MIME views share: wire-form test messages and section
//! lookups by spec.

use super::section::{SectionSpec, parse_section, section};

/// The wire form of a test message written with LF line ends.
pub(super) fn wire(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn spec(s: &str) -> SectionSpec {
    match parse_section(s) {
        Some(spec) => spec,
        None => panic!("section {s:?} should parse"),
    }
}

pub(super) fn section_text(msg: &[u8], s: &str) -> Option<String> {
    section(msg, &spec(s)).map(|b| text(&b))
}

pub(super) const SIMPLE: &str = "From: Alice <alice@example.org>\n\
    To: bob@example.net\n\
    Subject: Hello\n  again\n\
    Date: Mon, 7 Feb 1994 21:52:25 -0800\n\
    Message-ID: <1@example.org>\n\
    \n\
    Hi Bob,\n\
    bye\n";

pub(super) const MIXED: &str = "Content-Type: multipart/mixed; boundary=b1\n\
    \n\
    preamble\n\
    --b1\n\
    \n\
    plain body\n\
    --b1\n\
    Content-Type: application/octet-stream; name=\"x.bin\"\n\
    Content-Transfer-Encoding: base64\n\
    Content-Disposition: attachment; filename=\"x.bin\"\n\
    Content-ID: <att1@example.org>\n\
    Content-Description: some bytes\n\
    \n\
    AAECAwQF\n\
    --b1--\n\
    epilogue\n";

pub(super) const FORWARD: &str = "From: Carol <carol@example.com>\n\
    To: dave@example.com\n\
    Subject: Fwd: lunch\n\
    Content-Type: multipart/mixed; boundary=\"fwd\"\n\
    \n\
    --fwd\n\
    Content-Type: text/plain\n\
    \n\
    See below.\n\
    --fwd\n\
    Content-Type: message/rfc822\n\
    \n\
    From: Eve <eve@example.com>\n\
    To: carol@example.com\n\
    Subject: lunch\n\
    Message-ID: <l@example.com>\n\
    \n\
    Noon?\n\
    --fwd--\n";
