//! The metrics spikebreaker exports through the [`metrics`] facade: every name, its
//! type and its description, in one place.
//!
//! Every series carries the breaker's name as the label `breaker` ([`BREAKER_LABEL`]; `"default"`
//! unless set with [`BreakerBuilder::name`](crate::BreakerBuilder::name)), so two breakers in one
//! process write series of their own; per-kind series carry the kind as `kind` (the kind that
//! every kind beyond [`Config::max_kinds`](crate::Config::max_kinds) shares is labelled
//! `kind="_overflow"`). Each kind registers its counters' handles once, when it is first seen.
//! The send path never touches them: the figures are exported from the kind's own counters by
//! cold work, at each bucket roll-over (every twelfth of the window), on every transition and
//! operator call, and on [`Breaker::refresh`](crate::Breaker::refresh). A service calls `refresh`
//! before a scrape, or every few seconds, so that quiet kinds are current.
//!
//! **A recorder installed after the breaker** is found by the next
//! [`Breaker::refresh`](crate::Breaker::refresh): handles registered with another recorder (the
//! no-op one, when none was installed) are registered again with the one in force, once, and a
//! warning is logged (`tracing`), so the series appear, from the kinds' own totals; the breaker
//! shows it as a problem (`recorder_late`, in its status and the [`PROBLEM`] gauge). Installing
//! the recorder first is still best: until that refresh, the counters are missing. Without any
//! recorder, everything is a no-op.
//!
//! ```
//! use metrics_util::debugging::DebuggingRecorder;
//! use spikebreaker::{Breaker, Config, ManualClock};
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || -> Result<(), spikebreaker::Error> {
//!     let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
//!     let _ = breaker.check("email.welcome");
//!     breaker.refresh(); // exports every kind's figures
//!     Ok(())
//! })?;
//! let names: Vec<_> = snapshotter.snapshot().into_vec().into_iter().map(|m| m.0.key().name().to_owned()).collect();
//! assert!(names.iter().any(|name| name == spikebreaker::status::metrics::ATTEMPTED));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::metrics::{
    Counter, Gauge, Recorder, SharedString, Unit, counter, describe_counter, describe_gauge, gauge,
};

use super::problem::Problem;
use super::status::KindStatus;

#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use super::prometheus::prometheus;

/// The label that carries the kind's name on every per-kind series.
pub const KIND_LABEL: &str = "kind";
/// The label that carries the breaker's name on every series of a breaker (`"default"` unless
/// named with [`BreakerBuilder::name`](crate::BreakerBuilder::name)).
pub const BREAKER_LABEL: &str = "breaker";

