//! The configuration users write: serde data with defaults, per-kind overrides, and all of its
//! validation, which names the field and the bad value. The breaker compiles it once
//! (`Config::compile`, which [`Config::validate`] runs too) into each kind's [`KindSettings`]:
//! the detector's [`Policy`] and the kind's recovery settings, so nothing is re-checked on the
//! send path.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::detect::{BUCKETS, Guards, Policy};
use crate::error::Error;
use crate::name::{self, OVERFLOW_KIND};
use crate::surge::{self, Planned, SurgeConfig};

/// The longest minute window a kind may have (a snapshot is checked against it too).
pub(crate) const MAX_WINDOW_SECS: u64 = 3_600;
/// The most standard deviations a limit may sit above what is expected.
const MAX_SIGMAS: f64 = 50.0;
/// The longest warm-up, cool-down, probe and idle time.
const MAX_DURATION_SECS: u64 = 30 * 86_400;
/// The most kinds a registry may hold (`max_kinds`): about 0.7 GB of kinds.
pub(crate) const MAX_MAX_KINDS: usize = 1_000_000;

/// The whole breaker configuration: defaults for every kind, overrides for some.
///
/// ```
/// use spikebreaker::Config;
/// let config = Config::from_toml(r#"
///     [defaults.minute]
///     factor = 4.0
///
///     [kinds."security.2fa_changed"]
///     minute = { floor = 10, ceiling = 20 }
///     recovery = "manual"
/// "#)?;
/// assert_eq!(config.defaults.minute.factor, 4.0);
/// assert_eq!(config.kind_config("security.2fa_changed").minute.ceiling, Some(20));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Settings for every kind that has no override (and the base that overrides patch).
    pub defaults: KindConfig,
    /// Per-kind overrides, by kind name; fields left out come from `defaults`. A kind named here
    /// always has a slot of its own, beyond `max_kinds`, and is never evicted. Names follow the
    /// kind-name rule ([`validate_kind_name`](crate::validate_kind_name)); `_overflow` sets the
    /// overflow kind's settings.
    #[serde(deserialize_with = "name::unique_kinds")]
    pub kinds: BTreeMap<String, KindOverride>,
    /// The most kinds tracked at once besides those named in `kinds` (1 to 1,000,000); further
    /// kinds share the overflow kind ([`Breaker::OVERFLOW_KIND`](crate::Breaker::OVERFLOW_KIND)).
    pub max_kinds: usize,
    /// Once `max_kinds` are registered, a kind that is closed, not forced, held by no
    /// [`KindHandle`](crate::KindHandle) and has not been sent for this many seconds may be
    /// forgotten (its counts and what it learned with it) to make room for a new kind. At least
    /// the longest `window_secs`, at most 30 days. See [`Breaker::evict_idle`](crate::Breaker::evict_idle).
    pub evict_idle_secs: u64,
    /// Legitimate surges announced in advance (`[[surges]]`): see [`SurgeConfig`].
    pub surges: Vec<SurgeConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            defaults: KindConfig::default(),
            kinds: BTreeMap::new(),
            max_kinds: 4096,
            evict_idle_secs: 3600,
            surges: Vec::new(),
        }
    }
}

/// How a tripped kind comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// After `cooldown_secs`, once the attempted rate is back within every limit, the kind goes
    /// half-open for `probe_secs` and closes if the rate stays normal.
    Auto,
    /// The kind stays open until an operator resets it.
    Manual,
}

