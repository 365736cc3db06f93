//! What a kind has learned of its own traffic, and how it learns: everything a snapshot keeps.
//!
//! - **The week**: sends in each of the 168 hours of the week ([`Profile`]), learned an hour
//!   late (an hour is learned when the next one ends, so a runaway has tripped before it can
//!   teach itself), an hour a trip touched at a quarter of the weight with its count capped.
//! - **The recent rate**: a 30-minute moving average of sends a minute, learned from each
//!   5-minute slot. Once a day is learned, what is used of it may grow by at most
//!   `growth_per_hour` an hour, and where the week knows the hour, may stand above the week's
//!   figure only by the **lift**, which (once a week is learned) grows by at most
//!   `growth_per_day` a day: a bug that ramps up outruns both, and a rising spike cannot lift
//!   what is expected of it. Organic growth lifts it day by day until the week has learned it.
//! - **The long-run rate**: sends an hour over about a week; what is expected never falls
//!   under a tenth of it.
//! - **The spread**: the overdispersion of minute counts, and of hour counts, around what was
//!   expected (moment estimates weighted by how much each hour expected, each count held
//!   within `factor` of what it expected, so that the spikes the limits are there to catch do
//!   not widen them), and the size of each ordinary hour's busiest minute, so that kinds that
//!   send in bursts or batches are judged by what their bursts look like.
//! - **The busiest minute**: of this week and of the last, so that a kind that never sends more
//!   than a handful a minute is not given the floor of a busy one.
//! - **Warm-up**: minute windows with sends learned; until `warmup_windows`, only the warm-up
//!   ceilings (unless the configuration declares the kind's expected rate).

use super::limit::upper_quantile;
use super::policy::Policy;
use super::profile::{HOURS, Profile, hour_of_week};

pub(crate) const MINUTE_MS: u64 = 60_000;
pub(crate) const HOUR_MS: u64 = 60 * MINUTE_MS;

/// Half-life of the recent rate.
const RECENT_HALF_LIFE_MS: f64 = 30.0 * MINUTE_MS as f64;
/// What is expected never falls under this share of the long-run rate.
const LONGRUN_FLOOR: f64 = 0.1;
/// Weight of an hour in the long-run rate: about a week.
const LONGRUN_ALPHA: f64 = 1.0 / 168.0;
/// The spread before any is learned (minute; hour and day): wide, so a new kind's bursts
/// are tolerated until its own are known.
const PHI_START: [f64; 2] = [1.0, 0.1];
/// Weight of one hour in the spread's moments, once a few are learned: about two and three days.
const PHI_ALPHA: [f64; 2] = [1.0 / 48.0, 1.0 / 72.0];
/// The widest spread learned.
const PHI_MAX: f64 = 10.0;
/// Weight of an hour a trip touched, in what is learned (its count capped at its limit).
const TRIPPED_WEIGHT: f64 = 0.25;
/// The longest silence, with no roll-over at all, that is learned as silence (an hour of the week
/// with no send, the recent rate falling). A longer gap (a machine suspended, a clock jump, a
/// quiet kind in a service that does not call `refresh`) teaches nothing, so it cannot collapse
/// what was learned. A service that calls `refresh` rolls its kinds over as time passes, and
/// their silent hours are learned as they end.
pub(crate) const MAX_SILENT_HOURS: u64 = 1;
/// Hours learned before the day window is judged and the recent rate's growth is bounded.
pub(crate) const DAY_HOURS: u32 = 24;
/// Standard deviations a count reaches about once in the sixty minutes of an hour.
const HOURLY_SIGMAS: f64 = 2.4;
/// How far beyond its usual size (in spreads of its logarithm) an hour's busiest minute may go.
const BURST_SPREADS: f64 = 4.0;
/// The most a minute's ordinary bursts may reach over its hourly quantile, as a logarithm
/// (about 1,100 times): however erratic a kind (or a restored snapshot) is, its minute window
/// keeps a limit.
const MAX_BURST_LOG: f64 = 7.0;
/// Hours learned before bursts are judged by the kind's own.
const BURST_AFTER_HOURS: u32 = 3;
/// Hours in a week: the busiest minute is kept per week of hours learned.
pub(crate) const WEEK_HOURS: u32 = 168;
/// While a kind runs above its week, its lift halves in this many hours (a week).
const LIFT_HALF_LIFE_HOURS: f64 = 168.0;
/// "Not known yet", for last week's busiest minute.
const UNKNOWN: f32 = -1.0;

