//! One timescale's window against its limit: the figure events, status and backtest
//! transitions share, so that every trip says what it was judged on.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::detect::{Bound, Reading, Timescale};

/// One timescale's window against its limit, at one moment.
///
/// Displayed the way an operator reads a trip: `hour window 412 > 360 (2.0 x expected 180)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The timescale.
    pub timescale: Timescale,
    /// Sends attempted in the window.
    pub window_count: u64,
    /// The count the window may reach; one more trips the kind. `u64::MAX` while the timescale
    /// is not judged (`bound` is `none`), which JSON shows as `null`: a JavaScript reader would
    /// read the number `18446744073709551615` as another one, and it is no count.
    #[serde(with = "unjudged_as_null")]
    pub threshold: u64,
    /// Sends the window was expected to hold: what the kind's learned week and recent rate
    /// make normal for the time.
    pub expected: f64,
    /// The rule that set `threshold`.
    pub bound: Bound,
}

impl Window {
    /// Whether the window holds more than its threshold.
    pub fn is_over(&self) -> bool {
        self.window_count > self.threshold
    }
}

impl Window {
    /// A detector's reading as the window an operator reads.
    pub(crate) fn of(reading: &Reading) -> Self {
        Self {
            timescale: reading.timescale,
            window_count: reading.count,
            threshold: reading.threshold(),
            expected: f64::from(reading.limit.expected),
            bound: reading.limit.bound,
        }
    }

    /// `hour window 412 > 360`: the count against the threshold, without what set it.
    pub(crate) fn fmt_count(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let relation = if self.is_over() { '>' } else { '≤' };
        write!(f, "{} window {}", self.timescale, self.window_count)?;
        if self.bound == Bound::None {
            return Ok(());
        }
        write!(f, " {relation} {}", self.threshold)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_count(f)?;
        if self.bound == Bound::None {
            return write!(f, " (no limit yet)");
        }
        f.write_str(" ")?;
        match self.bound {
            Bound::Factor => write!(
                f,
                "({:.1} x expected {:.1})",
                self.threshold as f64 / self.expected.max(f64::MIN_POSITIVE),
                self.expected
            ),
            Bound::Spread => write!(f, "(the spread around expected {:.1})", self.expected),
            Bound::Floor => write!(f, "(the floor; expected {:.1})", self.expected),
            Bound::Ceiling => write!(f, "(the ceiling; expected {:.1})", self.expected),
            Bound::Warmup => write!(f, "(the warm-up ceiling: nothing learned yet)"),
            Bound::None => Ok(()),
        }
    }
}

/// A threshold in JSON: `null` for a timescale not judged (`u64::MAX`), read back as `u64::MAX`;
/// a number as written otherwise (`u64::MAX` written by an older version reads as well).
mod unjudged_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(threshold: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        match *threshold {
            u64::MAX => serializer.serialize_none(),
            threshold => serializer.serialize_some(&threshold),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_reads_as_what_it_was_judged_on() {
        let window = |bound, window_count, threshold| Window {
            timescale: Timescale::Hour,
            window_count,
            threshold,
            expected: 180.0,
            bound,
        };
        let cases = [
            (
                window(Bound::Factor, 412, 360),
                "hour window 412 > 360 (2.0 x expected 180.0)",
            ),
            (
                window(Bound::Spread, 10, 500),
                "hour window 10 ≤ 500 (the spread around expected 180.0)",
            ),
            (
                window(Bound::Floor, 130, 120),
                "hour window 130 > 120 (the floor; expected 180.0)",
            ),
            (
                window(Bound::Warmup, 501, 500),
                "hour window 501 > 500 (the warm-up ceiling: nothing learned yet)",
            ),
            (window(Bound::None, 3, u64::MAX), "hour window 3 (no limit yet)"),
        ];
        for (window, text) in cases {
            assert_eq!(window.to_string(), text);
        }
    }

    #[test]
    fn a_window_not_judged_has_no_threshold_in_json() {
        let window = |threshold| Window {
            timescale: Timescale::Day,
            window_count: 3,
            threshold,
            expected: 0.0,
            bound: if threshold == u64::MAX {
                Bound::None
            } else {
                Bound::Floor
            },
        };
        for (window, json) in [
            (
                window(u64::MAX),
                r#"{"timescale":"day","window_count":3,"threshold":null,"expected":0.0,"bound":"none"}"#,
            ),
            (
                window(600),
                r#"{"timescale":"day","window_count":3,"threshold":600,"expected":0.0,"bound":"floor"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&window).unwrap(), json);
            assert_eq!(serde_json::from_str::<Window>(json).unwrap(), window);
        }
        let old = r#"{"timescale":"day","window_count":3,"threshold":18446744073709551615,"expected":0.0,"bound":"none"}"#;
        assert_eq!(serde_json::from_str::<Window>(old).unwrap(), window(u64::MAX));
    }
}
