//! Recipient routing as qmail-send does it: `envnoathost`, the percent hack, `locals`,
//! then `virtualdomains`; shared by the scheduler and by smtpd's recipient checks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use rqmail_control::Control;
use std::io;

/// Channel index of local deliveries.
pub const LOCAL: usize = 0;
/// Channel index of remote deliveries.
pub const REMOTE: usize = 1;

/// The control files that decide where a recipient goes.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Domains delivered locally (lowercase).
    pub locals: Vec<String>,
    /// `key:prepend` pairs, keys lowercase.
    pub virtualdomains: Vec<(String, String)>,
    /// Domains whose `%` hack is honoured (lowercase).
    pub percenthack: Vec<String>,
    /// Appended to recipients without `@`.
    pub envnoathost: String,
}

impl Routing {
    /// Reads `locals` (default `me`; with neither there is no mail system), `virtualdomains`,
    /// `percenthack` and `envnoathost`.
    pub fn load(control: &Control) -> io::Result<Routing> {
        let mut r = Routing {
            percenthack: lowercase(control.list("percenthack")?.unwrap_or_default()),
            envnoathost: control.line_or_me("envnoathost", "envnoathost")?,
            ..Routing::default()
        };
        r.reload_domains(control)?;
        Ok(r)
    }

    /// Rereads `locals` and `virtualdomains` (what HUP does); on error nothing changes.
    pub fn reload_domains(&mut self, control: &Control) -> io::Result<()> {
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
        self.locals = locals;
        self.virtualdomains = virtualdomains;
        Ok(())
    }

    /// True if mail for `domain` (lowercase) stays on this host: in locals, or a virtual
    /// domain with a non-empty prepend.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.locals.iter().any(|l| l == domain)
            || virtual_prepend(self, format!("x@{domain}").as_bytes(), domain).is_some()
    }
}

fn lowercase(list: Vec<String>) -> Vec<String> {
    list.into_iter().map(|s| s.to_ascii_lowercase()).collect()
}

/// Where a recipient goes and its address after rewriting.
pub fn classify(config: &Routing, recipient: &[u8]) -> (usize, Vec<u8>) {
    let mut addr = recipient.to_vec();
    if !addr.contains(&b'@') {
        addr.push(b'@');
        addr.extend_from_slice(config.envnoathost.as_bytes());
    }
    // Percent hack: u%h2%h1@d -> u%h2@h1 -> u@h2, while the domain is listed.
    loop {
        let at = addr.iter().rposition(|&b| b == b'@').unwrap_or(0);
        let domain = String::from_utf8_lossy(&addr[at + 1..]).to_ascii_lowercase();
        if !config.percenthack.contains(&domain) {
            break;
        }
        let Some(pct) = addr[..at].iter().rposition(|&b| b == b'%') else {
            break;
        };
        addr.truncate(at);
        addr[pct] = b'@';
    }
    let at = addr.iter().rposition(|&b| b == b'@').unwrap_or(0);
    let domain = String::from_utf8_lossy(&addr[at + 1..]).to_ascii_lowercase();
    if config.locals.contains(&domain) {
        return (LOCAL, addr);
    }
    if let Some(prepend) = virtual_prepend(config, &addr, &domain) {
        let mut out = prepend.as_bytes().to_vec();
        out.push(b'-');
        out.extend_from_slice(&addr);
        return (LOCAL, out);
    }
    (REMOTE, addr)
}

/// The `virtualdomains` value for an address: full address, domain, each `.suffix`, then
/// the empty key; an empty value means "not virtual".
fn virtual_prepend<'a>(config: &'a Routing, addr: &[u8], domain: &str) -> Option<&'a str> {
    let lookup = |key: &str| {
        config
            .virtualdomains
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let full = String::from_utf8_lossy(addr).to_ascii_lowercase();
    let mut keys = vec![full, domain.to_string()];
    for (i, c) in domain.char_indices() {
        if c == '.' {
            keys.push(domain[i..].to_string());
        }
    }
    keys.push(String::new());
    for key in keys {
        if let Some(value) = lookup(&key) {
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

/// Undoes the virtual-domain prefix for bounce reports: `P-user@domain` -> `user@domain`.
pub fn strip_virtual_prefix(config: &Routing, recipient: &[u8]) -> Vec<u8> {
    let at = recipient
        .iter()
        .rposition(|&b| b == b'@')
        .unwrap_or(recipient.len());
    let domain =
        String::from_utf8_lossy(recipient.get(at + 1..).unwrap_or_default()).to_ascii_lowercase();
    let mut keys = vec![domain.clone()];
    for (i, c) in domain.char_indices() {
        if c == '.' {
            keys.push(domain[i..].to_string());
        }
    }
    keys.push(String::new());
    for key in keys {
        if let Some((_, p)) = config.virtualdomains.iter().find(|(k, _)| *k == key) {
            let mut prefix = p.as_bytes().to_vec();
            prefix.push(b'-');
            if !p.is_empty() && recipient.starts_with(&prefix) {
                return recipient[prefix.len()..].to_vec();
            }
            break;
        }
    }
    recipient.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Routing {
        Routing {
            locals: vec!["example.com".into(), "localhost".into()],
            virtualdomains: vec![
                ("virt.org".into(), "joe".into()),
                ("info@other.org".into(), "bob".into()),
                (".sub.net".into(), "sub".into()),
                ("x.sub.net".into(), "".into()),
            ],
            percenthack: vec!["example.com".into()],
            envnoathost: "example.com".into(),
        }
    }

    #[test]
    fn classifies_like_qmail_send() {
        let c = config();
        assert_eq!(classify(&c, b"bob"), (LOCAL, b"bob@example.com".to_vec()));
        assert_eq!(
            classify(&c, b"Bob@EXAMPLE.com"),
            (LOCAL, b"Bob@EXAMPLE.com".to_vec())
        );
        assert_eq!(
            classify(&c, b"info@virt.org"),
            (LOCAL, b"joe-info@virt.org".to_vec())
        );
        assert_eq!(
            classify(&c, b"info@other.org"),
            (LOCAL, b"bob-info@other.org".to_vec())
        );
        assert_eq!(
            classify(&c, b"a@b.sub.net"),
            (LOCAL, b"sub-a@b.sub.net".to_vec())
        );
        assert_eq!(
            classify(&c, b"a@x.sub.net"),
            (REMOTE, b"a@x.sub.net".to_vec())
        );
        assert_eq!(
            classify(&c, b"u%far.org@example.com"),
            (REMOTE, b"u@far.org".to_vec())
        );
        assert_eq!(classify(&c, b"u@far.org"), (REMOTE, b"u@far.org".to_vec()));
        assert_eq!(
            strip_virtual_prefix(&c, b"joe-info@virt.org"),
            b"info@virt.org"
        );
        assert_eq!(
            strip_virtual_prefix(&c, b"bob@example.com"),
            b"bob@example.com"
        );
    }
}
