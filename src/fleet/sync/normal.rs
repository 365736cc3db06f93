//! [`FleetNormal`]: what the fleet sends of a kind, learned from fleet-wide window totals.

use crate::detect::Policy;

/// What the fleet sends of a kind in a minute window, learned from fleet-wide window totals: a
/// mean and variance over about the last hour (a running average until warm, growth bounded
/// after), judged with the kind's minute guards. Fleet mode watches the minute timescale; every
/// instance still watches all three on its own counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct FleetNormal {
    mean: f64,
    var: f64,
    pub(super) windows: u64,
}

impl FleetNormal {
    /// Minute windows with sends to learn before the fleet's normal is trusted.
    fn warmup_windows(policy: &Policy) -> u64 {
        u64::from(policy.warmup_windows)
    }

    pub(super) fn learn(&mut self, count: u64, policy: &Policy) {
        let warm = self.windows >= Self::warmup_windows(policy);
        if count == 0 && !warm {
            return;
        }
        let window_hours = policy.window_ms() as f64 / 3_600_000.0;
        let mut x = count as f64;
        if warm {
            x = x.min(self.mean.max(1.0) * policy.growth_per_hour.powf(window_hours));
        }
        let alpha = (1.0 - 0.5f64.powf(window_hours)).max(1.0 / (self.windows + 1) as f64);
        let delta = x - self.mean;
        self.mean += alpha * delta;
        self.var = (1.0 - alpha) * (self.var + alpha * delta * delta);
        self.windows = self.windows.saturating_add(1);
    }

    pub(super) fn threshold(&self, policy: &Policy) -> u64 {
        let warm = self.windows >= Self::warmup_windows(policy);
        let phi = if self.mean > 0.0 {
            ((self.var - self.mean) / (self.mean * self.mean)).clamp(0.0, 10.0)
        } else {
            0.0
        };
        policy.minute_limit(warm.then_some(self.mean), phi).0
    }
}
