//! One header field as read: its name, and its whole text with folded lines and LF ends,
//! kept byte for byte so fields that are not rewritten are stored exactly as given.

/// A header field: `Name: value` plus any continuation lines, each line ending in LF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    text: Vec<u8>,
    /// Index of the colon after the name.
    colon: usize,
}

impl Field {
    /// Starts a field from its first line; `None` unless the line is `name:` with a name of
    /// printable ASCII characters other than space (blanks before the colon are allowed),
    /// qmail's test for a header line.
    pub fn start(line: &[u8]) -> Option<Field> {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = line[..colon].trim_ascii_end();
        if name.is_empty() || !name.iter().all(|&b| (33..127).contains(&b)) {
            return None;
        }
        let mut text = line.to_vec();
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        Some(Field { text, colon })
    }

    /// Appends a continuation line (one that starts with a space or tab).
    pub fn append(&mut self, line: &[u8]) {
        self.text.extend_from_slice(line);
        if !self.text.ends_with(b"\n") {
            self.text.push(b'\n');
        }
    }

    /// The field name, without the blanks before the colon.
    pub fn name(&self) -> &[u8] {
        self.text[..self.colon].trim_ascii_end()
    }

    /// Everything after the colon, folded lines and the final LF included.
    pub fn value(&self) -> &[u8] {
        &self.text[self.colon + 1..]
    }

    /// The whole field.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// The same field with another value (which must end in LF).
    pub fn with_value(&self, value: &[u8]) -> Vec<u8> {
        let mut text = self.text[..=self.colon].to_vec();
        text.extend_from_slice(value);
        text
    }

    /// Whether the field has this name, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_printable_ascii_before_a_colon() {
        let f = Field::start(b"Subject : hello\n").unwrap();
        assert_eq!(f.name(), b"Subject");
        assert_eq!(f.value(), b" hello\n");
        assert!(f.is("SUBJECT"));
        assert!(Field::start(b"no colon here\n").is_none());
        assert!(Field::start(b"two words: x\n").is_none());
        assert!(Field::start(b": empty name\n").is_none());
        assert!(Field::start(b" Subject: folded\n").is_none());
        assert!(Field::start(b"N\xc3\xa4me: x\n").is_none());
    }

    #[test]
    fn continuation_lines_belong_to_the_field() {
        let mut f = Field::start(b"To: a@b,\n").unwrap();
        f.append(b"\tc@d\n");
        assert_eq!(f.value(), b" a@b,\n\tc@d\n");
        assert_eq!(f.with_value(b" x\n"), b"To: x\n");
    }
}
