//! The breaker's states and the reasons for moving between them.

use serde::{Deserialize, Serialize};

use crate::detect::Limit;

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
    /// The window count exceeded the learned normal by the factor and the margin.
    Spike,
    /// The window count exceeded the absolute ceiling.
    Ceiling,
    /// The window count exceeded the warm-up ceiling before a baseline was learned.
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
    /// The send's kind name breaks the kind-name rule
    /// ([`validate_kind_name`](crate::validate_kind_name)): it is refused, and no kind is
    /// registered for it.
    InvalidKind,
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
            Self::InvalidKind => "invalid_kind",
        }
    }

    const ALL: [Reason; 12] = [
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
        Self::InvalidKind,
    ];
}

impl From<Limit> for Reason {
    /// The reason of a trip at the threshold that `limit` set.
    fn from(limit: Limit) -> Self {
        match limit {
            Limit::Warmup => Self::Warmup,
            Limit::Spike => Self::Spike,
            Limit::Ceiling => Self::Ceiling,
        }
    }
}

/// A state and its reason packed in one word, so that the blocked path reads both with one load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    pub(crate) state: State,
    pub(crate) reason: Reason,
}

impl Packed {
    pub(crate) fn pack(self) -> u32 {
        let state = match self.state {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        };
        let reason = Reason::ALL.iter().position(|r| *r == self.reason).unwrap_or(0) as u32;
        state | reason << 8
    }

    pub(crate) fn unpack(word: u32) -> Self {
        let state = match word & 0xff {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        };
        let reason = Reason::ALL
            .get((word >> 8) as usize)
            .copied()
            .unwrap_or(Reason::New);
        Self { state, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_reason_survives_packing() {
        for state in [State::Closed, State::Open, State::HalfOpen] {
            for reason in Reason::ALL {
                let packed = Packed { state, reason };
                assert_eq!(Packed::unpack(packed.pack()), packed);
            }
        }
    }
}