/// Counter, per kind: sends attempted (checked) since the kind was first seen.
pub const ATTEMPTED: &str = "spikebreaker_attempted_total";
/// Counter, per kind: sends allowed. `attempted = allowed + blocked`.
pub const ALLOWED: &str = "spikebreaker_allowed_total";
/// Counter, per kind: sends blocked (handed back to the caller).
pub const BLOCKED: &str = "spikebreaker_blocked_total";
/// Counter, per kind: moves into the open state (detected, or forced by an operator).
pub const TRIPS: &str = "spikebreaker_trips_total";
/// Gauge, per kind: 0 closed, 1 open, 2 half-open
/// ([`State::gauge_value`](crate::status::State::gauge_value)).
pub const STATE: &str = "spikebreaker_state";
/// The label that carries the timescale (`minute`, `hour`, `day`) on per-window series.
pub const TIMESCALE_LABEL: &str = "timescale";
/// Gauge, per kind and timescale: sends in the window now.
pub const WINDOW_SENDS: &str = "spikebreaker_window_sends";
/// Gauge, per kind and timescale: the sends the window is expected to hold now.
pub const EXPECTED_SENDS: &str = "spikebreaker_expected_sends";
/// Gauge, per kind and timescale: the sends the window may hold; one more trips the kind
/// (`+Inf` while the timescale is not judged yet, which the Prometheus exporter writes as `inf`;
/// JSON shows that threshold as `null`).
pub const THRESHOLD_SENDS: &str = "spikebreaker_threshold_sends";
/// Gauge, per kind: seconds the kind has been open (0 unless open).
pub const OPEN_SECONDS: &str = "spikebreaker_open_seconds";
/// Gauge, per kind: what is left of a planned surge's sends (0 unless one is in force).
pub const SURGE_SENDS: &str = "spikebreaker_surge_sends";
/// Gauge, per kind: 1 while the kind has nothing learned and is held to the warm-up ceilings (a
/// new kind, or one restarted without its snapshot), 0 once it is judged by what it learned. A
/// kind open while it is 1 is one the breaker cannot tell from a runaway: it stays open until an
/// operator acts or its rate falls back.
pub const LEARNING: &str = "spikebreaker_learning";
/// Gauge, breaker-wide: kinds registered, the overflow kind not counted.
pub const KINDS: &str = "spikebreaker_kinds";
/// Counter, breaker-wide: look-ups of new kinds sent to the overflow kind because
/// [`Config::max_kinds`](crate::Config::max_kinds) kinds were registered.
pub const OVERFLOWED: &str = "spikebreaker_overflowed_total";
/// The label that carries a slice's dimension (`country`, `tenant`) on per-dimension series.
pub const DIMENSION_LABEL: &str = "dimension";
/// The label that carries a slice's value on [`SLICE_OPEN`].
pub const VALUE_LABEL: &str = "value";
/// Counter, per kind and dimension: sends that named the dimension.
pub const SLICE_ATTEMPTED: &str = "spikebreaker_slice_attempted_total";
/// Counter, per kind and dimension: sends refused because their slice was open.
pub const SLICE_BLOCKED: &str = "spikebreaker_slice_blocked_total";
/// Counter, per kind and dimension: times one of its slices tripped.
pub const SLICE_TRIPS: &str = "spikebreaker_slice_trips_total";
/// Gauge, per kind, dimension and value, only for tracked values that have tripped (so the
/// series stay few): 1 while the slice is open, 0 once it closed again.
pub const SLICE_OPEN: &str = "spikebreaker_slice_open";
/// Counter, per kind: sends refused as repeats (the same notification to one recipient).
pub const REPEAT_BLOCKED: &str = "spikebreaker_repeat_blocked_total";
/// The label that carries a [`Problem`]'s name on [`PROBLEM`] (one of [`Problem::NAMES`]).
pub const PROBLEM_LABEL: &str = "problem";
/// Gauge, breaker-wide, per problem: 1 while the [`Problem`] stands, 0 otherwise (every problem
/// is exported, so an alert can tell a cleared one from a missing series). Set when the breaker
/// is made, at each save of the snapshot file and on [`Breaker::refresh`](crate::Breaker::refresh).
pub const PROBLEM: &str = "spikebreaker_problem";
/// Gauge, per [`Fleet`](crate::fleet::Fleet): 1 while the instance has no working link to Redis and
/// detects on its own counts only, 0 while it syncs.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub const FLEET_DEGRADED: &str = "spikebreaker_fleet_degraded";

/// Counter, per kind: blocked notifications a [`Quarantine`](crate::quarantine::Quarantine) took
/// (written to its store before the send returned).
pub const QUARANTINE_HELD: &str = "spikebreaker_quarantine_held_total";
/// Counter, per kind: blocked notifications the quarantine's store refused (full, unreachable)
/// and that went back to the caller instead.
pub const QUARANTINE_REFUSED: &str = "spikebreaker_quarantine_refused_total";
/// Counter, per kind: quarantined notifications a releaser sent.
pub const QUARANTINE_RELEASED: &str = "spikebreaker_quarantine_released_total";
/// Counter, per kind: quarantined notifications an operator discarded.
pub const QUARANTINE_DISCARDED: &str = "spikebreaker_quarantine_discarded_total";

