//! The dot-qmail language: one instruction per line, chosen by the line's first character.

/// One line of a `.qmail` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `|command`: run through `/bin/sh -c` with the message on stdin.
    Program(Vec<u8>),
    /// `&address` or a bare address: forward.
    Forward(Vec<u8>),
    /// `/path` or `./path` not ending in `/`: append to an mbox file.
    Mbox(Vec<u8>),
    /// `/path/` or `./path/`: deliver into a Maildir.
    Maildir(Vec<u8>),
    /// `+list`: from here on only forwards are allowed.
    ForwardOnly,
}

/// Parses dot-qmail text. Lines split at LF (a last line without LF counts), trailing
/// blanks removed; comments and later blank lines skipped. A blank first line is an error:
/// qmail treats it as a sign of a half-written file.
pub fn parse_instructions(text: &[u8]) -> Result<Vec<Instruction>, String> {
    let mut out = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if text.ends_with(b"\n") {
        lines.pop();
    }
    for (i, raw) in lines.into_iter().enumerate() {
        let end = raw
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |p| p + 1);
        let line = &raw[..end];
        let Some(&first) = line.first() else {
            if i == 0 {
                return Err("Uh-oh: first line of .qmail file is blank. (#4.2.1)".into());
            }
            continue;
        };
        let inst = match first {
            b'#' => continue,
            b'|' => Instruction::Program(line[1..].to_vec()),
            b'/' | b'.' if line.ends_with(b"/") => Instruction::Maildir(line.to_vec()),
            b'/' | b'.' => Instruction::Mbox(line.to_vec()),
            b'&' => Instruction::Forward(line[1..].to_vec()),
            b'+' if line == b"+list" => Instruction::ForwardOnly,
            b'+' => continue,
            _ => Instruction::Forward(line.to_vec()),
        };
        out.push(inst);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Instruction::*;

    #[test]
    fn parses_every_line_type() {
        let text = b"# comment\n|preline procmail  \n./Maildir/\n/var/mail/joe\n&fwd@x.org\nbare@y.org\n+list\n+other\n\n./mbox";
        assert_eq!(
            parse_instructions(text).unwrap(),
            vec![
                Program(b"preline procmail".to_vec()),
                Maildir(b"./Maildir/".to_vec()),
                Mbox(b"/var/mail/joe".to_vec()),
                Forward(b"fwd@x.org".to_vec()),
                Forward(b"bare@y.org".to_vec()),
                ForwardOnly,
                Mbox(b"./mbox".to_vec()),
            ]
        );
    }

    #[test]
    fn a_blank_first_line_is_a_temporary_error() {
        assert!(parse_instructions(b"\n./Maildir/\n").is_err());
        assert!(parse_instructions(b"  \t\n./Maildir/\n").is_err());
        assert_eq!(parse_instructions(b"").unwrap(), vec![]);
    }
}
