//! Saving and restoring what the breaker has learned, so that a restart does not forget what
//! normal looks like (and does not hold every kind to the warm-up ceiling again), and what was
//! stopped (a kind open on a trip or forced, forced closed, in dry-run, given a planned surge), so
//! that a restart does not re-arm a runaway an operator stopped ([`stop`]).
//!
//! The format is versioned; older versions are read and migrated. A version-3 snapshot lacks the
//! lift above the week and the busiest minutes: the lift starts at none and the busiest minutes
//! are learned afresh (the configured floor holds until a week is known). A version-2 snapshot
//! (0.2) lacks those and the stops too: it restores what was learned, every kind closed. A
//! version-1 snapshot (spikebreaker 0.1's single-window baseline): its normal becomes the kind's
//! recent and long-run rates, its spread the minute spread, and its week is learned afresh.
//! [`file`] keeps one in a file for a breaker.

pub(crate) mod file;
pub(crate) mod slices;
mod stop;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::detect::{HOURS, Learned, Profile};
use crate::error::Error;
use crate::json;
use crate::name;
pub(crate) use stop::StopSnapshot;

/// The highest rate, in sends a second, a restored figure may claim: far beyond any sender, and
/// small enough that learning on from it stays finite.
const MAX_SENDS_PER_SEC: f64 = 1e9;
/// The widest spread a snapshot may claim (what the detector learns at most).
const MAX_SPREAD: f64 = 10.0;

/// What every kind has learned.
///
/// What it holds is the learned model, private to this crate: a snapshot is saved as JSON with
/// [`to_json`](Self::to_json) (or kept in a file, [`BreakerBuilder::snapshot_file`]) and read
/// with [`from_json`](Self::from_json), which checks it. The JSON is versioned
/// ([`Snapshot::VERSION`]); an older version is migrated when read.
///
/// [`BreakerBuilder::snapshot_file`]: crate::BreakerBuilder::snapshot_file
///
/// ```
/// use spikebreaker::{Breaker, Config, ManualClock, Snapshot};
/// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
/// let saved = breaker.snapshot().to_json();
/// let restarted = Breaker::with_clock(Config::default(), ManualClock::new())?;
/// restarted.restore(&Snapshot::from_json(&saved)?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// [`Snapshot::VERSION`] (a version-1 snapshot is migrated when read).
    pub(crate) version: u32,
    /// By kind name (each name once, by the kind-name rule).
    #[serde(deserialize_with = "name::unique_kinds")]
    pub(crate) kinds: BTreeMap<String, KindSnapshot>,
    /// What was stopped, by kind name (the overflow kind's too); none in a version-2 snapshot.
    #[serde(default, deserialize_with = "name::unique_kinds")]
    pub(crate) stops: BTreeMap<String, StopSnapshot>,
}

/// What one kind has learned: its week, its recent and long-run rates, and how widely its counts
/// spread. Rates are per minute or per hour as named; the week is per hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KindSnapshot {
    /// Sends in each of the 168 hours of the week, Monday 00:00 UTC first; `null` for an hour
    /// not seen yet.
    pub(crate) week: Vec<Option<f64>>,
    /// Sends a minute, a 30-minute moving average.
    pub(crate) average_per_minute: f64,
    /// What the kind is judged against of that average (its growth is bounded).
    pub(crate) recent_per_minute: f64,
    /// How far above the week's figure for the time the recent rate may stand (1: not above);
    /// its growth is bounded per day. Absent from a version-2 snapshot: 1.
    #[serde(default = "no_lift")]
    pub(crate) lift: f64,
    /// Sends an hour over about the last week.
    pub(crate) longrun_per_hour: f64,
    /// How widely counts spread, per group (minute counts; hour and day counts): moving sums of
    /// `(x - mu)^2 - mu` and of `mu^2`, whose ratio is the overdispersion.
    pub(crate) spread_moments: [[f64; 2]; 2],
    /// Hours each group of the spread has learned from.
    pub(crate) spread_hours: [u32; 2],
    /// Mean and variance of the logarithm of an ordinary hour's busiest minute over what a
    /// minute reaches about once an hour by the spread alone.
    pub(crate) burst: [f64; 2],
    /// Hours the bursts were learned from.
    pub(crate) burst_hours: u32,
    /// The busiest minute window of this week of hours learned and of the last (`-1`: not known
    /// yet). Absent from a version-2 snapshot: learned afresh.
    #[serde(default = "peak_unknown")]
    pub(crate) busiest_minute: [f64; 2],
    /// Minute windows (of the kind's `window_secs`) with sends learned: the warm-up.
    pub(crate) minutes: u32,
    /// Hours learned.
    pub(crate) hours: u32,
    /// What its slices learned: per dimension, each tracked value's share (none when its
    /// notifications name no slice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) slices: Vec<slices::DimensionSnapshot>,
}

