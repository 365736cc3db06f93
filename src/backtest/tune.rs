//! The tuner: each kind's history replayed against a grid of settings, and against copies with
//! runaways injected, to find the most sensitive settings that never trip on the history.
//!
//! Assumptions (the README's *Tuning* says more): the history is clean, apart from the spans
//! excluded (a known incident); its first third (at most a week) is for learning, and trips there
//! are not counted; kinds are independent, so each kind is replayed alone; the runaways are
//! injected one at a time per slot of the rest of the log, far enough apart that each meets a
//! kind that has recovered from the one before.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{Trace, each};
use crate::breaker::Breaker;
use crate::clock::ManualClock;
use crate::config::{Config, KindConfig, KindOverride, TimescaleConfig, TimescaleOverride};
use crate::error::Error;
use crate::observe::Event;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;
/// The longest learning prefix.
const MOST_LEARNING_MS: u64 = 7 * DAY_MS;
/// The shortest slot a runaway is injected in: room for the runaway and the kind's recovery.
const LEAST_SLOT_MS: u64 = 12 * HOUR_MS;

/// One setting the tuner tries: multipliers of every timescale's `sigmas`, `floor` and `factor`
/// in the kind's base settings (1, 1, 1: the base itself).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Times the base `sigmas` (kept within 1 to 50).
    pub sigmas: f64,
    /// Times the base `floor`.
    pub floors: f64,
    /// Times the base `factor` (kept at least 1).
    pub factors: f64,
}

impl Candidate {
    /// The base settings, unchanged.
    pub const BASE: Self = Self {
        sigmas: 1.0,
        floors: 1.0,
        factors: 1.0,
    };

    /// The default grid, 24 settings from the least sensitive to the most: `sigmas` x1.25, x1,
    /// x0.8, x0.6; `floor` x1, x0.5, x0.25; `factor` x1, x0.75.
    pub fn grid() -> Vec<Self> {
        let mut grid = Vec::with_capacity(24);
        for sigmas in [1.25, 1.0, 0.8, 0.6] {
            for floors in [1.0, 0.5, 0.25] {
                for factors in [1.0, 0.75] {
                    grid.push(Self {
                        sigmas,
                        floors,
                        factors,
                    });
                }
            }
        }
        grid.sort_by(|a, b| {
            b.sensitivity()
                .total_cmp(&a.sensitivity())
                .then(b.sigmas.total_cmp(&a.sigmas))
        });
        grid
    }

    /// Smaller is more sensitive.
    fn sensitivity(&self) -> f64 {
        self.sigmas * self.floors * self.factors
    }

    /// `base` with this candidate's multipliers applied to each timescale.
    pub fn apply(&self, base: &KindConfig) -> KindConfig {
        // Two decimals, as a person would write them in a configuration.
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let scale = |t: &TimescaleConfig| TimescaleConfig {
            sigmas: round(t.sigmas * self.sigmas).clamp(1.0, 50.0),
            floor: (t.floor as f64 * self.floors).round() as u64,
            factor: round(t.factor * self.factors).max(1.0),
            ceiling: t.ceiling,
        };
        KindConfig {
            minute: scale(&base.minute),
            hour: scale(&base.hour),
            day: scale(&base.day),
            ..base.clone()
        }
    }
}

/// The runaways injected into copies of each kind's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runaway {
    /// An incident: ten minutes at 25 a second plus ten times the kind's peak rate, at its
    /// busiest hour of the day.
    Burst,
    /// A slow leak under the minute window's limit: for up to 12 hours, 0.6 times the larger of
    /// the minute `floor` and twice the kind's peak rate a minute.
    Leak,
    /// A runaway at the kind's quietest hour of the day: 30 minutes at three times its peak
    /// rate (at least 100 a minute).
    Quiet,
}

impl Runaway {
    const ALL: [Self; 3] = [Self::Burst, Self::Leak, Self::Quiet];
}

