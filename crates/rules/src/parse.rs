//! The tcprules text: one `ADDRESS:allow|deny,VAR=QvalueQ...` rule a line, read byte for
//! byte as ucspi-tcp's tcprules (with the IPv6 patch's colon rule) reads it.

use std::fmt;

/// What a rule tells tcpserver to do with a matching connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the program.
    Allow,
    /// Close the connection without running the program.
    Deny,
}

/// One rule line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The line number in the rules text, counting from 1.
    pub line: usize,
    /// ADDRESS exactly as written, before range expansion.
    pub address: Vec<u8>,
    /// `allow` or `deny`.
    pub action: Action,
    /// The `,VAR=QvalueQ` pairs in order: (VAR, value), both as written.
    pub vars: Vec<(Vec<u8>, Vec<u8>)>,
    keys: Vec<Vec<u8>>,
}

impl Rule {
    /// The CDB keys this rule is stored under: ADDRESS itself, or one key per number of a
    /// range (`1.2.3.37-53`, `10.2-3.`). A range whose start is above its end has none.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The CDB data: `D\0` for deny, then `+VAR=value\0` for each variable (tcprules').
    pub fn data(&self) -> Vec<u8> {
        let mut data = Vec::new();
        if self.action == Action::Deny {
            data.extend_from_slice(b"D\0");
        }
        for (name, value) in &self.vars {
            data.push(b'+');
            data.extend_from_slice(name);
            data.push(b'=');
            data.extend_from_slice(value);
            data.push(0);
        }
        data
    }
}

