//! The configuration of slices below the kind and of the repeat check: [`SliceConfig`] and
//! [`RepeatConfig`], the patches an override lays over them, and their checks. A kind's
//! `[kinds."…".slices]` and `[kinds."…".repeats]` patch the defaults field by field.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::TimescaleConfig;
use super::types::TimescaleOverride;
use crate::error::Error;
use crate::slice::{MAX_SLICES, RepeatSettings, SliceSettings, check_pair};

/// The most values a dimension may track.
const MAX_TRACK: usize = 1_024;
/// The most recipients a kind's repeat check may remember: 16 MiB.
const MAX_REPEAT_CAPACITY: usize = 1 << 20;
/// The longest repeat window and slice warm-up.
const MAX_SECS: u64 = 30 * 86_400;

/// Slices below the kind (see [guide::slices](crate::guide::slices)): which dimensions a kind
/// tracks, how many values of each, the limits a slice is held to and the values that never trip.
///
/// | field | default | range |
/// |---|---|---|
/// | `enabled` | true | |
/// | `dimensions` | every dimension notifications name | up to `max_dimensions` names |
/// | `max_dimensions` | 8 | 1 to 8 |
/// | `track` | 64 values a dimension | 1 to 1024 |
/// | `minute` | factor 3, sigmas 5, floor 20 | see [`TimescaleConfig`] |
/// | `hour` | factor 3, sigmas 5, floor 60 | |
/// | `day` | factor 3, sigmas 5, floor 300 | |
/// | `warmup_secs` | 3600 | 0 to 30 days |
/// | `safe` | none | per dimension, a list of values |
///
/// A slice's window trips when it holds more than its limit: the most of `floor`, `factor` times
/// what its learned share of the kind makes expected, and `sigmas` standard deviations above that,
/// capped by `ceiling`, as a kind's.
///
/// ```
/// use spikebreaker::Config;
/// let config = Config::from_toml(r#"
///     [kinds."sms.*".slices]
///     dimensions = ["prefix", "country"]
///     minute = { floor = 10 }
///     safe = { country = ["GB", "US"] }
/// "#)?;
/// let slices = config.kind_config("sms.login_code").slices;
/// assert_eq!(slices.minute.floor, 10);
/// assert_eq!(slices.hour.floor, 60); // the rest from the defaults
/// assert_eq!(slices.safe["country"], ["GB", "US"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "SliceOverride")]
pub struct SliceConfig {
    /// Whether the kind tracks slices at all (true by default).
    pub enabled: bool,
    /// Only these dimensions are tracked; others a notification names are ignored. `None` (the
    /// default): every dimension notifications name, up to `max_dimensions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Vec<String>>,
    /// The most dimensions a kind tracks (8 by default; 1 to 8): the first named are tracked,
    /// further ones ignored.
    pub max_dimensions: usize,
    /// Values tracked per dimension (64 by default; 1 to 1024): the busiest recently, each with
    /// its own windows and learned share; the rest are counted in a small sketch until one grows
    /// busy enough to take the place of the least busy.
    pub track: usize,
    /// Guards of a slice's minute window: factor 3, sigmas 5, floor 20, no ceiling by default.
    pub minute: TimescaleConfig,
    /// Guards of a slice's hour window: factor 3, sigmas 5, floor 60, no ceiling by default.
    pub hour: TimescaleConfig,
    /// Guards of a slice's day window: factor 3, sigmas 5, floor 300, no ceiling by default.
    pub day: TimescaleConfig,
    /// How long a dimension learns before any of its slices trips, and how long a value first
    /// tracked later is judged as a newcomer (by a share of 1%)
    /// before a share of its own (3600 by default; 0 to 30 days).
    pub warmup_secs: u64,
    /// Per dimension, values that never trip (none by default): `safe = { country = ["GB"] }`.
    pub safe: BTreeMap<String, Vec<String>>,
}