fn no_lift() -> f64 {
    1.0
}

fn peak_unknown() -> [f64; 2] {
    [0.0, -1.0]
}

/// A version-1 kind: one window's mean, variance and decaying peak.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KindSnapshotV1 {
    window_secs: u64,
    mean: f64,
    variance: f64,
    peak: f64,
    windows: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotV1 {
    #[allow(dead_code)] // read to check it
    version: u32,
    #[serde(deserialize_with = "name::unique_kinds")]
    kinds: BTreeMap<String, KindSnapshotV1>,
}

/// Just the version, read first to choose the format.
#[derive(Deserialize)]
struct Version {
    version: u32,
}

impl Default for Snapshot {
    /// A snapshot of this version with no kind in it.
    fn default() -> Self {
        Self {
            version: Self::VERSION,
            kinds: BTreeMap::new(),
            stops: BTreeMap::new(),
        }
    }
}

impl Snapshot {
    /// The snapshot format this version writes.
    pub const VERSION: u32 = 4;

    /// The names of the kinds it holds, in order.
    pub fn kinds(&self) -> impl ExactSizeIterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a snapshot from JSON (this version's, or a version-1 one, migrated) and checks it.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let Version { version } = json::object_naming_the_field(text).map_err(Error::Snapshot)?;
        let snapshot = match version {
            1 => {
                let old: SnapshotV1 = json::object_naming_the_field(text).map_err(Error::Snapshot)?;
                Self::migrate(old)?
            }
            // Version 4 is version 3 with the lift and the busiest minutes, and version 3 is
            // version 2 with the stops: an older one has none of them, and they default.
            2 | 3 => Self {
                version: Self::VERSION,
                ..json::object_naming_the_field(text).map_err(Error::Snapshot)?
            },
            _ => json::object_naming_the_field(text).map_err(Error::Snapshot)?,
        };
        snapshot.validate()?;
        Ok(snapshot)
    }

    fn migrate(old: SnapshotV1) -> Result<Self, Error> {
        let mut kinds = BTreeMap::new();
        for (name, kind) in old.kinds {
            if !(1..=86_400).contains(&kind.window_secs) {
                return Err(Error::Snapshot(format!(
                    "kind {}: window_secs = {} is not 1 to 86400",
                    name::shown(&name),
                    kind.window_secs
                )));
            }
            let per_minute = 60.0 / kind.window_secs as f64;
            let normal = (kind.mean.max(kind.peak) * per_minute) as f32;
            let minutes = kind.windows.saturating_mul(kind.window_secs) / 60;
            let mut learned = Learned {
                average: normal,
                recent: normal,
                longrun: (kind.mean * per_minute * 60.0) as f32,
                minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
                hours: u32::try_from(minutes / 60).unwrap_or(u32::MAX),
                ..Learned::default()
            };
            if kind.mean > 0.0 {
                // The old variance as one hour's moments of the minute spread.
                let spread = ((kind.variance - kind.mean) / (kind.mean * kind.mean)).clamp(0.0, MAX_SPREAD);
                learned.phi_moments[0] = [spread as f32, 1.0];
                learned.phi_hours[0] = 1;
            }
            // As migrated, not fitted: a figure beyond the ranges is refused, not cut.
            kinds.insert(name, KindSnapshot::capture_exact(&learned));
        }
        Ok(Self {
            version: Self::VERSION,
            kinds,
            stops: BTreeMap::new(),
        })
    }

    /// Refuses a snapshot of another version, with a kind name that breaks the kind-name rule
    /// ([`validate_kind_name`](crate::config::validate_kind_name)), a window the configuration could not
    /// have, a figure that is negative, not a number, or beyond a billion sends a second, or a
    /// stop no kind can be in (half-open, open for no trip, a surge of no sends or more than a
    /// billion).
    pub fn validate(&self) -> Result<(), Error> {
        if self.version != Self::VERSION {
            return Err(Error::Snapshot(format!(
                "version {} is not the supported version {}",
                self.version,
                Self::VERSION
            )));
        }
        for (kind, learned) in &self.kinds {
            if let Some(reason) = name::problem(kind) {
                return Err(Error::Snapshot(format!("kind {}: {reason}", name::shown(kind))));
            }
            learned
                .validate()
                .map_err(|what| Error::Snapshot(format!("kind {kind:?}: {what}")))?;
        }
        for (kind, stop) in &self.stops {
            if let Some(reason) = name::problem(kind) {
                return Err(Error::Snapshot(format!(
                    "stop of kind {}: {reason}",
                    name::shown(kind)
                )));
            }
            stop.validate()
                .map_err(|what| Error::Snapshot(format!("stop of kind {kind:?}: {what}")))?;
        }
        Ok(())
    }
}

