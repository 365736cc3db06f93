//! The validated, per-kind form of [`KindConfig`]: the constants the engine runs on, and the
//! threshold formula. Pure functions of their inputs, no clock and no locks.

use crate::baseline::Baseline;
use crate::config::{KindConfig, Recovery};
use crate::error::Error;
use crate::state::Reason;
use crate::window::BUCKETS;

const MS_PER_HOUR: f64 = 3_600_000.0;
const MAX_WINDOW_SECS: u64 = 86_400;
const MAX_DURATION_SECS: u64 = 30 * 86_400;
/// Half-life of the learned mean and variance: an hour of traffic.
const MEAN_HALF_LIFE_MS: f64 = MS_PER_HOUR;

/// One kind's settings, checked and turned into per-window constants.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Policy {
    pub(crate) bucket_ms: u64,
    pub(crate) factor: f64,
    pub(crate) margin_sigmas: f64,
    pub(crate) floor: u64,
    pub(crate) ceiling: u64,
    pub(crate) warmup_ceiling: u64,
    pub(crate) warmup_windows: u64,
    /// How much the learned normal may grow from one window to the next.
    pub(crate) growth_per_window: f64,
    /// What remains of the remembered peak after one window.
    pub(crate) peak_decay_per_window: f64,
    /// Weight of a new window in the learned mean and variance.
    pub(crate) mean_alpha: f64,
    pub(crate) recovery: Recovery,
    pub(crate) cooldown_ms: u64,
    pub(crate) probe_ms: u64,
    pub(crate) dry_run: bool,
}

impl Policy {
    /// Validates `config`; `path` prefixes field names in errors (`defaults`, `kinds."a"`).
    pub(crate) fn compile(config: &KindConfig, path: &str) -> Result<Self, Error> {
        let field = |name: &str| format!("{path}.{name}");
        if !(1..=MAX_WINDOW_SECS).contains(&config.window_secs) {
            return Err(Error::invalid(
                field("window_secs"),
                config.window_secs,
                "must be 1 to 86400 seconds",
            ));
        }
        finite_at_least(
            config.factor,
            1.0,
            &field("factor"),
            "must be a finite number of at least 1",
        )?;
        finite_at_least(
            config.margin_sigmas,
            0.0,
            &field("margin_sigmas"),
            "must be a finite number of at least 0",
        )?;
        finite_at_least(
            config.max_growth_per_hour,
            1.0,
            &field("max_growth_per_hour"),
            "must be a finite number of at least 1",
        )?;
        if !(config.peak_half_life_hours.is_finite() && config.peak_half_life_hours > 0.0) {
            return Err(Error::invalid(
                field("peak_half_life_hours"),
                config.peak_half_life_hours,
                "must be a finite number above 0",
            ));
        }
        if let Some(ceiling) = config.ceiling {
            if ceiling < config.floor.max(1) {
                return Err(Error::invalid(
                    field("ceiling"),
                    ceiling,
                    "must be at least 1 and at least `floor`",
                ));
            }
        }
        if config.warmup_ceiling < config.floor {
            return Err(Error::invalid(
                field("warmup_ceiling"),
                config.warmup_ceiling,
                "must be at least `floor`",
            ));
        }
        for (name, secs) in [
            ("warmup_secs", config.warmup_secs),
            ("cooldown_secs", config.cooldown_secs),
            ("probe_secs", config.probe_secs),
        ] {
            if secs > MAX_DURATION_SECS {
                return Err(Error::invalid(
                    field(name),
                    secs,
                    "must be at most 30 days (2592000 seconds)",
                ));
            }
        }

        let window_ms = config.window_secs * 1000;
        let window_hours = window_ms as f64 / MS_PER_HOUR;
        Ok(Self {
            bucket_ms: window_ms / BUCKETS as u64,
            factor: config.factor,
            margin_sigmas: config.margin_sigmas,
            floor: config.floor,
            ceiling: config.ceiling.unwrap_or(u64::MAX),
            warmup_ceiling: config.warmup_ceiling,
            warmup_windows: config.warmup_secs.div_ceil(config.window_secs),
            growth_per_window: config.max_growth_per_hour.powf(window_hours),
            peak_decay_per_window: 0.5f64.powf(window_hours / config.peak_half_life_hours),
            mean_alpha: 1.0 - 0.5f64.powf(window_ms as f64 / MEAN_HALF_LIFE_MS),
            recovery: config.recovery,
            cooldown_ms: config.cooldown_secs * 1000,
            probe_ms: config.probe_secs * 1000,
            dry_run: config.dry_run,
        })
    }

    /// The window length the buckets add up to.
    pub(crate) fn window_ms(&self) -> u64 {
        self.bucket_ms * BUCKETS as u64
    }

    /// The most sends a window may hold before the kind trips, and the limit that sets it.
    ///
    /// Warm: the larger of `floor`, `factor` × normal and normal + `margin_sigmas` × sigma, where
    /// sigma is at least the Poisson `sqrt(normal)`. Cold (no baseline yet): the warm-up ceiling.
    /// The ceiling caps both.
    pub(crate) fn threshold(&self, baseline: &Baseline) -> (u64, Reason) {
        let (limit, reason) = if !baseline.is_warm(self) {
            (self.warmup_ceiling, Reason::Warmup)
        } else {
            let normal = baseline.normal();
            let spike = (self.factor * normal).max(normal + self.margin_sigmas * baseline.sigma());
            (as_count(spike.ceil()).max(self.floor), Reason::Spike)
        };
        if limit > self.ceiling {
            (self.ceiling, Reason::Ceiling)
        } else {
            (limit, reason)
        }
    }
}

fn finite_at_least(value: f64, min: f64, field: &str, reason: &'static str) -> Result<(), Error> {
    if value.is_finite() && value >= min {
        Ok(())
    } else {
        Err(Error::invalid(field, value, reason))
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

    fn policy(config: KindConfig) -> Policy {
        Policy::compile(&config, "defaults").unwrap()
    }

    #[test]
    fn per_window_constants_follow_the_hourly_settings() {
        let p = policy(KindConfig::default());
        assert_eq!(p.bucket_ms * BUCKETS as u64, 60_000);
        assert_eq!(p.warmup_windows, 60);
        assert!((p.growth_per_window.powi(60) - 1.5).abs() < 1e-9);
        assert!((p.peak_decay_per_window.powi(60 * 72) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn threshold_table() {
        let p = policy(KindConfig {
            warmup_secs: 0,
            ..KindConfig::default()
        });
        // (learned normal, learned variance) -> expected threshold and limiting reason.
        let cases = [
            (0.0, 0.0, 100, Reason::Spike),               // the floor holds a silent kind
            (10.0, 10.0, 100, Reason::Spike),             // few a minute: still the floor
            (50.0, 50.0, 150, Reason::Spike),             // factor: 3 x 50
            (1000.0, 400.0 * 400.0, 3400, Reason::Spike), // bursty kind: the learned sigma wins
        ];
        for (normal, var, expected, reason) in cases {
            let baseline = Baseline::from_parts(normal, var, normal, 1_000);
            assert_eq!(p.threshold(&baseline), (expected, reason), "normal {normal}");
        }
    }

    #[test]
    fn warmup_and_ceiling_limits() {
        let p = policy(KindConfig {
            ceiling: Some(2000),
            ..KindConfig::default()
        });
        assert_eq!(p.threshold(&Baseline::default()), (1000, Reason::Warmup));
        let busy = Baseline::from_parts(5000.0, 0.0, 5000.0, 1_000);
        assert_eq!(p.threshold(&busy), (2000, Reason::Ceiling));
    }
}
