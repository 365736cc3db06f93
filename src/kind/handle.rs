//! [`KindHandle`]: a kind resolved once, checked on every send without a look-up.

use std::fmt;
use std::sync::Arc;

use super::{Decision, Kind, State};
use crate::clock::{Clock, SystemClock};
use crate::observe::KindStatus;

/// A resolved kind: checking through it is the lock-free send path. Cheap to clone.
///
/// A kind held by a handle is never evicted for being idle (see
/// [`Breaker::evict_idle`](crate::Breaker::evict_idle)).
pub struct KindHandle<C: Clock = SystemClock> {
    pub(crate) kind: Arc<Kind<C>>,
}

impl<C: Clock> Clone for KindHandle<C> {
    fn clone(&self) -> Self {
        Self {
            kind: Arc::clone(&self.kind),
        }
    }
}

impl<C: Clock> fmt::Debug for KindHandle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindHandle")
            .field("kind", self.kind.name())
            .finish()
    }
}

impl<C: Clock> KindHandle<C> {
    /// Counts one send and decides it: a clock read, a few atomic operations and a compare when
    /// the send is allowed; no lock, no allocation.
    #[inline]
    pub fn check(&self) -> Decision {
        self.kind.check()
    }

    /// The kind's name (the overflow kind's, if the registry was full).
    pub fn name(&self) -> &str {
        self.kind.name()
    }

    /// The kind's state, as the send path sees it.
    pub fn state(&self) -> State {
        self.kind.state()
    }

    /// The kind's status, brought up to now.
    pub fn status(&self) -> KindStatus {
        self.kind.status()
    }
}
