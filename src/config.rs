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
/// The highest declared rate, in sends a minute: a billion a second.
const MAX_PER_MINUTE: f64 = 6e10;
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
    /// Per-kind overrides (empty by default); fields left out come from `defaults`. A key is a
    /// kind name, or a pattern: a prefix and one `*` at the end (`"security.*"`, `"sms*"`), which
    /// applies to every kind whose name starts with the prefix. A kind runs on one override, the
    /// most specific that applies: its exact name, else the pattern with the longest prefix, laid
    /// over `defaults` (overrides do not stack); see [`Config::override_for`]. `*` alone, or a `*`
    /// elsewhere, is refused (`[defaults]` is what applies to every kind).
    ///
    /// A kind named exactly always has a slot of its own, beyond `max_kinds`, and is never
    /// evicted; a pattern reserves no slot (the kinds it matches take slots as any new kind
    /// does, within `max_kinds`). Names follow the kind-name rule
    /// ([`validate_kind_name`](crate::validate_kind_name)); `_overflow` sets the overflow kind's
    /// settings, which only that exact key reaches.
    #[serde(deserialize_with = "name::unique_kinds")]
    pub kinds: BTreeMap<String, KindOverride>,
    /// The most kinds tracked at once besides those named exactly in `kinds` (4096 by default;
    /// 1 to 1,000,000); further kinds share the overflow kind
    /// ([`Breaker::OVERFLOW_KIND`](crate::Breaker::OVERFLOW_KIND)).
    pub max_kinds: usize,
    /// Once `max_kinds` are registered, a kind that is closed, not forced, held by no
    /// [`KindHandle`](crate::KindHandle) and has not been sent for this many seconds may be
    /// forgotten (its counts and what it learned with it) to make room for a new kind (3600 by
    /// default; at least the longest `window_secs`, at most 30 days). See
    /// [`Breaker::evict_idle`](crate::Breaker::evict_idle).
    pub evict_idle_secs: u64,
    /// Legitimate surges announced in advance (`[[surges]]`, none by default): see
    /// [`SurgeConfig`]. Each names one kind exactly (no pattern); surges of a kind may not overlap.
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
/// | `warmup_ceiling` | 500 (in an override that sets `minute.floor`: scaled with it) | at least 1 and at least `minute.floor` |
/// | `warmup_secs` | 3600 | at most 30 days |
/// | `max_growth_per_hour` | 1.5 | at least 1 |
/// | `max_growth_per_day` | 4 | at least 1 |
/// | `expected_per_minute` | none | a finite number above 0 |
/// | `recovery` | `"auto"` | `"auto"` or `"manual"` |
/// | `cooldown_secs` | 300 | at most 30 days |
/// | `probe_secs` | 60 | at most 30 days |
/// | `open_alert_secs` | 3600 | 1 to 30 days |
/// | `dry_run` | false | |
///
/// Read from TOML or JSON, it is a patch over these defaults, as an override is ([`KindOverride`]):
/// a timescale's table given in part keeps that timescale's defaults for the rest, and setting
/// `minute.floor` without `warmup_ceiling` scales the warm-up ceiling with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "KindOverride")]
pub struct KindConfig {
    /// Length of the minute window, the sliding window a send is judged on most finely, in
    /// seconds (1 to 3600; 60 by default). The hour and day windows are fixed.
    pub window_secs: u64,
    /// Guards of the minute window (`window_secs` long): bursts. By default
    /// [`TimescaleConfig::MINUTE`]: factor 3, sigmas 5, floor 50, no ceiling.
    pub minute: TimescaleConfig,
    /// Guards of the hour window: slow leaks. By default [`TimescaleConfig::HOUR`]: factor 2,
    /// sigmas 4.5, floor 120, no ceiling.
    pub hour: TimescaleConfig,
    /// Guards of the day window: very slow leaks. By default [`TimescaleConfig::DAY`]: factor 2,
    /// sigmas 4.5, floor 600, no ceiling.
    pub day: TimescaleConfig,
    /// Until the kind is warm (a new kind, or a restart without a snapshot), the minute window
    /// may hold at most this many sends, or the minute `ceiling` if that is lower (500 by
    /// default; at least 1 and at least `minute.floor`).
    ///
    /// **The warm-up follows the kind's own settings.** An override (`[kinds."…"]`) that sets
    /// `minute.floor` but not `warmup_ceiling` scales the defaults' `warmup_ceiling` as it scales
    /// the floor (rounded up): with the defaults' 500 over a floor of 50, a kind with
    /// `floor = 20` warms up under 200, one with `floor = 200` under 2,000. A minute `ceiling`
    /// caps it: a kind with `minute = { floor = 10, ceiling = 20 }` lets at most 20 through in a
    /// minute from its very first send, snapshot or not. An override that sets
    /// `warmup_ceiling` gets exactly that.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// let config = Config::from_toml(r#"
    ///     [kinds."security.*"]
    ///     minute = { floor = 20 }
    ///     [kinds."security.2fa_changed"]
    ///     minute = { floor = 10, ceiling = 20 }
    /// "#)?;
    /// assert_eq!(config.kind_config("email.welcome").warmup_ceiling, 500);
    /// assert_eq!(config.kind_config("security.login").warmup_ceiling, 200);
    /// assert_eq!(config.kind_config("security.2fa_changed").warmup_ceiling, 100); // capped at 20 by the ceiling
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub warmup_ceiling: u64,
    /// How long, in minute windows with sends, the kind learns before it is warm: this many
    /// seconds of them (3600 by default: an hour's worth of minutes with traffic; with
    /// `window_secs = 5`, 720 windows of 5 s; 0 to 30 days).
    pub warmup_secs: u64,
    /// Once a day is learned, the recent rate the kind is judged against may grow by at most
    /// this factor an hour, so a bug that ramps up outruns it (1.5 by default; at least 1).
    pub max_growth_per_hour: f64,
    /// Once a week is learned, the recent rate may stand above what the learned week expects
    /// for the time only by a lift that grows by at most this factor a day (4 by default; at
    /// least 1): organic growth is followed day by day, a bug that ramps up by 1.3 an hour is
    /// not. An operator's `relearn` lifts it at once.
    pub max_growth_per_day: f64,
    /// Sends a minute the kind is expected to make: declares a new high-volume kind, or one
    /// that must not be held to the warm-up ceilings after a restart that lost the snapshot.
    /// Until the kind has learned a day, it is judged as if it had learned this rate (and no
    /// less), with no warm-up ceilings; after that, by what it learned. None by default: a
    /// kind with nothing learned is held to the warm-up ceilings, and one that keeps sending
    /// above them stays open until an operator relearns it (a finite number above 0).
    ///
    /// ```
    /// use spikebreaker::Config;
    /// let config = Config::from_toml(r#"
    ///     [kinds."email.migration_notice"]
    ///     expected_per_minute = 1100
    /// "#)?;
    /// assert_eq!(config.kind_config("email.migration_notice").expected_per_minute, Some(1100.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub expected_per_minute: Option<f64>,
    /// How a tripped kind recovers (`"auto"` by default; `"auto"` or `"manual"`).
    pub recovery: Recovery,
    /// With automatic recovery, how long a tripped kind stays open before it may probe, in
    /// seconds (300 by default; 0 to 30 days).
    pub cooldown_secs: u64,
    /// With automatic recovery, how long a kind stays half-open before it closes, in seconds
    /// (60 by default; 0 to 30 days).
    pub probe_secs: u64,
    /// A kind open this long is reported once, with a `still_open` event, so an operator is
    /// told of a runaway that goes on or a lasting change in legitimate traffic (3600 by
    /// default; 1 second to 30 days).
    pub open_alert_secs: u64,
    /// Detect and report, but never block (false by default; `true` or `false`).
    pub dry_run: bool,
}

