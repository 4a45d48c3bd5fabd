//! The control files rqmail-send reads at start (and `locals`/`virtualdomains` on HUP).

use rqmail_control::Control;
use std::io;

/// `locals` and `virtualdomains`: the domains that HUP rereads.
pub type Domains = (Vec<String>, Vec<(String, String)>);

/// rqmail-send's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Domains delivered locally (lowercase).
    pub locals: Vec<String>,
    /// `key:prepend` pairs, keys lowercase.
    pub virtualdomains: Vec<(String, String)>,
    /// Domains whose `%` hack is honoured (lowercase).
    pub percenthack: Vec<String>,
    /// Appended to recipients without `@`.
    pub envnoathost: String,
    /// User part of the bounce `From:`.
    pub bouncefrom: String,
    /// Host part of the bounce `From:`.
    pub bouncehost: String,
    /// Host of the double-bounce recipient.
    pub doublebouncehost: String,
    /// User of the double-bounce recipient.
    pub doublebounceto: String,
    /// Seconds a message may stay queued.
    pub queuelifetime: i64,
    /// Concurrency limits, local and remote.
    pub concurrency: [usize; 2],
}

impl Config {
    /// Reads every control file rqmail-send uses; any unreadable file is an error.
    pub fn load(control: &Control) -> io::Result<Config> {
        let (locals, virtualdomains) = Self::load_domains(control)?;
        Ok(Config {
            locals,
            virtualdomains,
            percenthack: lowercase(control.list("percenthack")?.unwrap_or_default()),
            envnoathost: control.line_or_me("envnoathost", "envnoathost")?,
            bouncefrom: control.line_or("bouncefrom", "MAILER-DAEMON")?,
            bouncehost: control.line_or_me("bouncehost", "bouncehost")?,
            doublebouncehost: control.line_or_me("doublebouncehost", "doublebouncehost")?,
            doublebounceto: control.line_or("doublebounceto", "postmaster")?,
            queuelifetime: control.int("queuelifetime", 604_800)? as i64,
            concurrency: [
                control.int("concurrencylocal", 10)?.min(255) as usize,
                control.int("concurrencyremote", 20)?.min(255) as usize,
            ],
        })
    }

    /// `locals` (default: `me`; with neither, rqmail-send cannot start) and
    /// `virtualdomains`, the two files HUP rereads.
    pub fn load_domains(control: &Control) -> io::Result<Domains> {
        let locals = match control.list("locals")? {
            Some(list) => lowercase(list),
            None => match control.me()? {
                Some(me) => vec![me.to_ascii_lowercase()],
                None => {
                    return Err(io::Error::other(
                        "neither control/locals nor control/me exists",
                    ));
                }
            },
        };
        let virtualdomains = control
            .list("virtualdomains")?
            .unwrap_or_default()
            .into_iter()
            .filter_map(|line| {
                let (key, value) = line.split_once(':')?;
                Some((key.to_ascii_lowercase(), value.to_string()))
            })
            .collect();
        Ok((locals, virtualdomains))
    }
}

fn lowercase(list: Vec<String>) -> Vec<String> {
    list.into_iter().map(|s| s.to_ascii_lowercase()).collect()
}
