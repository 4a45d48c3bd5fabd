//! rqmail-remote's control files: helohost, the timeouts, outgoingip, and which hosts get
//! TLS never, opportunistically, or with a verified certificate.

use rqmail_control::Control;
use rqmail_smtpclient::{Timeouts, TlsPolicy};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the control files say.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The EHLO/HELO name: control/helohost, else control/me.
    pub helo: String,
    /// control/timeoutconnect (60 s).
    pub timeout_connect: Duration,
    /// RFC 5321's per-stage timeouts, each at most control/timeoutremote (1200 s).
    pub timeouts: Timeouts,
    /// control/outgoingip: the source address for connections of its family.
    pub outgoing_ip: Option<IpAddr>,
    /// control/tlsdestinations: `domain` or `.suffix` lines whose mail needs a verified
    /// certificate.
    pub tls_destinations: Vec<String>,
    control_dir: PathBuf,
}

/// A name from DNS, smtproutes or the command line, made safe to use as a file name in
/// control/notlshosts/ or control/tlshosts/: lower case, and never a path.
fn file_name(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return None;
    }
    Some(name)
}

impl Settings {
    /// Reads the control files of `home`. An unreadable file, a missing helohost and me,
    /// or a malformed outgoingip is an error (qmail's "Unable to read control files").
    pub fn load(home: &Path) -> Result<Settings, String> {
        let control = Control::new(home);
        let err = |e: std::io::Error| e.to_string();
        let helo = match control.line("helohost").map_err(err)? {
            Some(h) => h,
            None => control
                .me()
                .map_err(err)?
                .ok_or_else(|| "neither control/helohost nor control/me exists".to_string())?,
        };
        if helo.is_empty() || helo.bytes().any(|b| b <= b' ' || b == 127) {
            return Err(format!("control/helohost is not a host name: {helo:?}"));
        }
        // A zero would mean no time at all; qmail's defaults apply instead.
        let seconds = |name: &str, default: u64| -> Result<Duration, String> {
            let n = control.int(name, default).map_err(err)?;
            Ok(Duration::from_secs(if n == 0 { default } else { n }))
        };
        let timeout_connect = seconds("timeoutconnect", 60)?;
        let timeouts = Timeouts::default().capped(seconds("timeoutremote", 1200)?);
        let outgoing_ip = match control.line("outgoingip").map_err(err)? {
            None => None,
            Some(text) if text.is_empty() => None,
            Some(text) => Some(
                text.parse()
                    .map_err(|_| format!("control/outgoingip is not an IP address: {text:?}"))?,
            ),
        };
        let tls_destinations = control
            .list("tlsdestinations")
            .map_err(err)?
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        Ok(Settings {
            helo,
            timeout_connect,
            timeouts,
            outgoing_ip,
            tls_destinations,
            control_dir: control.dir().to_path_buf(),
        })
    }

    /// True if mail for `domain` needs a verified certificate (control/tlsdestinations:
    /// an exact `domain`, or `.suffix` for every domain below it).
    pub fn tls_required_for(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.tls_destinations.iter().any(|entry| {
            if entry.starts_with('.') {
                domain.ends_with(entry.as_str())
            } else {
                *entry == domain
            }
        })
    }

