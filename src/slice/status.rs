//! What a kind shows of its slices: each dimension's [`DimensionStatus`], each tracked value's
//! [`SliceStatus`], and the repeat check's [`RepeatStatus`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::observe::Window;
use crate::state::{Reason, State};

/// One dimension of a kind (`country`, `tenant`): its values tracked now, and what it blocked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DimensionStatus {
    /// The dimension's name.
    pub dimension: Arc<str>,
    /// Whether its slices are judged yet: it has learned for `slices.warmup_secs` and an hour's
    /// shares at least.
    pub warmed_up: bool,
    /// Sends that named the dimension.
    pub attempted: u64,
    /// Of them, sends refused because their slice was open.
    pub blocked: u64,
    /// Times one of its slices tripped.
    pub trips: u64,
    /// The tracked values (at most `slices.track`), busiest in the hour window first.
    pub slices: Vec<SliceStatus>,
}

/// One tracked value of a dimension: where it stands, the share it is judged by, and its windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SliceStatus {
    /// The value.
    pub value: Arc<str>,
    /// Closed (sends flow) or open (refused).
    pub state: State,
    /// Why: `new`, `slice` (tripped), `recovered`, `reset`.
    pub reason: Reason,
    /// Since when, on the breaker's clock (milliseconds).
    pub since_ms: u64,
    /// The share of its dimension it is judged by now (0 before the dimension is warm).
    pub expected_share: f64,
    /// Its share learned over about the last two days, once an hour is learned.
    pub learned_share: Option<f64>,
    /// Its windows now: minute, hour, day; counts since it was tracked.
    pub windows: [Window; 3],
    /// What its last trip was judged on, if it tripped.
    pub tripped_on: Option<Window>,
    /// On the safe list: never trips.
    pub safe: bool,
    /// Sends since it was tracked.
    pub attempted: u64,
    /// Of them, refused while it was open.
    pub blocked: u64,
    /// Times it tripped.
    pub trips: u64,
}

/// A kind's repeat check: how many recipients it remembers and what it refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RepeatStatus {
    /// Identical notifications to one recipient a window may hold.
    pub max: u32,
    /// The window, in seconds.
    pub window_secs: u64,
    /// Recipients (with content keys) remembered now.
    pub remembered: usize,
    /// The most remembered at once.
    pub capacity: usize,
    /// Sends refused as repeats.
    pub blocked: u64,
}