/// One injected runaway and what got through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Leak {
    /// What was injected.
    pub runaway: Runaway,
    /// When it began (the log's clock, milliseconds).
    pub at_ms: u64,
    /// Its sends.
    pub sends: u64,
    /// Its sends let through before the kind first refused one of them: all of them if it
    /// never did.
    pub let_through: u64,
}

impl Leak {
    /// Whether the kind refused the runaway at some point.
    pub fn caught(&self) -> bool {
        self.let_through < self.sends
    }
}

/// One candidate's outcome on one kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// The setting tried.
    pub candidate: Candidate,
    /// The kind's settings under it.
    pub settings: KindConfig,
    /// Trips on the history after the learning prefix, outside excluded spans.
    pub false_trips: u64,
    /// The first of them.
    pub first_false_trip: Option<Event>,
    /// Each injected runaway, in time order.
    pub leaks: Vec<Leak>,
}

impl Outcome {
    /// The runaway sends let through, as a share of each runaway, summed over the runaways:
    /// smaller is more sensitive.
    pub fn leak_score(&self) -> f64 {
        self.leaks
            .iter()
            .map(|leak| leak.let_through as f64 / leak.sends.max(1) as f64)
            .sum()
    }

    /// Sends let through of each kind of runaway, summed over its injections.
    pub fn let_through(&self, runaway: Runaway) -> u64 {
        self.leaks
            .iter()
            .filter(|l| l.runaway == runaway)
            .map(|l| l.let_through)
            .sum()
    }
}

/// One kind's tuning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KindTuning {
    /// Sends of the kind in the history.
    pub sends: u64,
    /// The base settings' outcome.
    pub base: Outcome,
    /// The suggestion: the most sensitive candidate with no false trip (the fewest runaway
    /// sends let through, the least sensitive setting on a tie); with none, the candidate with
    /// the fewest false trips.
    pub suggested: Outcome,
    /// Whether some candidate had no false trip.
    pub clean: bool,
}

/// What the tuner found, per kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tuning {
    /// Where false trips were counted from (the learning prefix's end, log clock milliseconds).
    pub judged_from_ms: u64,
    /// Each kind's tuning, by name.
    pub kinds: BTreeMap<String, KindTuning>,
}

/// Suggests each kind's detection settings from a history of its sends.
///
/// ```
/// use spikebreaker::Config;
/// use spikebreaker::backtest::{Trace, Tuner};
///
/// // Four days of one kind, a send every ten seconds.
/// let log: String = (0..4 * 8_640u64).map(|i| format!("{},email.receipt\n", i * 10_000)).collect();
/// let trace = Trace::read(log.as_bytes())?;
/// let tuning = Tuner::new(Config::default()).run(&trace, &|_| {})?;
/// let receipt = &tuning.kinds["email.receipt"];
/// assert_eq!(receipt.suggested.false_trips, 0);
/// assert!(receipt.suggested.leak_score() <= receipt.base.leak_score());
/// let config = Tuner::new(Config::default()).suggested_config(&tuning);
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Tuner {
    base: Config,
    excluded: Vec<Range<u64>>,
    candidates: Vec<Candidate>,
}

impl Tuner {
    /// A tuner of `base`'s settings, with the default [`Candidate::grid`].
    pub fn new(base: Config) -> Self {
        Self {
            base,
            excluded: Vec::new(),
            candidates: Candidate::grid(),
        }
    }

    /// Leaves `from_ms..to_ms` (the log's clock) out: a known incident, whose trips are not
    /// false, and where no runaway is injected.
    pub fn exclude(mut self, from_ms: u64, to_ms: u64) -> Self {
        self.excluded.push(from_ms..to_ms);
        self
    }

    /// Tries these settings instead of the default grid, from the least sensitive to the most
    /// (the base is always tried too).
    pub fn with_candidates(mut self, candidates: Vec<Candidate>) -> Self {
        self.candidates = candidates;
        self
    }

    /// The settings tried per kind, the base included.
    pub fn candidates(&self) -> usize {
        self.candidates.len() + usize::from(!self.candidates.contains(&Candidate::BASE))
    }

