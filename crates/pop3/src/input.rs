//! The session's descriptors: input whose reads give up after an idle timeout, and output
//! that gives up on a client that stops reading, so that no client holds a process forever.
//! The timeouts themselves are rqmail-timeouts', shared with rqmail-imapd.

use std::time::Duration;

pub use rqmail_timeouts::{TimedInput, set_send_timeout};

/// RFC 1939 §3: an inactivity autologout timer of at least 10 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