/// What a kind has learned. Figures are kept in single precision, which holds rates and spreads
/// to far better than their own noise, so that a kind stays small.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Learned {
    /// Sends in each hour of the week.
    pub(crate) profile: Profile,
    /// Sends a minute, a 30-minute moving average.
    pub(crate) average: f32,
    /// What is used of `average`: its growth is bounded once a day is learned.
    pub(crate) recent: f32,
    /// How far above the week's figure for the time `recent` may stand (1: not above): it
    /// follows the recent rate over the week's figure, growing by at most `growth_per_day` a
    /// day.
    pub(crate) lift: f32,
    /// Sends an hour over about the last week.
    pub(crate) longrun: f32,
    /// Per group (minute; hour and day), moving sums of `(x - mu)^2 - mu` and of `mu^2`: the
    /// overdispersion is their ratio ([`Learned::phi`]).
    pub(crate) phi_moments: [[f32; 2]; 2],
    /// Hours each group of the spread has learned from.
    pub(crate) phi_hours: [u32; 2],
    /// Mean and variance of the logarithm of each ordinary hour's busiest minute over what a
    /// minute reaches about once an hour by the spread alone.
    pub(crate) burst: [f32; 2],
    /// Hours the bursts have been learned from.
    pub(crate) burst_hours: u32,
    /// The busiest clean minute window of this week of hours learned, and of the last (`-1`: not
    /// known yet).
    pub(crate) peak: [f32; 2],
    /// Minute windows with sends learned (the warm-up; saturating).
    pub(crate) minutes: u32,
    /// Hours learned.
    pub(crate) hours: u32,
}

impl Default for Learned {
    fn default() -> Self {
        Self {
            profile: Profile::default(),
            average: 0.0,
            recent: 0.0,
            lift: 1.0,
            longrun: 0.0,
            phi_moments: [[0.0; 2]; 2],
            phi_hours: [0; 2],
            burst: [0.0; 2],
            burst_hours: 0,
            peak: [0.0, UNKNOWN],
            minutes: 0,
            hours: 0,
        }
    }
}

/// The hour being filled, or the one waiting to be learned.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct HourStats {
    /// Absolute hour (`time / HOUR_MS`, saturating: the year 490,000 is far enough).
    pub(crate) index: u32,
    /// Sends in it (saturating).
    pub(crate) sends: u32,
    /// A trip, a force or a probe touched it.
    pub(crate) tripped: bool,
    /// Its minutes against what they expected: sums of `(x - mu)^2 - mu` and of `mu^2`.
    pub(crate) dev: f32,
    pub(crate) mu2: f32,
    /// Its busiest minute over what a minute reaches about once an hour by the spread alone.
    pub(crate) peak: f32,
}

impl HourStats {
    pub(crate) fn starting(index: u64) -> Self {
        Self {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            ..Self::default()
        }
    }

    /// Counts `count` more sends.
    pub(crate) fn add(&mut self, count: u64) {
        self.sends = self
            .sends
            .saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
    }
}

impl Learned {
    /// Whether the kind is judged by what it learned (and its declared rate) rather than by
    /// the warm-up ceilings.
    pub(crate) fn is_warm(&self, policy: &Policy) -> bool {
        policy.learns && (self.minutes >= policy.warmup_windows || policy.expected.is_some())
    }

