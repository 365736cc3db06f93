//! A send log held in memory by kind, and its replay with each kind on a core of its own.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backtest, BacktestReport, LogError, Timeline, TraceReader, each};
use crate::config::Config;
use crate::error::Error;
use crate::slice::Slices;
use crate::snapshot::Snapshot;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A whole send log in memory: each kind's send times, the kind names interned, and for the sends
/// that name slices (a fourth column) their recipient and slices, interned too. Read it with
/// [`Trace::read`] or a [`TraceReader`]; [`replay`](Self::replay) it against a configuration.
///
/// ```
/// use spikebreaker::Config;
/// use spikebreaker::backtest::Trace;
///
/// let log = "t_ms,kind\n0,email.welcome\n1000,email.welcome\n1500,sms.login_code\n";
/// let trace = Trace::read(log.as_bytes())?;
/// assert_eq!(trace.kinds().map(|(kind, times)| (kind, times.len())).collect::<Vec<_>>(),
///            [("email.welcome", 2), ("sms.login_code", 1)]);
/// let report = trace.replay(&Config::default())?;
/// assert_eq!(report.kinds["email.welcome"].allowed, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Trace {
    /// In the order the kinds first appear.
    kinds: Vec<TraceKind>,
    index: FastMap<Arc<str>, u32>,
    /// Each distinct recipient and slices of a sliced send: `(recipient, slices)`.
    details: Vec<(Option<Box<str>>, Box<str>)>,
    details_index: FastMap<(Option<Box<str>>, Box<str>), u32>,
    sends: u64,
    pub(super) skipped_lines: u64,
}

/// A send that names no slices, among a kind's `details`.
const NO_DETAIL: u32 = u32::MAX;

#[derive(Debug)]
struct TraceKind {
    name: Arc<str>,
    times: Vec<u64>,
    /// Per send, its place in the trace's `details` (`NO_DETAIL`: none); empty while no send of
    /// the kind names slices.
    details: Vec<u32>,
}

impl TraceKind {
    /// The slices of send `i`, with its recipient.
    fn slices<'t>(&self, trace: &'t Trace, i: usize) -> Slices<'t> {
        match self.details.get(i) {
            Some(&detail) if detail != NO_DETAIL => {
                let (recipient, slices) = &trace.details[detail as usize];
                // Checked when the log was read.
                Slices::parse(slices)
                    .unwrap_or_default()
                    .or_recipient(recipient.as_deref())
            }
            _ => Slices::none(),
        }
    }
}

/// A replay's outcome: the report, and each kind's [`Timeline`] when asked for.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Replay {
    /// What the breaker would have done.
    pub report: BacktestReport,
    /// Each kind's timeline, by name (empty unless asked for).
    pub timelines: BTreeMap<String, Timeline>,
}

impl Trace {
    /// Reads a whole send log (the format [`LogReader`](super::LogReader) reads); the first bad
    /// line is an error. [`TraceReader`] sets the longest line, skips bad lines and reports
    /// progress.
    pub fn read(input: impl Read) -> Result<Self, LogError> {
        TraceReader::new(input).read()
    }

    /// Sends in the log.
    pub fn sends(&self) -> u64 {
        self.sends
    }

    /// Lines skipped as bad while reading.
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// Each kind's name and send times (in time order), in the order the kinds first appear.
    pub fn kinds(&self) -> impl ExactSizeIterator<Item = (&str, &[u64])> {
        self.kinds.iter().map(|kind| (&*kind.name, kind.times.as_slice()))
    }

    /// The first and the last send's times, if there is a send.
    pub fn span(&self) -> Option<(u64, u64)> {
        let first = self.kinds.iter().filter_map(|kind| kind.times.first()).min()?;
        let last = self.kinds.iter().filter_map(|kind| kind.times.last()).max()?;
        Some((*first, *last))
    }

    /// What `config` would have done to the log: the same report as a [`Backtest`] fed the log
    /// line by line.
    pub fn replay(&self, config: &Config) -> Result<BacktestReport, Error> {
        Ok(self.replay_with(config, false, &|_| {})?.report)
    }

