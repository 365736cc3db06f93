//! One kind's detection settings, compiled from the configuration: the guards of each timescale,
//! the warm-up and the growth bound. The configuration checks them; nothing here re-checks them.

use super::limit::{Bound, Guards, limit, upper_quantile};
use super::ring::BUCKETS;

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
    /// The most the recent rate may grow in an hour, once a day is learned.
    pub(crate) growth_per_hour: f64,
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
            learns: true,
        }
    }
}