/// One timescale's guards. A window trips when it holds more than its limit: the most of
/// `floor`, `factor` times what is expected, and the count `sigmas` standard deviations above
/// what is expected (from the kind's learned spread), capped by `ceiling`.
///
/// | field | minute default | hour default | day default | range |
/// |---|---|---|---|---|
/// | `factor` | 3 | 2 | 2 | a finite number, at least 1 |
/// | `sigmas` | 5 | 4.5 | 4.5 | 1 to 50 |
/// | `floor` | 50 | 120 | 600 | 0 or more |
/// | `ceiling` | none | none | none | at least 1 and at least `floor` |
///
/// A table left out of the TOML gets that timescale's defaults; one given in part keeps that
/// timescale's defaults (in `[defaults]`) or the kind's (in an override) for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimescaleConfig {
    /// Never trip at or below this many times what is expected (3 minute, 2 hour, 2 day by
    /// default; a finite number, at least 1).
    pub factor: f64,
    /// How many standard deviations above what is expected a window may go (5 minute, 4.5 hour,
    /// 4.5 day by default; 1 to 50).
    pub sigmas: f64,
    /// Never trip at or below this many sends in the window (50 minute, 120 hour, 600 day by
    /// default; 0 or more).
    pub floor: u64,
    /// Always trip above this many sends in the window, whatever was learned (none by default;
    /// at least 1 and at least `floor`). `None`: no ceiling.
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
            max_growth_per_day: 4.0,
            expected_per_minute: None,
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
    pub max_growth_per_day: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_per_minute: Option<f64>,
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

