//! What a guarded sender does with a notification its breaker refused: hands it back
//! ([`NoQuarantine`], the default), or holds it in a quarantine and answers with the
//! [`Quarantined`] receipt (see `Guarded::with_quarantine`).

use super::blocked::{Blocked, GuardError, Quarantined};

/// Where a [`Guarded`](super::Guarded) sender puts a refused notification. Sealed: the
/// implementations are [`NoQuarantine`] and `quarantine::Quarantine`; a new place to keep
/// notifications is a `quarantine::Store`.
pub trait Park<N>: Attach {
    /// Holds `blocked`, returning its receipt, or hands it back (no quarantine, or the store
    /// refused it). `recipient_of` names whom it was for; `now_ms` is the breaker's clock.
    fn park(
        &self,
        blocked: Blocked<N>,
        recipient_of: impl FnOnce(&N) -> Option<&str>,
        now_ms: u64,
    ) -> Result<Quarantined, Blocked<N>>;
}

/// What a [`Park`] is told when a guarded sender takes it (`Guarded::with_quarantine`), before
/// any notification's type is known: the name of the breaker whose refusals it will hold, the
/// `breaker` label of a quarantine's metrics.
pub trait Attach {
    /// Takes note of `breaker`'s name.
    fn attach(&self, _breaker: &str) {}
}

impl Attach for NoQuarantine {}

/// A guarded sender without a quarantine: every refused notification goes back to the caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoQuarantine;

impl<N> Park<N> for NoQuarantine {
    fn park(
        &self,
        blocked: Blocked<N>,
        _recipient_of: impl FnOnce(&N) -> Option<&str>,
        _now_ms: u64,
    ) -> Result<Quarantined, Blocked<N>> {
        Err(blocked)
    }
}

/// A refusal before it becomes the sender's error type.
pub(crate) enum Refusal<N> {
    Blocked(Blocked<N>),
    Held(Quarantined),
}

impl<N, E> From<Refusal<N>> for GuardError<N, E> {
    fn from(refusal: Refusal<N>) -> Self {
        match refusal {
            Refusal::Blocked(blocked) => Self::Blocked(blocked),
            Refusal::Held(held) => Self::Quarantined(held),
        }
    }
}
