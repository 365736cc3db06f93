//! A slice's share of its dimension: learned an hour at a time, overall and by the hour of the day
//! (weekdays and weekends apart), and the limit each window of the slice may reach given what the
//! rest of the dimension sent. Pure arithmetic on the detector's limit functions.

use crate::detect::{Bound, Guards, Timescale, as_count, limit, upper_quantile};

use super::windows::HOUR_MS;

/// Hours of the day, weekdays and weekends apart.
pub(super) const HOUR_SLOTS: usize = 48;
/// An hour whose dimension sent fewer than this teaches no share: too few to tell.
pub(super) const LEARN_FROM_SENDS: u32 = 20;
/// The largest share a slice is expected to hold: past it, the odds against the rest grow
/// without bound.
const MAX_SHARE: f64 = 0.9;
/// Weight of a new hour in the overall share, once a few are learned: about two days.
const LONGRUN_ALPHA: f64 = 1.0 / 48.0;
/// Weight of a new hour in its hour of the day's share.
const HOUR_ALPHA: f64 = 0.5;
/// A new hour's share counts as at most this many times (or this share of) what was learned, so a
/// runaway that stayed under its limits for an hour teaches a bounded step.
const STEP: f64 = 3.0;
/// Weight of an hour a trip touched, for a slice that has learned a share: a slice whose share
/// has grown for good is followed, slowly, while a runaway's hours teach little (and a newcomer's
/// nothing).
pub(super) const TRIPPED_WEIGHT: f64 = 0.25;
/// How widely a slice's counts spread around its expected share, per timescale: the
/// negative-binomial overdispersion of its limits.
const PHI: [f64; 3] = [0.25, 0.05, 0.05];

/// What a slice has learned of its share of its dimension.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Share {
    /// Its share over about the last two days (0 until an hour is learned).
    pub(crate) longrun: f32,
    /// Its share at each hour of the day (`-1`: not learned), weekdays then weekends.
    pub(crate) by_hour: [f32; HOUR_SLOTS],
    /// Hours learned.
    pub(crate) hours: u32,
}

impl Default for Share {
    fn default() -> Self {
        Self {
            longrun: 0.0,
            by_hour: [-1.0; HOUR_SLOTS],
            hours: 0,
        }
    }
}

/// The hour-of-day slot of `t_ms`: the hour of the day, plus 24 on a Saturday or Sunday (UTC).
pub(super) fn hour_slot(t_ms: u64) -> usize {
    let hour = t_ms / HOUR_MS;
    // The epoch was a Thursday: day 0 of the week counted from Monday is day 3.
    let weekday = (hour / 24 + 3) % 7;
    (hour % 24) as usize + if weekday >= 5 { 24 } else { 0 }
}

impl Share {
    /// Whether a share has been learned.
    pub(crate) fn is_learned(&self) -> bool {
        self.hours > 0
    }

    /// Learns that the slice held `share` of its dimension in the hour starting at `hour_ms`, at
    /// `weight` (1 for an ordinary hour).
    pub(crate) fn learn(&mut self, hour_ms: u64, share: f64, weight: f64) {
        let bounded = |old: f64| share.clamp(old / STEP, old * STEP + 0.01);
        let longrun = f64::from(self.longrun);
        self.longrun = if self.hours == 0 {
            share
        } else {
            let alpha = LONGRUN_ALPHA.max(1.0 / (f64::from(self.hours) + 1.0)) * weight;
            longrun + alpha * (bounded(longrun) - longrun)
        } as f32;
        let slot = &mut self.by_hour[hour_slot(hour_ms)];
        let old = f64::from(*slot);
        *slot = if old < 0.0 {
            share
        } else {
            old + HOUR_ALPHA * weight * (bounded(old) - old)
        } as f32;
        self.hours = self.hours.saturating_add(1);
    }

    /// A share learned before, resumed: its overall figure and how many hours it came from.
    pub(crate) fn resumed(longrun: f32, hours: u32) -> Self {
        Self {
            longrun,
            hours,
            ..Self::default()
        }
    }

    /// The share expected at `t_ms`: the overall share, or the hour's if that is more.
    pub(crate) fn expected(&self, t_ms: u64) -> f64 {
        let hour = f64::from(self.by_hour[hour_slot(t_ms)]);
        f64::from(self.longrun).max(hour)
    }
}

