//! Command lines of the transaction state: a keyword, case-insensitive, and its arguments
//! separated by spaces (RFC 1939 §3), parsed into what the session executes.

/// A command line may be 255 octets long, CR LF included (RFC 2449 §4).
pub const LINE_MAX: usize = 255;

/// A message number as the client wrote it: from 1; numbers too large for a `u64` are
/// kept as `u64::MAX`, which names no message.
pub type Number = u64;

/// A command of the transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `STAT`
    Stat,
    /// `LIST [msg]`
    List(Option<Number>),
    /// `UIDL [msg]`
    Uidl(Option<Number>),
    /// `TOP msg n`: the header and `n` body lines.
    Top(Number, u64),
    /// `RETR msg`
    Retr(Number),
    /// `DELE msg`
    Dele(Number),
    /// `RSET`
    Rset,
    /// `NOOP`
    Noop,
    /// `LAST` (RFC 1725): the highest message number deleted in this session.
    Last,
    /// `QUIT`: enter the update state.
    Quit,
    /// `CAPA` (RFC 2449).
    Capa,
}

/// Why a line is not a command of the transaction state; each has its `-ERR` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a POP3 command rqmail knows.
    Unknown,
    /// A command of the authorization state (USER, PASS, APOP, AUTH, STLS).
    WrongState,
    /// Missing, extra or malformed arguments.
    Syntax,
    /// Message number 0.
    Zero,
}

impl ParseError {
    /// The reply, without CR LF.
    pub fn reply(self) -> &'static str {
        match self {
            ParseError::Unknown => "-ERR unknown command",
            ParseError::WrongState => "-ERR already authenticated",
            ParseError::Syntax => "-ERR syntax error",
            ParseError::Zero => "-ERR messages are numbered from 1",
        }
    }
}

/// Parses one command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let keyword = words.next().ok_or(ParseError::Unknown)?;
    // At most two arguments are ever valid; a third is an error, whatever follows it.
    let args: Vec<&[u8]> = words.take(3).collect();
    let is = |name: &str| keyword.eq_ignore_ascii_case(name.as_bytes());
    let none = |command: Command| match args[..] {
        [] => Ok(command),
        _ => Err(ParseError::Syntax),
    };
    let one = || match args[..] {
        [n] => message_number(n),
        _ => Err(ParseError::Syntax),
    };
    let optional = || match args[..] {
        [] => Ok(None),
        [n] => message_number(n).map(Some),
        _ => Err(ParseError::Syntax),
    };
    if is("STAT") {
        none(Command::Stat)
    } else if is("LIST") {
        optional().map(Command::List)
    } else if is("UIDL") {
        optional().map(Command::Uidl)
    } else if is("TOP") {
        match args[..] {
            [n, lines] => Ok(Command::Top(message_number(n)?, number(lines)?)),
            _ => Err(ParseError::Syntax),
        }
    } else if is("RETR") {
        one().map(Command::Retr)
    } else if is("DELE") {
        one().map(Command::Dele)
    } else if is("RSET") {
        none(Command::Rset)
    } else if is("NOOP") {
        none(Command::Noop)
    } else if is("LAST") {
        none(Command::Last)
    } else if is("QUIT") {
        none(Command::Quit)
    } else if is("CAPA") {
        none(Command::Capa)
    } else if ["USER", "PASS", "APOP", "AUTH", "STLS"]
        .iter()
        .any(|name| is(name))
    {
        Err(ParseError::WrongState)
    } else {
        Err(ParseError::Unknown)
    }
}

/// Digits only; more than a `u64` holds saturates (it names no message, or all lines).
fn number(text: &[u8]) -> Result<u64, ParseError> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Syntax);
    }
    Ok(text.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn message_number(text: &[u8]) -> Result<Number, ParseError> {
    match number(text)? {
        0 => Err(ParseError::Zero),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive_and_arguments_parsed() {
        assert_eq!(parse(b"stat"), Ok(Command::Stat));
        assert_eq!(parse(b"List"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 3"), Ok(Command::List(Some(3))));
        assert_eq!(parse(b"uidl 12"), Ok(Command::Uidl(Some(12))));
        assert_eq!(parse(b"TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(parse(b"RETR 2"), Ok(Command::Retr(2)));
        assert_eq!(parse(b"DELE 2"), Ok(Command::Dele(2)));
        assert_eq!(parse(b"QUIT"), Ok(Command::Quit));
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
    }

    #[test]
    fn bad_arguments_are_syntax_errors() {
        assert_eq!(parse(b"RETR"), Err(ParseError::Syntax));
        assert_eq!(parse(b"RETR x"), Err(ParseError::Syntax));
        assert_eq!(parse(b"RETR +1"), Err(ParseError::Syntax));
        assert_eq!(parse(b"RETR 1 2"), Err(ParseError::Syntax));
        assert_eq!(parse(b"TOP 1"), Err(ParseError::Syntax));
        assert_eq!(parse(b"TOP 1 -1"), Err(ParseError::Syntax));
        assert_eq!(parse(b"STAT 1"), Err(ParseError::Syntax));
        assert_eq!(parse(b"RETR 0"), Err(ParseError::Zero));
    }

    #[test]
    fn huge_numbers_saturate() {
        assert_eq!(
            parse(b"RETR 99999999999999999999999"),
            Ok(Command::Retr(u64::MAX))
        );
    }

    #[test]
    fn unknown_and_authorization_commands_are_refused() {
        assert_eq!(parse(b""), Err(ParseError::Unknown));
        assert_eq!(parse(b"XYZZY"), Err(ParseError::Unknown));
        assert_eq!(parse(b"STATS"), Err(ParseError::Unknown));
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::Unknown));
        assert_eq!(parse(b"USER bob"), Err(ParseError::WrongState));
        assert_eq!(parse(b"stls"), Err(ParseError::WrongState));
    }
}