/// A figure as an error shows it.
fn shown(value: f64) -> String {
    if value.abs() >= 1e15 {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// Checks that `value` is a number from 0 to `max` (to single precision, as what is learned is
/// kept).
fn check(field: &str, value: f64, max: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=max * (1.0 + 1e-6)).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} = {} is not a number from 0 to {max:e}",
            shown(value)
        ))
    }
}

/// `value` within `min..=max`, a NaN as 0.
fn fit(value: f64, min: f64, max: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(min, max)
    }
}

impl KindSnapshot {
    /// What `learned` holds, each figure kept within what [`validate`](Self::validate) accepts:
    /// learning from a snapshot at the edge of the ranges (a burst spread of 100, a week's hour
    /// at a billion sends a second, which the week keeps in 8% steps) can carry a figure past
    /// it, and the breaker's own next snapshot must read back.
    pub(crate) fn capture(learned: &Learned) -> Self {
        let per_minute = MAX_SENDS_PER_SEC * 60.0;
        let per_hour = per_minute * 60.0;
        let mut kind = Self::capture_exact(learned);
        for sends in kind.week.iter_mut().flatten() {
            *sends = fit(*sends, 0.0, per_hour);
        }
        kind.average_per_minute = fit(kind.average_per_minute, 0.0, per_minute);
        kind.recent_per_minute = fit(kind.recent_per_minute, 0.0, per_minute);
        kind.longrun_per_hour = fit(kind.longrun_per_hour, 0.0, per_hour);
        for [dev, mu2] in &mut kind.spread_moments {
            *dev = fit(*dev, -per_hour * per_hour, per_hour * per_hour);
            *mu2 = fit(*mu2, 0.0, per_hour * per_hour);
        }
        let [mean, var] = kind.burst;
        kind.burst = [fit(mean, -100.0, 100.0), fit(var, 0.0, 100.0)];
        kind.lift = fit(kind.lift, 0.0, per_minute);
        let [this, last] = kind.busiest_minute;
        let last = if last == -1.0 {
            last
        } else {
            fit(last, 0.0, per_minute)
        };
        kind.busiest_minute = [fit(this, 0.0, per_minute), last];
        kind
    }

    /// What `learned` holds, as it is.
    fn capture_exact(learned: &Learned) -> Self {
        Self {
            week: learned.profile.hours().to_vec(),
            average_per_minute: learned.average.into(),
            recent_per_minute: learned.recent.into(),
            lift: learned.lift.into(),
            longrun_per_hour: learned.longrun.into(),
            spread_moments: learned.phi_moments.map(|group| group.map(f64::from)),
            spread_hours: learned.phi_hours,
            burst: learned.burst.map(f64::from),
            burst_hours: learned.burst_hours,
            busiest_minute: learned.peak.map(f64::from),
            minutes: learned.minutes,
            hours: learned.hours,
            slices: Vec::new(),
        }
    }

    /// With what its slices learned.
    pub(crate) fn with_slices(mut self, learned: slices::Learned) -> Self {
        self.slices = slices::capture(learned);
        self
    }

    /// What its slices learned, as the slice tracker restores it.
    pub(crate) fn to_slices(&self) -> slices::Learned {
        slices::restore(&self.slices)
    }