impl SliceConfig {
    /// A slice's minute window defaults: factor 3, sigmas 5, floor 20.
    pub const MINUTE: TimescaleConfig = TimescaleConfig {
        factor: 3.0,
        sigmas: 5.0,
        floor: 20,
        ceiling: None,
    };
    /// A slice's hour window defaults: factor 3, sigmas 5, floor 60.
    pub const HOUR: TimescaleConfig = TimescaleConfig {
        factor: 3.0,
        sigmas: 5.0,
        floor: 60,
        ceiling: None,
    };
    /// A slice's day window defaults: factor 3, sigmas 5, floor 300.
    pub const DAY: TimescaleConfig = TimescaleConfig {
        factor: 3.0,
        sigmas: 5.0,
        floor: 300,
        ceiling: None,
    };
}

impl Default for SliceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dimensions: None,
            max_dimensions: MAX_SLICES,
            track: 64,
            minute: Self::MINUTE,
            hour: Self::HOUR,
            day: Self::DAY,
            warmup_secs: 3600,
            safe: BTreeMap::new(),
        }
    }
}

/// The repeat check: the same notification to the same recipient, again and again (a cron bug
/// that sent 148 identical emails to each of 3 users), refused past `max` in `window_secs`. Only
/// notifications that name a recipient and opt in with [`Slices`](crate::guard::Slices) are
/// checked; with a content key, only those with the same key count as the same.
///
/// | field | default | range |
/// |---|---|---|
/// | `enabled` | true | |
/// | `max` | 10 | 1 to 65,535 |
/// | `window_secs` | 3600 | 1 to 30 days |
/// | `capacity` | 65,536 recipients (1 MiB) | 128 to 1,048,576 |
///
/// Once refused, a recipient stays refused until a whole window passes in which it was attempted
/// at most `max` times, so a loop that goes on never gets more than `max` through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RepeatOverride")]
pub struct RepeatConfig {
    /// Whether the kind checks repeats (true by default).
    pub enabled: bool,
    /// Identical notifications to one recipient a window may hold; the next is refused (10 by
    /// default; 1 to 65,535).
    pub max: u32,
    /// The window, in seconds (3600 by default; 1 second to 30 days).
    pub window_secs: u64,
    /// The most recipients (with their content keys) remembered at once, 16 bytes each (65,536
    /// by default: 1 MiB; 128 to 1,048,576). Past it, the least repeated are forgotten first.
    pub capacity: usize,
}

impl Default for RepeatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max: 10,
            window_secs: 3600,
            capacity: 1 << 16,
        }
    }
}

/// A patch over [`SliceConfig`]: every field optional, each timescale patched field by field.
#[allow(missing_docs)] // Each field means what the same field of `SliceConfig` means.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SliceOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_dimensions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<usize>,
    #[serde(skip_serializing_if = "TimescaleOverride::is_empty")]
    pub minute: TimescaleOverride,
    #[serde(skip_serializing_if = "TimescaleOverride::is_empty")]
    pub hour: TimescaleOverride,
    #[serde(skip_serializing_if = "TimescaleOverride::is_empty")]
    pub day: TimescaleOverride,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe: Option<BTreeMap<String, Vec<String>>>,
}

/// A patch over [`RepeatConfig`]: every field optional.
#[allow(missing_docs)] // Each field means what the same field of `RepeatConfig` means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepeatOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
}

impl SliceOverride {
    pub(super) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `base` with this patch laid over it.
    pub fn apply_to(&self, base: &SliceConfig) -> SliceConfig {
        SliceConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            dimensions: self.dimensions.clone().or_else(|| base.dimensions.clone()),
            max_dimensions: self.max_dimensions.unwrap_or(base.max_dimensions),
            track: self.track.unwrap_or(base.track),
            minute: self.minute.apply_to(&base.minute),
            hour: self.hour.apply_to(&base.hour),
            day: self.day.apply_to(&base.day),
            warmup_secs: self.warmup_secs.unwrap_or(base.warmup_secs),
            safe: self.safe.clone().unwrap_or_else(|| base.safe.clone()),
        }
    }
}

