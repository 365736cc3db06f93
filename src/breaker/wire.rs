//! What a server answering senders in other processes needs of the breaker (`spikebreaker
//! serve`): a kind's figures for each answer, cheaply, and the refusal a notification handed over
//! for the quarantine was refused with.

use std::sync::Arc;

use super::{Breaker, Refused};
use crate::clock::Clock;
use crate::name::OVERFLOW_KIND;
use crate::observe::KindStatus;
use crate::slice::SliceId;
use crate::state::{Reason, State};

impl<C: Clock> Breaker<C> {
    /// One kind's figures as its last send left them, if it has been seen: what
    /// [`kind_status`](Self::kind_status) shows, read without bringing the kind up to now, making
    /// a due transition or exporting its metrics, so that it changes nothing and costs little
    /// (an answer to each request of a server). `kind_status` for an operator's view.
    ///
    /// ```
    /// use spikebreaker::status::State;
    /// use spikebreaker::{Breaker, Config, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
    /// let promo = breaker.kind("push.promo");
    /// while promo.check().is_allowed() {} // a runaway: tripped at the warm-up ceiling
    /// clock.advance(Duration::from_secs(600)); // past its cool-down
    /// assert_eq!(breaker.kind_figures("push.promo").unwrap().state, State::Open); // as left
    /// assert_eq!(breaker.kind_status("push.promo").unwrap().state, State::HalfOpen); // brought up to now
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind_figures(&self, kind: &str) -> Option<KindStatus> {
        self.inner
            .registry
            .get(kind)
            .map(|kind| kind.figures_as_they_stand())
    }

    /// The refusal a send of `kind` would get now, if the kind refuses sends (open or half-open,
    /// not in dry-run): for a quarantine holding a notification the breaker refused a sender in
    /// another process. A name the registry does not hold was refused as the overflow kind.
    pub(crate) fn refusing(&self, kind: &str) -> Option<Refused> {
        let registry = &self.inner.registry;
        let found = registry.get(kind).or_else(|| registry.get(OVERFLOW_KIND))?;
        let status = found.status();
        (status.state != State::Closed && !status.dry_run).then(|| Refused {
            reason: status.reason,
            kind: Arc::clone(found.name()),
            tripped_at_ms: found.tripped_at(),
            open_until_ms: found.open_until(),
        })
    }

    /// The refusal a send of `kind` naming `slice` would get now, if that slice is open (and the
    /// kind not in dry-run): for a quarantine holding a notification a slice refused a sender in
    /// another process.
    pub(crate) fn refusing_slice(&self, kind: &str, slice: &SliceId) -> Option<Refused> {
        let found = self.inner.registry.get(kind)?;
        let tracked = self.slice_status(kind, slice)?;
        (tracked.state == State::Open && !found.status().dry_run).then(|| Refused {
            reason: Reason::Slice,
            kind: Arc::clone(found.name()),
            tripped_at_ms: tracked.since_ms,
            open_until_ms: 0,
        })
    }
}
