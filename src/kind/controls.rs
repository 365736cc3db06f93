//! What operators and fleet mode do to a kind, each under the kind's lock after bringing it up to
//! now: force, reset, relearn, plan a surge, dry-run, new settings, a restored snapshot, the
//! status; fleet mode's view and hold.

use std::sync::Arc;

use super::Kind;
use super::atomics::Ordering;
use super::machine::next_planned;
use crate::clock::Clock;
use crate::config::{KindSettings, Recovery};
use crate::detect::Learned;
use crate::observe::KindStatus;
use crate::observe::metrics::KindMetrics;
use crate::state::{Reason, State};

impl<C: Clock> Kind<C> {
    /// Brings the window, any due transition and the metrics up to now, without counting a send;
    /// with `rebind`, registers the kind's metrics handles again first, with the recorder in
    /// force (one installed after the kind).
    pub(crate) fn refresh(&self, rebind: bool) {
        self.cold_op(|kind, cold, _, _| {
            if rebind {
                cold.metrics = KindMetrics::register(&kind.shared().name, kind.name());
            }
        });
    }

    /// Operator: hold the kind open (`State::Open`) or closed (`State::Closed`) until reset.
    pub(crate) fn force(&self, to: State) {
        let reason = if to == State::Open {
            Reason::ForcedOpen
        } else {
            Reason::ForcedClosed
        };
        self.cold_op(|kind, cold, now, events| {
            cold.forced = true;
            kind.transition(cold, now, to, reason, None, events);
        });
    }

    /// Operator: back to closed with automatic detection, forgetting the windows' counts (not
    /// what was learned).
    pub(crate) fn reset(&self) {
        self.cold_op(|kind, cold, now, events| {
            kind.take_count(cold);
            cold.detector.clear();
            cold.forced = false;
            cold.until = u64::MAX;
            kind.transition(cold, now, State::Closed, Reason::Reset, None, events);
            // The learning in progress saw the trouble that led to the reset.
            cold.clean = false;
        });
    }

    /// Operator: the rate the kind kept while open is its new normal (a lasting change in
    /// legitimate traffic): take it as the recent rate, forget the windows' counts, and close.
    pub(crate) fn relearn(&self) {
        self.cold_op(|kind, cold, now, events| {
            kind.take_count(cold);
            cold.detector.relearn(&cold.settings.policy, now);
            cold.forced = false;
            cold.until = u64::MAX;
            kind.transition(cold, now, State::Closed, Reason::Relearned, None, events);
            cold.clean = false;
        });
    }

    /// Operator, or the sending job: `sends` are allowed whatever the limits say until
    /// `for_ms` from now (a campaign, a real mass notice). A second surge replaces the first.
    pub(crate) fn plan_surge(&self, sends: u64, for_ms: u64) {
        self.cold_op(|kind, cold, now, events| {
            cold.surge_until = now.saturating_add(for_ms);
            cold.detector.set_surge(sends);
            kind.report(cold, now, Reason::Surge, events);
            kind.publish(cold);
        });
    }

    /// Operator: detect and report, but never block (`on`), or enforce again.
    pub(crate) fn set_dry_run(&self, on: bool) {
        self.limits.0.dry_run.store(on, Ordering::Relaxed);
    }

    /// Runs on new settings, keeping counts and what was learned. A new minute window length
    /// restarts the minute window's counts.
    pub(crate) fn apply(&self, settings: Arc<KindSettings>) {
        self.locked(|kind, cold, now| {
            if settings.policy.bucket_ms != cold.settings.policy.bucket_ms {
                // The bucket in progress is counted in the long windows before the minute
                // window restarts on its new buckets.
                let count = kind.take_count(cold);
                cold.detector.roll(&cold.settings.policy, count, now, cold.clean);
            }
            cold.detector.apply(&cold.settings.policy, &settings.policy, now);
            if cold.state.state == State::Open && !cold.forced {
                cold.until = match settings.recovery {
                    Recovery::Auto => cold.since_ms.saturating_add(settings.cooldown_ms),
                    Recovery::Manual => u64::MAX,
                };
            }
            kind.limits.0.dry_run.store(settings.dry_run, Ordering::Relaxed);
            cold.next_planned = next_planned(&settings, cold.surge_until, now);
            cold.settings = settings;
            kind.publish(cold);
        });
    }

    /// What the kind has learned.
    pub(crate) fn learned(&self) -> Learned {
        self.cold.lock().detector.learned().clone()
    }

    /// Replaces what was learned (a restored snapshot).
    pub(crate) fn restore(&self, learned: Learned) {
        self.locked(|kind, cold, now| {
            cold.detector.restore(&cold.settings.policy, learned, now);
            kind.publish(cold);
        });
    }

    /// Everything an operator wants to see, brought up to now, its slices with it.
    pub(crate) fn status(&self) -> KindStatus {
        let mut status = self.cold_op(|kind, cold, now, _| kind.figures(cold, now));
        (status.slices, status.repeats) = self.slice_status(self.shared().clock.now_ms());
        status
    }

    /// The kind's figures as its last send left them: takes the lock, rolls nothing and makes
    /// no transition, so reading them changes nothing the kind will decide (a replay's
    /// timeline).
    pub(crate) fn figures_as_they_stand(&self) -> KindStatus {
        let now = self.shared().clock.now_ms();
        let cold = self.cold.lock();
        self.figures(&cold, now)
    }
}

/// What fleet mode does with a kind, through the breaker (see `Breaker`'s fleet section).
#[cfg(feature = "redis")]
impl<C: Clock> Kind<C> {
    /// The kind's figures and settings as they stand. Cold: takes the kind's lock, counts
    /// nothing, rolls nothing.
    pub(crate) fn sync_view(&self) -> (KindStatus, Arc<KindSettings>) {
        let now = self.shared().clock.now_ms();
        let cold = self.cold.lock();
        (self.figures(&cold, now), Arc::clone(&cold.settings))
    }

    /// Opens the kind for the fleet unless an operator forced its state, and keeps it open for
    /// at least `hold_ms` from now (a kind that was closed opens for exactly that long).
    pub(crate) fn hold_open(&self, hold_ms: u64) {
        self.cold_op(|kind, cold, now, events| {
            if cold.forced {
                return;
            }
            let until = now.saturating_add(hold_ms);
            if cold.state.state != State::Open {
                kind.transition(cold, now, State::Open, Reason::Fleet, None, events);
                if cold.settings.recovery == Recovery::Auto {
                    cold.until = until;
                }
            } else if cold.until < until {
                cold.until = until;
            }
            kind.publish(cold);
        });
    }
}
