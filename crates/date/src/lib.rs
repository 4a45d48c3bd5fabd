//! Formats UTC dates in the three shapes mail needs: the `Received:` date, the RFC 5322
//! `Date:` field and the mbox `From ` line. No time zone database: mail dates here are UTC.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Full year.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
    /// Index into Thu..Wed (day 0 of the epoch was a Thursday).
    weekday: usize,
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Utc {
    /// Breaks down seconds since the epoch (civil-from-days, proleptic Gregorian).
    pub fn from_unix(secs: i64) -> Utc {
        let days = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            weekday: days.rem_euclid(7) as usize,
        }
    }

    fn month_name(&self) -> &'static str {
        MONTHS[(self.month as usize).saturating_sub(1) % 12]
    }

    /// `23 Nov 2026 16:05:09 -0000`: the date of qmail's `Received:` lines and bounces.
    pub fn received(&self) -> String {
        format!(
            "{} {} {} {:02}:{:02}:{:02} -0000",
            self.day,
            self.month_name(),
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `Mon, 23 Nov 2026 16:05:09 +0000`: an RFC 5322 `Date:` value.
    pub fn rfc5322(&self) -> String {
        format!(
            "{}, {} {} {} {:02}:{:02}:{:02} +0000",
            WEEKDAYS[self.weekday],
            self.day,
            self.month_name(),
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `Mon Nov 23 16:05:09 2026`: the mbox `From ` line date, day zero-padded.
    pub fn mbox(&self) -> String {
        format!(
            "{} {} {:02} {:02}:{:02}:{:02} {}",
            WEEKDAYS[self.weekday],
            self.month_name(),
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // 1996-01-03 01:05:34 UTC was a Wednesday.
        let t = Utc::from_unix(820_631_134);
        assert_eq!(t.mbox(), "Wed Jan 03 01:05:34 1996");
        assert_eq!(t.received(), "3 Jan 1996 01:05:34 -0000");
        assert_eq!(t.rfc5322(), "Wed, 3 Jan 1996 01:05:34 +0000");
        // 2000-02-29 23:59:59 UTC, a leap day, a Tuesday.
        let t = Utc::from_unix(951_868_799);
        assert_eq!(t.rfc5322(), "Tue, 29 Feb 2000 23:59:59 +0000");
        assert_eq!(Utc::from_unix(0).mbox(), "Thu Jan 01 00:00:00 1970");
    }
}