    /// The TLS policy for delivering `domain`'s mail to the server named `host`:
    /// - `control/tlshosts/HOST.pem` exists: required, verified against that CA file;
    /// - `domain` is in `control/tlsdestinations`: required, verified against the system's
    ///   roots, for the name `host` (the MX or smtproutes relay name: what the MX records
    ///   or the admin's route say to connect to);
    /// - `control/notlshosts/HOST` or `control/notlshosts/DOMAIN` exists: never;
    /// - otherwise opportunistic.
    ///
    /// Required beats notlshosts, so a stray file can never silently turn off a
    /// verification the admin asked for.
    pub fn tls_policy(&self, domain: &str, host: &str) -> TlsPolicy {
        let host_file = file_name(host);
        if let Some(h) = &host_file {
            let ca = self.control_dir.join("tlshosts").join(format!("{h}.pem"));
            if ca.is_file() {
                return TlsPolicy::Required {
                    name: host.to_string(),
                    ca_file: Some(ca),
                };
            }
        }
        if self.tls_required_for(domain) {
            return TlsPolicy::Required {
                name: host.to_string(),
                ca_file: None,
            };
        }
        let no_tls = [host_file, file_name(domain)]
            .into_iter()
            .flatten()
            .any(|n| self.control_dir.join("notlshosts").join(n).exists());
        if no_tls {
            TlsPolicy::Never
        } else {
            TlsPolicy::Opportunistic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let home = std::env::temp_dir().join(format!(
            "rqmail-remote-settings-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&home);
        for (path, text) in files {
            let path = home.join("control").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(home.join("control")).unwrap();
        home
    }

    #[test]
    fn reads_qmail_defaults_and_caps_the_stage_timeouts() {
        let h = home("defaults", &[("me", "mail.example.com\n")]);
        let s = Settings::load(&h).unwrap();
        assert_eq!(s.helo, "mail.example.com");
        assert_eq!(s.timeout_connect, Duration::from_secs(60));
        assert_eq!(s.timeouts, Timeouts::default());
        assert_eq!(s.outgoing_ip, None);
        let h = home(
            "set",
            &[
                ("helohost", "out.example.com\n"),
                ("timeoutremote", "30\n"),
                ("timeoutconnect", "5\n"),
                ("outgoingip", "127.0.0.1\n"),
            ],
        );
        let s = Settings::load(&h).unwrap();
        assert_eq!(s.helo, "out.example.com");
        assert_eq!(s.timeout_connect, Duration::from_secs(5));
        assert_eq!(s.timeouts.data_end, Duration::from_secs(30));
        assert_eq!(s.outgoing_ip, Some("127.0.0.1".parse().unwrap()));
        std::fs::remove_dir_all(h).unwrap();
    }

    #[test]
    fn without_helohost_or_me_nothing_is_sent() {
        let h = home("nohelo", &[]);
        assert!(Settings::load(&h).is_err());
        std::fs::remove_dir_all(h).unwrap();
        let h = home("badip", &[("me", "x\n"), ("outgoingip", "nonsense\n")]);
        assert!(Settings::load(&h).is_err());
        std::fs::remove_dir_all(h).unwrap();
    }

    #[test]
    fn chooses_tls_policy_per_destination_and_host() {
        let h = home(
            "tls",
            &[
                ("me", "x\n"),
                ("tlsdestinations", "secure.example\n.bank.example\n"),
                ("notlshosts/old.example.net", ""),
                ("notlshosts/plain.example", ""),
                ("tlshosts/mx.pinned.example.pem", "x"),
            ],
        );
        let s = Settings::load(&h).unwrap();
        assert_eq!(
            s.tls_policy("secure.example", "mx.secure.example"),
            TlsPolicy::Required {
                name: "mx.secure.example".into(),
                ca_file: None
            }
        );
        assert!(matches!(
            s.tls_policy("x.bank.example", "old.example.net"),
            TlsPolicy::Required { .. }
        ));
        assert_eq!(
            s.tls_policy("bank.example", "mx.bank.example"),
            TlsPolicy::Opportunistic
        );
        assert_eq!(
            s.tls_policy("other.example", "OLD.example.net"),
            TlsPolicy::Never
        );
        assert_eq!(
            s.tls_policy("plain.example", "mx.plain.example"),
            TlsPolicy::Never
        );
        assert_eq!(
            s.tls_policy("p.example", "mx.pinned.example"),
            TlsPolicy::Required {
                name: "mx.pinned.example".into(),
                ca_file: Some(h.join("control/tlshosts/mx.pinned.example.pem"))
            }
        );
        assert_eq!(
            s.tls_policy("../../etc", "../x"),
            TlsPolicy::Opportunistic,
            "names never become paths"
        );
        std::fs::remove_dir_all(h).unwrap();
    }
}
