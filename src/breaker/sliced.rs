//! Sends that name slices below their kind ([`Slices`]), by name and through a guarded sender, and
//! the operator's control of one slice.

use std::sync::Arc;

use super::{Breaker, Refused};
use crate::clock::Clock;
use crate::error::Error;
use crate::guard::Blocked;
use crate::kind::Sliced;
use crate::slice::{SliceId, SliceStatus, Slices, check_pair};

/// A sliced send refused by name: the refusal, and the slice that refused it (none when the kind
/// itself did).
pub(crate) type SlicedRefusal = (Refused, Option<SliceId>);

impl<C: Clock> Breaker<C> {
    /// Counts one send of `kind` that names `slices` below it (`country=GB`, a recipient, a
    /// content key) and decides it: the kind as [`check`](Self::check) does, then each slice
    /// against its learned share of the kind and the recipient against the repeat check. A
    /// refusal comes back as a [`Blocked`] with nothing inside, naming the kind, the reason and
    /// the slice that refused ([`Blocked::slice`]); a send that names nothing
    /// ([`Slices::none`]) is exactly a [`check`](Self::check).
    ///
    /// ```
    /// use spikebreaker::guard::Slices;
    /// use spikebreaker::status::Reason;
    /// use spikebreaker::{Breaker, Config, ManualClock};
    ///
    /// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
    /// let notice = Slices::new().with("tenant", "acme").recipient("ops@acme.example");
    /// for _ in 0..10 {
    ///     assert!(breaker.check_sliced("billing.failed", &notice).is_ok());
    /// }
    /// // The same notice to the same recipient an eleventh time within the hour: a repeat.
    /// let refused = breaker.check_sliced("billing.failed", &notice).unwrap_err();
    /// assert_eq!(refused.reason(), Reason::Repeat);
    /// assert_eq!(refused.slice().map(|slice| slice.to_string()).as_deref(), Some("recipient=ops@acme.example"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_sliced(&self, kind: &str, slices: &Slices<'_>) -> Result<(), Blocked<()>> {
        self.check_named_sliced(kind, slices)
            .map_err(|(refused, slice)| blocked((), refused, slice))
    }

    /// [`check_sliced`](Self::check_sliced), with the refusal as a guarded sender needs it.
    pub(crate) fn check_named_sliced(&self, kind: &str, slices: &Slices<'_>) -> Result<(), SlicedRefusal> {
        let found = match self.inner.registry.get(kind) {
            Some(found) => found,
            None => match super::Resolve::resolve(&*self.inner, kind) {
                Ok(found) => found,
                Err(_) => return self.check_named(kind).map_err(|refused| (refused, None)),
            },
        };
        match found.check_sliced(slices) {
            Sliced::Allowed => Ok(()),
            Sliced::Kind(reason) => Err((
                Refused {
                    reason,
                    kind: Arc::clone(found.name()),
                    tripped_at_ms: found.tripped_at(),
                    open_until_ms: found.open_until(),
                },
                None,
            )),
            Sliced::Slice(refusal) => Err((
                Refused {
                    reason: refusal.reason,
                    kind: Arc::clone(found.name()),
                    tripped_at_ms: refusal.tripped_at_ms,
                    open_until_ms: refusal.open_until_ms,
                },
                Some(refusal.slice),
            )),
        }
    }

    /// Operator: closes the slice `dimension=value` of `kind` and forgets its windows' counts
    /// (not its learned share), as [`reset`](Self::reset) does for a kind. Refused with
    /// [`Error::UnknownKind`] for a kind the breaker does not know, and with [`Error::Invalid`]
    /// for a slice the kind does not track.
    pub fn reset_slice(&self, kind: &str, dimension: &str, value: &str) -> Result<(), Error> {
        let found = self.known(kind)?;
        if let Err(problem) = check_pair(dimension, value) {
            return Err(Error::invalid(
                "slice",
                format!("{dimension}={value}"),
                leak(problem),
            ));
        }
        if found.reset_slice(dimension, value) {
            Ok(())
        } else {
            Err(Error::invalid(
                "slice",
                format!("{dimension}={value}"),
                "the kind does not track this slice",
            ))
        }
    }

    /// One tracked slice of `kind` as [`kind_status`](Self::kind_status) shows it (its state, the
    /// share it is judged by, its windows, what its last trip was judged on), if the kind tracks
    /// it: what a server answering a refusal over the wire explains it with.
    ///
    /// ```
    /// use spikebreaker::status::SliceId;
    /// use spikebreaker::{Breaker, Config, ManualClock, guard::Slices};
    ///
    /// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
    /// breaker.check_sliced("sms.otp", &Slices::new().with("country", "GB")).unwrap();
    /// let gb = SliceId { dimension: "country".into(), value: "GB".into() };
    /// assert_eq!(breaker.slice_status("sms.otp", &gb).unwrap().attempted, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slice_status(&self, kind: &str, slice: &SliceId) -> Option<SliceStatus> {
        let found = self.inner.registry.get(kind)?;
        let (dimensions, _) = found.slice_status(self.now_ms());
        dimensions
            .into_iter()
            .find(|dimension| dimension.dimension == slice.dimension)?
            .slices
            .into_iter()
            .find(|tracked| tracked.value == slice.value)
    }
}

/// A refusal as a [`Blocked`] holding `notification`.
pub(crate) fn blocked<N>(notification: N, refused: Refused, slice: Option<SliceId>) -> Blocked<N> {
    Blocked::new(
        notification,
        refused.kind,
        refused.reason,
        refused.tripped_at_ms,
        refused.open_until_ms,
    )
    .with_slice(slice)
}

/// A rule's account, as the `'static` reason an [`Error::Invalid`] carries.
fn leak(problem: String) -> &'static str {
    if problem.contains("value") {
        "a slice value is 1 to 64 bytes with no control character"
    } else {
        "a dimension is 1 to 32 bytes of ASCII letters, digits, `_`, `-` and `.`, and not `content`"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Reason;
    use crate::{Config, ManualClock};

    #[test]
    fn a_send_that_names_nothing_is_a_plain_check() {
        let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
        assert!(breaker.check_sliced("a.b", &Slices::none()).is_ok());
        breaker.force_open("a.b").unwrap();
        let refused = breaker.check_sliced("a.b", &Slices::none()).unwrap_err();
        assert_eq!((refused.reason(), refused.slice()), (Reason::ForcedOpen, None));
        let invalid = breaker
            .check_sliced("a\nb", &Slices::new().with("x", "y"))
            .unwrap_err();
        assert_eq!(invalid.reason(), Reason::InvalidKind);
    }

    #[test]
    fn resetting_a_slice_names_what_is_wrong() {
        let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
        assert!(
            breaker
                .reset_slice("a.b", "country", "GB")
                .unwrap_err()
                .is_unknown_kind()
        );
        let _ = breaker.check_sliced("a.b", &Slices::new().with("country", "GB"));
        assert!(breaker.reset_slice("a.b", "country", "GB").is_ok());
        let untracked = breaker
            .reset_slice("a.b", "country", "FR")
            .unwrap_err()
            .to_string();
        assert!(untracked.contains("does not track"), "{untracked}");
        let bad = breaker
            .reset_slice("a.b", "bad name", "GB")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("dimension"), "{bad}");
    }
}
