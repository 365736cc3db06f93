//! [`Candidate`]: one setting the tuner tries, as multipliers of a kind's base settings, and the
//! default grid of them.

use serde::{Deserialize, Serialize};

use crate::config::{KindConfig, TimescaleConfig};

/// One setting the tuner tries: multipliers of every timescale's `sigmas`, `floor` and `factor`
/// in the kind's base settings (1, 1, 1: the base itself).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Times the base `sigmas` (kept within 1 to 50).
    pub sigmas: f64,
    /// Times the base `floor`.
    pub floors: f64,
    /// Times the base `factor` (kept at least 1).
    pub factors: f64,
}

impl Candidate {
    /// The base settings, unchanged.
    pub const BASE: Self = Self {
        sigmas: 1.0,
        floors: 1.0,
        factors: 1.0,
    };

    /// The default grid, 24 settings from the least sensitive to the most: `sigmas` x1.25, x1,
    /// x0.8, x0.6; `floor` x1, x0.5, x0.25; `factor` x1, x0.75.
    pub fn grid() -> Vec<Self> {
        let mut grid = Vec::with_capacity(24);
        for sigmas in [1.25, 1.0, 0.8, 0.6] {
            for floors in [1.0, 0.5, 0.25] {
                for factors in [1.0, 0.75] {
                    grid.push(Self {
                        sigmas,
                        floors,
                        factors,
                    });
                }
            }
        }
        grid.sort_by(|a, b| {
            b.sensitivity()
                .total_cmp(&a.sensitivity())
                .then(b.sigmas.total_cmp(&a.sigmas))
        });
        grid
    }

    /// Smaller is more sensitive.
    fn sensitivity(&self) -> f64 {
        self.sigmas * self.floors * self.factors
    }

    /// `base` with this candidate's multipliers applied to each timescale.
    pub fn apply(&self, base: &KindConfig) -> KindConfig {
        // Two decimals, as a person would write them in a configuration.
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let scale = |t: &TimescaleConfig| TimescaleConfig {
            sigmas: round(t.sigmas * self.sigmas).clamp(1.0, 50.0),
            floor: (t.floor as f64 * self.floors).round() as u64,
            factor: round(t.factor * self.factors).max(1.0),
            ceiling: t.ceiling,
        };
        KindConfig {
            minute: scale(&base.minute),
            hour: scale(&base.hour),
            day: scale(&base.day),
            ..base.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_has_24_settings_from_the_least_sensitive_and_holds_the_base() {
        let grid = Candidate::grid();
        assert_eq!(grid.len(), 24);
        assert!(grid.contains(&Candidate::BASE));
        assert!(grid.windows(2).all(|w| w[0].sensitivity() >= w[1].sensitivity()));
        let applied = grid[23].apply(&KindConfig::default());
        assert_eq!(
            (applied.minute.sigmas, applied.minute.floor, applied.minute.factor),
            (3.0, 13, 2.25)
        );
        assert_eq!(applied.hour.factor, 1.5);
    }
}
