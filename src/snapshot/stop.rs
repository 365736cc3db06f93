//! A kind's stops as a snapshot keeps them (version 3 on): its open or forced state, an
//! operator's dry-run and a planned surge in force. What is kept, and what a restart leaves
//! behind on purpose, is the kind's account ([`Stops`]).

use serde::{Deserialize, Serialize};

use crate::config::MAX_SURGE_SENDS;
use crate::kind::{Held, Stops};
use crate::observe::{Surge, Window};
use crate::state::{Reason, State};

/// One kind's stops: each part left out when there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopSnapshot {
    /// Open (tripped or forced), or forced closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held: Option<HeldSnapshot>,
    /// Dry-run as an operator set it against the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
    /// A planned surge in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    surge: Option<SurgeSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeldSnapshot {
    /// `open`, or `closed` (forced closed).
    state: State,
    reason: Reason,
    since_ms: u64,
    /// When an open kind's cool-down ends; `null`: held until an operator acts.
    until_ms: Option<u64>,
    tripped_on: Option<Window>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SurgeSnapshot {
    /// Sends left.
    sends: u64,
    until_ms: u64,
}

/// The reasons an open kind may be held for: a trip, a failed probe, the fleet, an operator.
const OPEN_REASONS: [Reason; 6] = [
    Reason::Spike,
    Reason::Ceiling,
    Reason::Warmup,
    Reason::ProbeFailed,
    Reason::Fleet,
    Reason::ForcedOpen,
];

impl StopSnapshot {
    pub(crate) fn capture(stops: &Stops) -> Self {
        Self {
            held: stops.held.map(|held| HeldSnapshot {
                state: held.state,
                reason: held.reason,
                since_ms: held.since_ms,
                until_ms: held.until_ms,
                tripped_on: held.tripped_on,
            }),
            dry_run: stops.dry_run,
            surge: stops.surge.map(|surge| SurgeSnapshot {
                sends: surge.sends,
                until_ms: surge.until_ms,
            }),
        }
    }

    pub(crate) fn to_stops(&self) -> Stops {
        Stops {
            held: self.held.as_ref().map(|held| Held {
                state: held.state,
                reason: held.reason,
                since_ms: held.since_ms,
                until_ms: held.until_ms,
                tripped_on: held.tripped_on,
            }),
            dry_run: self.dry_run,
            surge: self.surge.map(|surge| Surge {
                sends: surge.sends,
                until_ms: surge.until_ms,
            }),
        }
    }

    /// Refuses a state no kind can be held in (half-open; open for a reason that is no trip;
    /// closed but not forced) and a surge of no sends or more than a surge may announce.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(held) = &self.held {
            let holds = match held.state {
                State::Open => OPEN_REASONS.contains(&held.reason),
                State::Closed => held.reason == Reason::ForcedClosed,
                State::HalfOpen => false,
            };
            if !holds {
                return Err(format!(
                    "held: a kind is not held {} for `{}` (open on a trip or forced, or forced closed)",
                    held.state, held.reason
                ));
            }
        }
        if let Some(surge) = self.surge {
            if !(1..=MAX_SURGE_SENDS).contains(&surge.sends) {
                return Err(format!(
                    "surge.sends = {} is not 1 to {MAX_SURGE_SENDS}",
                    surge.sends
                ));
            }
        }
        Ok(())
    }
}
