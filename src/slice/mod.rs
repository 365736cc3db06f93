//! Slices below the kind: a runaway to one country, one tenant or one recipient, caught inside a
//! kind that looks normal.
//!
//! A notification may name slices ([`Slices`]: `country=GB`, `tenant=acme`). Per kind, each
//! dimension keeps a [`Table`](dimension::Table) of the values busiest lately (`slices.track`,
//! 64 by default), each with its windows on the three timescales and the share of the dimension
//! it learns hour by hour ([`share`]), and a small sketch of the rest ([`sketch`]); a value of the
//! rest that grows busy takes the place of the least busy. A tracked value's window trips when it
//! holds more than its share of what the rest of the dimension sent makes expected, with the same
//! floors, factors and spreads as a kind's limits ([`share::slice_limit`]); a trip refuses that
//! slice only. The [`repeats`] table refuses the same notification to one recipient past
//! `repeats.max` in its window.
//!
//! [`Tracker`] is one kind's: its dimensions (at most [`MAX_SLICES`], made as they are first
//! named) and its repeat table, each allocated when first needed, so a kind whose notifications
//! name nothing below it holds one empty pointer.

mod dimension;
pub(crate) mod metrics;
mod repeats;
mod settings;
mod share;
mod sketch;
pub(crate) mod slices;
mod status;
mod windows;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::observe::Event;
use crate::state::{Reason, State};
use dimension::Table;
pub(crate) use dimension::{Context, SliceRefusal, Verdict};
pub(crate) use repeats::Repeat;
use repeats::Repeats;
pub(crate) use settings::{RepeatSettings, SliceSettings};
pub(crate) use share::Share;
pub use slices::{CONTENT, MAX_DIMENSION_BYTES, MAX_SLICES, MAX_VALUE_BYTES, SliceId, Slices, check_pair};
pub use status::{DimensionStatus, RepeatStatus, SliceStatus};

/// What a kind's slices learned, per dimension: its name, the hours it learned from, and each
/// tracked value's share (what a snapshot keeps).
pub(crate) type Learned = Vec<(Arc<str>, u32, Vec<(Arc<str>, Share)>)>;

/// The dimension that names a repeat check's refusals and events.
pub(crate) const RECIPIENT: &str = "recipient";
/// A kind reports a repeat refusal as an event at most this often.
const REPEAT_EVENT_EVERY_MS: u64 = 60_000;

/// One kind's slices and repeat check.
#[derive(Debug)]
pub(crate) struct Tracker {
    settings: Mutex<Arc<SliceSettings>>,
    /// Made as they are first named, in that order.
    dimensions: [OnceLock<Dimension>; MAX_SLICES],
    repeats: OnceLock<Repeats>,
    /// When a repeat refusal was last reported as an event.
    repeat_reported_ms: Mutex<Option<u64>>,
    /// A send named a slice that breaks the rule, or more dimensions than tracked: warned once.
    warned: AtomicBool,
}

#[derive(Debug)]
struct Dimension {
    name: Box<str>,
    table: Mutex<Table>,
}

impl Tracker {
    pub(crate) fn new(settings: Arc<SliceSettings>) -> Self {
        Self {
            settings: Mutex::new(settings),
            dimensions: Default::default(),
            repeats: OnceLock::new(),
            repeat_reported_ms: Mutex::new(None),
            warned: AtomicBool::new(false),
        }
    }

    /// Counts one send that names `slices` and decides it: its recipient against the repeat
    /// table, then each slice against its dimension, every one counted whatever the first
    /// decided. Events go to `events`.
    pub(crate) fn check(
        &self,
        cx: Context<'_>,
        slices: &Slices<'_>,
        events: &mut Vec<Event>,
    ) -> Option<SliceRefusal> {
        let mut refused = None;
        if let Some(recipient) = slices.recipient_named() {
            refused = self.check_repeat(cx, recipient, slices.content_key(), events);
        }
        if slices.dropped() > 0 {
            self.warn_once(
                cx.kind,
                "a notification named more than 8 slices: the rest are ignored",
            );
        }
        for &(dimension, value) in slices.pairs() {
            if let Err(problem) = check_pair(dimension, value) {
                self.warn_once(cx.kind, &problem);
                continue;
            }
            let Some(found) = self.dimension(cx, dimension) else {
                continue;
            };
            let mut table = found.table.lock();
            if !table.is_tracked() {
                continue;
            }
            if let Verdict::Refused(refusal) = table.check(cx, value, events) {
                refused.get_or_insert(refusal);
            }
        }
        refused
    }

    fn check_repeat(
        &self,
        cx: Context<'_>,
        recipient: &str,
        content: Option<u64>,
        events: &mut Vec<Event>,
    ) -> Option<SliceRefusal> {
        let settings = self.settings.lock().repeats?;
        let repeats = self.repeats.get_or_init(|| Repeats::new(settings.capacity));
        let key = slices::hash_of(&(recipient, content));
        let Repeat::Refused { first, since_ms } = repeats.check(key, cx.now, &settings, cx.dry_run) else {
            return None;
        };
        let slice = SliceId {
            dimension: Arc::from(RECIPIENT),
            value: Arc::from(recipient),
        };
        if first {
            let mut reported = self.repeat_reported_ms.lock();
            if reported.is_none_or(|at| cx.now.saturating_sub(at) >= REPEAT_EVENT_EVERY_MS) {
                *reported = Some(cx.now);
                events.push(repeat_event(cx, &slice, &settings));
            }
        }
        Some(SliceRefusal {
            slice,
            reason: Reason::Repeat,
            tripped_at_ms: since_ms,
            open_until_ms: since_ms.saturating_add(settings.window_ms),
        })
    }

