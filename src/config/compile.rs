//! Checking a configuration and compiling it, once, into the form the engine runs on: each
//! kind's [`KindSettings`] (the detector's [`Policy`] and the kind's recovery), shared by the
//! kinds that run on them ([`Compiled`]). Every error names the field and the bad value.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::keys::{Keys, pattern_problem};
use super::surge::{self, Planned};
use super::{Config, KindConfig, Recovery, TimescaleConfig};
use crate::detect::{BUCKETS, Guards, Policy};
use crate::error::Error;
use crate::name::{self, OVERFLOW_KIND};
use crate::slice::SliceSettings;

/// The longest minute window a kind may have.
const MAX_WINDOW_SECS: u64 = 3_600;
/// The most standard deviations a limit may sit above what is expected.
const MAX_SIGMAS: f64 = 50.0;
/// The longest warm-up, cool-down, probe and idle time.
const MAX_DURATION_SECS: u64 = 30 * 86_400;
/// The highest declared rate, in sends a minute: a billion a second.
const MAX_PER_MINUTE: f64 = 6e10;
/// The most kinds a registry may hold (`max_kinds`): about 0.7 GB of kinds.
const MAX_MAX_KINDS: usize = 1_000_000;
/// The largest count a limit may be set to (`floor`, `ceiling`, `warmup_ceiling`): a billion
/// sends in one window. The detector keeps limits under 2^32 and takes a larger one for no
/// limit at all, so a larger setting would switch detection off without saying so.
pub(crate) const MAX_COUNT: u64 = 1_000_000_000;
/// The largest `factor`: a kind may run at a thousand times its normal before it trips. Beyond
/// it, every limit is no limit at all (`factor = 1e300`), which is detection switched off.
const MAX_FACTOR: f64 = 1_000.0;

impl Config {
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
            let mut settings = patch
                .apply_to(&self.defaults)
                .compile(&format!("kinds.{key:?}"))?;
            if key.ends_with('*') {
                settings.family = Some(Arc::from(key.as_str()));
            }
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
            if planned.kind == OVERFLOW_KIND {
                return Err(Error::invalid(
                    format!("{path}.kind"),
                    name::shown(&planned.kind),
                    surge::OVERFLOW_REASON,
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
        overflow.slices = Arc::new((*overflow.slices).clone().off());
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

    /// The settings of the family called `key` (a `prefix.*` key), if the configuration has it.
    pub(crate) fn family(&self, key: &str) -> Option<&Arc<KindSettings>> {
        self.overrides
            .get(key)
            .filter(|(found, _)| found.as_str() == key)
            .map(|(_, settings)| settings)
            .filter(|settings| settings.family.is_some())
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
    /// The `prefix.*` key of the override these settings come from: the family whose sum the
    /// kinds on them are also judged by. None for the defaults and for a kind named exactly.
    pub(crate) family: Option<Arc<str>>,
    /// Slices below the kind and the repeat check.
    pub(crate) slices: Arc<SliceSettings>,
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
        if self.warmup_ceiling > MAX_COUNT {
            return Err(Error::invalid(
                field("warmup_ceiling"),
                self.warmup_ceiling,
                "must be at most 1000000000 (a larger warm-up ceiling is no limit: a new kind could run away unchecked)",
            ));
        }
        if self.warmup_secs == 0 {
            return Err(Error::invalid(
                field("warmup_secs"),
                0,
                "must be at least 1 second (with no warm-up a new kind is judged before it has learned a rate: \
                 expecting nothing, it trips at its floor on its own traffic and cannot recover)",
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
        let cooldown_ms = self.cooldown_secs * 1000;
        let slices = self
            .slices
            .compile(path, &self.repeats, self.recovery, cooldown_ms)?;
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
            cooldown_ms,
            probe_ms: self.probe_secs * 1000,
            open_alert_ms: self.open_alert_secs * 1000,
            dry_run: self.dry_run,
            surges: Vec::new(),
            family: None,
            slices: Arc::new(slices),
        })
    }
}

impl TimescaleConfig {
    pub(super) fn compile(&self, path: &str) -> Result<Guards, Error> {
        let field = |name: &str| format!("{path}.{name}");
        if !(self.factor.is_finite() && (1.0..=MAX_FACTOR).contains(&self.factor)) {
            return Err(Error::invalid(
                field("factor"),
                shown_f64(self.factor),
                "must be a number from 1 to 1000 (a larger factor is no limit: detection switched off)",
            ));
        }
        if self.floor > MAX_COUNT {
            return Err(Error::invalid(
                field("floor"),
                self.floor,
                "must be at most 1000000000 (a larger floor is no limit: detection switched off)",
            ));
        }
        if !(self.sigmas.is_finite() && (1.0..=MAX_SIGMAS).contains(&self.sigmas)) {
            return Err(Error::invalid(
                field("sigmas"),
                self.sigmas,
                "must be a number from 1 to 50 (under one standard deviation, ordinary counts trip)",
            ));
        }
        if let Some(ceiling) = self.ceiling {
            if ceiling < self.floor.max(1) || ceiling > MAX_COUNT {
                return Err(Error::invalid(
                    field("ceiling"),
                    ceiling,
                    "must be at least 1, at least `floor` and at most 1000000000 (leave it out for no ceiling)",
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
        Err(Error::invalid(field, shown_f64(value), reason))
    }
}

/// A number as an error shows it: `1e300`, not three hundred digits.
fn shown_f64(value: f64) -> String {
    if value.is_finite() && value.abs() >= 1e15 {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
