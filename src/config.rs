//! The configuration users write: serde data with defaults, per-kind overrides, and all of its
//! validation, which names the field and the bad value. The breaker compiles it once
//! (`Config::compile`, which [`Config::validate`] runs too) into each kind's [`KindSettings`]:
//! the detector's [`Policy`] and the kind's recovery settings, so nothing is re-checked on the
//! send path.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::detect::{BUCKETS, Learning, Policy};
use crate::error::Error;
use crate::name::{self, OVERFLOW_KIND};

/// The longest window a kind may have (a snapshot is checked against it too).
pub(crate) const MAX_WINDOW_SECS: u64 = 86_400;
/// The longest warm-up, cool-down, probe and idle time.
const MAX_DURATION_SECS: u64 = 30 * 86_400;
/// The most kinds a registry may hold (`max_kinds`): about 0.7 GB of kinds.
pub(crate) const MAX_MAX_KINDS: usize = 1_000_000;

/// The whole breaker configuration: defaults for every kind, overrides for some.
///
/// ```
/// use spikebreaker::Config;
/// let config = Config::from_toml(r#"
///     [defaults]
///     factor = 4.0
///
///     [kinds."security.2fa_changed"]
///     floor = 20
///     recovery = "manual"
/// "#)?;
/// assert_eq!(config.defaults.factor, 4.0);
/// assert_eq!(config.kinds["security.2fa_changed"].floor, Some(20));
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
    /// forgotten (its counts and learned baseline with it) to make room for a new kind. At least
    /// the longest `window_secs`, at most 30 days. See [`Breaker::evict_idle`](crate::Breaker::evict_idle).
    pub evict_idle_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            defaults: KindConfig::default(),
            kinds: BTreeMap::new(),
            max_kinds: 4096,
            evict_idle_secs: 3600,
        }
    }
}

/// How a tripped kind comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// After `cooldown_secs`, once the attempted rate is back under the threshold, the kind goes
    /// half-open for `probe_secs` and closes if the rate stays normal.
    Auto,
    /// The kind stays open until an operator resets it.
    Manual,
}

/// Detection and recovery settings for one kind. Counts are per `window_secs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindConfig {
    /// Length of the sliding window the send count is taken over, in seconds.
    pub window_secs: u64,
    /// Trip when the window count exceeds `factor` times the learned normal...
    pub factor: f64,
    /// ...and also exceeds the normal by this many standard deviations (the larger of the
    /// learned one and the Poisson one, `sqrt(normal)`).
    pub margin_sigmas: f64,
    /// Never trip at or below this many sends a window, whatever the baseline.
    pub floor: u64,
    /// Always trip above this many sends a window, whatever the baseline. `None`: no ceiling.
    pub ceiling: Option<u64>,
    /// Until a baseline is learned (a new kind, or a restart without a snapshot), trip above
    /// this many sends a window.
    pub warmup_ceiling: u64,
    /// How much traffic must be learned before the baseline is trusted, in seconds.
    pub warmup_secs: u64,
    /// The learned normal may grow by at most this factor an hour, so a slowly ramping bug
    /// outruns it and trips while organic growth and daily swings are followed.
    pub max_growth_per_hour: f64,
    /// Half-life of the remembered peak, in hours: how long yesterday's busy hour and last
    /// week's busy day keep counting as normal.
    pub peak_half_life_hours: f64,
    /// How a tripped kind recovers.
    pub recovery: Recovery,
    /// With automatic recovery, how long a tripped kind stays open before it may probe.
    pub cooldown_secs: u64,
    /// With automatic recovery, how long a kind stays half-open before it closes.
    pub probe_secs: u64,
    /// Detect and report, but never block.
    pub dry_run: bool,
}

impl Default for KindConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            factor: 3.0,
            margin_sigmas: 6.0,
            floor: 100,
            ceiling: None,
            warmup_ceiling: 1000,
            warmup_secs: 3600,
            max_growth_per_hour: 1.5,
            peak_half_life_hours: 72.0,
            recovery: Recovery::Auto,
            cooldown_secs: 300,
            probe_secs: 60,
            dry_run: false,
        }
    }
}

/// A per-kind patch over [`Config::defaults`]: every field is optional.
#[allow(missing_docs)] // Each field means what the same field of `KindConfig` means.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin_sigmas: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_ceiling: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_growth_per_hour: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_half_life_hours: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