    /// [`replay`](Self::replay), recording each kind's [`Timeline`] if `timelines`, and calling
    /// `progress` with the sends replayed so far now and then (from any thread).
    ///
    /// Kinds are independent while each has a slot of its own, so each kind is replayed on its
    /// own breaker, the kinds spread over the cores (with the `parallel` feature, on rayon's
    /// current pool), and the reports merged by name: the result is the same as one breaker
    /// replaying the log line by line. With more kinds than [`Config::max_kinds`] (beyond those
    /// the configuration names), kinds share the overflow kind and evict each other, so the log
    /// is replayed on one breaker, in time order (sends of different kinds at the same
    /// millisecond in the order the kinds first appear).
    pub fn replay_with(
        &self,
        config: &Config,
        timelines: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Replay, Error> {
        self.replay_folded(config, usize::MAX, timelines, progress)
    }

    /// [`replay_with`](Self::replay_with), the report showing at most `max_kinds` kinds one by one
    /// and folding the others ([`BacktestReport::fold`]); only the kinds shown get a timeline.
    /// Memory then grows with the log, not with its kinds times what a report holds of each: a
    /// log of millions of kinds, each sent once, replays in a few hundred bytes a kind.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// use spikebreaker::backtest::Trace;
    ///
    /// let mut log = String::new();
    /// for user in 0..100u64 {
    ///     log.push_str(&format!("{user},user.{user}\n"));
    /// }
    /// let trace = Trace::read(log.as_bytes())?;
    /// let replay = trace.replay_folded(&Config::default(), 10, false, &|_| {})?;
    /// assert_eq!(replay.report.kinds.len(), 10);
    /// assert_eq!(replay.report.folded.unwrap().kinds, 90);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replay_folded(
        &self,
        config: &Config,
        max_kinds: usize,
        timelines: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Replay, Error> {
        config.validate()?;
        let unnamed = self
            .kinds
            .iter()
            .filter(|kind| !config.kinds.contains_key(&*kind.name))
            .count();
        if unnamed > config.max_kinds {
            return self.replay_in_one(config, max_kinds, timelines, progress);
        }
        // The busiest kinds first, so that no core is left with a big one at the end.
        let mut order: Vec<&TraceKind> = self.kinds.iter().collect();
        order.sort_by_key(|kind| Reverse(kind.times.len()));
        let done = AtomicU64::new(0);
        let replayed = each(&order, |kind| {
            let mut backtest = Backtest::new(config.clone())?;
            if timelines {
                backtest.record_timelines();
            }
            for (i, &t_ms) in kind.times.iter().enumerate() {
                let _ = backtest.check_sliced(t_ms, &kind.name, &kind.slices(self, i));
            }
            progress(done.fetch_add(kind.times.len() as u64, Ordering::Relaxed) + kind.times.len() as u64);
            Ok::<_, Error>((backtest.report(), backtest.timelines()))
        });
        let mut replay = Replay::default();
        for outcome in replayed {
            let (report, timelines) = outcome?;
            replay.report.sends += report.sends;
            replay.report.kinds.extend(report.kinds);
            replay.timelines.extend(timelines);
        }
        replay.report.skipped_lines = self.skipped_lines;
        // Here kinds are within `max_kinds` of the configuration (or named in it): their rows
        // fit in memory, and are folded once merged.
        replay.report.fold(max_kinds);
        let shown = &replay.report.kinds;
        replay.timelines.retain(|kind, _| shown.contains_key(kind));
        Ok(replay)
    }

    /// What a breaker would have learned from the log on `config`, as a snapshot it can restore:
    /// to rebuild one that was lost, from a log of traffic you trust. The warm-up ceilings are
    /// lifted to the most a configuration may set (a billion a minute) for the replay (a kind
    /// with nothing learned is otherwise held to them, and one that stays above them learns
    /// nothing), so that every kind learns its rate as it would have
    /// with its snapshot; every other limit holds, so a runaway in the log trips and teaches
    /// little. Each kind is replayed on its own breaker, the kinds spread over the cores.
    ///
    /// ```
    /// use spikebreaker::backtest::Trace;
    /// use spikebreaker::{Breaker, Config, ManualClock};
    ///
    /// // Two hours of a kind at 1,200 a minute: above the warm-up ceiling of 500.
    /// let log: String = (0..2 * 60 * 1_200u64).map(|i| format!("{},email.receipt\n", i * 50)).collect();
    /// let snapshot = Trace::read(log.as_bytes())?.learn(&Config::default())?;
    /// let breaker = Breaker::with_clock(Config::default(), ManualClock::starting_at(7_200_000))?;
    /// breaker.restore(&snapshot)?;
    /// assert!((0..1_200).all(|_| breaker.check("email.receipt").is_allowed()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn learn(&self, config: &Config) -> Result<Snapshot, Error> {
        let mut config = config.clone();
        config.defaults.warmup_ceiling = crate::config::MAX_COUNT;
        for patch in config.kinds.values_mut() {
            patch.warmup_ceiling = Some(crate::config::MAX_COUNT);
        }
        config.validate()?;
        let kinds: Vec<&TraceKind> = self.kinds.iter().collect();
        let learned = each(&kinds, |kind| {
            let mut backtest = Backtest::new(config.clone())?;
            for &t_ms in &kind.times {
                let _ = backtest.check(t_ms, &kind.name);
            }
            Ok::<_, Error>(backtest.breaker().snapshot().kinds)
        });
        let mut snapshot = Snapshot::default();
        for kinds in learned {
            snapshot.kinds.extend(kinds?);
        }
        Ok(snapshot)
    }

