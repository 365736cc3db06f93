//! How many sends a window may hold: plain functions of what is expected and how widely counts
//! spread around it.
//!
//! Counts are modelled as negative binomial: Poisson at their most regular, and overdispersed by
//! `phi` (variance `mu + phi * mu^2`) as real traffic is. The statistical limit is that
//! distribution's upper quantile `sigmas` standard deviations out, with a Cornish-Fisher skew
//! correction (counts have a long right tail, the longer the fewer are expected). The explicit
//! guards then hold it: never under `floor` or `factor` times what is expected, never over
//! `ceiling`.

use serde::{Deserialize, Serialize};

/// A timescale a kind is watched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timescale {
    /// The sliding window of `window_secs` (a minute by default): bursts.
    Minute,
    /// The last hour: slow leaks.
    Hour,
    /// The last day: very slow leaks.
    Day,
}

impl Timescale {
    /// Every timescale, shortest first.
    pub const ALL: [Timescale; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// The name used in JSON, events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Timescale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which rule set a window's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// How widely the kind's counts spread around what is expected: the statistical limit.
    Spread,
    /// `factor` times what is expected.
    Factor,
    /// The `floor`.
    Floor,
    /// The `ceiling`.
    Ceiling,
    /// The warm-up ceiling: the kind has not learned enough yet.
    Warmup,
    /// None: the timescale is not judged yet (a kind with less than a day learned has no day
    /// limit), or an operator holds the kind closed.
    None,
}

impl Bound {
    /// The name used in JSON and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spread => "spread",
            Self::Factor => "factor",
            Self::Floor => "floor",
            Self::Ceiling => "ceiling",
            Self::Warmup => "warmup",
            Self::None => "none",
        }
    }
}

/// One timescale's guards, checked and compiled from the configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Guards {
    /// Never trip at or below this many times what is expected.
    pub(crate) factor: f64,
    /// Never trip at or below this count.
    pub(crate) floor: u64,
    /// Always trip above this count (`u64::MAX`: none).
    pub(crate) ceiling: u64,
    /// How many standard deviations out a count stops being plausible.
    pub(crate) sigmas: f64,
}

/// The count `sigmas` standard deviations above a negative binomial mean `mu` with
/// overdispersion `phi`, corrected for skew.
pub(crate) fn upper_quantile(mu: f64, phi: f64, sigmas: f64) -> f64 {
    if mu <= 0.0 {
        return 0.0;
    }
    let var = mu + phi * mu * mu;
    let skew = (1.0 + 2.0 * phi * mu) / (mu * (1.0 + phi * mu)).sqrt();
    mu + var.sqrt() * (sigmas + (sigmas * sigmas - 1.0) * skew / 6.0)
}

/// The most sends a window expecting `mu` may hold (one more trips), and the rule that set it,
/// given the statistical limit `spread` (see [`upper_quantile`]).
pub(crate) fn limit(mu: f64, spread: f64, guards: &Guards) -> (u64, Bound) {
    let factor = guards.factor * mu;
    let (value, bound) = if spread >= factor {
        (spread, Bound::Spread)
    } else {
        (factor, Bound::Factor)
    };
    let (count, bound) = match as_count(value.floor()) {
        count if count <= guards.floor => (guards.floor, Bound::Floor),
        count => (count, bound),
    };
    if count > guards.ceiling {
        (guards.ceiling, Bound::Ceiling)
    } else {
        (count, bound)
    }
}

/// A non-negative float as a count, saturating.
pub(crate) fn as_count(value: f64) -> u64 {
    if value >= u64::MAX as f64 {
        u64::MAX
    } else {
        value.max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact Poisson tail `P(X > q)` for mean `mu`.
    fn poisson_tail(mu: f64, q: u64) -> f64 {
        let mut p = (-mu).exp();
        let mut cdf = p;
        for k in 1..=q {
            p *= mu / k as f64;
            cdf += p;
        }
        1.0 - cdf
    }

    #[test]
    fn poisson_quantiles_sit_far_out_in_the_exact_tail() {
        for mu in [1.0, 10.0, 100.0, 500.0] {
            let q = upper_quantile(mu, 0.0, 5.0).floor() as u64;
            let tail = poisson_tail(mu, q);
            assert!(tail < 1e-5 && tail > 1e-12, "mu {mu}: q {q}, tail {tail:e}");
        }
    }

    #[test]
    fn overdispersion_widens_the_quantile() {
        let poisson = upper_quantile(100.0, 0.0, 5.0);
        let bursty = upper_quantile(100.0, 0.25, 5.0);
        assert!(
            bursty > 3.0 * poisson - 200.0 && bursty > poisson,
            "{poisson} {bursty}"
        );
        assert_eq!(upper_quantile(0.0, 1.0, 5.0), 0.0);
    }

    #[test]
    fn guards_table() {
        let g = Guards {
            factor: 3.0,
            floor: 50,
            ceiling: 1000,
            sigmas: 5.0,
        };
        // (expected, statistical limit) -> limit, and the rule that set it.
        let cases = [
            (0.0, 0.0, 50, Bound::Floor),
            (10.0, 40.0, 50, Bound::Floor),
            (100.0, 180.0, 300, Bound::Factor),
            (100.0, 450.5, 450, Bound::Spread),
            (500.0, 900.0, 1000, Bound::Ceiling),
        ];
        for (mu, spread, count, bound) in cases {
            assert_eq!(limit(mu, spread, &g), (count, bound), "mu {mu} spread {spread}");
        }
        let low_ceiling = Guards { ceiling: 20, ..g };
        assert_eq!(limit(0.0, 0.0, &low_ceiling), (20, Bound::Ceiling));
    }

    mod guards {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Whatever is expected and however widely counts spread, the limit keeps every
            /// guard (a ceiling under the floor wins), names the rule that set it, and never
            /// falls as more is expected or counts spread more.
            #[test]
            fn a_limit_keeps_its_guards_and_grows_with_what_is_expected(
                mu in 0.0f64..1e7,
                more in 0.0f64..1e6,
                phi in 0.0f64..2.0,
                sigmas in 1.0f64..50.0,
                factor in 1.0f64..10.0,
                floor in 0u64..100_000,
                ceiling in prop::option::of(0u64..10_000_000),
            ) {
                let guards = Guards { factor, floor, ceiling: ceiling.unwrap_or(u64::MAX), sigmas };
                let limit_at = |mu: f64, phi: f64| limit(mu, upper_quantile(mu, phi, sigmas), &guards);
                let (count, bound) = limit_at(mu, phi);
                prop_assert!(count <= guards.ceiling);
                if count < guards.ceiling {
                    prop_assert!(count >= floor);
                    prop_assert!(count as f64 >= (factor * mu).floor());
                }
                let expected_count = match bound {
                    Bound::Floor => floor,
                    Bound::Ceiling => guards.ceiling,
                    Bound::Factor => (factor * mu).floor() as u64,
                    Bound::Spread => upper_quantile(mu, phi, sigmas).floor() as u64,
                    other => return Err(TestCaseError::fail(format!("bound {other:?}"))),
                };
                prop_assert_eq!(count, expected_count);
                prop_assert!(limit_at(mu + more, phi).0 >= count);
                prop_assert!(limit_at(mu, phi + 0.1).0 >= count);
            }
        }
    }
}