impl From<KindOverride> for KindConfig {
    /// The defaults with `patch` laid over them: how `[defaults]` is read.
    fn from(patch: KindOverride) -> Self {
        patch.apply_to(&Self::default())
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
            warmup_ceiling: self.warmup_ceiling.unwrap_or_else(|| {
                self.minute
                    .floor
                    .map_or(base.warmup_ceiling, |floor| warmup_for(base, floor))
            }),
            warmup_secs: self.warmup_secs.unwrap_or(base.warmup_secs),
            max_growth_per_hour: self.max_growth_per_hour.unwrap_or(base.max_growth_per_hour),
            max_growth_per_day: self.max_growth_per_day.unwrap_or(base.max_growth_per_day),
            expected_per_minute: self.expected_per_minute.or(base.expected_per_minute),
            recovery: self.recovery.unwrap_or(base.recovery),
            cooldown_secs: self.cooldown_secs.unwrap_or(base.cooldown_secs),
            probe_secs: self.probe_secs.unwrap_or(base.probe_secs),
            open_alert_secs: self.open_alert_secs.unwrap_or(base.open_alert_secs),
            dry_run: self.dry_run.unwrap_or(base.dry_run),
        }
    }
}

/// The warm-up ceiling of a kind whose override sets its minute `floor` and no `warmup_ceiling`:
/// the base's, scaled by the same ratio as the floor (rounded up), so a kind made more sensitive
/// is more sensitive from its first send, and one made less so is not held to a ceiling under its
/// own floor. With the defaults (`floor = 50`, `warmup_ceiling = 500`) it is ten times the floor.
/// An override's floor of 0 scales as a floor of 1, so a kind with no floor still warms up (a
/// warm-up ceiling of 0 would refuse its every send, and a kind that sends nothing learns
/// nothing). A base with no floor has no ratio to scale by: its ceiling stands, raised to the
/// override's floor if that is higher.
fn warmup_for(base: &KindConfig, floor: u64) -> u64 {
    if base.minute.floor == 0 {
        return base.warmup_ceiling.max(floor).max(1);
    }
    let floor = floor.max(1);
    let scaled =
        (u128::from(base.warmup_ceiling) * u128::from(floor)).div_ceil(u128::from(base.minute.floor));
    u64::try_from(scaled).unwrap_or(u64::MAX).max(floor)
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

    /// Reads the configuration file at `path`, as TOML or JSON by its extension (`.toml`,
    /// `.json`), and validates it. An unreadable file or another extension is an error naming
    /// the path, a syntax error names the path and the position, a bad value the field.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("breaker.toml");
    /// std::fs::write(&path, "[kinds.\"security.*\"]\nrecovery = \"manual\"\n")?;
    /// let config = Config::from_file(&path)?;
    /// assert!(config.kinds.contains_key("security.*"));
    /// let error = Config::from_file(dir.path().join("breaker.yaml")).unwrap_err();
    /// assert!(error.to_string().contains("breaker.yaml"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parse: fn(&str) -> Result<Self, Error> = match extension.as_deref() {
            Some("toml") => Self::from_toml,
            Some("json") => Self::from_json,
            _ => {
                return Err(Error::File {
                    action: "read the configuration",
                    path: path.to_owned(),
                    message: "its name must end in `.toml` or `.json`, which says how to read it".to_owned(),
                });
            }
        };
        let text = std::fs::read_to_string(path).map_err(|error| Error::File {
            action: "read the configuration",
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        parse(&text).map_err(|error| match error {
            Error::Parse { format, message } => Error::Parse {
                format,
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// The settings in force for `kind`: the override that applies to it (see
    /// [`override_for`](Self::override_for)) laid over the defaults.
    ///
    /// ```
    /// use spikebreaker::{Config, Recovery};
    /// let config = Config::from_toml(r#"
    ///     [kinds."security.*"]
    ///     recovery = "manual"
    ///     [kinds."security.login"]
    ///     minute = { floor = 100 }
    /// "#)?;
    /// assert_eq!(config.kind_config("security.2fa_changed").recovery, Recovery::Manual);
    /// // The exact name wins, laid over the defaults alone: overrides do not stack.
    /// assert_eq!(config.kind_config("security.login").recovery, Recovery::Auto);
    /// assert_eq!(config.kind_config("email.welcome"), config.defaults);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind_config(&self, kind: &str) -> KindConfig {
        match self.override_for(kind) {
            Some((_, patch)) => patch.apply_to(&self.defaults),
            None => self.defaults.clone(),
        }
    }

    /// The `[kinds."…"]` entry that applies to `kind`, with its key: the one named exactly `kind`,
    /// or else the pattern with the longest prefix that `kind` starts with (`security.2fa.*`
    /// before `security.*`), or none (the kind runs on the defaults). The breaker resolves each
    /// kind so once, when it registers the kind and at each reload, never per send.
    pub fn override_for(&self, kind: &str) -> Option<(&str, &KindOverride)> {
        let mut keys = Keys::default();
        for (key, patch) in &self.kinds {
            keys.insert(key.as_str(), patch);
        }
        keys.get(kind).map(|(key, patch)| (*key, *patch))
    }

    /// The keys of [`kinds`](Self::kinds) that apply to none of `kinds` (each a kind name, as in a
    /// send log): overrides that are mistyped, or meant for kinds that never sent. A pattern that
    /// every kind it matches takes from a more specific key counts as applying to none.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// let config = Config::from_toml(r#"
    ///     [kinds."security.*"]
    ///     recovery = "manual"
    ///     [kinds."email.welcom"]
    ///     minute = { floor = 10 }
    /// "#)?;
    /// let seen = ["security.2fa_changed", "email.welcome"];
    /// assert_eq!(config.unmatched_keys(seen), vec!["email.welcom"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unmatched_keys<'k>(&self, kinds: impl IntoIterator<Item = &'k str>) -> Vec<&str> {
        let mut keys = Keys::default();
        for key in self.kinds.keys() {
            keys.insert(key.as_str(), ());
        }
        let applied: std::collections::BTreeSet<&str> = kinds
            .into_iter()
            .filter_map(|kind| keys.get(kind).map(|(key, _)| *key))
            .collect();
        self.kinds
            .keys()
            .map(String::as_str)
            .filter(|key| !applied.contains(key))
            .collect()
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
        let defaults = Arc::new(self.defaults.compile("defaults")?);
        let mut overrides = Keys::default();
        for (key, patch) in &self.kinds {
            if let Some(reason) = name::problem(key).or_else(|| pattern_problem(key)) {
                return Err(Error::invalid("kinds", name::shown(key), reason));
            }
            let settings = patch
                .apply_to(&self.defaults)
                .compile(&format!("kinds.{key:?}"))?;
            overrides.insert(key.clone(), Arc::new(settings));
        }
        let mut surges: BTreeMap<&str, Vec<(Planned, String)>> = BTreeMap::new();
        for (i, planned) in self.surges.iter().enumerate() {
            let path = format!("surges[{i}]");
            if planned.kind.contains('*') {
                return Err(Error::invalid(
                    format!("{path}.kind"),
                    name::shown(&planned.kind),
                    "a surge names one kind, not a pattern",
                ));
            }
            let checked = planned.compile(&path)?;
            surges.entry(&planned.kind).or_default().push((checked, path));
        }
        for (kind, planned) in surges {
            // A surge gives its kind settings of its own: those it would run on, plus the surge.
            let mut settings = (**overrides.get(kind).map_or(&defaults, |(_, found)| found)).clone();
            settings.surges = surge::schedule(planned)?;
            overrides.insert(kind.to_owned(), Arc::new(settings));
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
        // The overflow kind's limit is fixed: traffic must not teach it a higher one. Only its
        // own name sets it: a pattern never reaches it.
        let overflow_base = overrides.exact.get(OVERFLOW_KIND).unwrap_or(&defaults);
        let mut overflow = (**overflow_base).clone();
        overflow.policy.learns = false;
        let overflow = Arc::new(overflow);
        Ok(Compiled {
            defaults,
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

/// What a `[kinds."…"]` key may not be as a pattern: a `*` anywhere but at the end, or alone.
fn pattern_problem(key: &str) -> Option<&'static str> {
    let stars = key.matches('*').count();
    if stars == 0 {
        None
    } else if key == "*" {
        Some("`*` alone would match every kind: set `[defaults]` instead")
    } else if stars > 1 || !key.ends_with('*') {
        Some("a pattern is a prefix followed by one `*` at the end (`security.*`)")
    } else {
        None
    }
}

/// `[kinds."…"]` entries by key, as a kind is matched to one: exact names, and patterns (a prefix
/// and a final `*`) longest prefix first. The configuration and the breaker resolve kinds through
/// this one type, so a [`Config::kind_config`] and the kind's running settings always agree.
#[derive(Debug)]
pub(crate) struct Keys<K, T> {
    pub(crate) exact: BTreeMap<K, T>,
    /// `(key, value)`, longest key (and so longest prefix) first.
    patterns: Vec<(K, T)>,
}

impl<K, T> Default for Keys<K, T> {
    fn default() -> Self {
        Self {
            exact: BTreeMap::new(),
            patterns: Vec::new(),
        }
    }
}

impl<K: AsRef<str> + Ord, T> Keys<K, T> {
    /// Adds (or replaces) the entry under `key`: a pattern if it ends in `*` after a prefix.
    pub(crate) fn insert(&mut self, key: K, value: T) {
        let text = key.as_ref();
        if text.len() > 1 && text.ends_with('*') {
            self.patterns.retain(|(existing, _)| existing.as_ref() != text);
            let at = self
                .patterns
                .partition_point(|(longer, _)| longer.as_ref().len() >= text.len());
            self.patterns.insert(at, (key, value));
        } else {
            self.exact.insert(key, value);
        }
    }

    /// The entry that applies to `kind`, with its key: exact, else the longest prefix.
    pub(crate) fn get(&self, kind: &str) -> Option<(&K, &T)>
    where
        K: std::borrow::Borrow<str>,
    {
        if let Some(found) = self.exact.get_key_value(kind) {
            return Some(found);
        }
        self.patterns
            .iter()
            .find(|(key, _)| kind.starts_with(&key.as_ref()[..key.as_ref().len() - 1]))
            .map(|(key, value)| (key, value))
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.exact
            .values()
            .chain(self.patterns.iter().map(|(_, value)| value))
    }
}

/// A validated configuration: settings for each overridden kind or pattern plus the default
/// ones, each shared by the kinds that run on them.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) defaults: Arc<KindSettings>,
    /// The overflow kind's: its override's or the defaults, never learning.
    pub(crate) overflow: Arc<KindSettings>,
    /// By key: see [`Compiled::settings`].
    overrides: Keys<String, Arc<KindSettings>>,
    pub(crate) max_kinds: usize,
    pub(crate) evict_idle_ms: u64,
}

impl Compiled {
    /// The settings `kind` runs on: its own name's, else the longest pattern's that matches it,
    /// else the defaults (the overflow kind: its own, never learning). Cold: a kind reads it when
    /// it registers and at each reload.
    pub(crate) fn settings(&self, kind: &str) -> &Arc<KindSettings> {
        if kind == OVERFLOW_KIND {
            return &self.overflow;
        }
        self.overrides
            .get(kind)
            .map_or(&self.defaults, |(_, settings)| settings)
    }

    /// Whether `kind` is named in the configuration (by its exact name: a pattern reserves
    /// nothing), and so has a slot of its own.
    pub(crate) fn names(&self, kind: &str) -> bool {
        kind != OVERFLOW_KIND && self.overrides.exact.contains_key(kind)
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
        finite_at_least(
            self.max_growth_per_day,
            1.0,
            &field("max_growth_per_day"),
            "must be a finite number of at least 1",
        )?;
        if let Some(rate) = self.expected_per_minute {
            if !(rate.is_finite() && rate > 0.0 && rate <= MAX_PER_MINUTE) {
                return Err(Error::invalid(
                    field("expected_per_minute"),
                    rate,
                    "must be a number above 0 and at most 60 billion (a billion a second)",
                ));
            }
        }
        if self.warmup_ceiling < self.minute.floor.max(1) {
            return Err(Error::invalid(
                field("warmup_ceiling"),
                self.warmup_ceiling,
                "must be at least 1 and at least `minute.floor` (at 0, a new kind could send nothing and so never learn)",
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
                growth_per_day: self.max_growth_per_day,
                expected: self.expected_per_minute,
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
    fn a_timescale_given_in_part_keeps_its_own_defaults() {
        let config =
            Config::from_toml("[defaults.hour]\nfloor = 200\n[defaults.minute]\nfloor = 20\n").unwrap();
        let hour = config.defaults.hour;
        assert_eq!((hour.factor, hour.sigmas, hour.floor), (2.0, 4.5, 200));
        assert_eq!(config.defaults.warmup_ceiling, 200, "scaled with the floor");
        let explicit = Config::from_toml("[defaults]\nwarmup_ceiling = 40\nminute.floor = 20\n").unwrap();
        assert_eq!(explicit.defaults.warmup_ceiling, 40);
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
