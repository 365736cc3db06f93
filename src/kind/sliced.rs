//! A send that names slices below its kind ([`Slices`]): the kind's own check first, as for any
//! send, then its slices and recipient through the kind's slice [`Tracker`], made when first
//! needed. A send that names nothing never comes here.

use std::sync::Arc;

use super::atomics::Ordering;
use super::{Decision, Kind};
use crate::clock::Clock;
use crate::slice::{
    Context, DimensionStatus, Learned, RepeatStatus, SliceRefusal, SliceSettings, Slices, Tracker,
};
use crate::state::Reason;

/// What a sliced send decided.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Sliced {
    Allowed,
    /// The kind refused it.
    Kind(Reason),
    /// One of its slices (or the repeat check) refused it.
    Slice(SliceRefusal),
}

impl<C: Clock> Kind<C> {
    /// Counts one send that names `slices` and decides it: the kind first (it counts every send),
    /// then every slice (each counts it too). The kind's refusal wins; a slice's refusal counts as
    /// the kind's blocked send, so the kind's `attempted = allowed + blocked` holds.
    pub(crate) fn check_sliced(&self, slices: &Slices<'_>) -> Sliced {
        let decision = self.check();
        if slices.is_none() {
            return match decision {
                Decision::Allowed => Sliced::Allowed,
                Decision::Blocked(reason) => Sliced::Kind(reason),
            };
        }
        let dry_run = self.limits.0.dry_run.load(Ordering::Relaxed);
        let cx = Context {
            kind: self.name(),
            now: self.limits.0.clock.now_ms(),
            dry_run,
        };
        let mut events = Vec::new();
        let refused = self.tracker().check(cx, slices, &mut events);
        self.shared().subscribers.emit(&events);
        match (decision, refused) {
            (Decision::Blocked(reason), _) => Sliced::Kind(reason),
            (Decision::Allowed, Some(refusal)) if !dry_run => {
                self.counters.0.blocked.fetch_add(1, Ordering::Relaxed);
                Sliced::Slice(refusal)
            }
            (Decision::Allowed, _) => Sliced::Allowed,
        }
    }

    /// The kind's slice tracker, made on first use with the kind's settings.
    fn tracker(&self) -> &Tracker {
        self.counters.0.slices.get_or_init(|| {
            let settings = Arc::clone(&self.cold.lock().settings.slices);
            Box::new(Tracker::new(settings))
        })
    }

    /// Runs the slices on new settings (a reload).
    pub(crate) fn apply_slices(&self, settings: &Arc<SliceSettings>) {
        if let Some(tracker) = self.counters.0.slices.get() {
            tracker.apply(Arc::clone(settings));
        }
    }

    /// Every tracked dimension's status and the repeat check's, at `now`.
    pub(crate) fn slice_status(&self, now: u64) -> (Vec<DimensionStatus>, Option<RepeatStatus>) {
        self.counters
            .0
            .slices
            .get()
            .map(|tracker| tracker.status(now))
            .unwrap_or_default()
    }

    /// Operator: closes `value`'s slice of `dimension`, forgetting its windows' counts. Whether
    /// the kind tracks that slice.
    pub(crate) fn reset_slice(&self, dimension: &str, value: &str) -> bool {
        let Some(tracker) = self.counters.0.slices.get() else {
            return false;
        };
        let cx = Context {
            kind: self.name(),
            now: self.limits.0.clock.now_ms(),
            dry_run: self.limits.0.dry_run.load(Ordering::Relaxed),
        };
        let mut events = Vec::new();
        let found = tracker.reset(cx, dimension, value, &mut events);
        self.shared().subscribers.emit(&events);
        found
    }

    /// Exports the slices' metrics: per dimension its sends, refusals and trips, the open state
    /// of each value that has tripped, and the repeat check's refusals.
    pub(crate) fn export_slices(&self) {
        if let Some(tracker) = self.counters.0.slices.get() {
            crate::slice::metrics::export_slices(
                &self.shared().name,
                self.name(),
                &tracker.counts(),
                tracker.repeat_blocked(),
            );
        }
    }

    /// What the slices learned, per dimension (for a snapshot).
    pub(crate) fn learned_slices(&self) -> Learned {
        self.counters
            .0
            .slices
            .get()
            .map(|tracker| tracker.learned())
            .unwrap_or_default()
    }

    /// Restores what the slices learned (a snapshot).
    pub(crate) fn restore_slices(&self, learned: Learned) {
        if learned.is_empty() {
            return;
        }
        let cx = Context {
            kind: self.name(),
            now: self.limits.0.clock.now_ms(),
            dry_run: false,
        };
        self.tracker().restore(cx, learned);
    }
}