    /// Learns a complete minute that held `count` sends where `mu` were expected, followed by
    /// `quiet` empty minutes, into `hour`.
    pub(crate) fn learn_minute(
        &mut self,
        policy: &Policy,
        hour: &mut HourStats,
        count: u64,
        quiet: u64,
        mu: f64,
    ) {
        if !self.is_warm(policy) {
            // The minute that would end the warm-up waits for the recent rate, learned from
            // whole 5-minute slots: a kind warm before one has taught it its rate would be judged
            // as expecting nothing (its floor), trip on its own traffic and, open, never learn
            // the rate that would calm it.
            let last = self.minutes.saturating_add(1) >= policy.warmup_windows;
            if count > 0 && (!last || self.average > 0.0) {
                self.minutes += 1;
            }
            return;
        }
        self.minutes = self.minutes.saturating_add(1);
        self.peak[0] = self.peak[0].max(count as f32);
        if mu <= 0.0 {
            return;
        }
        // A minute far above what it expected says more about a spike than about the spread.
        let x = (count as f64).min(policy.guards[0].factor * mu);
        let quiet = quiet.min(60) as f64;
        hour.dev += ((x - mu).powi(2) - mu + quiet * (mu * mu - mu)) as f32;
        hour.mu2 += (mu * mu * (1.0 + quiet)) as f32;
        let hourly = upper_quantile(mu, self.phi(0), HOURLY_SIGMAS);
        if hourly >= 1.0 {
            hour.peak = hour.peak.max((count as f64 / hourly) as f32);
        }
    }

