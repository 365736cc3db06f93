//! Replaying a send log against a configuration: what the breaker would have done to past
//! traffic, decided by the same engine on a [`ManualClock`].
//!
//! [`LogReader`] streams a log of `t_ms,kind[,recipient[,slices]]` lines; [`Backtest`] sets the
//! clock to each send's time and checks it through a cached [`KindHandle`] (with its slices,
//! [`Backtest::check_sliced`]), tallying the decisions and recording every transition;
//! [`Backtest::report`] gives the result as serde data.
//!
//! ```
//! use spikebreaker::Config;
//! use spikebreaker::backtest::{Backtest, LogReader};
//!
//! let log = "t_ms,kind\n0,email.welcome\n1000,email.welcome\n1500,sms.login_code\n";
//! let mut backtest = Backtest::new(Config::default())?;
//! let mut reader = LogReader::new(log.as_bytes());
//! while let Some(record) = reader.next_record() {
//!     let record = record?;
//!     let _decision = backtest.check(record.t_ms, record.kind);
//! }
//! let report = backtest.report();
//! assert_eq!(report.sends, 3);
//! assert_eq!(report.kinds["email.welcome"].allowed, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod html;
mod line;
mod log;
mod log_error;
mod names;
mod report;
mod timeline;
mod trace;
mod trace_reader;
mod tune;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::breaker::Breaker;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::error::Error;
use crate::kind::{Decision, KindHandle};
use crate::observe::Event;
use crate::registry::SWEEP_EVERY_MS;
use crate::slice::Slices;
use crate::state::{Reason, State};
use names::Names;

pub use html::write_html;
pub use log::{LogReader, SendRecord};
pub use log_error::LogError;
pub use report::{BacktestReport, Folded, KindReport};
pub use timeline::{Point, Timeline};
pub use trace::{Replay, Trace};
pub use trace_reader::TraceReader;
pub use tune::{Candidate, KindTuning, Leak, Outcome, Runaway, Tuner, Tuning};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Replays sends through a [`Breaker`] on a [`ManualClock`], tallying every decision.
///
/// Each send costs a clock set, a look-up of the kind's cached handle and the handle's
/// [`check`](KindHandle::check): the same code path a service runs. Like a service that checks
/// by name, the replay holds no kind the registry would forget for being idle (see
/// [`Config::evict_idle_secs`]), and looks a name sent to the overflow kind up again on every
/// send, so that kinds come and go as they would in the service.
pub struct Backtest {
    breaker: Breaker<ManualClock>,
    clock: ManualClock,
    /// Input kind names with a handle held: kinds of their own, sent recently.
    slots: FastMap<Box<str>, Slot>,
    /// One tally per engine kind name (kinds past `max_kinds` share the overflow kind's),
    /// numbered as in `names`.
    tallies: Vec<Tally>,
    /// The engine kind names, numbered as their tallies.
    names: Names,
    /// When `slots` was last swept of idle kinds (`None`: never).
    last_sweep_ms: Option<u64>,
    /// Whose [`Timeline`] is recorded.
    timelines: Timelines,
    events: Arc<Mutex<Vec<Event>>>,
    sends: u64,
    skipped_lines: u64,
}

/// A held handle, the tally it counts into and when it was last sent.
#[derive(Debug)]
struct Slot {
    handle: KindHandle<ManualClock>,
    tally: usize,
    last_ms: u64,
}

#[derive(Debug)]
struct Tally {
    allowed: u64,
    blocked: u64,
    /// Of `blocked`, refused by one of the kind's slices or the repeat check.
    slice_blocked: u64,
    /// The kind's state when it was last seen, for the report once no handle is held.
    state: State,
    /// Boxed: a replay of millions of kinds records none, and keeps its tallies small.
    timeline: Option<Box<Timeline>>,
}

impl std::fmt::Debug for Backtest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backtest")
            .field("sends", &self.sends)
            .field("kinds", &self.tallies.len())
            .finish_non_exhaustive()
    }
}