impl From<SliceOverride> for SliceConfig {
    fn from(patch: SliceOverride) -> Self {
        patch.apply_to(&Self::default())
    }
}

impl RepeatOverride {
    pub(super) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `base` with this patch laid over it.
    pub fn apply_to(&self, base: &RepeatConfig) -> RepeatConfig {
        RepeatConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            max: self.max.unwrap_or(base.max),
            window_secs: self.window_secs.unwrap_or(base.window_secs),
            capacity: self.capacity.unwrap_or(base.capacity),
        }
    }
}

impl From<RepeatOverride> for RepeatConfig {
    fn from(patch: RepeatOverride) -> Self {
        patch.apply_to(&Self::default())
    }
}

impl SliceConfig {
    /// Checks the settings and compiles them, with the kind's recovery and cool-down and its
    /// `repeats`; `path` prefixes field names in errors (`defaults`, `kinds."a"`).
    pub(super) fn compile(
        &self,
        path: &str,
        repeats: &RepeatConfig,
        recovery: super::Recovery,
        cooldown_ms: u64,
    ) -> Result<SliceSettings, Error> {
        let field = |name: &str| format!("{path}.slices.{name}");
        if !(1..=MAX_SLICES).contains(&self.max_dimensions) {
            return Err(Error::invalid(
                field("max_dimensions"),
                self.max_dimensions,
                "must be 1 to 8",
            ));
        }
        if !(1..=MAX_TRACK).contains(&self.track) {
            return Err(Error::invalid(field("track"), self.track, "must be 1 to 1024"));
        }
        if self.warmup_secs > MAX_SECS {
            return Err(Error::invalid(
                field("warmup_secs"),
                self.warmup_secs,
                "must be at most 30 days (2592000 seconds)",
            ));
        }
        let only = match &self.dimensions {
            None => None,
            Some(names) => {
                let mut only = BTreeSet::new();
                for (i, name) in names.iter().enumerate() {
                    check_dimension(name).map_err(|reason| {
                        Error::invalid(
                            format!("{}[{i}]", field("dimensions")),
                            crate::name::shown(name),
                            reason,
                        )
                    })?;
                    only.insert(name.clone());
                }
                if only.len() > self.max_dimensions {
                    return Err(Error::invalid(
                        field("dimensions"),
                        only.len(),
                        "names more dimensions than `max_dimensions`",
                    ));
                }
                Some(only)
            }
        };
        let mut safe = BTreeMap::new();
        for (dimension, values) in &self.safe {
            check_dimension(dimension)
                .map_err(|reason| Error::invalid(field("safe"), crate::name::shown(dimension), reason))?;
            let mut set = BTreeSet::new();
            for (i, value) in values.iter().enumerate() {
                if check_pair(dimension, value).is_err() {
                    return Err(Error::invalid(
                        format!("{}.{dimension}[{i}]", field("safe")),
                        crate::name::shown(value),
                        "a slice value is 1 to 64 bytes with no control character",
                    ));
                }
                set.insert(value.clone());
            }
            safe.insert(dimension.clone(), set);
        }
        Ok(SliceSettings {
            enabled: self.enabled,
            max_dimensions: self.max_dimensions,
            only,
            track: self.track,
            guards: [
                self.minute.compile(&field("minute"))?,
                self.hour.compile(&field("hour"))?,
                self.day.compile(&field("day"))?,
            ],
            warmup_ms: self.warmup_secs * 1000,
            safe,
            recovery,
            cooldown_ms,
            repeats: repeats.compile(path)?,
        })
    }
}