/// Detection and recovery settings for one kind.
///
/// A kind is judged on three timescales, each against what is expected of it *now* (its learned
/// week, its recent rate) and its learned spread: the `minute` window (`window_secs` long, a
/// minute by default) catches bursts, the `hour` window slow leaks, the `day` window very slow
/// ones. Each has its own guards ([`TimescaleConfig`]).
///
/// | field | default | range |
/// |---|---|---|
/// | `window_secs` | 60 | 1 to 3600 |
/// | `minute` | factor 3, sigmas 5, floor 50, no ceiling | see [`TimescaleConfig`] |
/// | `hour` | factor 2, sigmas 4.5, floor 120, no ceiling | |
/// | `day` | factor 2, sigmas 4.5, floor 600, no ceiling | |
/// | `warmup_ceiling` | 500 | at least `minute.floor` |
/// | `warmup_secs` | 3600 | at most 30 days |
/// | `max_growth_per_hour` | 1.5 | at least 1 |
/// | `recovery` | `"auto"` | `"auto"` or `"manual"` |
/// | `cooldown_secs` | 300 | at most 30 days |
/// | `probe_secs` | 60 | at most 30 days |
/// | `open_alert_secs` | 3600 | 1 to 30 days |
/// | `dry_run` | false | |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindConfig {
    /// Length of the minute window, the sliding window a send is judged on most finely, in
    /// seconds (1 to 3600; 60 by default). The hour and day windows are fixed.
    pub window_secs: u64,
    /// Guards of the minute window (`window_secs` long): bursts.
    pub minute: TimescaleConfig,
    /// Guards of the hour window: slow leaks.
    pub hour: TimescaleConfig,
    /// Guards of the day window: very slow leaks.
    pub day: TimescaleConfig,
    /// Until the kind is warm (a new kind, or a restart without a snapshot), the minute window
    /// may hold at most this many sends, or the minute `ceiling` if that is lower (500 by
    /// default; at least `minute.floor`).
    pub warmup_ceiling: u64,
    /// How long, in minute windows with sends, the kind learns before it is warm: this many
    /// seconds of them (3600 by default: an hour's worth of minutes with traffic; with
    /// `window_secs = 5`, 720 windows of 5 s).
    pub warmup_secs: u64,
    /// Once a day is learned, the recent rate the kind is judged against may grow by at most
    /// this factor an hour, so a bug that ramps up outruns it (1.5 by default; at least 1).
    pub max_growth_per_hour: f64,
    /// How a tripped kind recovers (`"auto"` by default).
    pub recovery: Recovery,
    /// With automatic recovery, how long a tripped kind stays open before it may probe, in
    /// seconds (300 by default; at most 30 days).
    pub cooldown_secs: u64,
    /// With automatic recovery, how long a kind stays half-open before it closes, in seconds
    /// (60 by default; at most 30 days).
    pub probe_secs: u64,
    /// A kind open this long is reported once, with a `still_open` event, so an operator is
    /// told of a runaway that goes on or a lasting change in legitimate traffic (3600 by
    /// default; 1 second to 30 days).
    pub open_alert_secs: u64,
    /// Detect and report, but never block (false by default).
    pub dry_run: bool,
}

/// One timescale's guards. A window trips when it holds more than its limit: the most of
/// `floor`, `factor` times what is expected, and the count `sigmas` standard deviations above
/// what is expected (from the kind's learned spread), capped by `ceiling`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimescaleConfig {
    /// Never trip at or below this many times what is expected (at least 1).
    pub factor: f64,
    /// How many standard deviations above what is expected a window may go (1 to 50).
    pub sigmas: f64,
    /// Never trip at or below this many sends in the window.
    pub floor: u64,
    /// Always trip above this many sends in the window, whatever was learned (at least 1 and
    /// at least `floor`). `None`: no ceiling.
    pub ceiling: Option<u64>,
}

impl TimescaleConfig {
    /// The minute window's defaults: factor 3, sigmas 5, floor 50, no ceiling.
    pub const MINUTE: Self = Self {
        factor: 3.0,
        sigmas: 5.0,
        floor: 50,
        ceiling: None,
    };
    /// The hour window's defaults: factor 2, sigmas 4.5, floor 120, no ceiling.
    pub const HOUR: Self = Self {
        factor: 2.0,
        sigmas: 4.5,
        floor: 120,
        ceiling: None,
    };
    /// The day window's defaults: factor 2, sigmas 4.5, floor 600, no ceiling.
    pub const DAY: Self = Self {
        factor: 2.0,
        sigmas: 4.5,
        floor: 600,
        ceiling: None,
    };
}

impl Default for TimescaleConfig {
    fn default() -> Self {
        Self::MINUTE
    }
}

impl Default for KindConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            minute: TimescaleConfig::MINUTE,
            hour: TimescaleConfig::HOUR,
            day: TimescaleConfig::DAY,
            warmup_ceiling: 500,
            warmup_secs: 3600,
            max_growth_per_hour: 1.5,
            recovery: Recovery::Auto,
            cooldown_secs: 300,
            probe_secs: 60,
            open_alert_secs: 3600,
            dry_run: false,
        }
    }
}

/// A per-kind patch over [`Config::defaults`]: every field is optional, and a timescale's table
/// patches that timescale field by field.
#[allow(missing_docs)] // Each field means what the same field of `KindConfig` means.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    #[serde(skip_serializing_if = "TimescaleOverride::is_empty")]
    pub minute: TimescaleOverride,
    #[serde(skip_serializing_if = "TimescaleOverride::is_empty")]
    pub hour: TimescaleOverride,
    #[serde(skip_serializing_if = "TimescaleOverride::is_empty")]
    pub day: TimescaleOverride,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_ceiling: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_growth_per_hour: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_alert_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// A patch over one timescale's guards: every field is optional.
