//! What a replay reports: per kind, the sends allowed and blocked, the trips, the state at the
//! end and every transition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::observe::Event;
use crate::state::State;

/// The outcome of a replay, as the `spikebreaker backtest` tool prints it (JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BacktestReport {
    /// Sends replayed. Its JSON key is `events`, as the tool's report has always written it: the
    /// key is part of the report's documented contract.
    #[serde(rename = "events")]
    pub sends: u64,
    /// Input lines skipped as bad.
    pub skipped_lines: u64,
    /// Per kind, by name.
    pub kinds: BTreeMap<String, KindReport>,
}

/// One kind's sends and transitions in a replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KindReport {
    /// Sends of the kind.
    pub attempted: u64,
    /// Sends the breaker let through.
    pub allowed: u64,
    /// Sends the breaker blocked.
    pub blocked: u64,
    /// Moves into the open state.
    pub trips: u64,
    /// The state at the end of the replay.
    pub state: State,
    /// Every transition, in time order, as the breaker's subscribers saw it. In JSON, `at_ms`,
    /// `from`, `to`, `reason`, `window_count` and `threshold` are the contract; the other fields
    /// are extra.
    pub transitions: Vec<Event>,
    /// Of `blocked`, sends refused by one of the kind's slices or by the repeat check.
    #[serde(default)]
    pub slice_blocked: u64,
    /// Trips of the kind's slices (each slice's own, apart from `trips`, and a kind's repeat
    /// refusals as reported).
    #[serde(default)]
    pub slice_trips: u64,
    /// Every event of one of the kind's slices (each names its slice, [`Event::slice`]), in time
    /// order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slice_transitions: Vec<Event>,
}

impl Default for KindReport {
    fn default() -> Self {
        Self {
            attempted: 0,
            allowed: 0,
            blocked: 0,
            trips: 0,
            state: State::Closed,
            transitions: Vec::new(),
            slice_blocked: 0,
            slice_trips: 0,
            slice_transitions: Vec::new(),
        }
    }
}
