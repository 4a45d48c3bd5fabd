//! The command line: tcpserver's options, read as its getopt reads them (flags may be
//! grouped, `-c40` and `-c 40` both work, the first non-option ends the options).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// How much goes to stderr: `-q` nothing, `-Q` errors (default), `-v` errors and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`
    Quiet,
    /// `-Q`
    Errors,
    /// `-v`
    Verbose,
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `-q`, `-Q`, `-v`.
    pub verbosity: Verbosity,
    /// `-c n`: at most n children at once (default 40).
    pub limit: usize,
    /// `-i n`: at most n children per client IP (rqmail's addition; default none).
    pub per_ip: Option<usize>,
    /// `-x cdb`: the rules, reread for each connection.
    pub rules: Option<PathBuf>,
    /// `-X`: with `-x`, allow connections when the cdb does not exist.
    pub allow_no_rules: bool,
    /// `-B banner`: written to the client first.
    pub banner: Vec<u8>,
    /// `-u uid` (or `$UID` with `-U`); 0 = keep.
    pub uid: u32,
    /// `-g gid` (or `$GID` with `-U`); 0 = keep.
    pub gid: u32,
    /// `-1`: print the local port on stdout once listening.
    pub print_port: bool,
    /// `-b n`: the listen backlog; `None` (no `-b`) is the kernel's most
    /// ([`crate::listen::default_backlog`]), not tcpserver's 20.
    pub backlog: Option<i32>,
    /// `-D`: set TCP_NODELAY (`-d`, the default, leaves Nagle on).
    pub nodelay: bool,
    /// `-h` (default): look up TCPREMOTEHOST; `-H`: do not.
    pub remote_host: bool,
    /// `-p`: keep TCPREMOTEHOST only if its forward lookup includes the client's IP.
    pub paranoid: bool,
    /// `-l name`: TCPLOCALHOST without a lookup.
    pub local_name: Option<Vec<u8>>,
    /// HOST: where to listen.
    pub host: String,
    /// PORT: number or /etc/services name.
    pub port: String,
    /// PROG and its arguments.
    pub program: Vec<OsString>,
}

/// A command line tcpserver refuses; the caller prints the usage and exits 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Printed on a usage error.
pub const USAGE: &str = "usage: rqmail-tcpserver [ -1UXpPhHrRoOdDqQv ] [ -c limit ] \
[ -i perip ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] \
[ -l localname ] [ -t timeout ] host port program [ arg ... ]";

/// Flags taking no argument, and options taking one.
const FLAGS: &[u8] = b"1UXpPhHrRoOdDqQv";
const WITH_ARGUMENT: &[u8] = b"ciBxgublt";

fn number<T: std::str::FromStr>(option: u8, value: &OsStr) -> Result<T, UsageError> {
    let text = value.to_str().unwrap_or("");
    // All digits: FromStr would also take a sign.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UsageError(format!(
            "-{} needs a number, not {:?}",
            option as char, value
        )));
    }
    text.parse()
        .map_err(|_| UsageError(format!("-{} {}: number out of range", option as char, text)))
}