impl Backtest {
    /// A replay of `config`, starting with nothing learned, at time 0.
    pub fn new(config: Config) -> Result<Self, Error> {
        let clock = ManualClock::new();
        let breaker = Breaker::for_replay(config, clock.clone())?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        breaker
            .subscribe(move |event| sink.lock().push(event.clone()))
            .detach();
        Ok(Self {
            breaker,
            clock,
            slots: FastMap::default(),
            tallies: Vec::new(),
            names: Names::default(),
            last_sweep_ms: None,
            timelines: Timelines::None,
            events,
            sends: 0,
            skipped_lines: 0,
        })
    }

    /// Decides one send of `kind` at `t_ms` that names `slices` below its kind (a send log's
    /// fourth column, [`SendRecord::slices`]), as
    /// [`Breaker::check_sliced`](crate::Breaker::check_sliced) would have: blocked with
    /// [`Reason::Slice`] or [`Reason::Repeat`] when a slice or the repeat check refused it. A send
    /// that names nothing is a [`check`](Self::check).
    ///
    /// ```
    /// use spikebreaker::Config;
    /// use spikebreaker::backtest::{Backtest, LogReader};
    ///
    /// let log = "t_ms,kind,recipient,slices\n0,sms.otp,+447700900123,prefix=+447\n";
    /// let mut backtest = Backtest::new(Config::default())?;
    /// let mut reader = LogReader::new(log.as_bytes());
    /// while let Some(record) = reader.next_record() {
    ///     let record = record?;
    ///     let _decision = backtest.check_sliced(record.t_ms, record.kind, &record.slices);
    /// }
    /// assert_eq!(backtest.report().kinds["sms.otp"].allowed, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_sliced(&mut self, t_ms: u64, kind: &str, slices: &Slices<'_>) -> Decision {
        if slices.is_none() {
            return self.check(t_ms, kind);
        }
        self.clock.set(t_ms);
        self.sends += 1;
        if !self.slots.contains_key(kind) {
            self.sweep(t_ms);
            let handle = self.breaker.kind(kind);
            let tally = self.tally_for(handle.name());
            if handle.name() == kind {
                let slot = Slot {
                    handle,
                    tally,
                    last_ms: t_ms,
                };
                self.slots.insert(kind.into(), slot);
            } else {
                if let Some(timeline) = &mut self.tallies[tally].timeline {
                    timeline.before_send(t_ms, &handle);
                }
                let decision = sliced_decision(handle.check_sliced(slices));
                count(&mut self.tallies[tally], decision);
                self.tallies[tally].state = handle.state();
                return decision;
            }
        }
        let Some(slot) = self.slots.get_mut(kind) else {
            return Decision::Allowed;
        };
        slot.last_ms = t_ms;
        let tally = &mut self.tallies[slot.tally];
        if let Some(timeline) = &mut tally.timeline {
            timeline.before_send(t_ms, &slot.handle);
        }
        let decision = sliced_decision(slot.handle.check_sliced(slices));
        count(tally, decision);
        decision
    }

    /// Decides one send of `kind` at `t_ms` (milliseconds on the replay's clock), as the breaker
    /// would have. Times should not go backwards; [`LogReader`] refuses logs where they do.
    #[inline]
    pub fn check(&mut self, t_ms: u64, kind: &str) -> Decision {
        self.clock.set(t_ms);
        self.sends += 1;
        let Some(slot) = self.slots.get_mut(kind) else {
            return self.check_uncached(t_ms, kind);
        };
        slot.last_ms = t_ms;
        let tally = &mut self.tallies[slot.tally];
        if let Some(timeline) = &mut tally.timeline {
            timeline.before_send(t_ms, &slot.handle);
        }
        let decision = slot.handle.check();
        count(tally, decision);
        decision
    }

    /// A send of a kind with no handle held: new, idle for a while, or sent to the overflow kind.
    #[cold]
    fn check_uncached(&mut self, t_ms: u64, kind: &str) -> Decision {
        self.sweep(t_ms);
        let handle = self.breaker.kind(kind);
        let tally = self.tally_for(handle.name());
        if let Some(timeline) = &mut self.tallies[tally].timeline {
            timeline.before_send(t_ms, &handle);
        }
        let decision = handle.check();
        count(&mut self.tallies[tally], decision);
        self.tallies[tally].state = handle.state();
        // A name sent to the overflow kind is not cached: it is looked up again on its next
        // send, as `Breaker::check` would, and gets its own kind once there is room.
        if handle.name() == kind {
            let slot = Slot {
                handle,
                tally,
                last_ms: t_ms,
            };
            self.slots.insert(kind.into(), slot);
        }
        decision
    }

    /// The tally of the engine's kind `name`, made if new.
    fn tally_for(&mut self, name: &str) -> usize {
        let tally = self.names.get_or_insert(name);
        if tally == self.tallies.len() {
            self.tallies.push(Tally {
                allowed: 0,
                blocked: 0,
                slice_blocked: 0,
                state: State::Closed,
                timeline: self.timelines.of(name).then(Box::default),
            });
        }
        tally
    }

    /// Lets go of the handles of kinds not sent for half of `evict_idle_secs`, at most once a
    /// [`SWEEP_EVERY_MS`], before any look-up that may make the registry sweep. The registry only
    /// forgets a kind held by no handle; it judges idleness by the start of the kind's last
    /// bucket (at most a twelfth of a window, so of `evict_idle_secs`, before the last send) and
    /// sweeps at most once a second, so half the idle time lets go of every kind it would forget,
    /// with room to spare. Letting go of a kind it would not forget costs one look-up on its next
    /// send, which finds the same kind.
    fn sweep(&mut self, now_ms: u64) {
        if self
            .last_sweep_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < SWEEP_EVERY_MS)
        {
            return;
        }
        self.last_sweep_ms = Some(now_ms);
        let release_ms = self.breaker.config().evict_idle_secs.saturating_mul(1000) / 2;
        let tallies = &mut self.tallies;
        self.slots.retain(|_, slot| {
            let keep = now_ms.saturating_sub(slot.last_ms) < release_ms;
            if !keep {
                tallies[slot.tally].state = slot.handle.state();
            }
            keep
        });
    }

    /// Records each kind's [`Timeline`] from here on ([`timelines`](Self::timelines)): call it
    /// before the first send. The windows are read after the last send of each slot, without
    /// rolling anything, so the decisions are the same as without.
    pub fn record_timelines(&mut self) {
        self.timelines = Timelines::All;
    }

    /// Records the [`Timeline`]s of the kinds in `kinds` only, as
    /// [`record_timelines`](Self::record_timelines) records every kind's.
    pub(crate) fn record_timelines_of(&mut self, kinds: std::collections::HashSet<String>) {
        self.timelines = Timelines::Of(kinds);
    }

    /// Each kind's [`Timeline`] so far, by name (empty unless
    /// [`record_timelines`](Self::record_timelines) was called).
    pub fn timelines(&self) -> BTreeMap<String, Timeline> {
        self.tallies
            .iter()
            .zip(self.names.iter())
            .filter_map(|(tally, name)| {
                let mut timeline = Timeline::clone(tally.timeline.as_ref()?);
                if let Some(handle) = self.breaker.registered(name) {
                    timeline.close(&handle);
                }
                Some((name.to_owned(), timeline))
            })
            .collect()
    }

    /// Counts one input line that was skipped as bad, for the report.
    pub fn skip_line(&mut self) {
        self.skipped_lines += 1;
    }

    /// The breaker being replayed (for its status, snapshot or operator controls).
    pub fn breaker(&self) -> &Breaker<ManualClock> {
        &self.breaker
    }

    /// What happened so far: sends per kind, decisions and transitions.
    pub fn report(&self) -> BacktestReport {
        self.report_folded(usize::MAX)
    }

    /// [`report`](Self::report), showing at most `max_kinds` kinds one by one and folding the
    /// others ([`BacktestReport::fold`]), without building the rows it folds.
    pub fn report_folded(&self, max_kinds: usize) -> BacktestReport {
        let events = self.events.lock();
        // A slice's trips are counted apart from its kind's.
        let (mut trips, mut slice_trips): (FastMap<&str, u64>, FastMap<&str, u64>) = Default::default();
        for event in events.iter() {
            let counted = if event.is_slice() {
                &mut slice_trips
            } else {
                &mut trips
            };
            *counted.entry(&event.kind).or_default() += u64::from(event.is_trip());
        }
        // Every kind: those sent, and those only an operator's control moved.
        let mut kinds: Vec<(&str, u64, u64, u64)> = self
            .names
            .iter()
            .zip(&self.tallies)
            .map(|(name, tally)| (name, tally.allowed, tally.blocked, tally.slice_blocked))
            .collect();
        kinds.extend(
            trips
                .keys()
                .chain(slice_trips.keys().filter(|name| !trips.contains_key(*name)))
                .filter(|name| self.names.get(name).is_none())
                .map(|&name| (name, 0, 0, 0)),
        );
        let row = |&(name, allowed, blocked, slice_blocked): &(&str, u64, u64, u64)| KindReport {
            attempted: allowed + blocked,
            allowed,
            blocked,
            trips: trips.get(name).copied().unwrap_or(0),
            slice_blocked,
            slice_trips: slice_trips.get(name).copied().unwrap_or(0),
            ..KindReport::default()
        };
        let mut folded = None;
        if kinds.len() > max_kinds {
            kinds.select_nth_unstable_by(max_kinds, |a, b| {
                report::rank(&row(a))
                    .cmp(&report::rank(&row(b)))
                    .then_with(|| a.0.cmp(b.0))
            });
            let mut sum = Folded::default();
            for kind in &kinds[max_kinds..] {
                sum.add(&row(kind));
            }
            kinds.truncate(max_kinds);
            folded = Some(sum);
        }
        let mut shown: BTreeMap<String, KindReport> = kinds
            .iter()
            .map(|kind| {
                let name = kind.0;
                let state = match (self.slots.get(name), self.names.get(name)) {
                    (Some(slot), _) => slot.handle.state(),
                    (None, Some(tally)) => self.tallies[tally].state,
                    (None, None) => State::Closed,
                };
                (name.to_owned(), KindReport { state, ..row(kind) })
            })
            .collect();
        for event in events.iter() {
            if let Some(kind) = shown.get_mut(&*event.kind) {
                if event.is_slice() {
                    kind.slice_transitions.push(event.clone());
                } else {
                    kind.transitions.push(event.clone());
                }
            }
        }
        BacktestReport {
            sends: self.sends,
            skipped_lines: self.skipped_lines,
            kinds: shown,
            folded,
        }
    }

    /// Every kind replayed so far, as the engine named it (a send that went to the overflow kind
    /// counts as [`Breaker::OVERFLOW_KIND`]'s), shown or folded in a report.
    pub fn kinds(&self) -> impl ExactSizeIterator<Item = &str> {
        self.names.iter()
    }
}

