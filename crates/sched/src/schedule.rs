//! qmail's retry schedule: quadratic in the square root of a message's age.

pub use rqmail_route::{LOCAL, REMOTE};
/// Channel names for logs and file names.
pub const CHANNEL_NAMES: [&str; 2] = ["local", "remote"];

/// Floor of the square root.
pub fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u64;
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

/// When the next attempt after one starting `now` happens:
/// `birth + (isqrt(now - birth) + skip)^2`, skip 10 for local and 20 for remote.
pub fn next_retry(birth: i64, now: i64, channel: usize) -> i64 {
    let skip = if channel == LOCAL { 10 } else { 20 };
    let age = (now - birth).max(0) as u64;
    let root = isqrt(age) + skip;
    birth + (root * root) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_qmails_schedule() {
        // Attempts on time: local at 100·k², remote at 400·k² seconds after birth.
        assert_eq!(next_retry(0, 0, LOCAL), 100);
        assert_eq!(next_retry(0, 100, LOCAL), 400);
        assert_eq!(next_retry(0, 400, LOCAL), 900);
        assert_eq!(next_retry(0, 0, REMOTE), 400);
        assert_eq!(next_retry(0, 400, REMOTE), 1600);
        assert_eq!(next_retry(1000, 1000 + 1600, REMOTE), 1000 + 3600);
        assert_eq!(isqrt(99), 9);
        assert_eq!(isqrt(100), 10);
    }
}