#[allow(missing_docs)] // Each field means what the same field of `TimescaleConfig` means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimescaleOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<u64>,
}

impl TimescaleOverride {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn apply_to(&self, base: &TimescaleConfig) -> TimescaleConfig {
        TimescaleConfig {
            factor: self.factor.unwrap_or(base.factor),
            sigmas: self.sigmas.unwrap_or(base.sigmas),
            floor: self.floor.unwrap_or(base.floor),
            ceiling: self.ceiling.or(base.ceiling),
        }
    }
}

impl KindOverride {
    /// `base` with this override's fields laid over it.
    pub fn apply_to(&self, base: &KindConfig) -> KindConfig {
        KindConfig {
            window_secs: self.window_secs.unwrap_or(base.window_secs),
            minute: self.minute.apply_to(&base.minute),
            hour: self.hour.apply_to(&base.hour),
            day: self.day.apply_to(&base.day),
            warmup_ceiling: self.warmup_ceiling.unwrap_or(base.warmup_ceiling),
            warmup_secs: self.warmup_secs.unwrap_or(base.warmup_secs),
            max_growth_per_hour: self.max_growth_per_hour.unwrap_or(base.max_growth_per_hour),
            recovery: self.recovery.unwrap_or(base.recovery),
            cooldown_secs: self.cooldown_secs.unwrap_or(base.cooldown_secs),
            probe_secs: self.probe_secs.unwrap_or(base.probe_secs),
            open_alert_secs: self.open_alert_secs.unwrap_or(base.open_alert_secs),
            dry_run: self.dry_run.unwrap_or(base.dry_run),
        }
    }
}