/// Parses the arguments after the program name. `env` reads `$UID` and `$GID` for `-U`.
pub fn parse(
    args: &[OsString],
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Options, UsageError> {
    let mut o = Options {
        verbosity: Verbosity::Errors,
        limit: 40,
        per_ip: None,
        rules: None,
        allow_no_rules: false,
        banner: Vec::new(),
        uid: 0,
        gid: 0,
        print_port: false,
        backlog: None,
        nodelay: false,
        remote_host: true,
        paranoid: false,
        local_name: None,
        host: String::new(),
        port: String::new(),
        program: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        if arg == b"--" {
            i += 1;
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            break;
        }
        i += 1;
        let mut j = 1;
        while j < arg.len() {
            let option = arg[j];
            j += 1;
            if WITH_ARGUMENT.contains(&option) {
                let value = if j < arg.len() {
                    OsStr::from_bytes(&arg[j..]).to_os_string()
                } else {
                    let value = args.get(i).cloned().ok_or_else(|| {
                        UsageError(format!("-{} needs an argument", option as char))
                    })?;
                    i += 1;
                    value
                };
                j = arg.len();
                match option {
                    b'c' => {
                        o.limit = number(option, &value)?;
                        if o.limit == 0 {
                            return Err(UsageError("-c must be at least 1".into()));
                        }
                    }
                    b'i' => {
                        let n: usize = number(option, &value)?;
                        if n == 0 {
                            return Err(UsageError("-i must be at least 1".into()));
                        }
                        o.per_ip = Some(n);
                    }
                    b'B' => o.banner = value.as_bytes().to_vec(),
                    b'x' => o.rules = Some(PathBuf::from(value)),
                    b'g' => o.gid = number(option, &value)?,
                    b'u' => o.uid = number(option, &value)?,
                    b'b' => o.backlog = Some(number(option, &value)?),
                    b'l' => o.local_name = Some(value.as_bytes().to_vec()),
                    // The ident timeout: accepted and checked, unused (ident is never asked).
                    b't' => {
                        number::<u32>(option, &value)?;
                    }
                    _ => unreachable!("every option in WITH_ARGUMENT is handled"),
                }
            } else if FLAGS.contains(&option) {
                match option {
                    b'1' => o.print_port = true,
                    b'U' => {
                        // tcpserver ignores a missing $UID or $GID.
                        if let Some(uid) = env("UID") {
                            o.uid = number(b'U', &uid)?;
                        }
                        if let Some(gid) = env("GID") {
                            o.gid = number(b'U', &gid)?;
                        }
                    }
                    b'X' => o.allow_no_rules = true,
                    b'p' => o.paranoid = true,
                    b'P' => o.paranoid = false,
                    b'h' => o.remote_host = true,
                    b'H' => o.remote_host = false,
                    // Ident (RFC 1413) is obsolete: -r is taken as -R, TCPREMOTEINFO is never set.
                    b'r' | b'R' => {}
                    // IP options: Linux already drops source-routed packets
                    // (accept_source_route = 0), so -o and -O change nothing.
                    b'o' | b'O' => {}
                    b'd' => o.nodelay = false,
                    b'D' => o.nodelay = true,
                    b'q' => o.verbosity = Verbosity::Quiet,
                    b'Q' => o.verbosity = Verbosity::Errors,
                    b'v' => o.verbosity = Verbosity::Verbose,
                    _ => unreachable!("every flag in FLAGS is handled"),
                }
            } else {
                return Err(UsageError(format!("unknown option -{}", option as char)));
            }
        }
    }
    let rest = &args[i.min(args.len())..];
    let [host, port, program @ ..] = rest else {
        return Err(UsageError("missing host, port or program".into()));
    };
    if program.is_empty() {
        return Err(UsageError("missing program".into()));
    }
    o.host = host
        .to_str()
        .ok_or_else(|| UsageError("host is not UTF-8".into()))?
        .to_string();
    o.port = port
        .to_str()
        .ok_or_else(|| UsageError("port is not UTF-8".into()))?
        .to_string();
    o.program = program.to_vec();
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    fn ok(text: &str) -> Options {
        parse(&args(text), |_| None).unwrap()
    }

    #[test]
    fn defaults_are_tcpservers() {
        let o = ok("0 smtp prog");
        assert_eq!(o.limit, 40);
        // Not tcpserver's 20: without -b, main asks listen::default_backlog.
        assert_eq!(o.backlog, None);
        assert_eq!(o.verbosity, Verbosity::Errors);
        assert!(o.remote_host);
        assert!(!o.nodelay);
        assert_eq!(o.per_ip, None);
        assert_eq!((o.uid, o.gid), (0, 0));
        assert_eq!(o.host, "0");
        assert_eq!(o.port, "smtp");
        assert_eq!(o.program, args("prog"));
    }

    #[test]
    fn qmail_run_script_line_parses() {
        let o =
            ok("-v -R -H -l 0 -x /etc/tcp.smtp.cdb -c 20 -u 7791 -g 2108 0 25 rqmail-smtpd a b");
        assert_eq!(o.verbosity, Verbosity::Verbose);
        assert!(!o.remote_host);
        assert_eq!(o.local_name.as_deref(), Some(&b"0"[..]));
        assert_eq!(o.rules, Some(PathBuf::from("/etc/tcp.smtp.cdb")));
        assert_eq!(o.limit, 20);
        assert_eq!((o.uid, o.gid), (7791, 2108));
        assert_eq!(o.program, args("rqmail-smtpd a b"));
    }

    #[test]
    fn flags_group_and_arguments_attach() {
        let o = ok("-vDX1 -c5 -i2 -b100 -Bhello 127.0.0.1 0 prog");
        assert!(o.nodelay && o.allow_no_rules && o.print_port);
        assert_eq!((o.limit, o.per_ip, o.backlog), (5, Some(2), Some(100)));
        assert_eq!(o.banner, b"hello");
        let o = ok("-vc 7 :: 0 prog");
        assert_eq!(o.limit, 7);
    }

    #[test]
    fn options_stop_at_the_first_non_option_or_double_dash() {
        let o = ok("0 25 prog -v");
        assert_eq!(o.program, args("prog -v"));
        assert_eq!(o.verbosity, Verbosity::Errors);
        let o = ok("-- -weird 25 prog");
        assert_eq!(o.host, "-weird");
    }

    #[test]
    fn capital_u_reads_uid_and_gid_from_the_environment() {
        let env = |name: &str| match name {
            "UID" => Some(OsString::from("1001")),
            "GID" => Some(OsString::from("1002")),
            _ => None,
        };
        let o = parse(&args("-U 0 25 prog"), env).unwrap();
        assert_eq!((o.uid, o.gid), (1001, 1002));
        let o = parse(&args("-U -u 5 0 25 prog"), env).unwrap();
        assert_eq!((o.uid, o.gid), (5, 1002));
    }

    #[test]
    fn later_flags_override_earlier_ones() {
        let o = ok("-H -h -q -v -Q -D -d 0 25 prog");
        assert!(o.remote_host);
        assert!(!o.nodelay);
        assert_eq!(o.verbosity, Verbosity::Errors);
    }

    #[test]
    fn ident_and_ip_option_flags_are_accepted() {
        ok("-r -R -o -O -t 5 -p -P 0 25 prog");
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for line in [
            "",
            "0 25",
            "-c 0 25 prog",
            "-c x 0 25 prog",
            "-c -1 0 25 prog",
            "-c 0 0 25 prog",
            "-i 0 0 25 prog",
            "-z 0 25 prog",
            "-4 0 25 prog",
            "-u 99999999999 0 25 prog",
        ] {
            assert!(parse(&args(line), |_| None).is_err(), "{line:?}");
        }
        assert!(parse(&args("-c"), |_| None).is_err());
    }
}
