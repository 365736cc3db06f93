//! Fleet mode's way into the breaker (feature `redis`).

use std::sync::Arc;

use super::Breaker;
use crate::clock::Clock;
use crate::config::KindSettings;
use crate::kind::KindHandle;
use crate::name::OVERFLOW_KIND;
use crate::observe::KindStatus;
use crate::state::State;

/// Fleet mode's way into the breaker, in one place: the sync task reads and acts on kinds through
/// these alone, on the kind objects it read (a kind evicted and registered again is another one).
impl<C: Clock> Breaker<C> {
    /// Every registered kind the fleet syncs: all but the overflow kind, which is each
    /// instance's own (a fleet-wide total would tie every instance's unconfigured kinds to one
    /// instance's junk names, and its fixed limit is one instance's).
    pub(crate) fn handles(&self) -> Vec<KindHandle<C>> {
        let all = self.inner.registry.all();
        all.into_iter()
            .filter(|kind| kind.name().as_ref() != OVERFLOW_KIND)
            .map(KindHandle::own)
            .collect()
    }

    /// Forces a held kind open, as the fleet's operator asked.
    pub(crate) fn force_open_held(&self, kind: &KindHandle<C>) {
        kind.kind.force(State::Open);
    }

    /// Resets a held kind, as the fleet's operator asked.
    pub(crate) fn reset_held(&self, kind: &KindHandle<C>) {
        kind.kind.reset();
    }

    /// What a sync reads of `kind`: its figures as they stand (taken under its lock, nothing
    /// counted or rolled over) and the settings it runs on.
    pub(crate) fn sync_view(&self, kind: &KindHandle<C>) -> (KindStatus, Arc<KindSettings>) {
        kind.kind.sync_view()
    }

    /// Opens `kind` for the fleet unless an operator forced its state, for at least `hold_ms`.
    pub(crate) fn hold_open(&self, kind: &KindHandle<C>, hold_ms: u64) {
        kind.kind.hold_open(hold_ms);
    }
}
