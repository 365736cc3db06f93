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
    /// Per kind, by name: every kind, or in a report folded to a bound
    /// ([`fold`](Self::fold)), the kinds that matter most.
    pub kinds: BTreeMap<String, KindReport>,
    /// The kinds a folded report does not show one by one, summed; `None` (and left out of the
    /// JSON) when it shows every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded: Option<Folded>,
}

/// The kinds a folded [`BacktestReport`] does not show one by one: how many, and their sends and
/// trips summed (in JSON, `folded`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Folded {
    /// Kinds folded.
    pub kinds: u64,
    /// Their sends.
    pub attempted: u64,
    /// Of those, sends let through.
    pub allowed: u64,
    /// Of those, sends blocked.
    pub blocked: u64,
    /// Their moves into the open state.
    pub trips: u64,
}

impl Folded {
    pub(super) fn add(&mut self, kind: &KindReport) {
        self.kinds += 1;
        self.attempted += kind.attempted;
        self.allowed += kind.allowed;
        self.blocked += kind.blocked;
        self.trips += kind.trips;
    }
}

impl BacktestReport {
    /// Keeps at most `max_kinds` kinds one by one, the ones that matter most (the most trips,
    /// then the most sends blocked, then the most sends, then by name), and folds the others
    /// into [`folded`](Self::folded), their transitions dropped: a report of a log with millions
    /// of kinds stays readable and small.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// use spikebreaker::backtest::Backtest;
    ///
    /// let mut backtest = Backtest::new(Config::default())?;
    /// for t in 0..1_000u64 {
    ///     let _ = backtest.check(t, "job.runaway"); // trips at 500
    /// }
    /// for user in 0..100u64 {
    ///     let _ = backtest.check(1_000 + user, &format!("user.{user}"));
    /// }
    /// let mut report = backtest.report();
    /// report.fold(10);
    /// assert_eq!(report.kinds.len(), 10);
    /// assert!(report.kinds.contains_key("job.runaway"));
    /// let folded = report.folded.as_ref().unwrap();
    /// assert_eq!((folded.kinds, folded.attempted), (91, 91));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fold(&mut self, max_kinds: usize) {
        if self.kinds.len() <= max_kinds {
            return;
        }
        let mut ranked: Vec<(&String, &KindReport)> = self.kinds.iter().collect();
        ranked.sort_unstable_by(|a, b| rank(a.1).cmp(&rank(b.1)).then_with(|| a.0.cmp(b.0)));
        let folded: Vec<String> = ranked[max_kinds..]
            .iter()
            .map(|(name, _)| (*name).clone())
            .collect();
        let mut sum = self.folded.take().unwrap_or_default();
        for name in folded {
            if let Some(kind) = self.kinds.remove(&name) {
                sum.add(&kind);
            }
        }
        self.folded = Some(sum);
    }
}

/// The order kinds are kept in when a report is folded: the most trips, then blocked, then sends.
pub(super) fn rank(kind: &KindReport) -> std::cmp::Reverse<(u64, u64, u64)> {
    std::cmp::Reverse((kind.trips, kind.blocked, kind.attempted))
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
