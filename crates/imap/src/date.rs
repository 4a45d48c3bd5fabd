//! IMAP dates: INTERNALDATE output (`dd-Mon-yyyy hh:mm:ss +0000`, in UTC) and the date and
//! date-time arguments of SEARCH and APPEND.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// INTERNALDATE for a time in seconds since the epoch.
pub fn internal_date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    format!(
        "{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Parses `d-Mon-yyyy` (SEARCH's date) into days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let d: u32 = parts.next()?.trim().parse().ok()?;
    let mon = parts.next()?;
    let y: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=31).contains(&d) {
        return None;
    }
    let m = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(mon))? as u32 + 1;
    let days = days_from_civil(y, m, d);
    // 31-Feb and the like do not name a day.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// Parses APPEND's `dd-Mon-yyyy hh:mm:ss +zzzz` into seconds since the epoch.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let mut parts = s.trim().split(' ');
    let days = parse_date(parts.next()?)?;
    let time: Vec<i64> = parts
        .next()?
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let zone = parts.next()?;
    if time.len() != 3 || zone.len() != 5 || !zone.is_ascii() {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let hh: i64 = zone[1..3].parse().ok()?;
    let mm: i64 = zone[3..5].parse().ok()?;
    Some(days * 86400 + time[0] * 3600 + time[1] * 60 + time[2] - sign * (hh * 3600 + mm * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(951782400), "29-Feb-2000 00:00:00 +0000");
        assert_eq!(parse_date("29-Feb-2000"), Some(951782400 / 86400));
        assert_eq!(
            parse_date_time("29-Feb-2000 01:00:00 +0100"),
            Some(951782400)
        );
    }
}