/// Describes every metric to the installed recorder (its `# HELP` and unit). A breaker does
/// this when it is created; call it yourself only for a recorder installed later.
pub fn describe() {
    describe_counter!(ATTEMPTED, Unit::Count, "Sends attempted for the kind.");
    describe_counter!(ALLOWED, Unit::Count, "Sends allowed for the kind.");
    describe_counter!(
        BLOCKED,
        Unit::Count,
        "Sends blocked for the kind and handed back to the caller."
    );
    describe_counter!(TRIPS, Unit::Count, "Times the kind went open.");
    describe_gauge!(STATE, "The kind's state: 0 closed, 1 open, 2 half-open.");
    describe_gauge!(
        WINDOW_SENDS,
        Unit::Count,
        "Sends in the kind's window on the timescale (minute: window_secs, default 60 s; hour; day)."
    );
    describe_gauge!(
        EXPECTED_SENDS,
        Unit::Count,
        "Sends the kind's window on the timescale is expected to hold now, from its learned week and recent rate."
    );
    describe_gauge!(
        THRESHOLD_SENDS,
        Unit::Count,
        "Sends the kind's window on the timescale may hold; one more trips it (+Inf: not judged yet)."
    );
    describe_gauge!(
        OPEN_SECONDS,
        Unit::Seconds,
        "Seconds the kind has been open (0 unless open)."
    );
    describe_gauge!(
        SURGE_SENDS,
        Unit::Count,
        "What is left of a planned surge's sends: sends the kind may still make whatever its limits say (0 unless one is in force)."
    );
    describe_gauge!(
        LEARNING,
        "1 while the kind has nothing learned and is held to the warm-up ceilings, 0 once it is judged by what it learned."
    );
    describe_gauge!(
        KINDS,
        Unit::Count,
        "Kinds registered, the overflow kind not counted."
    );
    describe_counter!(
        OVERFLOWED,
        Unit::Count,
        "Look-ups of new kinds sent to the _overflow kind because max_kinds were registered."
    );
    describe_gauge!(
        PROBLEM,
        "1 while the breaker has the problem: snapshot_set_aside, snapshot_unreadable, snapshot_not_saved, name_shared, recorder_late."
    );
    describe_counter!(
        QUARANTINE_HELD,
        Unit::Count,
        "Blocked notifications of the kind held in the quarantine."
    );
    describe_counter!(
        QUARANTINE_REFUSED,
        Unit::Count,
        "Blocked notifications of the kind the quarantine refused (full, unavailable) and handed back."
    );
    describe_counter!(
        QUARANTINE_RELEASED,
        Unit::Count,
        "Quarantined notifications of the kind released and sent."
    );
    describe_counter!(
        QUARANTINE_DISCARDED,
        Unit::Count,
        "Quarantined notifications of the kind discarded by an operator."
    );
    describe_counter!(
        SLICE_ATTEMPTED,
        Unit::Count,
        "Sends of the kind that named the slice dimension."
    );
    describe_counter!(
        SLICE_BLOCKED,
        Unit::Count,
        "Sends of the kind refused because their slice of the dimension was open."
    );
    describe_counter!(
        SLICE_TRIPS,
        Unit::Count,
        "Times a slice of the kind's dimension tripped."
    );
    describe_gauge!(
        SLICE_OPEN,
        "A tracked slice that has tripped: 1 while open, 0 once closed again."
    );
    describe_counter!(
        REPEAT_BLOCKED,
        Unit::Count,
        "Sends of the kind refused as the same notification to one recipient too often."
    );
    #[cfg(feature = "redis")]
    describe_gauge!(
        FLEET_DEGRADED,
        "Fleet mode: 1 while the instance has no working link to Redis (local-only detection), 0 while it syncs."
    );
}

/// The recorder in force on this thread (a local one, the global one, or the no-op one), by
/// address: what handles registered now would record into.
fn recorder_in_force() -> usize {
    ::metrics::with_recorder(|recorder| std::ptr::from_ref::<dyn Recorder>(recorder).cast::<()>() as usize)
}