impl KindOverride {
    /// `base` with this override's fields laid over it.
    pub fn apply_to(&self, base: &KindConfig) -> KindConfig {
        KindConfig {
            window_secs: self.window_secs.unwrap_or(base.window_secs),
            factor: self.factor.unwrap_or(base.factor),
            margin_sigmas: self.margin_sigmas.unwrap_or(base.margin_sigmas),
            floor: self.floor.unwrap_or(base.floor),
            ceiling: self.ceiling.or(base.ceiling),
            warmup_ceiling: self.warmup_ceiling.unwrap_or(base.warmup_ceiling),
            warmup_secs: self.warmup_secs.unwrap_or(base.warmup_secs),
            max_growth_per_hour: self.max_growth_per_hour.unwrap_or(base.max_growth_per_hour),
            peak_half_life_hours: self.peak_half_life_hours.unwrap_or(base.peak_half_life_hours),
            recovery: self.recovery.unwrap_or(base.recovery),
            cooldown_secs: self.cooldown_secs.unwrap_or(base.cooldown_secs),
            probe_secs: self.probe_secs.unwrap_or(base.probe_secs),
            dry_run: self.dry_run.unwrap_or(base.dry_run),
        }
    }
}

impl Config {
    /// Parses TOML and validates the result.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let config: Self = toml::from_str(text).map_err(|e| Error::Parse {
            format: "TOML",
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses JSON and validates the result.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let config: Self = json_naming_the_field(text).map_err(|message| Error::Parse {
            format: "JSON",
            message,
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
            overrides.insert(kind.clone(), Arc::new(settings));
        }
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
        let overflow = Arc::new(KindSettings {
            learns: false,
            ..overflow_base.clone()
        });
        Ok(Compiled {
            defaults: Arc::new(defaults),
            overflow,
            overrides,
            max_kinds: self.max_kinds,
            evict_idle_ms,
        })
    }
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
    pub(crate) dry_run: bool,
    /// Whether the kind learns its baseline (all but the overflow kind, whose limit is fixed).
    pub(crate) learns: bool,
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
                "must be 1 to 86400 seconds",
            ));
        }
        finite_at_least(
            self.factor,
            1.0,
            &field("factor"),
            "must be a finite number of at least 1",
        )?;
        finite_at_least(
            self.margin_sigmas,
            0.0,
            &field("margin_sigmas"),
            "must be a finite number of at least 0",
        )?;
        finite_at_least(
            self.max_growth_per_hour,
            1.0,
            &field("max_growth_per_hour"),
            "must be a finite number of at least 1",
        )?;
        if !(self.peak_half_life_hours.is_finite() && self.peak_half_life_hours > 0.0) {
            return Err(Error::invalid(
                field("peak_half_life_hours"),
                self.peak_half_life_hours,
                "must be a finite number above 0",
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
        if self.warmup_ceiling < self.floor {
            return Err(Error::invalid(
                field("warmup_ceiling"),
                self.warmup_ceiling,
                "must be at least `floor`",
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

        let window_ms = self.window_secs * 1000;
        Ok(KindSettings {
            policy: Policy {
                bucket_ms: window_ms / BUCKETS as u64,
                factor: self.factor,
                margin_sigmas: self.margin_sigmas,
                floor: self.floor,
                ceiling: self.ceiling.unwrap_or(u64::MAX),
                warmup_ceiling: self.warmup_ceiling,
                learning: Learning::per_window(
                    self.window_secs,
                    self.warmup_secs,
                    self.max_growth_per_hour,
                    self.peak_half_life_hours,
                ),
            },
            recovery: self.recovery,
            cooldown_ms: self.cooldown_secs * 1000,
            probe_ms: self.probe_secs * 1000,
            dry_run: self.dry_run,
            learns: true,
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
        let config = Config::from_toml("[defaults]\nfactor = 5.0\n[kinds.a]\nfloor = 7\n").unwrap();
        let a = config.kind_config("a");
        assert_eq!((a.factor, a.floor), (5.0, 7));
        assert_eq!(config.kind_config("b").floor, KindConfig::default().floor);
    }

    #[test]
    fn per_window_constants_follow_the_hourly_settings() {
        let p = KindConfig::default().compile("defaults").unwrap().policy;
        assert_eq!(p.bucket_ms * BUCKETS as u64, 60_000);
        assert_eq!(p.learning.warmup_windows, 60);
        assert!((p.learning.growth_per_window.powi(60) - 1.5).abs() < 1e-9);
        assert!((p.learning.peak_decay_per_window.powi(60 * 72) - 0.5).abs() < 1e-9);
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
