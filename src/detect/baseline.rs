//! What a kind's normal traffic looks like, learned one window at a time: a remembered peak that
//! decays slowly (so yesterday's busy hour and last week's busy day stay normal), a mean and a
//! variance that follow the last hour, and how many windows have been learned.
//!
//! Growth is bounded: once warm, a window may raise the normal by at most
//! [`Learning::growth_per_window`], so a bug that ramps up slowly outruns what is learned and
//! trips.

const MS_PER_HOUR: f64 = 3_600_000.0;
/// Half-life of the learned mean and variance: an hour of traffic.
const MEAN_HALF_LIFE_MS: f64 = MS_PER_HOUR;

/// The most empty windows learned one by one after a quiet spell; beyond this (a week of one-minute
/// windows) the remaining decay is applied in one step.
const MAX_QUIET_STEPS: u64 = 10_080;

/// How a baseline learns, in per-window terms: the kind's hourly settings converted once for its
/// window length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Learning {
    /// Windows to learn before the baseline is trusted.
    pub(crate) warmup_windows: u64,
    /// How much the learned normal may grow from one window to the next.
    pub(crate) growth_per_window: f64,
    /// What remains of the remembered peak after one window.
    pub(crate) peak_decay_per_window: f64,
    /// Weight of a new window in the learned mean and variance.
    pub(crate) mean_alpha: f64,
}

impl Learning {
    /// The rates for windows of `window_secs`: a warm-up of `warmup_secs`, growth of at most
    /// `max_growth_per_hour` an hour, a peak remembered with a half-life of
    /// `peak_half_life_hours`. The arguments are checked by the configuration.
    pub(crate) fn per_window(
        window_secs: u64,
        warmup_secs: u64,
        max_growth_per_hour: f64,
        peak_half_life_hours: f64,
    ) -> Self {
        let window_ms = window_secs * 1000;
        let window_hours = window_ms as f64 / MS_PER_HOUR;
        Self {
            warmup_windows: warmup_secs.div_ceil(window_secs),
            growth_per_window: max_growth_per_hour.powf(window_hours),
            peak_decay_per_window: 0.5f64.powf(window_hours / peak_half_life_hours),
            mean_alpha: 1.0 - 0.5f64.powf(window_ms as f64 / MEAN_HALF_LIFE_MS),
        }
    }
}

/// A kind's learned normal, in sends per window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Baseline {
    mean: f64,
    var: f64,
    peak: f64,
    windows: u64,
}

impl Baseline {
    /// A baseline with the given figures (restored snapshots and tests).
    pub(crate) fn from_parts(mean: f64, var: f64, peak: f64, windows: u64) -> Self {
        Self {
            mean,
            var,
            peak,
            windows,
        }
    }

    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    pub(crate) fn var(&self) -> f64 {
        self.var
    }

    pub(crate) fn peak(&self) -> f64 {
        self.peak
    }

    /// How many windows have been learned.
    pub(crate) fn windows(&self) -> u64 {
        self.windows
    }

    /// The normal count a window is compared against.
    pub(crate) fn normal(&self) -> f64 {
        self.peak.max(self.mean)
    }

    /// The spread of a window's count: learned, but never below the Poisson spread.
    pub(crate) fn sigma(&self) -> f64 {
        self.var.sqrt().max(self.normal().sqrt())
    }

    /// Whether enough windows have been learned to trust the baseline.
    pub(crate) fn is_warm(&self, learning: &Learning) -> bool {
        self.windows >= learning.warmup_windows
    }

    /// Learns a completed window that held `count` sends. Until warm, an empty window teaches
    /// nothing: silence is no evidence of what the kind's traffic looks like, and a kind that was
    /// registered and kept quiet (a service restarted at night) must not come out of its warm-up
    /// with a normal of zero and trip on its first busy hour.
    pub(crate) fn learn(&mut self, count: u64, learning: &Learning) {
        let warm = self.is_warm(learning);
        if count == 0 && !warm {
            return;
        }
        let mut x = count as f64;
        if warm {
            x = x.min(self.normal().max(1.0) * learning.growth_per_window);
        }
        self.peak = (self.peak * learning.peak_decay_per_window).max(x);
        // A running average until the hour-long EWMA has seen enough windows to be stable.
        let alpha = learning
            .mean_alpha
            .max(1.0 / self.windows.saturating_add(1) as f64);
        let delta = x - self.mean;
        self.mean += alpha * delta;
        self.var = (1.0 - alpha) * (self.var + alpha * delta * delta);
        self.windows = self.windows.saturating_add(1);
    }

    /// Learns `windows` windows without a send (a kind gone quiet; nothing until warm).
    pub(crate) fn learn_quiet(&mut self, windows: u64, learning: &Learning) {
        if !self.is_warm(learning) {
            return;
        }
        for _ in 0..windows.min(MAX_QUIET_STEPS) {
            self.learn(0, learning);
        }
        let rest = windows.saturating_sub(MAX_QUIET_STEPS);
        if rest > 0 {
            let keep = |per_window: f64| per_window.powf(rest as f64);
            self.peak *= keep(learning.peak_decay_per_window);
            self.mean *= keep(1.0 - learning.mean_alpha);
            self.var *= keep(1.0 - learning.mean_alpha);
            self.windows = self.windows.saturating_add(rest);
        }
    }