/// A line tcprules refuses, with its number and its text (trailing blanks removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line number, counting from 1.
    pub line: usize,
    /// The line as tcprules prints it: without its newline and trailing spaces and tabs.
    pub text: Vec<u8>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unable to parse this line (line {}): {}",
            self.line,
            String::from_utf8_lossy(&self.text)
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole rules text. Comments (`#` first), empty lines and lines with no `:` at
/// all are skipped; the first line tcprules would refuse is the error.
pub fn parse(text: &[u8]) -> Result<Vec<Rule>, ParseError> {
    let mut rules = Vec::new();
    let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        // split() yields an empty piece after a final newline: that is the end, not a line.
        if raw.is_empty() && lines.peek().is_none() {
            break;
        }
        if raw.first() == Some(&b'#') {
            continue;
        }
        let line = trim_blanks(raw);
        if let Some(rule) = parse_line(index + 1, line)? {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// The line without trailing spaces and tabs (tcprules also strips newlines there, which
/// split() has already removed; a CR is kept, so a CRLF file's rules are refused).
fn trim_blanks(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = line {
        line = rest;
    }
    line
}

/// Parses one line without its newline and trailing blanks; `None` for a line without a
/// colon, which tcprules ignores.
fn parse_line(number: usize, line: &[u8]) -> Result<Option<Rule>, ParseError> {
    let error = || ParseError {
        line: number,
        text: line.to_vec(),
    };
    if !line.contains(&b':') {
        return Ok(None);
    }
    // IPv6 addresses contain colons: ADDRESS ends at the first colon that is followed by
    // "allow" or "deny" (the IPv6 patch's rule; for IPv4 rules it is the first colon).
    let colon = (0..line.len())
        .find(|&i| {
            line[i] == b':' && {
                let after = &line[i + 1..];
                after.starts_with(b"allow") || after.starts_with(b"deny")
            }
        })
        .ok_or_else(error)?;
    let address = &line[..colon];
    let mut rest = &line[colon + 1..];
    let action = if let Some(after) = rest.strip_prefix(b"deny") {
        rest = after;
        Action::Deny
    } else if let Some(after) = rest.strip_prefix(b"allow") {
        rest = after;
        Action::Allow
    } else {
        // Unreachable: the colon was chosen for what follows it. Kept as tcprules' check.
        return Err(error());
    };
    let mut vars = Vec::new();
    while let Some(pair) = rest.strip_prefix(b",") {
        // VAR is everything up to the first `=`, commas and quotes included, as in tcprules.
        let equals = pair.iter().position(|&b| b == b'=').ok_or_else(error)?;
        let name = &pair[..equals];
        let (&quote, quoted) = pair[equals + 1..].split_first().ok_or_else(error)?;
        let end = quoted.iter().position(|&b| b == quote).ok_or_else(error)?;
        vars.push((name.to_vec(), quoted[..end].to_vec()));
        rest = &quoted[end + 1..];
    }
    if !rest.is_empty() {
        return Err(error());
    }
    let keys = expand_range(address).ok_or_else(error)?;
    Ok(Some(Rule {
        line: number,
        address: address.to_vec(),
        action,
        vars,
        keys,
    }))
}

/// The keys for ADDRESS: itself, or, if it has a `-` and neither `=` nor `@`, one key per
/// number from the dotted component holding the first `-`; `None` if that component is not
/// two numbers. Like tcprules, the upper bound is capped at 255 and a missing number is 0.
fn expand_range(address: &[u8]) -> Option<Vec<Vec<u8>>> {
    let Some(dash) = address.iter().position(|&b| b == b'-') else {
        return Some(vec![address.to_vec()]);
    };
    if address.contains(&b'=') || address.contains(&b'@') {
        return Some(vec![address.to_vec()]);
    }
    let left = address[..dash]
        .iter()
        .rposition(|&b| b == b'.')
        .map_or(0, |dot| dot + 1);
    let right = address[dash + 1..]
        .iter()
        .position(|&b| b == b'.')
        .map_or(address.len(), |dot| dash + 1 + dot);
    let bottom = scan_number(&address[left..dash])?;
    let top = scan_number(&address[dash + 1..right])?.min(255);
    Some(
        (bottom..=top)
            .map(|n| {
                let mut key = address[..left].to_vec();
                key.extend_from_slice(n.to_string().as_bytes());
                key.extend_from_slice(&address[right..]);
                key
            })
            .collect(),
    )
}

/// A decimal number as tcprules' getnum reads it: leading digits (wrapping like C's
/// unsigned long, none meaning 0), accepted only if nothing but a NUL byte follows them.
fn scan_number(text: &[u8]) -> Option<u64> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits < text.len() && text[digits] != 0 {
        return None;
    }
    Some(text[..digits].iter().fold(0u64, |n, &d| {
        n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Rule {
        let mut rules = parse(text.as_bytes()).unwrap();
        assert_eq!(rules.len(), 1, "{text:?}");
        rules.remove(0)
    }

    fn keys(text: &str) -> Vec<String> {
        one(text)
            .keys()
            .iter()
            .map(|k| String::from_utf8(k.clone()).unwrap())
            .collect()
    }

    fn error(text: &str) -> ParseError {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn allow_without_variables_has_empty_data() {
        let rule = one("1.2.3.4:allow\n");
        assert_eq!(rule.address, b"1.2.3.4");
        assert_eq!(rule.action, Action::Allow);
        assert_eq!(rule.keys(), [b"1.2.3.4".to_vec()]);
        assert_eq!(rule.data(), b"");
    }

    #[test]
    fn deny_is_a_d_entry_first() {
        let rule = one("1.2.3.4:deny,X=\"1\"");
        assert_eq!(rule.action, Action::Deny);
        assert_eq!(rule.data(), b"D\0+X=1\0");
    }

    #[test]
    fn variables_are_plus_name_equals_value_nul_in_order() {
        let rule = one("127.:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\",DATABYTES=\"0\"");
        assert_eq!(rule.data(), b"+RELAYCLIENT=\0+RBLSMTPD=\0+DATABYTES=0\0");
        assert_eq!(
            rule.vars,
            vec![
                (b"RELAYCLIENT".to_vec(), b"".to_vec()),
                (b"RBLSMTPD".to_vec(), b"".to_vec()),
                (b"DATABYTES".to_vec(), b"0".to_vec()),
            ]
        );
    }

    #[test]
    fn any_character_quotes_a_value() {
        assert_eq!(
            one("10.0.:allow,RELAYCLIENT=/@fix.me/").data(),
            b"+RELAYCLIENT=@fix.me\0"
        );
        assert_eq!(one(":allow,A='x\"y',B=xabcx").data(), b"+A=x\"y\0+B=abc\0");
        // The quote may even be a comma or an equals sign.
        assert_eq!(one(":allow,A=,v,,B==w=").data(), b"+A=v\0+B=w\0");
    }

    #[test]
    fn variable_names_run_to_the_first_equals_sign_as_written() {
        assert_eq!(one(":allow,A,B=\"1\"").data(), b"+A,B=1\0");
        assert_eq!(one(":allow,=\"1\"").data(), b"+=1\0");
    }

    #[test]
    fn empty_address_is_the_default_rule() {
        let rule = one(":deny");
        assert_eq!(rule.keys(), [Vec::<u8>::new()]);
        assert_eq!(rule.data(), b"D\0");
    }

    #[test]
    fn comments_blank_lines_and_lines_without_colon_are_skipped() {
        let text = "# comment: with colon\n\n   \nno colon here\n127.:allow\n#:deny\n";
        let rules = parse(text.as_bytes()).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].line, 5);
    }

    #[test]
    fn a_comment_needs_the_hash_in_the_first_column() {
        let e = error(" #x:y");
        assert_eq!(e.line, 1);
        assert_eq!(e.text, b" #x:y");
    }

    #[test]
    fn trailing_spaces_and_tabs_are_ignored() {
        assert_eq!(one("1.2.3.4:allow,A=\"1\" \t \n").data(), b"+A=1\0");
    }

    #[test]
    fn last_line_without_newline_counts() {
        let rules = parse(b"1.:allow\n2.:deny").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].line, 2);
    }

    #[test]
    fn crlf_lines_are_refused_as_tcprules_refuses_them() {
        let e = error("127.:allow\r\n");
        assert_eq!(e.text, b"127.:allow\r");
    }

    #[test]
    fn host_forms_are_kept_as_written() {
        assert_eq!(keys("=host.example.com:allow"), ["=host.example.com"]);
        assert_eq!(keys("=.example.com:deny"), ["=.example.com"]);
        assert_eq!(keys("=:allow"), ["="]);
        assert_eq!(keys("joe@1.2.3.4:allow"), ["joe@1.2.3.4"]);
        assert_eq!(
            keys("joe@=host.example.com:allow"),
            ["joe@=host.example.com"]
        );
    }

    #[test]
    fn prefixes_are_kept_as_written() {
        assert_eq!(keys("1.2.3.:allow"), ["1.2.3."]);
        assert_eq!(keys("1.:allow"), ["1."]);
    }

    #[test]
    fn last_component_range_makes_one_key_per_number() {
        let got = keys("1.2.3.37-53:deny");
        assert_eq!(got.len(), 17);
        assert_eq!(got[0], "1.2.3.37");
        assert_eq!(got[16], "1.2.3.53");
    }

    #[test]
    fn middle_component_range_keeps_what_follows() {
        assert_eq!(keys("10.2-3.:allow"), ["10.2.", "10.3."]);
        assert_eq!(keys("10.2-4.7:allow"), ["10.2.7", "10.3.7", "10.4.7"]);
        assert_eq!(keys("1-2.:allow"), ["1.", "2."]);
    }

    #[test]
    fn range_upper_bound_is_capped_at_255() {
        let got = keys("1.2.3.250-999:allow");
        assert_eq!(
            got,
            [
                "1.2.3.250",
                "1.2.3.251",
                "1.2.3.252",
                "1.2.3.253",
                "1.2.3.254",
                "1.2.3.255"
            ]
        );
    }

    #[test]
    fn range_numbers_lose_leading_zeros_and_may_be_empty() {
        assert_eq!(keys("1.2.3.008-9:allow"), ["1.2.3.8", "1.2.3.9"]);
        assert_eq!(keys("1.2.3.-1:allow"), ["1.2.3.0", "1.2.3.1"]);
        assert_eq!(keys("1.2.3.2-:allow"), Vec::<String>::new());
    }

    #[test]
    fn backwards_range_compiles_to_nothing() {
        assert!(one("1.2.3.9-1:allow").keys().is_empty());
    }

    #[test]
    fn dash_in_host_or_ident_is_not_a_range() {
        assert_eq!(keys("=mail-1.example.com:allow"), ["=mail-1.example.com"]);
        assert_eq!(keys("a-b@1.2.3.4:allow"), ["a-b@1.2.3.4"]);
    }

    #[test]
    fn bad_range_numbers_are_errors() {
        assert_eq!(error("1.2.3.x-5:allow").line, 1);
        assert_eq!(error("1.2.3.1-2-3:allow").text, b"1.2.3.1-2-3:allow");
        assert_eq!(error("a-b:allow").line, 1);
    }

    #[test]
    fn ipv6_address_ends_at_the_colon_before_allow_or_deny() {
        let rule = one("2001:db8::1:deny");
        assert_eq!(rule.address, b"2001:db8::1");
        assert_eq!(rule.action, Action::Deny);
        assert_eq!(keys("2001:db8::allow,X=\"y\""), ["2001:db8:"]);
        assert_eq!(keys("2001:db8::/:allow"), ["2001:db8::/"]);
        assert_eq!(keys("::1:allow"), ["::1"]);
        assert_eq!(keys("fe80::dead:beef:deny"), ["fe80::dead:beef"]);
    }

    #[test]
    fn the_first_colon_followed_by_allow_or_deny_wins() {
        let rule = one("1.2.3.4:allow,X=\":deny\"");
        assert_eq!(rule.address, b"1.2.3.4");
        assert_eq!(rule.data(), b"+X=:deny\0");
    }

    #[test]
    fn ipv6_ranges_are_errors() {
        error("2001:db8::1-5:allow");
    }

    #[test]
    fn instruction_other_than_allow_or_deny_is_an_error() {
        let e = error("# ok\n1.2.3.4:permit\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.text, b"1.2.3.4:permit");
        assert_eq!(
            e.to_string(),
            "unable to parse this line (line 2): 1.2.3.4:permit"
        );
        error("1.2.3.4:");
        error("1.2.3.4: allow");
        error("1.2.3.4:Allow");
    }

    #[test]
    fn trailing_text_after_instructions_is_an_error() {
        error("1.2.3.4:allowx");
        error("1.2.3.4:deny ,A=\"1\"");
        error("1.2.3.4:allow,A=\"1\"x");
        error("1.2.3.4:allow,A=\"1\",");
    }

    #[test]
    fn variable_without_equals_or_value_or_closing_quote_is_an_error() {
        error("1.2.3.4:allow,A");
        error("1.2.3.4:allow,A=");
        error("1.2.3.4:allow,A=\"1");
    }

    #[test]
    fn error_names_the_first_bad_line_only() {
        let e = error("1.:allow\n2.:bad\n3.:worse\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn empty_text_has_no_rules() {
        assert!(parse(b"").unwrap().is_empty());
        assert!(parse(b"\n\n# x\n").unwrap().is_empty());
    }
}