impl Config {
    /// Parses TOML and validates the result.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let config: Self = toml::from_str(text).map_err(|e| Error::Parse {
            format: "TOML",
            message: with_hint(e.to_string()),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses JSON and validates the result.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let config: Self = json_naming_the_field(text).map_err(|message| Error::Parse {
            format: "JSON",
            message: with_hint(message),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The settings in force for `kind`: its override over the defaults.
    pub fn kind_config(&self, kind: &str) -> KindConfig {
        match self.kinds.get(kind) {
            Some(patch) => patch.apply_to(&self.defaults),
            None => self.defaults.clone(),
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        self.compile().map(drop)
    }

    /// Validates and compiles into the engine's internal form.
    pub(crate) fn compile(&self) -> Result<Compiled, Error> {
        if !(1..=MAX_MAX_KINDS).contains(&self.max_kinds) {
            return Err(Error::invalid(
                "max_kinds",
                self.max_kinds,
                "must be 1 to 1000000",
            ));
        }
        let defaults = self.defaults.compile("defaults")?;
        let mut overrides = BTreeMap::new();
        for (kind, patch) in &self.kinds {
            if let Some(reason) = name::problem(kind) {
                return Err(Error::invalid("kinds", name::shown(kind), reason));
            }
            let settings = patch
                .apply_to(&self.defaults)
                .compile(&format!("kinds.{kind:?}"))?;
            overrides.insert(kind.clone(), settings);
        }
        let mut surges: BTreeMap<&str, Vec<(Planned, String)>> = BTreeMap::new();
        for (i, planned) in self.surges.iter().enumerate() {
            let path = format!("surges[{i}]");
            let checked = planned.compile(&path)?;
            surges.entry(&planned.kind).or_default().push((checked, path));
        }
        for (kind, planned) in surges {
            let settings = overrides
                .entry(kind.to_owned())
                .or_insert_with(|| defaults.clone());
            settings.surges = surge::schedule(planned)?;
        }
        let overrides: BTreeMap<String, Arc<KindSettings>> = overrides
            .into_iter()
            .map(|(kind, settings)| (kind, Arc::new(settings)))
            .collect();
        let longest_window_ms = overrides
            .values()
            .map(|settings| settings.policy.window_ms())
            .chain([defaults.policy.window_ms()])
            .max()
            .unwrap_or(0);
        let evict_idle_ms = self.evict_idle_secs.saturating_mul(1000);
        if evict_idle_ms < longest_window_ms || self.evict_idle_secs > MAX_DURATION_SECS {
            return Err(Error::invalid(
                "evict_idle_secs",
                self.evict_idle_secs,
                "must be at least the longest `window_secs` and at most 30 days (2592000 seconds)",
            ));
        }
        // The overflow kind's limit is fixed: traffic must not teach it a higher one.
        let overflow_base = overrides
            .get(OVERFLOW_KIND)
            .map_or(&defaults, |settings| &**settings);
        let mut overflow = overflow_base.clone();
        overflow.policy.learns = false;
        let overflow = Arc::new(overflow);
        Ok(Compiled {
            defaults: Arc::new(defaults),
            overflow,
            overrides,
            max_kinds: self.max_kinds,
            evict_idle_ms,
        })
    }
}

/// A parser's message, with a word on where a field of spikebreaker 0.1's configuration went.
fn with_hint(message: String) -> String {
    const MOVED: [(&str, &str); 5] = [
        (
            "factor",
            "each timescale has its own: `minute.factor`, `hour.factor`, `day.factor`",
        ),
        (
            "floor",
            "each timescale has its own: `minute.floor`, `hour.floor`, `day.floor`",
        ),
        (
            "ceiling",
            "each timescale has its own: `minute.ceiling`, `hour.ceiling`, `day.ceiling`",
        ),
        (
            "margin_sigmas",
            "the statistical limit is now `minute.sigmas` (and `hour.sigmas`, `day.sigmas`)",
        ),
        (
            "peak_half_life_hours",
            "it is gone: each kind learns its week, hour by hour",
        ),
    ];
    for (field, hint) in MOVED {
        if message.contains(&format!("unknown field `{field}`")) {
            return format!("{message} (since spikebreaker 0.2, {hint})");
        }
    }
    message
}

/// Reads a JSON object, naming the field (`defaults.factor`) of a type error as well as its
/// position. Anything but an object is refused: serde would read an array by position.
pub(crate) fn json_naming_the_field<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    match text.trim_start().chars().next() {
        Some('{') => {}
        Some(other) => return Err(format!("expected a JSON object `{{...}}`, found {other:?}")),
        None => return Err("expected a JSON object `{...}`, found nothing".into()),
    }
    let mut json = serde_json::Deserializer::from_str(text);
    let value =
        serde_path_to_error::deserialize(&mut json).map_err(|e| match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("`{path}`: {}", e.inner()),
        })?;
    json.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A validated configuration: settings for each overridden kind plus the default ones, each
/// shared by the kinds that run on them.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) defaults: Arc<KindSettings>,
    /// The overflow kind's: its override's or the defaults, never learning.
    pub(crate) overflow: Arc<KindSettings>,
    pub(crate) overrides: BTreeMap<String, Arc<KindSettings>>,
    pub(crate) max_kinds: usize,
    pub(crate) evict_idle_ms: u64,
}

impl Compiled {
    /// The settings `kind` runs on.
    pub(crate) fn settings(&self, kind: &str) -> &Arc<KindSettings> {
        if kind == OVERFLOW_KIND {
            return &self.overflow;
        }
        self.overrides.get(kind).unwrap_or(&self.defaults)
    }

    /// Whether `kind` is named in the configuration, and so has a slot of its own.
    pub(crate) fn names(&self, kind: &str) -> bool {
        kind != OVERFLOW_KIND && self.overrides.contains_key(kind)
    }
}

/// One kind's [`KindConfig`], checked and compiled: what its detector runs on, and how its state
/// machine recovers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KindSettings {
    pub(crate) policy: Policy,
    pub(crate) recovery: Recovery,
    pub(crate) cooldown_ms: u64,
    pub(crate) probe_ms: u64,
    pub(crate) open_alert_ms: u64,
    pub(crate) dry_run: bool,
    /// Surges planned in the configuration, in order, none overlapping.
    pub(crate) surges: Vec<Planned>,
}

