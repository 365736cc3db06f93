//! One kind's detection settings, compiled from the configuration: the guards of each timescale,
//! the warm-up, the growth bounds and a declared rate. The configuration checks them; nothing here
//! re-checks them.

use super::limit::{Bound, Guards, as_count, limit, upper_quantile};
use super::ring::BUCKETS;

/// A kind with nothing learned may send, in its first hour, this share of the warm-up ceiling
/// in every minute: 24,000 with the defaults, 400 a minute on average.
const WARMUP_HOUR_SHARE: f64 = 0.8;

/// One kind's detection settings.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Policy {
    /// A twelfth of the minute window.
    pub(crate) bucket_ms: u64,
    /// Per timescale, shortest first.
    pub(crate) guards: [Guards; 3],
    /// The minute window's limit until the kind is warm.
    pub(crate) warmup_ceiling: u64,
    /// Minute windows (`window_ms` each) with sends to learn before the kind is warm:
    /// `warmup_secs` of them.
    pub(crate) warmup_windows: u32,
    /// The most the recent rate may grow in an hour.
    pub(crate) growth_per_hour: f64,
    /// The most the recent rate's lift above the learned week may grow in a day.
    pub(crate) growth_per_day: f64,
    /// Sends a minute the configuration declares the kind makes (a new high-volume kind): until
    /// it has learned a day, the kind is judged as if it had learned that rate, with no warm-up.
    pub(crate) expected: Option<f64>,
    /// Whether the kind learns at all: every kind but the overflow kind, whose limit is fixed
    /// (traffic must not teach it a higher one).
    pub(crate) learns: bool,
}

impl Policy {
    /// The minute window's length.
    pub(crate) fn window_ms(&self) -> u64 {
        self.bucket_ms * BUCKETS as u64
    }

    /// The minute window's limit when `expected` sends are expected with spread `phi`, or the
    /// warm-up ceiling when nothing is learned yet (`None`); and the rule that set it. Fleet mode
    /// judges the fleet-wide minute window with it.
    pub(crate) fn minute_limit(&self, expected: Option<f64>, phi: f64) -> (u64, Bound) {
        let guards = &self.guards[0];
        match expected {
            None if guards.ceiling < self.warmup_ceiling => (guards.ceiling, Bound::Ceiling),
            None => (self.warmup_ceiling, Bound::Warmup),
            Some(mu) => limit(mu, upper_quantile(mu, phi, guards.sigmas), guards),
        }
    }

    /// The hour window's limit until the kind is warm: `WARMUP_HOUR_SHARE` of the minute
    /// window's warm-up limit in every minute of the hour, so that a kind with nothing learned
    /// may burst to its warm-up ceiling but not hold near it for an hour and become its own
    /// normal.
    pub(crate) fn warmup_hour_limit(&self) -> (u64, Bound) {
        let (minute, bound) = self.minute_limit(None, 0.0);
        let windows = 3_600_000.0 / self.window_ms() as f64;
        let count = (minute as f64 * windows * WARMUP_HOUR_SHARE).ceil();
        (as_count(count).max(minute), bound)
    }

    /// The defaults, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            bucket_ms: 5_000,
            guards: [
                Guards {
                    factor: 3.0,
                    floor: 50,
                    ceiling: u64::MAX,
                    sigmas: 5.0,
                },
                Guards {
                    factor: 2.0,
                    floor: 120,
                    ceiling: u64::MAX,
                    sigmas: 4.5,
                },
                Guards {
                    factor: 2.0,
                    floor: 600,
                    ceiling: u64::MAX,
                    sigmas: 4.5,
                },
            ],
            warmup_ceiling: 500,
            warmup_windows: 60,
            growth_per_hour: 1.5,
            growth_per_day: 4.0,
            expected: None,
            learns: true,
        }
    }
}
