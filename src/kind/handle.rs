//! [`KindHandle`]: a kind resolved once, checked on every send without a look-up.

use std::fmt;
use std::sync::Arc;

use super::{Decision, Detour, Kind, Sliced};
use crate::clock::{Clock, SystemClock};
use crate::guard::Blocked;
use crate::observe::KindStatus;
use crate::slice::Slices;
use crate::state::State;

/// A resolved kind: checking through it is the lock-free send path. Cheap to clone.
///
/// A kind held by a handle is never evicted for being idle (see
/// [`Breaker::evict_idle`](crate::Breaker::evict_idle)).
///
/// A handle resolved while the registry had no room for its kind sends to the overflow kind, and
/// moves to its own kind once there is room: it looks at most once a second, as a send by name
/// would. Once moved, a send reads its kind with one more load than a handle resolved on the
/// kind directly, then takes the kind's lock-free path. A handle for a name that breaks the
/// kind-name rule
/// ([`validate_kind_name`](crate::config::validate_kind_name)) refuses every send with
/// [`Reason::InvalidKind`](crate::status::Reason::InvalidKind).
pub struct KindHandle<C: Clock = SystemClock> {
    /// The kind whose send path every check runs: the handle's own, or for a handle with a
    /// `detour`, a parked kind that sends every check there.
    pub(crate) kind: Arc<Kind<C>>,
    /// Read by cold work only, so that it costs a handle on its own kind nothing.
    detour: Option<Arc<Detour<C>>>,
}

impl<C: Clock> Clone for KindHandle<C> {
    fn clone(&self) -> Self {
        Self {
            kind: Arc::clone(&self.kind),
            detour: self.detour.clone(),
        }
    }
}

impl<C: Clock> fmt::Debug for KindHandle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindHandle").field("kind", &self.name()).finish()
    }
}

impl<C: Clock> KindHandle<C> {
    /// A handle on `kind`, a kind of its own (or the overflow kind asked for by its name).
    pub(crate) fn own(kind: Arc<Kind<C>>) -> Self {
        Self { kind, detour: None }
    }

    /// A handle whose sends go where `detour` says, through the breaker's `parked` kind.
    pub(crate) fn detoured(parked: Arc<Kind<C>>, detour: Detour<C>) -> Self {
        Self {
            kind: parked,
            detour: Some(Arc::new(detour)),
        }
    }

    /// Counts one send and decides it: a clock read, a few atomic operations and a compare when
    /// the send is allowed; no lock, no allocation.
    #[inline]
    pub fn check(&self) -> Decision {
        match self.kind.check_lock_free() {
            Ok(()) => Decision::Allowed,
            Err(step) => match &self.detour {
                None => self.kind.check_cold(step),
                Some(detour) => detour.check(),
            },
        }
    }

    /// Counts one send that names `slices` below the kind and decides it, as
    /// [`Breaker::check_sliced`](crate::Breaker::check_sliced) does; a send that names nothing
    /// ([`Slices::none`]) is exactly a [`check`](Self::check). While the handle is on the
    /// overflow kind (or its name breaks the rule), its slices are not tracked.
    pub fn check_sliced(&self, slices: &Slices<'_>) -> Result<(), Blocked<()>> {
        let kind = match &self.detour {
            None => &*self.kind,
            Some(detour) => match detour.home() {
                Some(home) => home,
                None => {
                    return match detour.check() {
                        Decision::Allowed => Ok(()),
                        Decision::Blocked(reason) => Err(Blocked::new(
                            (),
                            std::sync::Arc::from(detour.name()),
                            reason,
                            0,
                            0,
                        )),
                    };
                }
            },
        };
        let refused = |reason, tripped_at_ms, open_until_ms| {
            Blocked::new(
                (),
                std::sync::Arc::clone(kind.name()),
                reason,
                tripped_at_ms,
                open_until_ms,
            )
        };
        match kind.check_sliced(slices) {
            Sliced::Allowed => Ok(()),
            Sliced::Kind(reason) => Err(refused(reason, kind.tripped_at(), kind.open_until())),
            Sliced::Slice(refusal) => {
                Err(
                    refused(refusal.reason, refusal.tripped_at_ms, refusal.open_until_ms)
                        .with_slice(Some(refusal.slice)),
                )
            }
        }
    }

    /// The kind's name (the overflow kind's while the handle is on it).
    pub fn name(&self) -> &str {
        match &self.detour {
            None => self.kind.name(),
            Some(detour) => detour.name(),
        }
    }

    /// The kind's state, as the send path sees it.
    pub fn state(&self) -> State {
        match &self.detour {
            None => self.kind.state(),
            Some(detour) => detour.state(),
        }
    }

    /// The figures of the handle's own kind as its last send left them, changing nothing (see
    /// `Kind::figures_as_they_stand`); `None` for a handle not on a kind of its own (yet).
    pub(crate) fn figures_as_they_stand(&self) -> Option<KindStatus> {
        match &self.detour {
            None => Some(self.kind.figures_as_they_stand()),
            Some(detour) => detour.home().map(Kind::figures_as_they_stand),
        }
    }

    /// The kind's status, brought up to now.
    pub fn status(&self) -> KindStatus {
        match &self.detour {
            None => self.kind.status(),
            Some(detour) => detour.status(),
        }
    }
}
