//! The result of a delivery or of queueing a message: success, temporary failure (try
//! again later) or permanent failure (bounce), with the two encodings qmail gives it.
//!
//! - Exit codes, qmail's written contract (EXIT CODES in qmail-queue(8), qmail-command(8)):
//!   0 success, 111 temporary, 100 permanent.
//! - Report letters, the spawn protocol's status byte (qmail's spawn.c): `K` success,
//!   `Z` temporary, `D` permanent, and rqmail's `R`, a temporary failure because the
//!   delivery was killed from outside ([`ReportStatus`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Exit code for success.
pub const EXIT_SUCCESS: u8 = 0;
/// Exit code for a temporary failure: the caller tries again later.
pub const EXIT_TEMPORARY: u8 = 111;
/// Exit code for a permanent failure: the caller gives up (a delivery bounces).
pub const EXIT_PERMANENT: u8 = 100;

/// Whether something worked, may work later, or never will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It worked.
    Success,
    /// It did not work, and may if tried again later.
    Temporary,
    /// It did not work, and will not.
    Permanent,
}

impl Outcome {
    /// qmail's exit code for this outcome: 0, 111 or 100.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => EXIT_SUCCESS,
            Outcome::Temporary => EXIT_TEMPORARY,
            Outcome::Permanent => EXIT_PERMANENT,
        }
    }

    /// How qmail-local reads a delivery program's exit code (qmail-command(8)): 0 and 99
    /// are success (99 also stops the rest of the .qmail file, which the caller decides);
    /// 100, 64, 65, 70, 76, 77, 78 and 112 are permanent; anything else, 111 included, is
    /// temporary.
    pub fn from_exit_code(code: i32) -> Outcome {
        match code {
            0 | 99 => Outcome::Success,
            100 | 64 | 65 | 70 | 76 | 77 | 78 | 112 => Outcome::Permanent,
            _ => Outcome::Temporary,
        }
    }

    /// The spawn protocol's letter for this outcome: `K`, `Z` or `D`.
    pub fn report_letter(self) -> u8 {
        ReportStatus::from(self).letter()
    }

    /// The outcome a spawn report letter stands for (`R` is temporary); `None` for a byte
    /// that is no report letter.
    pub fn from_report_letter(letter: u8) -> Option<Outcome> {
        ReportStatus::from_letter(letter).map(ReportStatus::outcome)
    }

    /// Whether this is a temporary failure.
    pub fn is_temporary(self) -> bool {
        self == Outcome::Temporary
    }
}

/// The status a spawn reports for one recipient: an [`Outcome`], with the temporary failure
/// of a delivery killed from outside (SIGKILL, SIGTERM, ...) told apart, since nothing was
/// wrong with it and it is tried again soon instead of at the next step of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportStatus {
    /// `K`: delivered.
    Success,
    /// `Z`: try again later.
    Temporary,
    /// `D`: bounce.
    Permanent,
    /// `R`: killed from outside before it finished; try again soon.
    Interrupted,
}

impl ReportStatus {
    /// Every status, in letter order `K Z D R`.
    pub const ALL: [ReportStatus; 4] = [
        ReportStatus::Success,
        ReportStatus::Temporary,
        ReportStatus::Permanent,
        ReportStatus::Interrupted,
    ];

    /// The byte on the wire.
    pub fn letter(self) -> u8 {
        match self {
            ReportStatus::Success => b'K',
            ReportStatus::Temporary => b'Z',
            ReportStatus::Permanent => b'D',
            ReportStatus::Interrupted => b'R',
        }
    }

    /// The status a byte on the wire stands for; `None` if it is no report letter.
    pub fn from_letter(letter: u8) -> Option<ReportStatus> {
        ReportStatus::ALL.into_iter().find(|s| s.letter() == letter)
    }

    /// Success, temporary or permanent (an interrupted delivery failed temporarily).
    pub fn outcome(self) -> Outcome {
        match self {
            ReportStatus::Success => Outcome::Success,
            ReportStatus::Temporary | ReportStatus::Interrupted => Outcome::Temporary,
            ReportStatus::Permanent => Outcome::Permanent,
        }
    }
}

impl From<Outcome> for ReportStatus {
    fn from(outcome: Outcome) -> ReportStatus {
        match outcome {
            Outcome::Success => ReportStatus::Success,
            Outcome::Temporary => ReportStatus::Temporary,
            Outcome::Permanent => ReportStatus::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTCOMES: [Outcome; 3] = [Outcome::Success, Outcome::Temporary, Outcome::Permanent];

    #[test]
    fn exit_codes_are_qmails() {
        assert_eq!(Outcome::Success.exit_code(), 0);
        assert_eq!(Outcome::Temporary.exit_code(), 111);
        assert_eq!(Outcome::Permanent.exit_code(), 100);
    }

    #[test]
    fn exit_codes_round_trip() {
        for o in OUTCOMES {
            assert_eq!(Outcome::from_exit_code(i32::from(o.exit_code())), o);
        }
    }

    #[test]
    fn exit_codes_are_read_as_qmail_command_says() {
        assert_eq!(Outcome::from_exit_code(99), Outcome::Success);
        for code in [64, 65, 70, 76, 77, 78, 112] {
            assert_eq!(Outcome::from_exit_code(code), Outcome::Permanent, "{code}");
        }
        for code in [1, 2, 71, 75, 113, 255, -1] {
            assert_eq!(Outcome::from_exit_code(code), Outcome::Temporary, "{code}");
        }
    }

    #[test]
    fn report_letters_round_trip() {
        for s in ReportStatus::ALL {
            assert_eq!(ReportStatus::from_letter(s.letter()), Some(s));
        }
        for o in OUTCOMES {
            assert_eq!(Outcome::from_report_letter(o.report_letter()), Some(o));
        }
        let letters: Vec<u8> = ReportStatus::ALL.iter().map(|s| s.letter()).collect();
        assert_eq!(letters, b"KZDR");
    }

    #[test]
    fn interrupted_is_temporary_and_other_bytes_are_no_letter() {
        assert_eq!(Outcome::from_report_letter(b'R'), Some(Outcome::Temporary));
        for b in [0, b'X', b'k', b'z', b' '] {
            assert_eq!(ReportStatus::from_letter(b), None);
        }
    }
}
