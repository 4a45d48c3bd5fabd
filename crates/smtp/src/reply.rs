//! Replies: a code, an RFC 3463 enhanced status code at the front of the text
//! (ENHANCEDSTATUSCODES), and one or more lines.

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code (`2.1.0`), omitted for 220/221 greetings and 3xx.
    pub enhanced: Option<&'static str>,
    /// The text lines.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply with an enhanced code.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A one-line reply without an enhanced code.
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    /// The wire form: `code-` on all lines but the last, `code ` on the last, CRLF ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 < n { '-' } else { ' ' };
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let line = match self.enhanced {
                Some(e) => format!("{}{sep}{e} {text}\r\n", self.code),
                None => format!("{}{sep}{text}\r\n", self.code),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out
    }

    /// True for 4xx and 5xx.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_single_and_multi_line_replies() {
        assert_eq!(
            Reply::new(250, "2.1.0", "ok").to_bytes(),
            b"250 2.1.0 ok\r\n"
        );
        let r = Reply {
            code: 250,
            enhanced: None,
            lines: vec!["host".into(), "PIPELINING".into()],
        };
        assert_eq!(r.to_bytes(), b"250-host\r\n250 PIPELINING\r\n");
    }
}
