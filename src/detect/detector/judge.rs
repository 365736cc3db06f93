//! The judging side of a kind's detector: each window's limit, set from what the kind has
//! learned at each roll-over, and the windows read against their limits (the send path's
//! headroom, a trip, calm again).

use super::Detector;
use crate::detect::learned::{DAY_HOURS, HOUR_MS, MINUTE_MS};
use crate::detect::limit::{Bound, Timescale, limit, upper_quantile};
use crate::detect::policy::Policy;

/// A kind's own minute floor, as a multiple of its busiest minute of the last week or two.
const OWN_FLOOR_FACTOR: f64 = 1.5;
/// The lowest minute floor a kind's own traffic sets.
const MIN_OWN_FLOOR: u64 = 10;

/// One timescale's limit and what it was derived from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Limit {
    /// Sends the window may hold; one more trips (`u32::MAX`: not judged). A limit of four
    /// billion sends is no limit.
    pub(crate) count: u32,
    /// Sends the window is expected to hold now.
    pub(crate) expected: f32,
    /// The rule that set `count`.
    pub(crate) bound: Bound,
}

pub(super) const NOT_JUDGED: Limit = Limit {
    count: u32::MAX,
    expected: 0.0,
    bound: Bound::None,
};

/// A window against its limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Reading {
    pub(crate) timescale: Timescale,
    /// Sends in the window.
    pub(crate) count: u64,
    pub(crate) limit: Limit,
}

impl Reading {
    /// The window's limit as a count of sends (`u64::MAX`: not judged).
    pub(crate) fn threshold(&self) -> u64 {
        match self.limit.count {
            u32::MAX => u64::MAX,
            count => u64::from(count),
        }
    }
}

impl Detector {
    /// Sets every window's limit for `now_ms` from what the kind has learned: the warm-up
    /// ceilings until it is warm.
    pub(super) fn set_limits(&mut self, policy: &Policy, now_ms: u64) {
        if !self.learned.is_warm(policy) {
            let halvings = u32::from(self.warmup_halvings);
            let limit = |(count, bound): (u64, Bound)| Limit {
                count: as_limit(count.checked_shr(halvings).unwrap_or(0)),
                expected: 0.0,
                bound,
            };
            // A kind that never learns (the overflow kind) cannot become its own normal: its
            // minute window's fixed limit is all it has.
            let hour = match policy.learns {
                true => limit(policy.warmup_hour_limit()),
                false => NOT_JUDGED,
            };
            self.limits = [limit(policy.minute_limit(None, 0.0)), hour, NOT_JUDGED];
            return;
        }
        let minutes = |ms: u64| ms as f64 / MINUTE_MS as f64;
        let day_rate = self.day_rate(now_ms);
        let learned = &self.learned;
        let [minute_rate, hour_rate] = learned.expected_rates(policy, now_ms);
        let hour_ms = (self.hour.span_ms(now_ms) + policy.bucket_ms).min(HOUR_MS);
        let day_ms = (self.day.span_ms(now_ms) + policy.bucket_ms).min(24 * HOUR_MS);
        let expected = [
            minute_rate * minutes(policy.window_ms()),
            hour_rate * minutes(hour_ms),
            day_rate * minutes(day_ms),
        ];
        for timescale in Timescale::ALL {
            let i = timescale.index();
            if timescale == Timescale::Day && learned.hours < DAY_HOURS {
                self.limits[i] = NOT_JUDGED;
                continue;
            }
            let mu = expected[i];
            let mut guards = policy.guards[i];
            let mut spread = upper_quantile(mu, learned.phi(i.min(1)), guards.sigmas);
            if timescale == Timescale::Minute {
                spread = spread.max(learned.burst_limit(mu));
                guards.floor = own_floor(guards.floor, learned.busiest_minute());
            }
            let (count, bound) = limit(mu, spread, &guards);
            self.limits[i] = Limit {
                count: as_limit(count),
                expected: mu as f32,
                bound,
            };
        }
    }

    /// Sends each window held before the current bucket.
    fn previous(&self) -> [u64; 3] {
        [self.ring.previous(), self.hour.sum(), self.day.sum()]
    }

    fn limit_of(&self, i: usize) -> u64 {
        match self.limits[i].count {
            u32::MAX => u64::MAX,
            count => u64::from(count),
        }
    }

    /// Sends the current bucket may take before some window goes over its limit and a planned
    /// surge's sends are spent.
    pub(crate) fn headroom(&self) -> u64 {
        let previous = self.previous();
        (0..3)
            .map(|i| self.limit_of(i).saturating_sub(previous[i]))
            .min()
            .unwrap_or(0)
            .max(self.surge_left)
    }

