//! What the breaker decides about one send.

use std::fmt;

use crate::state::Reason;

/// What the breaker decided about one send.
///
/// ```
/// use spikebreaker::{Breaker, Config, Decision, ManualClock};
/// use spikebreaker::status::Reason;
/// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
/// breaker.kind("push.promo"); // registers the kind
/// breaker.force_open("push.promo")?;
/// match breaker.check("push.promo") {
///     Decision::Allowed => unreachable!(),
///     Decision::Blocked(reason) => assert_eq!(reason, Reason::ForcedOpen), // keep it, don't send
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a blocked send must not be sent"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it.
    Allowed,
    /// Do not send it: the kind is open for this reason. Hand the notification back to the
    /// caller (the [`Guarded`](crate::Guarded) wrapper does this for you).
    Blocked(Reason),
}

impl Decision {
    /// Whether the send may go ahead.
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed)
    }
}

impl fmt::Display for Decision {
    /// `allowed`, or `blocked (spike)` with the reason.
    ///
    /// ```
    /// use spikebreaker::Decision;
    /// use spikebreaker::status::Reason;
    /// assert_eq!(Decision::Allowed.to_string(), "allowed");
    /// assert_eq!(Decision::Blocked(Reason::ForcedOpen).to_string(), "blocked (forced_open)");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allowed => f.write_str("allowed"),
            Self::Blocked(reason) => write!(f, "blocked ({reason})"),
        }
    }
}
