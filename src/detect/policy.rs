//! The threshold policy: one kind's detection constants, per window, and the threshold formula.
//! The configuration checks the settings and builds the policy; nothing here re-checks them.

use super::baseline::{Baseline, Learning};
use super::window::BUCKETS;

/// One kind's detection constants, per window.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Policy {
    /// A twelfth of the window.
    pub(crate) bucket_ms: u64,
    pub(crate) factor: f64,
    pub(crate) margin_sigmas: f64,
    pub(crate) floor: u64,
    /// `u64::MAX`: no ceiling.
    pub(crate) ceiling: u64,
    pub(crate) warmup_ceiling: u64,
    /// How the baseline learns.
    pub(crate) learning: Learning,
}

/// The limit that sets a threshold, and so the reason of a trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// No baseline is learned yet: the warm-up ceiling.
    Warmup,
    /// The learned normal: the floor, the factor or the margin, whichever is highest.
    Spike,
    /// The absolute ceiling.
    Ceiling,
}

impl Policy {
    /// The window length the buckets add up to.
    pub(crate) fn window_ms(&self) -> u64 {
        self.bucket_ms * BUCKETS as u64
    }

    /// The most sends a window may hold before the kind trips, and the limit that sets it.
    ///
    /// Warm: the larger of `floor`, `factor` × normal and normal + `margin_sigmas` × sigma, where
    /// sigma is at least the Poisson `sqrt(normal)`. Cold (no baseline yet): the warm-up ceiling.
    /// The ceiling caps both.
    pub(crate) fn threshold(&self, baseline: &Baseline) -> (u64, Limit) {
        let (limit, reason) = if !baseline.is_warm(&self.learning) {
            (self.warmup_ceiling, Limit::Warmup)
        } else {
            let normal = baseline.normal();
            let spike = (self.factor * normal).max(normal + self.margin_sigmas * baseline.sigma());
            (as_count(spike.ceil()).max(self.floor), Limit::Spike)
        };
        if limit > self.ceiling {
            (self.ceiling, Limit::Ceiling)
        } else {
            (limit, reason)
        }
    }
}

/// A non-negative float as a count, saturating.
fn as_count(value: f64) -> u64 {
    if value >= u64::MAX as f64 {
        u64::MAX
    } else {
        value.max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults for one-minute windows, with no warm-up.
    fn policy() -> Policy {
        Policy {
            bucket_ms: 5_000,
            factor: 3.0,
            margin_sigmas: 6.0,
            floor: 100,
            ceiling: u64::MAX,
            warmup_ceiling: 1_000,
            learning: Learning::per_window(60, 0, 1.5, 72.0),
        }
    }

    #[test]
    fn threshold_table() {
        let p = policy();
        // (learned normal, learned variance) -> expected threshold and limiting reason.
        let cases = [
            (0.0, 0.0, 100, Limit::Spike),               // the floor holds a silent kind
            (10.0, 10.0, 100, Limit::Spike),             // few a minute: still the floor
            (50.0, 50.0, 150, Limit::Spike),             // factor: 3 x 50
            (1000.0, 400.0 * 400.0, 3400, Limit::Spike), // bursty kind: the learned sigma wins
        ];
        for (normal, var, expected, reason) in cases {
            let baseline = Baseline::from_parts(normal, var, normal, 1_000);
            assert_eq!(p.threshold(&baseline), (expected, reason), "normal {normal}");
        }
    }

    #[test]
    fn warmup_and_ceiling_limits() {
        let p = Policy {
            ceiling: 2000,
            learning: Learning::per_window(60, 3600, 1.5, 72.0),
            ..policy()
        };
        assert_eq!(p.threshold(&Baseline::default()), (1000, Limit::Warmup));
        let busy = Baseline::from_parts(5000.0, 0.0, 5000.0, 1_000);
        assert_eq!(p.threshold(&busy), (2000, Limit::Ceiling));
    }
}
