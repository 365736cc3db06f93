//! One kind's slice settings, compiled from the configuration (`slices`, `repeats`): the
//! configuration checks them; nothing here re-checks them.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Recovery;
use crate::detect::Guards;

/// What the slice tracker of one kind runs on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceSettings {
    /// Whether slices are tracked at all.
    pub(crate) enabled: bool,
    /// The most dimensions tracked.
    pub(crate) max_dimensions: usize,
    /// Only these dimensions (`None`: whatever notifications name).
    pub(crate) only: Option<BTreeSet<String>>,
    /// Values tracked per dimension.
    pub(crate) track: usize,
    /// Per timescale, shortest first.
    pub(crate) guards: [Guards; 3],
    /// How long a dimension learns before its slices are judged, and a newly tracked value
    /// before it is judged by a share of its own.
    pub(crate) warmup_ms: u64,
    /// Per dimension, the values that never trip.
    pub(crate) safe: BTreeMap<String, BTreeSet<String>>,
    /// The kind's own recovery: a slice recovers as its kind would.
    pub(crate) recovery: Recovery,
    pub(crate) cooldown_ms: u64,
    /// The repeat check, if on.
    pub(crate) repeats: Option<RepeatSettings>,
}

/// The repeat check of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RepeatSettings {
    /// Identical notifications to one recipient a window may hold; one more is refused.
    pub(crate) max: u32,
    pub(crate) window_ms: u64,
    /// The most recipients (and content keys) remembered at once.
    pub(crate) capacity: usize,
}

impl SliceSettings {
    /// Whether `dimension` is tracked.
    pub(crate) fn tracks(&self, dimension: &str) -> bool {
        self.enabled && self.only.as_ref().is_none_or(|only| only.contains(dimension))
    }

    /// Whether `value` of `dimension` is on the safe list.
    pub(crate) fn is_safe(&self, dimension: &str, value: &str) -> bool {
        self.safe
            .get(dimension)
            .is_some_and(|values| values.contains(value))
    }

    /// Slices off, repeats off: the overflow kind's.
    pub(crate) fn off(mut self) -> Self {
        self.enabled = false;
        self.repeats = None;
        self
    }

    /// The defaults, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        crate::config::KindConfig::default()
            .compile("defaults")
            .map(|settings| (*settings.slices).clone())
            .expect("the defaults compile")
    }
}