/// Notes, once per change, that handles registered with one recorder found another in force.
fn warn_recorder_changed(now: usize) {
    static WARNED_FOR: AtomicUsize = AtomicUsize::new(0);
    if WARNED_FOR.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            "the metrics recorder changed after spikebreaker registered its series (a recorder \
             installed after the breaker?): its series are registered again with the recorder in \
             force; install the recorder before creating the breaker"
        );
    }
}

/// One kind's handles for its counters, exported at every roll-over, registered once when the
/// kind is created (and again if [`BreakerMetrics::follow_the_recorder`] finds another
/// recorder). Its gauges are registered as they are exported
/// ([`export_gauges`](Self::export_gauges)), so that a kind stays small.
#[derive(Debug)]
pub(crate) struct KindMetrics {
    attempted: Counter,
    allowed: Counter,
    blocked: Counter,
    trips: Counter,
}

impl KindMetrics {
    pub(crate) fn register(breaker: &Arc<str>, kind: &Arc<str>) -> Self {
        let labels = || {
            [
                (BREAKER_LABEL, SharedString::from(Arc::clone(breaker))),
                (KIND_LABEL, SharedString::from(Arc::clone(kind))),
            ]
        };
        Self {
            attempted: counter!(ATTEMPTED, &labels()),
            allowed: counter!(ALLOWED, &labels()),
            blocked: counter!(BLOCKED, &labels()),
            trips: counter!(TRIPS, &labels()),
        }
    }

    /// Handles that record nothing, for a kind that is never exported.
    pub(crate) fn none() -> Self {
        Self {
            attempted: Counter::noop(),
            allowed: Counter::noop(),
            blocked: Counter::noop(),
            trips: Counter::noop(),
        }
    }

    /// Sets the counters: sends attempted and blocked (allowed is their difference) and trips.
    /// Counters only move forward, so a read that raced a send catches up at the next export.
    pub(crate) fn export_counts(&self, attempted: u64, blocked: u64, trips: u64) {
        self.attempted.absolute(attempted);
        self.allowed.absolute(attempted.saturating_sub(blocked));
        self.blocked.absolute(blocked);
        self.trips.absolute(trips);
    }

    /// Sets the gauges (the state, how long open, every window's count, expected count and
    /// threshold, a surge's sends) of the breaker's kind to its `figures`, registering them with
    /// the recorder in force in place.
    pub(crate) fn export_gauges(breaker: &Arc<str>, figures: &KindStatus) {
        let breaker = || SharedString::from(Arc::clone(breaker));
        let kind = || SharedString::from(Arc::clone(&figures.kind));
        gauge!(STATE, BREAKER_LABEL => breaker(), KIND_LABEL => kind()).set(figures.state.gauge_value());
        gauge!(OPEN_SECONDS, BREAKER_LABEL => breaker(), KIND_LABEL => kind())
            .set(figures.open_for_ms as f64 / 1000.0);
        for window in &figures.windows {
            let timescale = window.timescale.as_str();
            let threshold = if window.threshold == u64::MAX {
                f64::INFINITY
            } else {
                window.threshold as f64
            };
            for (name, value) in [
                (WINDOW_SENDS, window.window_count as f64),
                (EXPECTED_SENDS, window.expected),
                (THRESHOLD_SENDS, threshold),
            ] {
                gauge!(name, BREAKER_LABEL => breaker(), KIND_LABEL => kind(), TIMESCALE_LABEL => timescale)
                    .set(value);
            }
        }
        gauge!(SURGE_SENDS, BREAKER_LABEL => breaker(), KIND_LABEL => kind())
            .set(figures.surge.map_or(0.0, |surge| surge.sends as f64));
        gauge!(LEARNING, BREAKER_LABEL => breaker(), KIND_LABEL => kind()).set(if figures.warmed_up {
            0.0
        } else {
            1.0
        });
    }
}

/// The breaker-wide handles, registered when the breaker is created (and again if another
/// recorder is installed).
#[derive(Debug)]
pub(crate) struct BreakerMetrics {
    name: Arc<str>,
    recorder: usize,
    kinds: Gauge,
    overflowed: Counter,
}