/// Whose [`Timeline`] a [`Backtest`] records.
#[derive(Debug)]
enum Timelines {
    None,
    All,
    Of(std::collections::HashSet<String>),
}

impl Timelines {
    fn of(&self, kind: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Of(kinds) => kinds.contains(kind),
        }
    }
}

fn count(tally: &mut Tally, decision: Decision) {
    match decision {
        Decision::Allowed => tally.allowed += 1,
        Decision::Blocked(reason) => {
            tally.blocked += 1;
            tally.slice_blocked += u64::from(matches!(reason, Reason::Slice | Reason::Repeat));
        }
    }
    if let Some(timeline) = &mut tally.timeline {
        timeline.count(decision);
    }
}

/// A sliced check's outcome as a decision: blocked for the kind's reason, or a slice's.
fn sliced_decision(checked: Result<(), crate::guard::Blocked<()>>) -> Decision {
    match checked {
        Ok(()) => Decision::Allowed,
        Err(blocked) => Decision::Blocked(blocked.reason()),
    }
}

/// `f` of each item, in order: on rayon's current pool with the `parallel` feature, one after the
/// other without. Each item is a task of its own (a kind's replay, a chunk of the log): rayon
/// otherwise runs a run of items that no idle thread has stolen yet in one go, and with the
/// busiest kinds first one thread kept the first quarter, two thirds of the work (a 1.44x
/// speed-up on two cores; 1.9x with an item a task).
fn each<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items.par_iter().with_max_len(1).map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        items.iter().map(f).collect()
    }
}
