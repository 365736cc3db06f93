//! The breaker's states and the reasons for moving between them: a leaf that the engine
//! (`kind`) and what shows it (`observe`) both import, and that imports only the detector's
//! [`Bound`].

use serde::{Deserialize, Serialize};

use std::fmt;

use crate::detect::Bound;

/// Where a kind stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Sends flow; the rate is watched.
    Closed,
    /// Sends are blocked (or, in dry-run, would be); attempts are still counted.
    Open,
    /// Recovering: sends flow, and a rate over the threshold re-opens at once.
    HalfOpen,
}

impl State {
    /// The value of the `spikebreaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }

    /// The state's name as it appears in JSON and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Why a kind is in its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Never tripped.
    New,
    /// A window went over its limit: far above what is expected now (by its factor, its
    /// learned spread, or over its floor).
    Spike,
    /// A window went over its absolute ceiling.
    Ceiling,
    /// The minute window went over the warm-up ceiling before the kind had learned enough.
    Warmup,
    /// Half-open, the rate crossed the threshold again.
    ProbeFailed,
    /// The cool-down passed with the attempted rate back to normal: probing.
    Cooldown,
    /// The probe passed: closed again.
    Recovered,
    /// An operator forced the kind open.
    ForcedOpen,
    /// An operator forced the kind closed (detection suspended until reset).
    ForcedClosed,
    /// An operator reset the kind.
    Reset,
    /// Fleet mode: another instance tripped the kind, the fleet-wide rate crossed the threshold,
    /// or the fleet is holding the kind open while one instance probes.
    Fleet,
    /// Still open after `open_alert_secs`: a runaway that goes on, or a lasting change in
    /// legitimate traffic, for an operator to look at (the state does not change).
    StillOpen,
    /// The kind's family (the kinds of its `prefix.*` override, judged together) went over its
    /// limit, and the kind is one of the family's newcomers (less than a day learned): it is
    /// held until the family's sum is calm again. (No kind is adopted automatically any more:
    /// this takes the place of `adopted`.)
    Family,
    /// An operator told the kind that the rate it kept while open is its new normal: closed.
    Relearned,
    /// A planned surge began: its sends are allowed whatever the limits say (the state does not
    /// change).
    Surge,
    /// A planned surge ended (the state does not change).
    SurgeEnded,
    /// The send's kind name breaks the kind-name rule
    /// ([`validate_kind_name`](crate::config::validate_kind_name)): it is refused, and no kind is
    /// registered for it.
    InvalidKind,
    /// One slice of the kind (`prefix=+447`) went over its limit: its sends are refused while the
    /// rest of the kind flows (see [guide::slices](crate::guide::slices)).
    Slice,
    /// The same notification to one recipient, more than `repeats.max` times in the window.
    Repeat,
}

impl Reason {
    /// The reason's name as it appears in JSON and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Spike => "spike",
            Self::Ceiling => "ceiling",
            Self::Warmup => "warmup",
            Self::ProbeFailed => "probe_failed",
            Self::Cooldown => "cooldown",
            Self::Recovered => "recovered",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
            Self::Reset => "reset",
            Self::Fleet => "fleet",
            Self::StillOpen => "still_open",
            Self::Family => "family",
            Self::Relearned => "relearned",
            Self::Surge => "surge",
            Self::SurgeEnded => "surge_ended",
            Self::InvalidKind => "invalid_kind",
            Self::Slice => "slice",
            Self::Repeat => "repeat",
        }
    }

    /// Every reason, in the order a packed state word numbers them.
    pub(crate) const ALL: [Reason; 19] = [
        Self::New,
        Self::Spike,
        Self::Ceiling,
        Self::Warmup,
        Self::ProbeFailed,
        Self::Cooldown,
        Self::Recovered,
        Self::ForcedOpen,
        Self::ForcedClosed,
        Self::Reset,
        Self::Fleet,
        Self::StillOpen,
        Self::Family,
        Self::Relearned,
        Self::Surge,
        Self::SurgeEnded,
        Self::InvalidKind,
        Self::Slice,
        Self::Repeat,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Bound> for Reason {
    /// The reason of a trip at a threshold that `bound` set.
    fn from(bound: Bound) -> Self {
        match bound {
            Bound::Warmup => Self::Warmup,
            Bound::Ceiling => Self::Ceiling,
            Bound::Spread | Bound::Factor | Bound::Floor | Bound::None => Self::Spike,
        }
    }
}
