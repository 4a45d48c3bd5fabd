//! Everything a session needs, read once at start from control files, the environment
//! tcpserver and its rules set, and the command line.

use rqmail_control::Control;
use rqmail_route::Routing;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The session's configuration.
pub struct Settings {
    /// The rqmail home.
    pub home: PathBuf,
    /// Control files.
    pub control: Control,
    /// Text after `220 ` (and in HELO/EHLO/QUIT replies).
    pub greeting: String,
    /// The name written as `by` in the Received line.
    pub local_host: String,
    /// TCPREMOTEIP.
    pub remote_ip: String,
    /// TCPREMOTEHOST.
    pub remote_host: Option<String>,
    /// TCPREMOTEINFO.
    pub remote_info: Option<String>,
    /// RELAYCLIENT: set means the client may relay; its value is appended to recipients.
    pub relayclient: Option<String>,
    /// Read timeout.
    pub timeout: Duration,
    /// Most bytes a message may have as stored (0: no limit, only when an admin says so).
    pub databytes: u64,
    /// Most recipients per message.
    pub maxrcpt: usize,
    /// Domains accepted from anyone (`rcpthosts`), with `.suffix` entries.
    pub rcpthosts: Vec<String>,
    /// `morercpthosts.cdb`, when it exists.
    pub morercpthosts: Option<PathBuf>,
    /// Refused senders (`badmailfrom`), lowercase.
    pub badmailfrom: Vec<String>,
    /// locals / virtualdomains: which recipients are checked for a mailbox.
    pub routing: Routing,
    /// `control/servercert.pem`, when it exists: STARTTLS is offered.
    pub servercert: Option<PathBuf>,
    /// SMTPS set: TLS from the first byte (port 465).
    pub smtps: bool,
    /// The checkpassword command (program, then the program it runs), when AUTH is on.
    pub checkpassword: Option<Vec<OsString>>,
    /// AUTH is required before MAIL (submission).
    pub auth_required: bool,
    /// AUTH may be offered without TLS (SMTPAUTH_PLAINTEXT set, e.g. for loopback).
    pub auth_plaintext: bool,
}

/// `databytes` when neither control/databytes nor `DATABYTES` says otherwise: 35 MiB.
/// Postfix ships about 10 MB; mail clients and providers allow 25 MB attachments, which
/// base64 makes about 37% larger (4/3, plus a CRLF every 76 characters), so 25 MiB
/// becomes 35.9 MB: 36700160 bytes still takes it with its headers. A fresh install is
/// never unlimited; `0` in the file (or `DATABYTES=0`) still means no limit.
pub const DEFAULT_DATABYTES: u64 = 35 * 1024 * 1024;

/// `databytes` from the environment, read as control files' integers are: the digits at
/// the start, and the default when there are none (so a mistyped value is not "no limit").
fn databytes_from(value: &str) -> u64 {
    let digits: String = value
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(DEFAULT_DATABYTES)
}

fn env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

impl Settings {
    /// Reads the configuration; an unreadable control file is an error (421 at greeting).
    pub fn load(args: &[OsString]) -> std::io::Result<Settings> {
        let home = rqmail_control::home()?;
        let control = Control::new(&home);
        let me = control.me()?.unwrap_or_else(|| "localhost".into());
        let greeting = control.line("smtpgreeting")?.unwrap_or_else(|| me.clone());
        let timeout = control.int("timeoutsmtpd", 1200)?.max(1);
        let databytes = match env("DATABYTES") {
            Some(v) => databytes_from(&v),
            None => control.int("databytes", DEFAULT_DATABYTES)?,
        };
        let routing = Routing::load(&control)?;
        // A missing rcpthosts would make qmail an open relay; here it means "the domains
        // delivered on this host".
        let rcpthosts = match control.list("rcpthosts")? {
            Some(list) => list.into_iter().map(|d| d.to_ascii_lowercase()).collect(),
            None => {
                let mut d = routing.locals.clone();
                d.extend(
                    routing
                        .virtualdomains
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, _)| k.clone()),
                );
                d
            }
        };
        let morercpthosts = Some(control.dir().join("morercpthosts.cdb")).filter(|p| p.exists());
        let servercert = Some(control.dir().join("servercert.pem")).filter(|p| p.exists());
        // qmail-smtpd-auth's arguments: HOSTNAME CHECKPASSWORD SUBPROGRAM [ARGS...].
        let checkpassword = (args.len() >= 3).then(|| args[1..].to_vec());
        let smtpauth = env("SMTPAUTH");
        let auth_disabled = smtpauth.as_deref().is_some_and(|v| v.starts_with('-'));
        Ok(Settings {
            greeting,
            local_host: env("TCPLOCALHOST")
                .or_else(|| env("TCPLOCALIP"))
                .unwrap_or_else(|| me.clone()),
            remote_ip: env("TCPREMOTEIP").unwrap_or_else(|| "unknown".into()),
            remote_host: env("TCPREMOTEHOST"),
            remote_info: env("TCPREMOTEINFO"),
            relayclient: env("RELAYCLIENT"),
            timeout: Duration::from_secs(timeout),
            databytes,
            maxrcpt: control.int("maxrcpt", 100)?.max(1) as usize,
            rcpthosts,
            morercpthosts,
            badmailfrom: control
                .list("badmailfrom")?
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            routing,
            servercert,
            smtps: env("SMTPS").is_some_and(|v| !v.is_empty()),
            checkpassword: if auth_disabled { None } else { checkpassword },
            auth_required: smtpauth.as_deref().is_some_and(|v| v.starts_with('!')),
            auth_plaintext: env("SMTPAUTH_PLAINTEXT").is_some(),
            home,
            control,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databytes_from_the_environment_reads_digits_and_never_turns_junk_into_no_limit() {
        assert_eq!(databytes_from("1000"), 1000);
        assert_eq!(databytes_from(" 2000 \n"), 2000);
        assert_eq!(databytes_from("0"), 0, "0 written on purpose is no limit");
        assert_eq!(databytes_from("10MB"), 10);
        assert_eq!(databytes_from(""), DEFAULT_DATABYTES);
        assert_eq!(databytes_from("lots"), DEFAULT_DATABYTES);
    }
}