    pub(crate) fn to_learned(&self) -> Learned {
        let mut week = [None; HOURS];
        for (hour, sends) in week.iter_mut().zip(&self.week) {
            *hour = *sends;
        }
        Learned {
            profile: Profile::from_hours(&week),
            average: self.average_per_minute as f32,
            recent: self.recent_per_minute as f32,
            lift: self.lift as f32,
            longrun: self.longrun_per_hour as f32,
            phi_moments: self.spread_moments.map(|group| group.map(|x| x as f32)),
            phi_hours: self.spread_hours,
            burst: self.burst.map(|x| x as f32),
            burst_hours: self.burst_hours,
            peak: self.busiest_minute.map(|x| x as f32),
            minutes: self.minutes,
            hours: self.hours,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let per_minute = MAX_SENDS_PER_SEC * 60.0;
        let per_hour = per_minute * 60.0;
        if self.week.len() != HOURS {
            return Err(format!("week has {} hours, not {HOURS}", self.week.len()));
        }
        for (hour, sends) in self.week.iter().enumerate() {
            if let Some(sends) = sends {
                check(&format!("week[{hour}]"), *sends, per_hour)?;
            }
        }
        check("average_per_minute", self.average_per_minute, per_minute)?;
        check("recent_per_minute", self.recent_per_minute, per_minute)?;
        check("longrun_per_hour", self.longrun_per_hour, per_hour)?;
        check("lift", self.lift, per_minute)?;
        let [this, last] = self.busiest_minute;
        check("busiest_minute[0]", this, per_minute)?;
        if last != -1.0 {
            check("busiest_minute[1]", last, per_minute)?;
        }
        for (group, [dev, mu2]) in self.spread_moments.iter().enumerate() {
            // A deviation sum may be negative (counts tighter than Poisson).
            if !dev.is_finite() || dev.abs() > per_hour * per_hour {
                return Err(format!(
                    "spread_moments[{group}][0] = {} is out of range",
                    shown(*dev)
                ));
            }
            check(&format!("spread_moments[{group}][1]"), *mu2, per_hour * per_hour)?;
        }
        let [mean, var] = self.burst;
        if !mean.is_finite() || mean.abs() > 100.0 {
            return Err(format!("burst[0] = {} is out of range", shown(mean)));
        }
        check("burst[1]", var, 100.0)?;
        slices::validate(&self.slices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_and_foreign_snapshots_are_refused_with_a_reason() {
        let good = Snapshot {
            version: Snapshot::VERSION,
            kinds: BTreeMap::from([("a".to_owned(), KindSnapshot::capture(&Learned::default()))]),
            stops: BTreeMap::new(),
        }
        .to_json();
        assert!(Snapshot::from_json(&good).is_ok());
        let cases = [
            (good.replace("\"version\":4", "\"version\":5"), "version 5"),
            (
                good.replace("\"recent_per_minute\":0.0", "\"recent_per_minute\":-1.0"),
                "recent_per_minute",
            ),
            (good.replace("\"a\"", "\"\""), "empty"),
            (good.replacen("null,", "", 1), "167 hours"),
            (good.replacen("null", "1e99", 1), "week[0]"),
            (good[..good.len() - 3].to_string(), "EOF"),
            (good.replace("\"hours\"", "\"ours\""), "ours"),
        ];
        for (text, needle) in cases {
            let err = Snapshot::from_json(&text).unwrap_err();
            assert!(
                err.is_snapshot() && err.to_string().contains(needle),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn a_version_one_snapshot_is_migrated() {
        let v1 = r#"{"version":1,"kinds":{"a":{"window_secs":60,"mean":40.0,"variance":200.0,"peak":90.0,"windows":600}}}"#;
        let snapshot = Snapshot::from_json(v1).unwrap();
        assert_eq!(snapshot.version, Snapshot::VERSION);
        let a = &snapshot.kinds["a"];
        // The old normal (the larger of peak and mean) is the recent rate: a kind is judged as
        // leniently as it was until it learns its week.
        assert_eq!((a.recent_per_minute, a.longrun_per_hour), (90.0, 2_400.0));
        let [num, den] = a.spread_moments[0];
        assert!((num / den - 0.1).abs() < 1e-6, "{num} / {den}");
        assert_eq!((a.minutes, a.hours), (600, 10));
        assert!(a.week.iter().all(Option::is_none));
        let bad = v1.replace("\"window_secs\":60", "\"window_secs\":0");
        assert!(
            Snapshot::from_json(&bad)
                .unwrap_err()
                .to_string()
                .contains("window_secs")
        );
    }

    #[test]
    fn a_version_two_snapshot_is_migrated_with_no_lift_and_its_busiest_minutes_unknown() {
        let v4 = Snapshot {
            version: Snapshot::VERSION,
            kinds: BTreeMap::from([("a".to_owned(), KindSnapshot::capture(&Learned::default()))]),
            stops: BTreeMap::new(),
        }
        .to_json();
        let v2 = v4
            .replace("\"version\":4", "\"version\":2")
            .replace(",\"lift\":1.0", "")
            .replace(",\"busiest_minute\":[0.0,-1.0]", "");
        assert!(!v2.contains("lift") && !v2.contains("busiest"), "{v2}");
        let read = Snapshot::from_json(&v2).unwrap();
        assert_eq!(read.version, Snapshot::VERSION);
        let a = &read.kinds["a"];
        assert_eq!((a.lift, a.busiest_minute), (1.0, [0.0, -1.0]));
        assert_eq!(
            a.to_learned().busiest_minute(),
            None,
            "the own floor waits for a week"
        );
    }

    #[test]
    fn what_was_learned_round_trips() {
        let mut learned = Learned::default();
        learned.profile.learn(5, 1234.5, 1.0, 0);
        learned.recent = 3.25;
        let back = KindSnapshot::capture(&learned).to_learned();
        assert_eq!(back, learned);
    }
}