    /// Replays each kind of `trace` against every candidate, on its history and on a copy with
    /// runaways injected, spread over the cores; `progress` is called with the replays done so
    /// far (two a kind and candidate). A log shorter than about two days is refused: there is no
    /// room to learn and then inject.
    pub fn run(&self, trace: &Trace, progress: &(dyn Fn(u64) + Sync)) -> Result<Tuning, Error> {
        self.base.validate()?;
        let Some((first_ms, last_ms)) = trace.span() else {
            return Ok(Tuning::default());
        };
        let learned_ms = first_ms + ((last_ms - first_ms) / 3).min(MOST_LEARNING_MS);
        let slots = slots(learned_ms, last_ms, &self.excluded).ok_or_else(|| {
            Error::invalid(
                "trace",
                format!("{} hours", (last_ms - first_ms) / HOUR_MS),
                "too short to tune: after learning, at least three half-days are needed to inject runaways in",
            )
        })?;
        let mut candidates = self.candidates.clone();
        if !candidates.contains(&Candidate::BASE) {
            candidates.insert(0, Candidate::BASE);
        }
        let kinds: Vec<(&str, &[u64])> = trace.kinds().collect();
        let injected: Vec<Vec<Injection>> = kinds
            .iter()
            .map(|(_, times)| inject(times, &slots, self.base.defaults.minute.floor))
            .collect();
        let tasks: Vec<(usize, usize)> = (0..kinds.len())
            .flat_map(|kind| (0..candidates.len()).map(move |candidate| (kind, candidate)))
            .collect();
        let done = AtomicU64::new(0);
        let outcomes = each(&tasks, |&(kind, candidate)| {
            let (name, times) = kinds[kind];
            let settings = candidates[candidate].apply(&self.base.kind_config(name));
            let config = self.config_for(name, &settings);
            let (false_trips, first_false_trip) = self.false_trips(&config, name, times, learned_ms)?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            let leaks = leaks(&config, name, times, &injected[kind])?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            Ok::<_, Error>(Outcome {
                candidate: candidates[candidate],
                settings,
                false_trips,
                first_false_trip,
                leaks,
            })
        });
        let mut outcomes = outcomes.into_iter();
        let mut tuning = Tuning {
            judged_from_ms: learned_ms,
            kinds: BTreeMap::new(),
        };
        for (name, times) in kinds {
            let tried: Vec<Outcome> = outcomes
                .by_ref()
                .take(candidates.len())
                .collect::<Result<_, _>>()?;
            let base = tried.iter().find(|o| o.candidate == Candidate::BASE).cloned();
            let clean = tried.iter().any(|o| o.false_trips == 0);
            // Least sensitive first, so that on a tie the first (with more margin) stays.
            let suggested = tried
                .iter()
                .filter(|o| !clean || o.false_trips == 0)
                .min_by(|a, b| {
                    a.false_trips
                        .cmp(&b.false_trips)
                        .then(a.leak_score().total_cmp(&b.leak_score()))
                })
                .cloned();
            if let (Some(base), Some(suggested)) = (base, suggested) {
                let kind = KindTuning {
                    sends: times.len() as u64,
                    base,
                    suggested,
                    clean,
                };
                tuning.kinds.insert(name.to_owned(), kind);
            }
        }
        Ok(tuning)
    }

    /// The base configuration with each kind's suggestion that differs from its base settings
    /// laid over it, as a per-kind override (a kind named there keeps a slot of its own). The
    /// override starts from the one that applied to the kind (a pattern's, say), since overrides
    /// do not stack, and states the warm-up ceiling the kind was replayed with, since a floor
    /// written alone would scale it.
    pub fn suggested_config(&self, tuning: &Tuning) -> Config {
        let mut config = self.base.clone();
        for (name, kind) in &tuning.kinds {
            if kind.suggested.candidate == Candidate::BASE {
                continue;
            }
            let settings = &kind.suggested.settings;
            let applied = self.base.override_for(name).map(|(_, patch)| patch.clone());
            let patch = config
                .kinds
                .entry(name.clone())
                .or_insert_with(|| applied.unwrap_or_default());
            let tuned = |t: &TimescaleConfig, patch: &TimescaleOverride| TimescaleOverride {
                sigmas: Some(t.sigmas),
                floor: Some(t.floor),
                factor: Some(t.factor),
                ..*patch
            };
            *patch = KindOverride {
                minute: tuned(&settings.minute, &patch.minute),
                hour: tuned(&settings.hour, &patch.hour),
                day: tuned(&settings.day, &patch.day),
                warmup_ceiling: Some(settings.warmup_ceiling),
                ..patch.clone()
            };
        }
        config
    }