    /// Learns a complete 5-minute slot of `count` sends, followed by `skipped` empty slots, into
    /// the recent rate and the lift over `seasonal`, the sends a minute the week expects then
    /// (if it knows the hour); a slot that was not clean teaches only `shadow`, the rate attempted
    /// while open.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn learn_slot(
        &mut self,
        policy: &Policy,
        slot_ms: u64,
        count: u64,
        skipped: u64,
        clean: bool,
        seasonal: Option<f64>,
        shadow: &mut f32,
    ) {
        let per_minute = count as f64 * MINUTE_MS as f64 / slot_ms as f64;
        let alpha = 1.0 - 0.5f64.powf(slot_ms as f64 / RECENT_HALF_LIFE_MS);
        if !clean {
            let old = f64::from(*shadow);
            *shadow = if old == 0.0 {
                per_minute
            } else {
                old + alpha * (per_minute - old)
            } as f32;
            return;
        }
        if self.is_warm(policy) {
            let mut average = f64::from(self.average);
            average += alpha * (per_minute - average);
            if skipped <= MAX_SILENT_HOURS * HOUR_MS / slot_ms {
                average *= (1.0 - alpha).powf(skipped as f64);
            }
            self.average = average as f32;
            // Before a day is learned the kind's first day may ramp up as fast as it likes:
            // there is no week yet to tell a morning from a runaway. Before a week is learned,
            // the week knows each hour from a day or two, so the lift grows by the hourly bound.
            let hours = slot_ms as f64 / HOUR_MS as f64;
            let hourly = if self.hours >= DAY_HOURS {
                policy.growth_per_hour.powf(hours)
            } else {
                f64::INFINITY
            };
            self.recent = average.min((f64::from(self.recent) * hourly).max(0.1)) as f32;
            if let Some(seasonal) = seasonal.filter(|&s| s > 0.0) {
                self.lift = self.next_lift(policy, average / seasonal, hours, hourly) as f32;
            }
        } else if count > 0 {
            // A running average until warm: every slot with sends weighs alike.
            let slots = f64::from(self.minutes.max(1)) * policy.window_ms() as f64 / slot_ms as f64;
            let average = f64::from(self.average);
            self.average = (average + alpha.max(1.0 / (slots + 1.0)) * (per_minute - average)) as f32;
            self.recent = self.average;
        }
    }

    /// The lift after a slot of `hours` in which the kind ran at `ratio` times what the week
    /// expected. It rises towards the ratio by at most `growth_per_day` a day (once a week is
    /// learned; the hourly bound `hourly` before). While the kind still runs above its week it
    /// falls only slowly (it halves in `LIFT_HALF_LIFE_HOURS`), so that a lasting change keeps
    /// its lift at hours the week has not relearned yet; once the kind is back under its week,
    /// it falls back to none within hours.
    fn next_lift(&self, policy: &Policy, ratio: f64, hours: f64, hourly: f64) -> f64 {
        let lift = f64::from(self.lift);
        if ratio >= lift {
            let growth = if self.hours >= WEEK_HOURS {
                policy.growth_per_day.powf(hours / 24.0).min(hourly)
            } else {
                hourly
            };
            ratio.min(lift.max(1.0) * growth)
        } else if ratio >= 1.0 {
            ratio.max(lift * 0.5f64.powf(hours / LIFT_HALF_LIFE_HOURS))
        } else {
            ratio.max((lift * 0.5f64.powf(hours)).max(1.0).min(lift))
        }
    }

    /// Learns a complete hour.
    pub(crate) fn learn_hour(&mut self, policy: &Policy, hour: &HourStats) {
        let how = hour_of_week(u64::from(hour.index) * HOUR_MS);
        let seen = self.profile.get(how);
        let mut sends = f64::from(hour.sends);
        let mut weight = 1.0;
        if hour.tripped {
            // Never a new hour of the week: a one-off runaway must not become its normal.
            if seen.is_none() {
                return;
            }
            let expected = self
                .profile
                .expected(how)
                .unwrap_or(f64::from(self.recent) * 60.0);
            let guards = &policy.guards[1];
            sends = sends.min((guards.factor * expected).max(guards.floor as f64));
            weight = TRIPPED_WEIGHT;
        } else {
            if let Some(mu) = seen.filter(|&mu| mu > 0.0) {
                // Held within `factor` of what it expected either way: a spike or a holiday
                // says little about how ordinary hours spread.
                let factor = policy.guards[1].factor;
                let x = sends.clamp(mu / factor, mu * factor);
                self.learn_phi(1, (x - mu).powi(2) - mu, mu * mu);
            }
            if hour.mu2 > 0.0 {
                self.learn_phi(0, f64::from(hour.dev), f64::from(hour.mu2));
            }
            if hour.peak > 0.0 {
                self.learn_burst(f64::from(hour.peak).ln());
            }
        }
        if hour.sends == 0 && !self.is_warm(policy) {
            return;
        }
        self.profile.learn(how, sends, weight, self.hours);
        let alpha = LONGRUN_ALPHA.max(1.0 / (f64::from(self.hours) + 1.0)) * weight;
        let longrun = f64::from(self.longrun);
        self.longrun = (longrun + alpha * (sends - longrun)) as f32;
        self.hours = self.hours.saturating_add(1);
        if self.hours % WEEK_HOURS == 0 {
            self.peak = [0.0, self.peak[0]];
        }
    }

    /// The busiest clean minute window of the last week or two, once a whole week is known.
    pub(crate) fn busiest_minute(&self) -> Option<f64> {
        let [this, last] = self.peak;
        (last >= 0.0).then(|| f64::from(this.max(last)))
    }

    /// Learns one hour's moments of the spread: `dev`, the sum of `(x - mu)^2 - mu` over its
    /// windows, and `mu2`, the sum of `mu^2`. The spread is the ratio of their moving sums, so
    /// an hour weighs by how much it expected: a quiet hour says little about the spread.
    fn learn_phi(&mut self, group: usize, dev: f64, mu2: f64) {
        let n = f64::from(self.phi_hours[group]);
        let alpha = PHI_ALPHA[group].max(1.0 / (n + 1.0));
        for (sum, x) in self.phi_moments[group].iter_mut().zip([dev, mu2]) {
            *sum = (f64::from(*sum) + alpha * (x - f64::from(*sum))) as f32;
        }
        self.phi_hours[group] = self.phi_hours[group].saturating_add(1);
    }

    /// The overdispersion of minute counts (`group` 0) or of hour and day counts (1): the ratio
    /// of its moments once any is learned, and wide before.
    pub(crate) fn phi(&self, group: usize) -> f64 {
        let [num, den] = self.phi_moments[group].map(f64::from);
        if self.phi_hours[group] == 0 || den <= 0.0 {
            PHI_START[group]
        } else {
            (num / den).clamp(0.0, PHI_MAX)
        }
    }

    fn learn_burst(&mut self, log_peak: f64) {
        let n = f64::from(self.burst_hours);
        let alpha = PHI_ALPHA[0].max(1.0 / (n + 1.0));
        let [mean, var] = self.burst.map(f64::from);
        let delta = log_peak - mean;
        self.burst = [
            (mean + alpha * delta) as f32,
            ((1.0 - alpha) * (var + alpha * delta * delta)) as f32,
        ];
        self.burst_hours = self.burst_hours.saturating_add(1);
    }

    /// What a minute expecting `mu` may hold by the kind's usual bursts (0 until learned).
    pub(crate) fn burst_limit(&self, mu: f64) -> f64 {
        if self.burst_hours < BURST_AFTER_HOURS {
            return 0.0;
        }
        let hourly = upper_quantile(mu, self.phi(0), HOURLY_SIGMAS);
        let [mean, var] = self.burst.map(f64::from);
        hourly * (mean + BURST_SPREADS * var.sqrt()).min(MAX_BURST_LOG).exp()
    }

    /// Sends a minute expected at `t_ms`, as the minute window and as the hour window judge it:
    /// the week's figure for the time, or the recent rate if that is higher, never under a tenth
    /// of the long-run rate, and until a day is learned, never under the declared rate. For the
    /// hour window, where the week knows the time, the recent rate counts for no more than `lift`
    /// times the week's figure: a rise that lasts an hour is judged against the week, not against
    /// itself. The minute window, which judges bursts, follows the recent rate as it is.
    pub(crate) fn expected_rates(&self, policy: &Policy, t_ms: u64) -> [f64; 2] {
        let recent = f64::from(self.recent);
        let (seasonal, followed) = match self.profile.expected_at(t_ms) {
            Some(hourly) => {
                let seasonal = hourly / 60.0;
                (seasonal, recent.min(seasonal * f64::from(self.lift).max(1.0)))
            }
            None => (0.0, recent),
        };
        let declared = match policy.expected {
            Some(rate) if self.hours < DAY_HOURS => rate,
            _ => 0.0,
        };
        let least = seasonal
            .max(f64::from(self.longrun) / 60.0 * LONGRUN_FLOOR)
            .max(declared);
        [least.max(recent), least.max(followed)]
    }

    /// Sends the week expects a minute at `t_ms`, if it knows the time.
    pub(crate) fn seasonal_rate(&self, t_ms: u64) -> Option<f64> {
        self.profile.expected_at(t_ms).map(|hourly| hourly / 60.0)
    }

    /// Sends a minute expected over the day before `t_ms`, and never under the long-run rate.
    pub(crate) fn expected_day_rate(&self, t_ms: u64) -> f64 {
        let how = hour_of_week(t_ms);
        let longrun = f64::from(self.longrun);
        let day: f64 = (0..24)
            .map(|back| self.profile.expected(how + HOURS - back).unwrap_or(longrun))
            .sum();
        day.max(24.0 * longrun) / (24.0 * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warm() -> (Policy, Learned) {
        let policy = Policy::for_tests();
        let learned = Learned {
            minutes: policy.warmup_windows,
            hours: DAY_HOURS,
            ..Learned::default()
        };
        (policy, learned)
    }

    #[test]
    fn the_recent_rate_grows_by_at_most_the_bound_once_a_day_is_learned() {
        let (policy, mut learned) = warm();
        learned.average = 10.0;
        learned.recent = 10.0;
        let mut shadow = 0.0;
        for _ in 0..12 {
            learned.learn_slot(&policy, 300_000, 10_000, 0, true, None, &mut shadow);
        }
        assert!((learned.recent - 15.0).abs() < 1e-6, "{}", learned.recent);
        assert!(learned.average > 500.0);
        // A slot that was not clean teaches the shadow only.
        learned.learn_slot(&policy, 300_000, 50, 0, false, None, &mut shadow);
        assert!(learned.average > 500.0 && shadow == 10.0);
    }

    #[test]
    fn a_spike_teaches_the_spread_no_more_than_an_hour_at_factor_times_what_it_expected() {
        let spread_after = |sends: u32| {
            let (policy, mut learned) = warm();
            for day in 0..7u32 {
                learned.learn_hour(
                    &policy,
                    &HourStats {
                        index: day * 24 + 3,
                        sends: 600,
                        ..HourStats::default()
                    },
                );
            }
            let spike = HourStats {
                index: 7 * 24 + 3,
                sends,
                ..HourStats::default()
            };
            learned.learn_hour(&policy, &spike);
            learned.phi(1)
        };
        // An hour at 100 times what it expected teaches what one at three times teaches: what an
        // hour at twice (the hour's factor) would.
        assert_eq!(spread_after(60_000), spread_after(1_800));
        assert!(spread_after(60_000) <= 1.0, "{}", spread_after(60_000));
    }

    #[test]
    fn the_lift_over_the_week_grows_by_the_daily_bound_and_falls_slowly_while_above_it() {
        let (policy, mut learned) = warm();
        learned.hours = WEEK_HOURS;
        let slot = |learned: &mut Learned, per_minute: f64| {
            let mut shadow = 0.0;
            learned.learn_slot(
                &policy,
                300_000,
                (per_minute * 5.0) as u64,
                0,
                true,
                Some(10.0),
                &mut shadow,
            );
        };
        // Ten times the week's figure for a day: the lift follows by four a day.
        learned.average = 100.0;
        learned.recent = 100.0;
        for _ in 0..288 {
            slot(&mut learned, 100.0);
        }
        assert!(
            (f64::from(learned.lift) / 4.0 - 1.0).abs() < 0.01,
            "{}",
            learned.lift
        );
        // Still above the week, at twice its figure: the lift falls by a week's half-life.
        learned.average = 20.0;
        for _ in 0..288 {
            slot(&mut learned, 20.0);
        }
        let after = f64::from(learned.lift);
        assert!(
            (after / (4.0 * 0.5f64.powf(1.0 / 7.0)) - 1.0).abs() < 0.01,
            "{after}"
        );
        // Back under the week: no lift within hours.
        learned.average = 5.0;
        for _ in 0..60 {
            slot(&mut learned, 5.0);
        }
        assert!(learned.lift <= 1.0, "{}", learned.lift);
    }

    #[test]
    fn a_tripped_hour_never_teaches_a_new_hour_of_the_week_and_teaches_a_known_one_little() {
        let (policy, mut learned) = warm();
        let runaway = HourStats {
            index: 4 * 24 + 3, // Monday 03:00 (1970-01-05)
            sends: 100_000,
            tripped: true,
            ..HourStats::default()
        };
        learned.learn_hour(&policy, &runaway);
        assert_eq!(learned.profile.get(3), None);
        learned.learn_hour(
            &policy,
            &HourStats {
                sends: 100,
                tripped: false,
                ..runaway
            },
        );
        let before = learned.profile.get(3).unwrap();
        learned.learn_hour(&policy, &runaway);
        // Capped at twice what was expected, learned at a quarter: a step of an eighth.
        let after = learned.profile.get(3).unwrap();
        let step = before * (1.0 + 0.5 * 0.25);
        assert!(
            (after / step - 1.0).abs() < 0.08,
            "{before} -> {after}, not near {step}"
        );
    }

    #[test]
    fn the_spread_weighs_hours_by_what_they_expected() {
        let (policy, mut learned) = warm();
        // A batch hour: minutes far from what they expected, much expected.
        let batch = HourStats {
            dev: 60.0 * 2_500.0 * 3.0,
            mu2: 60.0 * 2_500.0,
            ..HourStats::default()
        };
        // Quiet hours: next to nothing expected.
        let quiet = HourStats {
            dev: -0.6,
            mu2: 0.006,
            ..HourStats::default()
        };
        for day in 0..3 {
            learned.learn_hour(
                &policy,
                &HourStats {
                    index: day * 24,
                    ..batch
                },
            );
            for h in 1..24 {
                learned.learn_hour(
                    &policy,
                    &HourStats {
                        index: day * 24 + h,
                        ..quiet
                    },
                );
            }
        }
        assert!(learned.phi(0) > 2.5, "{}", learned.phi(0));
    }

    #[test]
    fn expected_rates_never_fall_under_a_tenth_of_the_long_run() {
        let (policy, mut learned) = warm();
        learned.longrun = 600.0;
        assert_eq!(learned.expected_rates(&policy, 0), [1.0, 1.0]);
        assert!((learned.expected_day_rate(0) - 10.0).abs() < 1e-9);
        learned.recent = 4.0;
        assert_eq!(learned.expected_rates(&policy, 0), [4.0, 4.0]);
    }
}