impl RepeatConfig {
    fn compile(&self, path: &str) -> Result<Option<RepeatSettings>, Error> {
        let field = |name: &str| format!("{path}.repeats.{name}");
        if !(1..=u32::from(u16::MAX)).contains(&self.max) {
            return Err(Error::invalid(field("max"), self.max, "must be 1 to 65535"));
        }
        if !(1..=MAX_SECS).contains(&self.window_secs) {
            return Err(Error::invalid(
                field("window_secs"),
                self.window_secs,
                "must be 1 second to 30 days (2592000 seconds)",
            ));
        }
        if !(128..=MAX_REPEAT_CAPACITY).contains(&self.capacity) {
            return Err(Error::invalid(
                field("capacity"),
                self.capacity,
                "must be 128 to 1048576 recipients",
            ));
        }
        Ok(self.enabled.then_some(RepeatSettings {
            max: self.max,
            window_ms: self.window_secs * 1000,
            capacity: self.capacity,
        }))
    }
}

/// What is wrong with a dimension name in the configuration, if anything.
fn check_dimension(name: &str) -> Result<(), &'static str> {
    check_pair(name, "x").map_err(
        |_| "a dimension is 1 to 32 bytes of ASCII letters, digits, `_`, `-` and `.`, and not `content`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn error(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            ("[defaults.slices]\ntrack = 0\n", "`defaults.slices.track` = 0"),
            (
                "[defaults.slices]\nmax_dimensions = 9\n",
                "`defaults.slices.max_dimensions` = 9",
            ),
            (
                "[kinds.\"sms.*\".slices]\ndimensions = [\"ok\", \"bad name\"]\n",
                "`kinds.\"sms.*\".slices.dimensions[1]` = \"bad name\"",
            ),
            (
                "[defaults.slices]\nmax_dimensions = 1\ndimensions = [\"a\", \"b\"]\n",
                "`defaults.slices.dimensions` = 2",
            ),
            (
                "[defaults.slices.safe]\ncountry = [\"GB\", \"\"]\n",
                "`defaults.slices.safe.country[1]` = \"\"",
            ),
            (
                "[defaults.slices.minute]\nfactor = 0.5\n",
                "`defaults.slices.minute.factor`",
            ),
            (
                "[defaults.slices]\nwarmup_secs = 9999999\n",
                "`defaults.slices.warmup_secs`",
            ),
            ("[defaults.repeats]\nmax = 0\n", "`defaults.repeats.max` = 0"),
            (
                "[kinds.a.repeats]\nwindow_secs = 0\n",
                "`kinds.\"a\".repeats.window_secs` = 0",
            ),
            (
                "[defaults.repeats]\ncapacity = 10\n",
                "`defaults.repeats.capacity` = 10",
            ),
        ];
        for (toml, named) in cases {
            let error = error(toml);
            assert!(error.contains(named), "{toml}: {error}");
        }
        assert!(error("[defaults.slices]\ntrak = 1\n").contains("trak"));
    }

    #[test]
    fn an_override_patches_slices_and_repeats_field_by_field() {
        let config = Config::from_toml(
            "[defaults.slices]\ntrack = 32\n[defaults.repeats]\nmax = 5\n\
             [kinds.\"sms.*\".slices]\nhour = { floor = 30 }\n[kinds.\"sms.*\".repeats]\nwindow_secs = 60\n\
             [kinds.quiet.repeats]\nenabled = false\n",
        )
        .unwrap();
        let sms = config.kind_config("sms.otp");
        assert_eq!((sms.slices.track, sms.slices.hour.floor), (32, 30));
        assert_eq!(sms.slices.hour.factor, SliceConfig::HOUR.factor);
        assert_eq!((sms.repeats.max, sms.repeats.window_secs), (5, 60));
        let settings = config.compile().unwrap();
        assert!(settings.settings("quiet").slices.repeats.is_none());
        assert_eq!(
            settings.settings("sms.otp").slices.repeats.map(|r| r.window_ms),
            Some(60_000)
        );
        // The overflow kind tracks nothing below it.
        assert!(!settings.settings("_overflow").slices.enabled);
    }
}