    /// A configuration that runs `kind` on `settings` (and its planned surges).
    fn config_for(&self, kind: &str, settings: &KindConfig) -> Config {
        Config {
            defaults: settings.clone(),
            kinds: BTreeMap::new(),
            surges: self
                .base
                .surges
                .iter()
                .filter(|s| s.kind == kind)
                .cloned()
                .collect(),
            ..self.base.clone()
        }
    }

    /// Trips of `kind` replayed alone after `from_ms`, outside the excluded spans; the first.
    fn false_trips(
        &self,
        config: &Config,
        kind: &str,
        times: &[u64],
        from_ms: u64,
    ) -> Result<(u64, Option<Event>), Error> {
        let (clock, breaker, events) = breaker(config)?;
        let handle = breaker.kind(kind);
        for &t_ms in times {
            clock.set(t_ms);
            let _ = handle.check();
        }
        let events = events.lock().unwrap_or_else(|e| e.into_inner());
        let mut false_trips = events.iter().filter(|e| {
            e.is_trip() && e.at_ms >= from_ms && !self.excluded.iter().any(|r| r.contains(&e.at_ms))
        });
        let first = false_trips.next().cloned();
        Ok((u64::from(first.is_some()) + false_trips.count() as u64, first))
    }
}

/// Where a replay's events are kept.
type Events = Arc<Mutex<Vec<Event>>>;

/// A breaker on a manual clock, and the events it emits.
fn breaker(config: &Config) -> Result<(ManualClock, Breaker<ManualClock>, Events), Error> {
    let clock = ManualClock::new();
    let breaker = Breaker::for_replay(config.clone(), clock.clone())?;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    breaker
        .subscribe(move |event| sink.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone()))
        .detach();
    Ok((clock, breaker, events))
}

/// One runaway injected into a kind's history: its sends, evenly spaced.
#[derive(Clone, Debug)]
struct Injection {
    runaway: Runaway,
    times: Vec<u64>,
}