    /// The whole log on one breaker, in time order, the report folded to `max_kinds`. With
    /// timelines and more kinds than that, the log is replayed twice: first to learn which kinds
    /// the report shows, then to record theirs alone.
    fn replay_in_one(
        &self,
        config: &Config,
        max_kinds: usize,
        timelines: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Replay, Error> {
        if timelines && self.kinds.len() > max_kinds {
            let report = self.replay_in_one(config, max_kinds, false, progress)?.report;
            let mut backtest = Backtest::new(config.clone())?;
            backtest.record_timelines_of(report.kinds.keys().cloned().collect());
            self.replay_sends(&mut backtest, &|_| {});
            return Ok(Replay {
                report,
                timelines: backtest.timelines(),
            });
        }
        let mut backtest = Backtest::new(config.clone())?;
        if timelines {
            backtest.record_timelines();
        }
        self.replay_sends(&mut backtest, progress);
        Ok(Replay {
            report: backtest.report_folded(max_kinds),
            timelines: backtest.timelines(),
        })
    }

    /// Every send of the log through `backtest`, in time order (sends of different kinds at the
    /// same millisecond in the order the kinds first appear), and the lines skipped.
    fn replay_sends(&self, backtest: &mut Backtest, progress: &(dyn Fn(u64) + Sync)) {
        let mut next: Vec<usize> = vec![0; self.kinds.len()];
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = self
            .kinds
            .iter()
            .enumerate()
            .filter_map(|(i, kind)| Some(Reverse((*kind.times.first()?, i))))
            .collect();
        let mut sends = 0u64;
        while let Some(Reverse((t_ms, i))) = heap.pop() {
            let kind = &self.kinds[i];
            let _ = backtest.check_sliced(t_ms, &kind.name, &kind.slices(self, next[i]));
            next[i] += 1;
            if let Some(&t) = kind.times.get(next[i]) {
                heap.push(Reverse((t, i)));
            }
            sends += 1;
            if sends % (1 << 16) == 0 {
                progress(sends);
            }
        }
        for _ in 0..self.skipped_lines {
            backtest.skip_line();
        }
    }

    /// The number of `kind` (as bytes known to be a valid name), added if new.
    pub(super) fn intern(&mut self, kind: &[u8]) -> u32 {
        let kind = std::str::from_utf8(kind).unwrap_or_default();
        if let Some(&id) = self.index.get(kind) {
            return id;
        }
        let id = self.kinds.len() as u32;
        let name: Arc<str> = Arc::from(kind);
        self.index.insert(Arc::clone(&name), id);
        self.kinds.push(TraceKind {
            name,
            times: Vec::new(),
            details: Vec::new(),
        });
        id
    }

    pub(super) fn name(&self, kind: u32) -> &str {
        &self.kinds[kind as usize].name
    }

    #[inline]
    pub(super) fn push(&mut self, kind: u32, t_ms: u64) {
        let kind = &mut self.kinds[kind as usize];
        kind.times.push(t_ms);
        if !kind.details.is_empty() {
            kind.details.push(NO_DETAIL);
        }
        self.sends += 1;
    }

    /// Adds a send of `kind` that names slices (`slices`, the fourth column as read) and maybe a
    /// recipient.
    pub(super) fn push_sliced(&mut self, kind: u32, t_ms: u64, recipient: Option<&str>, slices: &str) {
        let key = (recipient.map(Box::from), Box::from(slices));
        let detail = match self.details_index.get(&key) {
            Some(&detail) => detail,
            None => {
                let detail = self.details.len() as u32;
                self.details.push(key.clone());
                self.details_index.insert(key, detail);
                detail
            }
        };
        let kind = &mut self.kinds[kind as usize];
        if kind.details.is_empty() {
            kind.details = vec![NO_DETAIL; kind.times.len()];
        }
        kind.times.push(t_ms);
        kind.details.push(detail);
        self.sends += 1;
    }

    pub(super) fn extend(&mut self, kind: u32, times: &[u64]) {
        let kind = &mut self.kinds[kind as usize];
        kind.times.extend_from_slice(times);
        if !kind.details.is_empty() {
            kind.details.resize(kind.times.len(), NO_DETAIL);
        }
        self.sends += times.len() as u64;
    }

    /// Takes back the last send of `kind`.
    pub(super) fn pop(&mut self, kind: u32) {
        let kind = &mut self.kinds[kind as usize];
        if kind.times.pop().is_some() {
            kind.details.truncate(kind.times.len());
            self.sends -= 1;
        }
    }
}
