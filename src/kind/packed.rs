//! [`Packed`]: a kind's state and reason in one atomic word.

use crate::state::{Reason, State};

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
