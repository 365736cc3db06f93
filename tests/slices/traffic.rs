//! Sliced traffic: each send of a kind's ordinary traffic given a value of each dimension, drawn
//! from a skewed (Zipf) spread of values, some values' shares drifting with the hour of the day.

use crate::support::{DAY_MS, HOUR_MS, Rng};

/// One dimension's values and how often each is named.
#[derive(Clone, Debug)]
pub struct Values {
    pub names: Vec<String>,
    /// Each value's weight (relative).
    weights: Vec<f64>,
    /// Per value, how far its share swings over the day (0: not at all; 0.4: +-40%), and the hour
    /// its share peaks.
    swing: Vec<(f64, f64)>,
}

impl Values {
    /// `n` values named `{prefix}{i}`, value `i` weighted `1 / (i + 1)^s`.
    pub fn zipf(prefix: &str, n: usize, s: f64) -> Self {
        Self {
            names: (0..n).map(|i| format!("{prefix}{i}")).collect(),
            weights: (0..n).map(|i| 1.0 / ((i + 1) as f64).powf(s)).collect(),
            swing: vec![(0.0, 0.0); n],
        }
    }

    /// Each value's share swings by up to `by` over the day, peaking at its own hour.
    pub fn swinging(mut self, by: f64, rng: &mut Rng) -> Self {
        for swing in &mut self.swing {
            *swing = (by * rng.unit(), 24.0 * rng.unit());
        }
        self
    }

    /// The share value `i` holds on average.
    pub fn share(&self, i: usize) -> f64 {
        self.weights[i] / self.weights.iter().sum::<f64>()
    }

    /// The value whose average share is nearest `share`.
    pub fn nearest(&self, share: f64) -> usize {
        (0..self.names.len())
            .min_by(|&a, &b| {
                let off = |i: usize| (self.share(i) - share).abs();
                off(a).total_cmp(&off(b))
            })
            .unwrap_or(0)
    }
}

/// Draws values faster for dimensions with many values: the cumulative weights of one hour of the
/// day, recomputed when the hour changes.
pub struct Drawer {
    values: Values,
    hour: u64,
    cumulative: Vec<f64>,
}

impl Drawer {
    pub fn new(values: Values) -> Self {
        Self {
            values,
            hour: u64::MAX,
            cumulative: Vec::new(),
        }
    }

    /// Draws a value's name for a send at `t_ms`.
    pub fn name(&mut self, rng: &mut Rng, t_ms: u64) -> &str {
        let i = self.draw(rng, t_ms);
        &self.values.names[i]
    }

    pub fn draw(&mut self, rng: &mut Rng, t_ms: u64) -> usize {
        let hour = t_ms / HOUR_MS;
        if hour != self.hour {
            self.hour = hour;
            let at = (t_ms % DAY_MS) as f64 / HOUR_MS as f64 + 0.5;
            let mut sum = 0.0;
            self.cumulative = (0..self.values.names.len())
                .map(|i| {
                    let (by, peak) = self.values.swing[i];
                    sum += self.values.weights[i]
                        * (1.0 + by * ((at - peak) / 24.0 * std::f64::consts::TAU).cos());
                    sum
                })
                .collect();
        }
        let target = rng.unit() * self.cumulative.last().copied().unwrap_or(0.0);
        self.cumulative
            .partition_point(|&c| c < target)
            .min(self.values.names.len() - 1)
    }
}
