//! Saving and restoring what the breaker has learned, so that a restart does not forget what
//! normal looks like (and does not hold every kind to the warm-up ceiling again).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{MAX_WINDOW_SECS, json_naming_the_field};
use crate::detect::Baseline;
use crate::error::Error;
use crate::name;

/// The highest rate, in sends a second, a restored figure may claim: far beyond any sender, and
/// small enough that rescaling to another window and learning on from it stay finite.
const MAX_SENDS_PER_SEC: f64 = 1e9;

/// Every kind's learned baseline.
///
/// ```
/// use spikebreaker::{Breaker, Config, ManualClock, Snapshot};
/// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
/// let saved = breaker.snapshot().to_json();
/// let restarted = Breaker::with_clock(Config::default(), ManualClock::new())?;
/// restarted.restore(&Snapshot::from_json(&saved)?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Must be [`Snapshot::VERSION`].
    pub version: u32,
    /// By kind name (each name once, by the kind-name rule).
    #[serde(deserialize_with = "name::unique_kinds")]
    pub kinds: BTreeMap<String, LearnedBaseline>,
}

/// One kind's learned normal, in sends per window of `window_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedBaseline {
    /// The window these counts are per.
    pub window_secs: u64,
    /// Mean sends per window over the last hour or so.
    pub mean: f64,
    /// Their variance.
    pub variance: f64,
    /// The remembered (slowly decaying) peak.
    pub peak: f64,
    /// Windows learned.
    pub windows: u64,
}

impl Snapshot {
    /// The snapshot format this version writes and reads.
    pub const VERSION: u32 = 1;

    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a snapshot from JSON and checks it.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let snapshot: Self = json_naming_the_field(text).map_err(Error::Snapshot)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    /// Refuses a snapshot of another version, with a kind name that breaks the kind-name rule
    /// ([`validate_kind_name`](crate::validate_kind_name)), a window the configuration could not
    /// have, or a figure that is negative, not a number, or beyond a billion sends a second.
    pub fn validate(&self) -> Result<(), Error> {
        if self.version != Self::VERSION {
            return Err(Error::Snapshot(format!(
                "version {} is not the supported version {}",
                self.version,
                Self::VERSION
            )));
        }
        for (kind, learned) in &self.kinds {
            if let Some(reason) = name::problem(kind) {
                return Err(Error::Snapshot(format!("kind {}: {reason}", name::shown(kind))));
            }
            if !(1..=MAX_WINDOW_SECS).contains(&learned.window_secs) {
                return Err(Error::Snapshot(format!(
                    "kind {kind:?}: window_secs = {} is not 1 to {MAX_WINDOW_SECS}",
                    learned.window_secs
                )));
            }
            let max_sends = MAX_SENDS_PER_SEC * learned.window_secs as f64;
            for (field, value, max) in [
                ("mean", learned.mean, max_sends),
                ("variance", learned.variance, max_sends * max_sends),
                ("peak", learned.peak, max_sends),
            ] {
                if !(value.is_finite() && (0.0..=max).contains(&value)) {
                    let shown = if value.abs() >= 1e15 {
                        format!("{value:e}")
                    } else {
                        value.to_string()
                    };
                    return Err(Error::Snapshot(format!(
                        "kind {kind:?}: {field} = {shown} is not a number from 0 to {max:e}"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl LearnedBaseline {
    pub(crate) fn capture(baseline: &Baseline, window_secs: u64) -> Self {
        Self {
            window_secs,
            mean: baseline.mean(),
            variance: baseline.var(),
            peak: baseline.peak(),
            windows: baseline.windows(),
        }
    }

    /// The baseline, rescaled to windows of `window_secs`.
    pub(crate) fn to_baseline(self, window_secs: u64) -> Baseline {
        Baseline::from_parts(self.mean, self.variance, self.peak, self.windows)
            .rescaled(window_secs as f64 / self.window_secs as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_and_foreign_snapshots_are_refused_with_a_reason() {
        let good = r#"{"version":1,"kinds":{"a":{"window_secs":60,"mean":1.0,"variance":1.0,"peak":2.0,"windows":9}}}"#;
        assert!(Snapshot::from_json(good).is_ok());
        let cases = [
            (good.replace("\"version\":1", "\"version\":2"), "version 2"),
            (good.replace("\"mean\":1.0", "\"mean\":-1.0"), "mean"),
            (good.replace("\"a\"", "\"\""), "empty"),
            (
                good.replace("\"window_secs\":60", "\"window_secs\":0"),
                "window_secs",
            ),
            (good[..good.len() - 3].to_string(), "EOF"),
            (good.replace("\"peak\"", "\"peek\""), "peek"),
        ];
        for (text, needle) in cases {
            let err = Snapshot::from_json(&text).unwrap_err();
            assert!(
                err.is_snapshot() && err.to_string().contains(needle),
                "{text}: {err}"
            );
        }
    }
}