/// A breaker's claim on its name among the live breakers of the process: a second live breaker
/// of the same name writes into the first one's series, so its claim warns (once per name).
#[derive(Debug)]
pub(crate) struct NameInUse(Arc<str>);

/// Per name, the live breakers that carry it and whether the process was warned of a second.
type Names = HashMap<Arc<str>, (usize, bool)>;

/// The live breakers' names.
static NAMES_IN_USE: std::sync::LazyLock<parking_lot::Mutex<Names>> =
    std::sync::LazyLock::new(Default::default);

impl NameInUse {
    pub(crate) fn claim(name: &Arc<str>) -> Self {
        let mut names = NAMES_IN_USE.lock();
        let (live, warned) = names.entry(Arc::clone(name)).or_default();
        *live += 1;
        if *live > 1 && !*warned {
            *warned = true;
            tracing::warn!(
                breaker = &**name,
                "two live breakers share the name {name:?}: their metrics are written to the same series; \
                 give each its own with Breaker::builder().name(..)"
            );
        }
        Self(Arc::clone(name))
    }

    /// Live breakers named `name`.
    pub(crate) fn live(name: &str) -> usize {
        NAMES_IN_USE.lock().get(name).map_or(0, |(live, _)| *live)
    }
}

impl Drop for NameInUse {
    fn drop(&mut self) {
        let mut names = NAMES_IN_USE.lock();
        if let Some((live, _)) = names.get_mut(&self.0) {
            *live -= 1;
            if *live == 0 {
                names.remove(&self.0);
            }
        }
    }
}

impl BreakerMetrics {
    pub(crate) fn register(name: &Arc<str>) -> Self {
        describe();
        let label = || [(BREAKER_LABEL, SharedString::from(Arc::clone(name)))];
        Self {
            name: Arc::clone(name),
            recorder: recorder_in_force(),
            kinds: gauge!(KINDS, &label()),
            overflowed: counter!(OVERFLOWED, &label()),
        }
    }

    /// Whether the recorder in force is not the one the breaker's handles were registered with
    /// (a recorder installed after the breaker); if so, registers the breaker's again (and
    /// describes every metric to it), and the caller registers every kind's.
    pub(crate) fn follow_the_recorder(&mut self) -> bool {
        let now = recorder_in_force();
        if self.recorder == now {
            return false;
        }
        warn_recorder_changed(now);
        *self = Self::register(&self.name);
        true
    }

    pub(crate) fn export(&self, kinds: usize, overflowed: u64) {
        self.kinds.set(kinds as f64);
        self.overflowed.absolute(overflowed);
    }

    /// Sets [`PROBLEM`] for every problem: 1 for those in `standing`, 0 for the rest.
    pub(crate) fn export_problems(&self, standing: &[Problem]) {
        for name in Problem::NAMES {
            let on = standing.iter().any(|problem| problem.as_str() == name);
            gauge!(PROBLEM, BREAKER_LABEL => SharedString::from(Arc::clone(&self.name)), PROBLEM_LABEL => name)
                .set(if on { 1.0 } else { 0.0 });
        }
    }
}

/// Adds `n` to the quarantine counter `name` of `breaker`'s `kind`: cold work (a refusal, a
/// release, an operator's discard), looked up at each call rather than cached per kind.
pub(crate) fn count_quarantine(name: &'static str, breaker: &str, kind: &str, n: u64) {
    counter!(name, BREAKER_LABEL => breaker.to_owned(), KIND_LABEL => kind.to_owned()).increment(n);
}

/// Fleet mode: sets [`FLEET_DEGRADED`] of the `breaker`'s fleet, 1 while the instance has no
/// working link to Redis.
#[cfg(feature = "redis")]
pub(crate) fn set_fleet_degraded(breaker: &str, degraded: bool) {
    gauge!(FLEET_DEGRADED, BREAKER_LABEL => breaker.to_owned()).set(if degraded { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests;