/// The history with `injections` merged in, replayed: what each runaway got through before the
/// kind first refused one of its sends.
fn leaks(config: &Config, kind: &str, times: &[u64], injections: &[Injection]) -> Result<Vec<Leak>, Error> {
    let (clock, breaker, _) = breaker(config)?;
    let handle = breaker.kind(kind);
    let mut leaks: Vec<Leak> = injections
        .iter()
        .map(|injection| Leak {
            runaway: injection.runaway,
            at_ms: injection.times.first().copied().unwrap_or(0),
            sends: injection.times.len() as u64,
            let_through: 0,
        })
        .collect();
    let mut caught = vec![false; injections.len()];
    let injected: Vec<(u64, usize)> = injections
        .iter()
        .enumerate()
        .flat_map(|(i, injection)| injection.times.iter().map(move |&t| (t, i)))
        .collect();
    let (mut ordinary, mut extra) = (times.iter().peekable(), injected.iter().peekable());
    loop {
        let take_extra = match (ordinary.peek(), extra.peek()) {
            (Some(&&t), Some(&&(u, _))) => u < t,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if take_extra {
            let Some(&(t_ms, i)) = extra.next() else { break };
            clock.set(t_ms);
            let allowed = handle.check().is_allowed();
            if !caught[i] {
                if allowed {
                    leaks[i].let_through += 1;
                } else {
                    caught[i] = true;
                }
            }
        } else {
            let Some(&t_ms) = ordinary.next() else { break };
            clock.set(t_ms);
            let _ = handle.check();
        }
    }
    Ok(leaks)
}

/// The slots of `from_ms..to_ms` a runaway is injected in: a day each, three to nine of them,
/// each cut to its longest piece outside the excluded spans; `None` if fewer than three have
/// room (half a day) left.
fn slots(from_ms: u64, to_ms: u64, excluded: &[Range<u64>]) -> Option<Vec<Range<u64>>> {
    let span = to_ms.saturating_sub(from_ms);
    let count = (span / DAY_MS).clamp(3, 9);
    let length = span / count;
    let slots: Vec<Range<u64>> = (0..count)
        .filter_map(|i| {
            let slot = from_ms + i * length..from_ms + (i + 1) * length;
            let mut pieces = vec![slot];
            for cut in excluded {
                pieces = pieces
                    .into_iter()
                    .flat_map(|p| [p.start..p.end.min(cut.start), p.start.max(cut.end)..p.end])
                    .filter(|p| p.start < p.end)
                    .collect();
            }
            pieces.into_iter().max_by_key(|p| p.end - p.start)
        })
        .filter(|slot| slot.end - slot.start >= LEAST_SLOT_MS)
        .collect();
    (slots.len() >= 3).then_some(slots)
}

/// Each slot's runaway for a kind sent at `times`: a burst, a leak, a quiet-hour runaway, in
/// turn, sized from the kind's rate by hour of the day.
fn inject(times: &[u64], slots: &[Range<u64>], minute_floor: u64) -> Vec<Injection> {
    let mut by_hour = [0u64; 24];
    for &t in times {
        by_hour[(t % DAY_MS / HOUR_MS) as usize] += 1;
    }
    let days = times
        .last()
        .zip(times.first())
        .map_or(1, |(l, f)| (l - f).div_ceil(DAY_MS).max(1));
    let per_minute = |hour: usize| by_hour[hour] as f64 / days as f64 / 60.0;
    // The first of the busiest hours (`max_by` gives the last of a tie).
    let busiest = (0..24)
        .rev()
        .max_by(|&a, &b| per_minute(a).total_cmp(&per_minute(b)))
        .unwrap_or(0);
    let quietest = (0..24)
        .min_by(|&a, &b| per_minute(a).total_cmp(&per_minute(b)))
        .unwrap_or(0);
    let peak = per_minute(busiest);
    slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let runaway = Runaway::ALL[i % 3];
            // The first start at `hour` in the slot that leaves room for `duration`.
            let at_hour = |hour: usize, duration: u64| {
                let day = slot.start - slot.start % DAY_MS;
                (0..3)
                    .map(|d| day + d * DAY_MS + hour as u64 * HOUR_MS)
                    .find(|&t| t >= slot.start && t + duration <= slot.end)
                    .unwrap_or(slot.start)
            };
            let (start, duration, per_second) = match runaway {
                Runaway::Burst => (
                    at_hour(busiest, 10 * MINUTE_MS),
                    10 * MINUTE_MS,
                    25.0 + 10.0 * peak / 60.0,
                ),
                Runaway::Leak => {
                    let duration = (12 * HOUR_MS).min((slot.end - slot.start) / 2);
                    let rate = 0.6 * (minute_floor as f64).max(2.0 * peak);
                    (
                        slot.start + (slot.end - slot.start - duration) / 2,
                        duration,
                        rate / 60.0,
                    )
                }
                Runaway::Quiet => (
                    at_hour(quietest, 30 * MINUTE_MS),
                    30 * MINUTE_MS,
                    (3.0 * peak).max(100.0) / 60.0,
                ),
            };
            let sends = ((duration as f64 / 1000.0) * per_second).max(1.0) as u64;
            let every = duration as f64 / sends as f64;
            Injection {
                runaway,
                times: (0..sends).map(|k| start + (k as f64 * every) as u64).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Recovery;

    #[test]
    fn a_suggestion_keeps_the_pattern_it_ran_under_and_the_warm_up_it_was_replayed_with() {
        let base = Config::from_toml("[kinds.\"security.*\"]\nrecovery = \"manual\"\n").unwrap();
        let tuner = Tuner::new(base.clone());
        let candidate = *Candidate::grid().last().unwrap();
        let settings = candidate.apply(&base.kind_config("security.login"));
        let outcome = |candidate, settings| Outcome {
            candidate,
            settings,
            false_trips: 0,
            first_false_trip: None,
            leaks: Vec::new(),
        };
        let mut tuning = Tuning::default();
        tuning.kinds.insert(
            "security.login".to_owned(),
            KindTuning {
                sends: 1,
                base: outcome(Candidate::BASE, base.kind_config("security.login")),
                suggested: outcome(candidate, settings.clone()),
                clean: true,
            },
        );
        let suggested = tuner.suggested_config(&tuning);
        let runs_on = suggested.kind_config("security.login");
        assert_eq!(
            runs_on.recovery,
            Recovery::Manual,
            "the pattern's fields are kept"
        );
        assert_eq!(runs_on.minute, settings.minute);
        assert_eq!(
            runs_on.warmup_ceiling, settings.warmup_ceiling,
            "the replayed warm-up"
        );
        assert_eq!(suggested.kind_config("security.other").recovery, Recovery::Manual);
    }

    #[test]
    fn the_grid_has_24_settings_from_the_least_sensitive_and_holds_the_base() {
        let grid = Candidate::grid();
        assert_eq!(grid.len(), 24);
        assert!(grid.contains(&Candidate::BASE));
        assert!(grid.windows(2).all(|w| w[0].sensitivity() >= w[1].sensitivity()));
        let applied = grid[23].apply(&KindConfig::default());
        assert_eq!(
            (applied.minute.sigmas, applied.minute.floor, applied.minute.factor),
            (3.0, 13, 2.25)
        );
        assert_eq!(applied.hour.factor, 1.5);
    }

    #[test]
    fn slots_leave_the_excluded_spans_out_and_need_room_for_three() {
        let all = slots(0, 9 * DAY_MS, &[]).unwrap();
        assert_eq!(all.len(), 9);
        let some = slots(
            0,
            9 * DAY_MS,
            &[DAY_MS / 4..DAY_MS / 2, DAY_MS + HOUR_MS..3 * DAY_MS],
        )
        .unwrap();
        assert_eq!(some.len(), 7);
        assert_eq!(some[0], DAY_MS / 2..DAY_MS, "the longer piece of the first day");
        assert_eq!(some[1], 3 * DAY_MS..4 * DAY_MS);
        assert!(slots(0, 30 * HOUR_MS, &[]).is_none());
    }

    #[test]
    fn runaways_are_sized_from_the_kind_and_placed_at_its_hours() {
        // A kind sending every ten seconds from 08:00 to 20:00, nothing at night.
        let times: Vec<u64> = (0..10 * DAY_MS)
            .step_by(10_000)
            .filter(|t| (8..20).contains(&(t % DAY_MS / HOUR_MS)))
            .collect();
        let injected = inject(&times, &slots(3 * DAY_MS, 10 * DAY_MS, &[]).unwrap(), 50);
        assert_eq!(injected.len(), 7);
        let hour = |i: usize| injected[i].times[0] % DAY_MS / HOUR_MS;
        assert_eq!(injected[0].runaway, Runaway::Burst);
        assert_eq!(hour(0), 8, "the busiest hour, the first of a tie");
        // 25 a second and ten times the peak of 6 a minute, for ten minutes.
        assert!((15_599..=15_600).contains(&injected[0].times.len()));
        assert_eq!(injected[1].runaway, Runaway::Leak);
        assert_eq!(
            injected[1].times.len(),
            12 * 60 * 30,
            "0.6 x the floor of 50, for 12 hours"
        );
        assert_eq!(
            (injected[2].runaway, hour(2)),
            (Runaway::Quiet, 0),
            "the quietest hour"
        );
        assert!(injected.iter().all(|i| i.times.windows(2).all(|w| w[0] <= w[1])));
    }
}