    /// The same normal, for windows `ratio` times as long.
    pub(crate) fn rescaled(&self, ratio: f64) -> Self {
        Self {
            mean: self.mean * ratio,
            var: self.var * ratio,
            peak: self.peak * ratio,
            windows: self.windows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults: one-minute windows, an hour's warm-up, 1.5x an hour, a 72-hour peak.
    fn defaults() -> Learning {
        Learning::per_window(60, 3600, 1.5, 72.0)
    }

    /// The straightforward reference: the mean of what was learned, for the first windows.
    #[test]
    fn warmup_learns_a_plain_average_and_the_peak() {
        let p = defaults();
        let mut b = Baseline::default();
        for x in [10, 20, 30, 40] {
            b.learn(x, &p);
        }
        assert!((b.mean() - 25.0).abs() < 1e-9);
        let expected_var = [10.0f64, 20.0, 30.0, 40.0]
            .iter()
            .map(|x| (x - 25.0).powi(2))
            .sum::<f64>()
            / 4.0;
        assert!(
            (b.var() - expected_var).abs() < 1e-9,
            "{} vs {expected_var}",
            b.var()
        );
        assert!(b.peak() >= 39.9 && b.peak() <= 40.0);
    }

    #[test]
    fn silence_teaches_nothing_until_warm() {
        let p = defaults();
        let mut b = Baseline::default();
        b.learn(40, &p);
        b.learn(0, &p);
        b.learn_quiet(10 * p.warmup_windows, &p);
        assert_eq!(b, Baseline::from_parts(40.0, 0.0, 40.0, 1));
    }

    #[test]
    fn once_warm_growth_is_bounded() {
        let p = defaults();
        let mut b = Baseline::default();
        for _ in 0..p.warmup_windows {
            b.learn(100, &p);
        }
        let before = b.normal();
        b.learn(100_000, &p);
        assert!(b.normal() <= before * p.growth_per_window + 1e-9);
        // An hour of a huge count grows the normal by at most the hourly factor.
        for _ in 0..59 {
            b.learn(100_000, &p);
        }
        assert!(b.normal() <= before * 1.5 + 1e-6, "{}", b.normal());
    }

    #[test]
    fn the_peak_remembers_for_days_and_quiet_decays_it() {
        let p = defaults();
        let mut b = Baseline::from_parts(500.0, 100.0, 500.0, 10_000);
        b.learn_quiet(60 * 72, &p); // three days of nothing: one half-life
        assert!((b.peak() - 250.0).abs() < 1e-6, "{}", b.peak());
        assert!(b.mean() < 1.0);
        b.learn_quiet(1_000_000, &p);
        assert!(b.peak() < 1e-6 && b.windows() > 1_000_000);
    }

    mod reference {
        use super::*;
        use proptest::prelude::*;

        /// Learning for one-minute to one-hour windows, with growth never clamping (the
        /// reference below is of the unclamped maths).
        fn learning(window_secs: u64) -> Learning {
            Learning::per_window(window_secs, 30 * 86_400, 1.5, 72.0)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// While the running average is heavier than the EWMA's weight, the mean is the
            /// plain mean, the variance the population variance, and the peak the largest
            /// count decayed by its age, all computed the long way over the windows that had
            /// sends (before a kind is warm, an empty window teaches nothing).
            #[test]
            fn learning_matches_the_textbook_formulas(
                window_secs in prop::sample::select(vec![60u64, 300, 600, 3600]),
                counts in prop::collection::vec(prop_oneof![Just(0u64), 0u64..100_000], 1..60),
            ) {
                let p = learning(window_secs);
                let running = counts.len().min((1.0 / p.mean_alpha) as usize - 1);
                let mut b = Baseline::default();
                for &x in &counts[..running] {
                    b.learn(x, &p);
                }
                let xs: Vec<f64> = counts[..running].iter().filter(|&&x| x > 0).map(|&x| x as f64).collect();
                let n = (xs.len() as f64).max(1.0);
                let mean = xs.iter().sum::<f64>() / n;
                let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                let peak = xs
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x * p.peak_decay_per_window.powi((xs.len() - 1 - i) as i32))
                    .fold(0.0, f64::max);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
                prop_assert!(close(b.mean(), mean), "mean {} vs {}", b.mean(), mean);
                prop_assert!(close(b.var(), var), "var {} vs {}", b.var(), var);
                prop_assert!(close(b.peak(), peak), "peak {} vs {}", b.peak(), peak);
                prop_assert_eq!(b.windows(), xs.len() as u64);
            }

            /// Once warm, no window raises the normal by more than the growth per window.
            #[test]
            fn once_warm_the_normal_grows_by_at_most_the_bound(
                start in 1u64..10_000,
                counts in prop::collection::vec(0u64..10_000_000, 1..200),
            ) {
                let p = defaults();
                let mut b = Baseline::default();
                for _ in 0..p.warmup_windows {
                    b.learn(start, &p);
                }
                for x in counts {
                    let before = b.normal();
                    b.learn(x, &p);
                    prop_assert!(b.normal() <= before.max(1.0) * p.growth_per_window * (1.0 + 1e-12));
                    prop_assert!(b.sigma() >= b.normal().sqrt());
                }
            }

            /// A long quiet spell, learned in one step past the cap, matches the closed form.
            #[test]
            fn a_long_quiet_spell_decays_as_the_closed_form_says(
                peak in 0.0f64..1e9,
                mean in 0.0f64..1e9,
                quiet in MAX_QUIET_STEPS..10 * MAX_QUIET_STEPS,
            ) {
                let p = defaults();
                let mut b = Baseline::from_parts(mean, mean, peak, 1_000_000);
                b.learn_quiet(quiet, &p);
                let decayed = peak * p.peak_decay_per_window.powf(quiet as f64);
                prop_assert!((b.peak() - decayed).abs() <= 1e-6 * decayed.max(1e-300));
                prop_assert!(b.mean() <= mean * (1.0 - p.mean_alpha).powf(quiet as f64) * (1.0 + 1e-6) + 1e-300);
                prop_assert_eq!(b.windows(), 1_000_000 + quiet);
            }
        }
    }
}
