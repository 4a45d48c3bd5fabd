//! The control files rqmail-send reads at start (and `locals`/`virtualdomains` on HUP).

use rqmail_control::Control;
pub use rqmail_route::Routing;
use std::io;

/// rqmail-send's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where recipients go: locals, virtualdomains, percenthack, envnoathost.
    pub routing: Routing,
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
        Ok(Config {
            routing: Routing::load(control)?,
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
}