impl KindConfig {
    /// Validates the settings and compiles them; `path` prefixes field names in errors
    /// (`defaults`, `kinds."a"`).
    pub(crate) fn compile(&self, path: &str) -> Result<KindSettings, Error> {
        let field = |name: &str| format!("{path}.{name}");
        if !(1..=MAX_WINDOW_SECS).contains(&self.window_secs) {
            return Err(Error::invalid(
                field("window_secs"),
                self.window_secs,
                "must be 1 to 3600 seconds",
            ));
        }
        let guards = [
            self.minute.compile(&field("minute"))?,
            self.hour.compile(&field("hour"))?,
            self.day.compile(&field("day"))?,
        ];
        finite_at_least(
            self.max_growth_per_hour,
            1.0,
            &field("max_growth_per_hour"),
            "must be a finite number of at least 1",
        )?;
        if self.warmup_ceiling < self.minute.floor {
            return Err(Error::invalid(
                field("warmup_ceiling"),
                self.warmup_ceiling,
                "must be at least `minute.floor`",
            ));
        }
        for (name, secs) in [
            ("warmup_secs", self.warmup_secs),
            ("cooldown_secs", self.cooldown_secs),
            ("probe_secs", self.probe_secs),
        ] {
            if secs > MAX_DURATION_SECS {
                return Err(Error::invalid(
                    field(name),
                    secs,
                    "must be at most 30 days (2592000 seconds)",
                ));
            }
        }
        if !(1..=MAX_DURATION_SECS).contains(&self.open_alert_secs) {
            return Err(Error::invalid(
                field("open_alert_secs"),
                self.open_alert_secs,
                "must be 1 second to 30 days (2592000 seconds)",
            ));
        }
        let window_ms = self.window_secs * 1000;
        Ok(KindSettings {
            policy: Policy {
                bucket_ms: window_ms / BUCKETS as u64,
                guards,
                warmup_ceiling: self.warmup_ceiling,
                warmup_windows: u32::try_from(self.warmup_secs.div_ceil(self.window_secs))
                    .unwrap_or(u32::MAX),
                growth_per_hour: self.max_growth_per_hour,
                learns: true,
            },
            recovery: self.recovery,
            cooldown_ms: self.cooldown_secs * 1000,
            probe_ms: self.probe_secs * 1000,
            open_alert_ms: self.open_alert_secs * 1000,
            dry_run: self.dry_run,
            surges: Vec::new(),
        })
    }
}

impl TimescaleConfig {
    fn compile(&self, path: &str) -> Result<Guards, Error> {
        let field = |name: &str| format!("{path}.{name}");
        finite_at_least(
            self.factor,
            1.0,
            &field("factor"),
            "must be a finite number of at least 1",
        )?;
        if !(self.sigmas.is_finite() && (1.0..=MAX_SIGMAS).contains(&self.sigmas)) {
            return Err(Error::invalid(
                field("sigmas"),
                self.sigmas,
                "must be a number from 1 to 50 (under one standard deviation, ordinary counts trip)",
            ));
        }
        if let Some(ceiling) = self.ceiling {
            if ceiling < self.floor.max(1) {
                return Err(Error::invalid(
                    field("ceiling"),
                    ceiling,
                    "must be at least 1 and at least `floor`",
                ));
            }
        }
        Ok(Guards {
            factor: self.factor,
            floor: self.floor,
            ceiling: self.ceiling.unwrap_or(u64::MAX),
            sigmas: self.sigmas,
        })
    }
}

fn finite_at_least(value: f64, min: f64, field: &str, reason: &'static str) -> Result<(), Error> {
    if value.is_finite() && value >= min {
        Ok(())
    } else {
        Err(Error::invalid(field, value, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_toml_and_json() {
        let config = Config::default();
        config.validate().unwrap();
        let toml_text = toml::to_string(&config).unwrap();
        assert_eq!(Config::from_toml(&toml_text).unwrap(), config);
        let json_text = serde_json::to_string(&config).unwrap();
        assert_eq!(Config::from_json(&json_text).unwrap(), config);
    }

    #[test]
    fn an_override_patches_only_what_it_names() {
        let config = Config::from_toml(
            "[defaults.minute]\nfactor = 5.0\n[kinds.a]\nminute = { floor = 7 }\nhour.ceiling = 900\n",
        )
        .unwrap();
        let a = config.kind_config("a");
        assert_eq!((a.minute.factor, a.minute.floor), (5.0, 7));
        assert_eq!(
            (a.hour.ceiling, a.hour.floor),
            (Some(900), TimescaleConfig::HOUR.floor)
        );
        assert_eq!(
            config.kind_config("b").minute.floor,
            KindConfig::default().minute.floor
        );
    }

    #[test]
    fn settings_compile_into_the_detector_policy() {
        let p = KindConfig::default().compile("defaults").unwrap().policy;
        assert_eq!(p.bucket_ms * BUCKETS as u64, 60_000);
        assert_eq!(p.warmup_windows, 60);
        assert_eq!(p.guards[1].floor, 120);
        assert_eq!(p.guards[2].ceiling, u64::MAX);
        // The warm-up is time: an hour of 5-second windows is 720 of them.
        let short = KindConfig {
            window_secs: 5,
            ..KindConfig::default()
        };
        assert_eq!(short.compile("defaults").unwrap().policy.warmup_windows, 720);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = Config::from_toml("[defaults]\nfactr = 2.0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("factr"), "{err}");
        let err = Config::from_json(r#"{"kinds": {"a": {"flor": 1}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("flor"), "{err}");
    }
}