/// The most sends a slice's window on `timescale` may hold, the sends it was expected to hold, and
/// the rule that set the limit, when its expected share is `share`, it sent `own` and the rest of
/// its dimension `rest` in the window: the slice is expected to send `share / (1 - share)` for each
/// send of the rest (so its own runaway does not raise what is expected of it); a value that
/// carries nearly all of it (`MAX_SHARE` or more), whose runaway is its kind's, is expected to hold
/// its share of everything, and so is left to its kind.
pub(super) fn slice_limit(
    timescale: Timescale,
    share: f64,
    own: u64,
    rest: u64,
    guards: &Guards,
) -> (u64, f64, Bound) {
    let share = share.clamp(0.0, 1.0);
    let mu = if share < MAX_SHARE {
        share / (1.0 - share) * rest as f64
    } else {
        share * own.saturating_add(rest) as f64
    };
    let spread = upper_quantile(mu, PHI[timescale.index()], guards.sigmas);
    let (count, bound) = limit(mu, spread, guards);
    (count, mu, bound)
}

/// `value` as a count, saturating.
pub(super) fn count_of(value: f64) -> u64 {
    as_count(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: u64 = 4 * 24 * HOUR_MS;

    fn guards() -> Guards {
        Guards {
            factor: 3.0,
            floor: 20,
            ceiling: u64::MAX,
            sigmas: 5.0,
        }
    }

    #[test]
    fn hours_of_the_day_keep_weekdays_and_weekends_apart() {
        assert_eq!(hour_slot(MONDAY + 3 * HOUR_MS), 3);
        assert_eq!(hour_slot(MONDAY + 5 * 24 * HOUR_MS + 3 * HOUR_MS), 27, "Saturday");
        assert_eq!(hour_slot(0), 0, "Thursday");
    }

    #[test]
    fn a_share_is_learned_overall_and_by_the_hour_and_moves_by_bounded_steps() {
        let mut share = Share::default();
        assert!(!share.is_learned());
        share.learn(MONDAY, 0.01, 1.0);
        assert!((share.expected(MONDAY) - 0.01).abs() < 1e-6);
        // A runaway hour at 80% counts as at most three times what was learned.
        share.learn(MONDAY + HOUR_MS, 0.8, 1.0);
        assert!(share.longrun < 0.03, "{}", share.longrun);
        assert!(
            (share.by_hour[1] - 0.8).abs() < 1e-6,
            "an hour first learned takes its share"
        );
        // An hour of the day busier than the rest is expected at its own share.
        let mut busy = Share::default();
        for day in 0..3 {
            for hour in 0..24 {
                let share = if hour == 9 { 0.2 } else { 0.05 };
                busy.learn(MONDAY + (day * 24 + hour) * HOUR_MS, share, 1.0);
            }
        }
        let nine = MONDAY + 3 * 24 * HOUR_MS + 9 * HOUR_MS;
        assert!((busy.expected(nine) - 0.2).abs() < 0.01);
        assert!((busy.expected(nine + 3 * HOUR_MS) - busy.longrun as f64).abs() < 0.01);
    }

    #[test]
    fn limits_follow_the_rest_and_keep_the_guards() {
        // 1.1% of a kind whose rest sent 12,000 in the hour: 133 expected, 400 allowed.
        let (count, mu, bound) = slice_limit(Timescale::Hour, 0.011, 150, 12_000, &guards());
        assert!((mu - 133.5).abs() < 0.5, "{mu}");
        assert_eq!((count, bound), (400, Bound::Factor));
        // A small share of a quiet minute: near the floor, the skew of small counts above it.
        let (count, mu, _) = slice_limit(Timescale::Minute, 0.006, 3, 500, &guards());
        assert!((20..30).contains(&count) && mu < 4.0, "{count} {mu}");
        // No share: the floor alone.
        assert_eq!(slice_limit(Timescale::Minute, 0.0, 3, 500, &guards()).0, 20);
        // A value that carries all of its dimension is left to its kind: however much it sends,
        // it is within three times its share of everything.
        let (count, _, _) = slice_limit(Timescale::Hour, 1.0, 100_000, 0, &guards());
        assert!(count >= 300_000, "{count}");
        // A big share's own runaway still trips: 50% of the dimension sending 5 for each other.
        let (count, _, _) = slice_limit(Timescale::Hour, 0.5, 50_000, 10_000, &guards());
        assert!(count < 50_000, "{count}");
    }
}