    /// The dimension called `name`, made if new and there is room.
    fn dimension(&self, cx: Context<'_>, name: &str) -> Option<&Dimension> {
        for slot in &self.dimensions {
            match slot.get() {
                Some(found) if &*found.name == name => return Some(found),
                Some(_) => {}
                None => return self.add_dimension(cx, name),
            }
        }
        self.warn_once(
            cx.kind,
            "a notification named more dimensions than the kind tracks",
        );
        None
    }

    #[cold]
    fn add_dimension(&self, cx: Context<'_>, name: &str) -> Option<&Dimension> {
        let settings = Arc::clone(&self.settings.lock());
        for (i, slot) in self.dimensions.iter().enumerate() {
            let made = slot.get_or_init(|| Dimension {
                name: name.into(),
                table: Mutex::new(Table::new(Arc::from(name), Arc::clone(&settings), cx.now)),
            });
            if &*made.name == name {
                // Past `max_dimensions`, a dimension is kept (so it is not looked for again) but
                // not tracked.
                if i >= settings.max_dimensions {
                    made.table.lock().apply(Arc::new(SliceSettings {
                        only: Some(Default::default()),
                        ..(*settings).clone()
                    }));
                }
                return Some(made);
            }
        }
        None
    }

    fn warn_once(&self, kind: &str, problem: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(kind, "slices of kind {kind:?} ignored: {problem}");
        }
    }

    /// Runs on new settings, keeping counts and what was learned.
    pub(crate) fn apply(&self, settings: Arc<SliceSettings>) {
        *self.settings.lock() = Arc::clone(&settings);
        for (i, dimension) in self.dimensions.iter().filter_map(OnceLock::get).enumerate() {
            let for_it = if i < settings.max_dimensions {
                Arc::clone(&settings)
            } else {
                Arc::new(SliceSettings {
                    only: Some(Default::default()),
                    ..(*settings).clone()
                })
            };
            dimension.table.lock().apply(for_it);
        }
    }

    /// Operator: closes `value`'s slice of `dimension`. Whether the breaker tracks it.
    pub(crate) fn reset(
        &self,
        cx: Context<'_>,
        dimension: &str,
        value: &str,
        events: &mut Vec<Event>,
    ) -> bool {
        self.dimensions
            .iter()
            .filter_map(OnceLock::get)
            .find(|found| &*found.name == dimension)
            .is_some_and(|found| found.table.lock().reset(cx, value, events))
    }

    /// Every tracked dimension as an operator sees it at `now`.
    pub(crate) fn status(&self, now: u64) -> (Vec<DimensionStatus>, Option<RepeatStatus>) {
        let dimensions = self
            .dimensions
            .iter()
            .filter_map(OnceLock::get)
            .filter_map(|dimension| {
                let mut table = dimension.table.lock();
                table.is_tracked().then(|| table.status(now))
            })
            .collect();
        let settings = self.settings.lock().repeats;
        let repeats = settings
            .zip(self.repeats.get())
            .map(|(settings, repeats)| RepeatStatus {
                max: settings.max,
                window_secs: settings.window_ms / 1000,
                remembered: repeats.remembered(),
                capacity: repeats.capacity(),
                blocked: repeats.blocked(),
            });
        (dimensions, repeats)
    }

    /// Per tracked dimension: its name, sends, refusals, trips and the values that tripped
    /// (whether each is open now), for the metrics.
    pub(crate) fn counts(&self) -> Vec<(Arc<str>, metrics::SliceCounts)> {
        self.dimensions
            .iter()
            .filter_map(OnceLock::get)
            .filter_map(|dimension| {
                let table = dimension.table.lock();
                table
                    .is_tracked()
                    .then(|| (Arc::clone(&table.name), table.counts()))
            })
            .collect()
    }

    /// Sends refused as repeats.
    pub(crate) fn repeat_blocked(&self) -> u64 {
        self.repeats.get().map_or(0, Repeats::blocked)
    }

    /// What every dimension has learned: per dimension, its hours and each value's share.
    pub(crate) fn learned(&self) -> Learned {
        self.dimensions
            .iter()
            .filter_map(OnceLock::get)
            .map(|dimension| {
                let table = dimension.table.lock();
                let (hours, shares) = table.learned();
                (Arc::clone(&table.name), hours, shares)
            })
            .filter(|(_, hours, shares)| *hours > 0 || !shares.is_empty())
            .collect()
    }

    /// Restores what was learned (a snapshot), the dimensions made as needed.
    pub(crate) fn restore(&self, cx: Context<'_>, learned: Learned) {
        for (name, hours, shares) in learned {
            if let Some(dimension) = self.dimension(cx, &name) {
                dimension.table.lock().restore(hours, shares, cx.now);
            }
        }
    }
}

/// The event that reports a kind's repeat refusals (at most one a minute).
fn repeat_event(cx: Context<'_>, slice: &SliceId, settings: &RepeatSettings) -> Event {
    use crate::detect::{Bound, Timescale};
    let window = crate::observe::Window {
        timescale: Timescale::Hour,
        window_count: u64::from(settings.max) + 1,
        threshold: u64::from(settings.max),
        expected: 0.0,
        bound: Bound::Ceiling,
    };
    let mut event = Event::new(
        Arc::clone(cx.kind),
        cx.now,
        State::Closed,
        State::Open,
        Reason::Repeat,
        window,
        cx.dry_run,
    );
    event.slice = Some(slice.clone());
    event
}
