//! The configuration's types: [`Config`], each kind's [`KindConfig`] and its timescales'
//! [`TimescaleConfig`], the patches an override lays over them, and [`Recovery`]. Plain serde
//! data with defaults; reading it is [`load`](super::load)'s, checking it
//! [`compile`](super::compile)'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compile::MAX_COUNT;
use super::slices::{RepeatConfig, RepeatOverride, SliceConfig, SliceOverride};
use super::surge::SurgeConfig;
use crate::name;

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
    /// ([`validate_kind_name`](crate::config::validate_kind_name)); `_overflow` sets the overflow kind's
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
/// | `warmup_ceiling` | 500 (in an override that sets `minute.floor`: scaled with it) | at least 1 and at least `minute.floor`; at most 1,000,000,000 |
/// | `warmup_secs` | 3600 | 1 second to 30 days |
/// | `max_growth_per_hour` | 1.5 | at least 1 |
/// | `max_growth_per_day` | 4 | at least 1 |
/// | `expected_per_minute` | none | a finite number above 0 |
/// | `recovery` | `"auto"` | `"auto"` or `"manual"` |
/// | `cooldown_secs` | 300 | at most 30 days |
/// | `probe_secs` | 60 | at most 30 days |
/// | `open_alert_secs` | 3600 | 1 to 30 days |
/// | `dry_run` | false | |
/// | `slices` | see [`SliceConfig`] | |
/// | `repeats` | see [`RepeatConfig`] | |
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
    /// default; at least 1 and at least `minute.floor`, at most 1,000,000,000).
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
    /// `window_secs = 5`, 720 windows of 5 s; 1 second to 30 days). However short, the warm-up
    /// lasts until the kind has learned its rate from a whole 5-minute slot of its traffic, so
    /// that it is never judged as expecting nothing.
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
    /// Slices below the kind: which dimensions are tracked, their limits and safe lists (see
    /// [`SliceConfig`]).
    pub slices: SliceConfig,
    /// The repeat check: the same notification to one recipient again and again (see
    /// [`RepeatConfig`]).
    pub repeats: RepeatConfig,
}

/// One timescale's guards. A window trips when it holds more than its limit: the most of
/// `floor`, `factor` times what is expected, and the count `sigmas` standard deviations above
/// what is expected (from the kind's learned spread), capped by `ceiling`.
///
/// | field | minute default | hour default | day default | range |
/// |---|---|---|---|---|
/// | `factor` | 3 | 2 | 2 | 1 to 1,000 |
/// | `sigmas` | 5 | 4.5 | 4.5 | 1 to 50 |
/// | `floor` | 50 | 120 | 600 | 0 to 1,000,000,000 |
/// | `ceiling` | none | none | none | at least 1 and at least `floor`; at most 1,000,000,000 |
///
/// A table left out of the TOML gets that timescale's defaults; one given in part keeps that
/// timescale's defaults (in `[defaults]`) or the kind's (in an override) for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimescaleConfig {
    /// Never trip at or below this many times what is expected (3 minute, 2 hour, 2 day by
    /// default; 1 to 1,000).
    pub factor: f64,
    /// How many standard deviations above what is expected a window may go (5 minute, 4.5 hour,
    /// 4.5 day by default; 1 to 50).
    pub sigmas: f64,
    /// Never trip at or below this many sends in the window (50 minute, 120 hour, 600 day by
    /// default; 0 to 1,000,000,000).
    pub floor: u64,
    /// Always trip above this many sends in the window, whatever was learned (none by default;
    /// at least 1 and at least `floor`, at most 1,000,000,000). `None`: no ceiling.
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
            slices: SliceConfig::default(),
            repeats: RepeatConfig::default(),
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
    #[serde(skip_serializing_if = "SliceOverride::is_empty")]
    pub slices: SliceOverride,
    #[serde(skip_serializing_if = "RepeatOverride::is_empty")]
    pub repeats: RepeatOverride,
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
    pub(super) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub(super) fn apply_to(&self, base: &TimescaleConfig) -> TimescaleConfig {
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
            slices: self.slices.apply_to(&base.slices),
            repeats: self.repeats.apply_to(&base.repeats),
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
    // Scaled, it stays within what a limit may be, unless the floor itself is beyond it.
    u64::try_from(scaled)
        .unwrap_or(u64::MAX)
        .min(MAX_COUNT)
        .max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
