//! The tuner: each kind's history replayed against a grid of settings, and against copies with
//! runaways injected, to find the most sensitive settings that never trip on the history.
//!
//! Assumptions (the guide's backtest page, *Tuning*, says more): the history is clean, apart from the spans
//! excluded (a known incident); its first third (at most a week) is for learning, and trips there
//! are not counted; kinds are independent, so each kind is replayed alone; the runaways are
//! injected one at a time per slot of the rest of the log, far enough apart that each meets a
//! kind that has recovered from the one before.

mod candidate;
mod runaway;

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

pub use candidate::Candidate;
use runaway::{DAY_MS, HOUR_MS, Injection, inject, slots};
pub use runaway::{Leak, Runaway};

/// The longest learning prefix.
const MOST_LEARNING_MS: u64 = 7 * DAY_MS;

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
}