    /// Every window, with the current bucket holding `current` sends.
    pub(crate) fn readings(&self, current: u64) -> [Reading; 3] {
        let previous = self.previous();
        Timescale::ALL.map(|timescale| {
            let i = timescale.index();
            Reading {
                timescale,
                count: previous[i].saturating_add(current),
                limit: self.limits[i],
            }
        })
    }

    /// The first window over its limit once the current bucket holds `current` sends, unless
    /// a planned surge's sends cover them.
    pub(crate) fn over(&self, current: u64) -> Option<Reading> {
        if self.surge_left > 0 && current <= self.surge_left {
            return None;
        }
        self.readings(current)
            .into_iter()
            .find(|reading| reading.count > reading.threshold())
    }

    /// The window with the least room left, for status and metrics.
    pub(crate) fn nearest(&self, current: u64) -> Reading {
        let [minute, hour, day] = self.readings(current);
        [hour, day].into_iter().fold(minute, |nearest, reading| {
            let room = |r: &Reading| r.threshold().saturating_sub(r.count);
            if room(&reading) < room(&nearest) {
                reading
            } else {
                nearest
            }
        })
    }

    /// Whether the rate is back within every limit: the minute window as it stands, and the
    /// hour and day windows at the rate of the last ten minutes. An open kind recovers only once
    /// this holds, so a runaway that goes on keeps it open, and one that has stopped lets it
    /// probe about ten minutes later. The day window's limit is scaled to the time of day (by
    /// what is expected now over the day's average, when that is more), so that a kind whose
    /// busy hours run above its daily average is calm at its busy hours' normal rate.
    pub(crate) fn is_calm(&self, current: u64) -> bool {
        let minute = self.ring.previous().saturating_add(current) <= self.limit_of(0);
        let last_ten_minutes = self.hour.recent_complete(2);
        let hour = last_ten_minutes.saturating_mul(6) <= self.limit_of(1);
        let day = match self.limit_of(2) {
            u64::MAX => true,
            limit => {
                let now_per_minute =
                    f64::from(self.limits[0].expected) * MINUTE_MS as f64 / self.ring.window_ms() as f64;
                let day_per_minute = f64::from(self.day_rate);
                let time_of_day = if day_per_minute > 0.0 {
                    (now_per_minute / day_per_minute).max(1.0)
                } else {
                    1.0
                };
                (last_ten_minutes as f64 * 144.0) <= limit as f64 * time_of_day
            }
        };
        minute && hour && day
    }
}

/// The minute window's floor for a kind whose busiest minute window of the last week or two held
/// `busiest` sends: `OWN_FLOOR_FACTOR` times that, between `MIN_OWN_FLOOR` and the configured
/// `floor`. A kind that never sends more than ten a minute does not need a floor of fifty to be
/// safe from its own bursts.
fn own_floor(floor: u64, busiest: Option<f64>) -> u64 {
    match busiest {
        Some(busiest) => {
            let own = (busiest * OWN_FLOOR_FACTOR).ceil() as u64;
            own.clamp(MIN_OWN_FLOOR.min(floor), floor)
        }
        None => floor,
    }
}

/// A limit as kept: `u32::MAX` and above are no limit.
pub(super) fn as_limit(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod own {
    use super::*;

    #[test]
    fn a_kinds_own_floor_is_its_busiest_minute_and_a_half_within_bounds() {
        // (configured floor, busiest minute of the last week or two) -> floor
        let cases = [
            (50, None, 50),
            (50, Some(11.0), 17),
            (50, Some(2.0), 10),
            (50, Some(40.0), 50),
            (5, Some(2.0), 5),
            (0, Some(2.0), 0),
        ];
        for (floor, busiest, expected) in cases {
            assert_eq!(own_floor(floor, busiest), expected, "{floor} {busiest:?}");
        }
    }

    #[test]
    fn a_kind_with_nothing_learned_may_not_hold_near_its_minute_ceiling_for_an_hour() {
        let policy = Policy::for_tests();
        assert_eq!(policy.warmup_hour_limit(), (24_000, Bound::Warmup));
        let mut d = Detector::new(&policy, crate::detect::Learned::default(), 0);
        // Eight a second, 480 a minute: under the minute's 500, over the hour's 24,000 at 50
        // minutes.
        let mut t = 0;
        let tripped = loop {
            if d.over(40).is_some() {
                break t;
            }
            d.roll(&policy, 40, t + policy.bucket_ms, false);
            t += policy.bucket_ms;
        };
        assert_eq!(tripped / MINUTE_MS, 50);
        assert_eq!(d.over(40).unwrap().timescale, Timescale::Hour);
    }
}
