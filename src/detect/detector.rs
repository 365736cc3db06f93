//! One kind's detector: its windows on the three timescales, what it has learned, and the limits
//! it derives from them. The kind drives it from cold work: once per bucket it closes the bucket
//! ([`Detector::roll`]), which learns what completed and sets the limits, and it publishes
//! [`Detector::headroom`] for the send path: the least room any timescale has left.

use super::learned::{DAY_HOURS, HOUR_MS, HourStats, Learned, MAX_SILENT_HOURS, MINUTE_MS};
use super::limit::{Bound, Timescale, limit, upper_quantile};
use super::policy::Policy;
use super::ring::Ring;
use super::tally::Tally;

/// The hour window's slots.
const HOUR_SLOT_MS: u64 = 5 * MINUTE_MS;
/// The day window's slots.
const DAY_SLOT_MS: u64 = 2 * HOUR_MS;

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

const NOT_JUDGED: Limit = Limit {
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

/// One kind's windows, learning and limits.
#[derive(Clone, Debug)]
pub(crate) struct Detector {
    /// The minute window's buckets.
    ring: Ring,
    /// The hour window's 5-minute slots and the day window's 2-hour slots.
    hour: Tally<HOUR_SLOT_MS>,
    day: Tally<DAY_SLOT_MS>,
    learned: Learned,
    /// The hour being filled, and the one before it, learned when this one ends.
    filling: HourStats,
    pending: Option<HourStats>,
    /// The 5-minute slot and the minute filling now have seen only closed traffic.
    slot_clean: bool,
    minute_clean: bool,
    limits: [Limit; 3],
    /// What is left of a planned surge's sends: the kind may send this many more whatever its
    /// limits say.
    surge_left: u64,
    /// Sends a minute attempted while open (30-minute moving average).
    shadow: f32,
    /// Sends a minute expected over the day, as of the start of hour `day_rate_hour` (`u32::MAX`:
    /// not worked out since the week last changed): summed over the week's hours once an hour,
    /// not at every roll-over.
    day_rate: f32,
    day_rate_hour: u32,
    /// The first 5-minute slot the kind is counted for whole (made, or restored, within the slot
    /// before it): an earlier slot was counted only in part, and teaches a warming kind no rate.
    /// A slot number, not a time, to keep a kind within its cache lines; 0 (every slot whole)
    /// past the year 40,000, where a slot number no longer fits.
    counted_from_slot: u32,
}

/// The first 5-minute slot that begins at or after `now_ms`: the first one a kind made or restored
/// at `now_ms` is counted for whole.
fn first_whole_slot(now_ms: u64) -> u32 {
    u32::try_from(now_ms.div_ceil(HOUR_SLOT_MS)).unwrap_or(0)
}

impl Detector {
    pub(crate) fn new(policy: &Policy, learned: Learned, now_ms: u64) -> Self {
        let mut detector = Self {
            ring: Ring::new(policy.bucket_ms, now_ms),
            hour: Tally::new(now_ms),
            day: Tally::new(now_ms),
            learned,
            filling: HourStats::starting(now_ms / HOUR_MS),
            pending: None,
            slot_clean: true,
            minute_clean: true,
            limits: [NOT_JUDGED; 3],
            surge_left: 0,
            shadow: 0.0,
            day_rate: 0.0,
            day_rate_hour: u32::MAX,
            counted_from_slot: first_whole_slot(now_ms),
        };
        detector.set_limits(policy, now_ms);
        detector
    }

    /// The minute window's buckets (the send path tests its times against the current one).
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// What the kind has learned.
    pub(crate) fn learned(&self) -> &Learned {
        &self.learned
    }

    pub(crate) fn is_warm(&self, policy: &Policy) -> bool {
        self.learned.is_warm(policy)
    }

    /// Closes the current bucket, which held `count` attempts and saw only closed traffic if
    /// `clean`; moves to the bucket holding `now_ms`; learns what completed; sets the limits.
    pub(crate) fn roll(&mut self, policy: &Policy, count: u64, now_ms: u64, clean: bool) {
        let bucket_start = self.ring.bucket_start();
        let minute = self.ring.roll(count, now_ms);
        // The closed bucket, in its slot and its hour...
        self.advance_long(policy, bucket_start);
        self.hour.add(bucket_start, count);
        self.day.add(bucket_start, count);
        self.surge_left = self.surge_left.saturating_sub(count);
        self.slot_clean &= clean;
        self.minute_clean &= clean;
        self.filling.add(count);
        self.filling.tripped |= !clean;
        if let Some(done) = minute {
            if self.minute_clean && policy.learns {
                let mu = f64::from(self.limits[0].expected);
                self.learned
                    .learn_minute(policy, &mut self.filling, done.count, done.quiet, mu);
            }
            self.minute_clean = true;
        }
        // ...then on to now: the slots and hours that have ended since are complete.
        self.advance_long(policy, now_ms);
        self.set_limits(policy, now_ms);
    }

    /// Moves the long windows and the hour being filled on to `t_ms`, learning what they close.
    fn advance_long(&mut self, policy: &Policy, t_ms: u64) {
        let hour = t_ms / HOUR_MS;
        if hour > u64::from(self.filling.index) {
            self.close_hour(policy, hour);
        } else if hour < u64::from(self.filling.index) {
            // The clock went back an hour or more: the hours in progress are cut short and
            // taught nothing; learning goes on from the hour it went back to.
            self.filling = HourStats::starting(hour);
            self.pending = None;
        }
        let counted_whole = |index: u64| index >= u64::from(self.counted_from_slot);
        if let Some(slot) = self
            .hour
            .add(t_ms, 0)
            .filter(|slot| policy.learns && (counted_whole(slot.index) || self.learned.is_warm(policy)))
        {
            self.learned.learn_slot(
                policy,
                HOUR_SLOT_MS,
                slot.count,
                slot.skipped,
                self.slot_clean,
                &mut self.shadow,
            );
            self.slot_clean = true;
        }
        self.day.add(t_ms, 0);
    }

    /// The hour being filled has ended: learn the one before it, keep this one until the next
    /// ends. After a silence of up to `MAX_SILENT_HOURS` (no roll-over at all), learn this one
    /// and the silent hours too; after a longer gap (downtime, a clock jump) learn neither this
    /// hour, which the gap cut short, nor the gap.
    fn close_hour(&mut self, policy: &Policy, next: u64) {
        let done = std::mem::replace(&mut self.filling, HourStats::starting(next));
        self.day_rate_hour = u32::MAX;
        if !policy.learns {
            return;
        }
        if let Some(pending) = self.pending.take() {
            self.learned.learn_hour(policy, &pending);
        }
        let silent = next.saturating_sub(u64::from(done.index) + 1);
        if silent == 0 {
            self.pending = Some(done);
        } else if silent <= MAX_SILENT_HOURS {
            self.learned.learn_hour(policy, &done);
            for index in u64::from(done.index) + 1..next {
                self.learned.learn_hour(policy, &HourStats::starting(index));
            }
        }
    }

    /// Sends a minute expected over the day before `now_ms`, worked out once an hour.
    fn day_rate(&mut self, now_ms: u64) -> f64 {
        let hour = u32::try_from(now_ms / HOUR_MS).unwrap_or(u32::MAX - 1);
        if hour != self.day_rate_hour {
            self.day_rate = self.learned.expected_day_rate(now_ms) as f32;
            self.day_rate_hour = hour;
        }
        f64::from(self.day_rate)
    }

    fn set_limits(&mut self, policy: &Policy, now_ms: u64) {
        if !self.learned.is_warm(policy) {
            let (count, bound) = policy.minute_limit(None, 0.0);
            self.limits = [
                Limit {
                    count: as_limit(count),
                    expected: 0.0,
                    bound,
                },
                NOT_JUDGED,
                NOT_JUDGED,
            ];
            return;
        }
        let minutes = |ms: u64| ms as f64 / MINUTE_MS as f64;
        let day_rate = self.day_rate(now_ms);
        let learned = &self.learned;
        let rate = learned.expected_rate(now_ms);
        let hour_ms = (self.hour.span_ms(now_ms) + policy.bucket_ms).min(HOUR_MS);
        let day_ms = (self.day.span_ms(now_ms) + policy.bucket_ms).min(24 * HOUR_MS);
        let expected = [
            rate * minutes(policy.window_ms()),
            rate * minutes(hour_ms),
            day_rate * minutes(day_ms),
        ];
        for timescale in Timescale::ALL {
            let i = timescale.index();
            if timescale == Timescale::Day && learned.hours < DAY_HOURS {
                self.limits[i] = NOT_JUDGED;
                continue;
            }
            let mu = expected[i];
            let guards = &policy.guards[i];
            let mut spread = upper_quantile(mu, learned.phi(i.min(1)), guards.sigmas);
            if timescale == Timescale::Minute {
                spread = spread.max(learned.burst_limit(mu));
            }
            let (count, bound) = limit(mu, spread, guards);
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

    /// Sets the hour and day windows' counts aside: the trip acted on them (a kind going
    /// half-open after a trip, so that the sends it refused do not trip it again). What closes
    /// is still learned from.
    pub(crate) fn rebase_long(&mut self) {
        self.hour.rebase();
        self.day.rebase();
    }

    /// Forgets every window's counts (an operator reset, a surge's end).
    pub(crate) fn clear(&mut self) {
        self.ring.clear();
        self.rebase_long();
    }

    /// What is left of a planned surge's sends (0: none).
    pub(crate) fn surge_left(&self) -> u64 {
        self.surge_left
    }

    /// Starts a planned surge of `sends`, which the kind may send whatever its limits say; 0
    /// ends it.
    pub(crate) fn set_surge(&mut self, sends: u64) {
        self.surge_left = sends;
    }

    /// Takes the rate attempted while open as the kind's normal and counts it warm: a kind that
    /// arrived above the warm-up ceiling and stayed steady, or an operator's relearn. The hours
    /// not yet learned (this one and the last) are learned as ordinary hours, trip or not, so a
    /// weekly job relearned after its first run is known at its hour of the week.
    pub(crate) fn adopt(&mut self, policy: &Policy, now_ms: u64) {
        if !policy.learns {
            // The overflow kind's limit is fixed: nothing to adopt.
            self.clear();
            return;
        }
        self.filling.tripped = false;
        if let Some(pending) = &mut self.pending {
            pending.tripped = false;
        }
        let learned = &mut self.learned;
        learned.recent = self.shadow.max(learned.recent);
        learned.average = learned.recent;
        learned.minutes = learned.minutes.max(policy.warmup_windows);
        self.day_rate_hour = u32::MAX;
        self.clear();
        self.set_limits(policy, now_ms);
    }

    /// The kind tripped: what it attempts from now on is learned afresh, as its shadow, and the
    /// hour before, not learned yet, is learned as tripped too (a runaway that began in it must
    /// not teach it).
    pub(crate) fn on_trip(&mut self) {
        self.shadow = 0.0;
        self.filling.tripped = true;
        if let Some(pending) = &mut self.pending {
            pending.tripped = true;
        }
    }

    /// Sends a minute attempted while open, lately.
    pub(crate) fn shadow(&self) -> f64 {
        f64::from(self.shadow)
    }

    /// Replaces what was learned (a restored snapshot).
    pub(crate) fn restore(&mut self, policy: &Policy, learned: Learned, now_ms: u64) {
        self.learned = learned;
        self.counted_from_slot = first_whole_slot(now_ms);
        // The hours in progress belong to what was replaced: not learned into the restored.
        self.filling = HourStats::starting(now_ms / HOUR_MS);
        self.pending = None;
        self.day_rate_hour = u32::MAX;
        self.set_limits(policy, now_ms);
    }

    /// Runs on a new policy: a new window length restarts the minute window's buckets.
    pub(crate) fn apply(&mut self, old: &Policy, policy: &Policy, now_ms: u64) {
        if policy.bucket_ms != old.bucket_ms {
            self.ring = Ring::new(policy.bucket_ms, now_ms);
        }
        self.set_limits(policy, now_ms);
    }
}

/// A limit as kept: `u32::MAX` and above are no limit.
fn as_limit(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: u64 = 4 * 24 * HOUR_MS; // 1970-01-05, a Monday

    /// A detector fed `per_bucket` sends in every bucket from `from` to `to`.
    fn feed(detector: &mut Detector, policy: &Policy, from: u64, to: u64, per_bucket: u64) {
        let mut t = from;
        while t < to {
            detector.roll(policy, per_bucket, t + policy.bucket_ms, true);
            t += policy.bucket_ms;
        }
    }

    /// A detector fed `rate(t)` sends in the bucket starting at `t`, from `from` to `to`,
    /// `clean` or not; returns `to`.
    fn feed_with(
        d: &mut Detector,
        policy: &Policy,
        from: u64,
        to: u64,
        clean: bool,
        rate: impl Fn(u64) -> u64,
    ) -> u64 {
        let mut t = from;
        while t < to {
            d.roll(policy, rate(t), t + policy.bucket_ms, clean);
            t += policy.bucket_ms;
        }
        to
    }

    /// Business hours: 96 a minute from 09:00 to 17:00, 12 a minute otherwise (the busy hours
    /// run at 2.4 times the day's average).
    fn business(t: u64) -> u64 {
        if (9..17).contains(&((t / HOUR_MS) % 24)) {
            8
        } else {
            1
        }
    }

    #[test]
    fn a_kind_tripped_at_its_busy_hour_is_calm_again_at_its_busy_normal() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        let t = feed_with(
            &mut d,
            &policy,
            MONDAY,
            MONDAY + 14 * 24 * HOUR_MS + 10 * HOUR_MS,
            true,
            business,
        );
        // 10:00: a burst trips the kind; then only the kind's normal traffic, while open.
        d.roll(&policy, 3_000, t + policy.bucket_ms, true);
        assert!(d.over(0).is_some());
        d.on_trip();
        let t = feed_with(
            &mut d,
            &policy,
            t + policy.bucket_ms,
            t + 16 * MINUTE_MS,
            false,
            business,
        );
        assert!(
            d.is_calm(0),
            "calm after 15 minutes at the busy hour's normal: {:?}",
            d.readings(0)
        );
        // A runaway that goes on is not calm.
        feed_with(&mut d, &policy, t, t + 15 * MINUTE_MS, false, |_| 40);
        assert!(!d.is_calm(0));
    }

    #[test]
    fn a_trip_early_in_an_hour_keeps_the_hour_before_from_teaching_itself() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        // A day at 12 a minute, then a leak from 10:50 that trips at 11:05.
        let leak_from = MONDAY + 24 * HOUR_MS + 10 * HOUR_MS + 50 * MINUTE_MS;
        feed_with(&mut d, &policy, MONDAY, leak_from, true, |_| 1);
        let how = super::super::profile::hour_of_week(leak_from);
        assert_eq!(
            d.learned().profile.get(how),
            None,
            "Tuesday 10:00 not learned yet"
        );
        let t = feed_with(
            &mut d,
            &policy,
            leak_from,
            leak_from + 15 * MINUTE_MS,
            true,
            |_| 17,
        );
        d.on_trip();
        // The hour after ends, and the leak's first hour is learned: as tripped, so never as a
        // new hour of the week (before the fix: at three times the kind's normal).
        feed_with(&mut d, &policy, t, t + 2 * HOUR_MS, false, |_| 1);
        assert_eq!(d.learned().profile.get(how), None);
        assert!(
            d.learned().profile.get(how - 1).is_some(),
            "the hour before it was learned"
        );
    }

    #[test]
    fn a_clock_set_back_hours_moves_every_window_back_and_trips_nothing() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        let t = feed_with(&mut d, &policy, MONDAY, MONDAY + 2 * 24 * HOUR_MS, true, |_| 5);
        let before = d.readings(0);
        // Five hours back, then four hours of the same traffic.
        let back = t - 5 * HOUR_MS;
        let mut at = back;
        while at < back + 4 * HOUR_MS {
            d.roll(&policy, 5, at + policy.bucket_ms, true);
            assert!(d.over(0).is_none(), "tripped at {at}: {:?}", d.readings(0));
            at += policy.bucket_ms;
        }
        let after = d.readings(0);
        assert_eq!(
            after[1].count, before[1].count,
            "the hour window holds an hour, as before"
        );
    }

    #[test]
    fn a_new_kind_is_held_to_the_warm_up_ceiling_then_to_what_it_learned() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        assert_eq!(d.headroom(), 500);
        feed(&mut d, &policy, MONDAY, MONDAY + 2 * HOUR_MS, 1); // 12 a minute
        assert!(d.is_warm(&policy));
        let [minute, hour, day] = d.readings(0);
        // The spread starts wide: a new kind's bursts are tolerated until its own are known.
        assert!((minute.limit.expected - 12.0).abs() < 0.5, "{minute:?}");
        let spread = upper_quantile(f64::from(minute.limit.expected), 1.0, 5.0).floor() as u64;
        assert_eq!((minute.threshold(), minute.limit.bound), (spread, Bound::Spread));
        assert!(
            hour.limit.count >= 2 * 720 && hour.limit.count < 4 * 720,
            "{hour:?}"
        );
        assert_eq!(
            day.limit.bound,
            Bound::None,
            "no day limit before a day is learned"
        );
        assert_eq!(d.headroom(), spread - 11);
    }

    #[test]
    fn the_trip_lands_on_the_window_that_goes_over() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        feed(&mut d, &policy, MONDAY, MONDAY + 2 * HOUR_MS, 1);
        let headroom = d.headroom();
        assert_eq!(d.over(headroom), None);
        let over = d.over(headroom + 1).expect("one more send is over");
        assert_eq!(over.timescale, Timescale::Minute);
        assert_eq!(over.count, over.threshold() + 1);
    }

    #[test]
    fn a_gap_of_days_teaches_nothing() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        feed(&mut d, &policy, MONDAY, MONDAY + 3 * 24 * HOUR_MS, 2);
        let before = d.learned().clone();
        let later = MONDAY + 10 * 24 * HOUR_MS;
        d.roll(&policy, 0, later, true);
        d.roll(&policy, 0, later + 5_000, true);
        // Only the complete hour waiting to be learned before the gap was.
        assert_eq!(d.learned().hours, before.hours + 1);
        assert!(d.learned().longrun > 0.9 * before.longrun);
        assert_eq!(d.learned().profile.get(0), before.profile.get(0));
    }

    #[test]
    fn an_hour_is_learned_only_once_the_next_has_ended() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        feed(&mut d, &policy, MONDAY, MONDAY + HOUR_MS + 5_000, 1);
        assert_eq!(d.learned().profile.get(0), None, "hour 0 waits for hour 1 to end");
        feed(
            &mut d,
            &policy,
            MONDAY + HOUR_MS + 5_000,
            MONDAY + 2 * HOUR_MS + 5_000,
            1,
        );
        assert!(d.learned().profile.get(0).is_some());
    }

    #[test]
    fn the_rate_must_come_back_before_the_kind_is_calm() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        feed(&mut d, &policy, MONDAY, MONDAY + 2 * HOUR_MS, 1);
        // 360 a minute while open (nothing clean, nothing learned), going on.
        let mut t = MONDAY + 2 * HOUR_MS;
        for _ in 0..240 {
            d.roll(&policy, 30, t + policy.bucket_ms, false);
            t += policy.bucket_ms;
        }
        assert!(!d.is_calm(0));
        assert!(d.shadow() > 300.0);
        feed(&mut d, &policy, t, t + 15 * MINUTE_MS, 1);
        assert!(d.is_calm(0));
    }

    #[test]
    fn a_surge_allows_its_sends_whatever_the_limits_and_no_more() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        let t = MONDAY + 2 * HOUR_MS;
        feed(&mut d, &policy, MONDAY, t, 1);
        let own = d.headroom();
        assert!(own < 1_000, "{own}");
        d.set_surge(10_000);
        assert_eq!(d.headroom(), 10_000);
        assert!(d.over(10_000).is_none());
        // 4,000 sent: 6,000 left, then the limits judge again.
        d.roll(&policy, 4_000, t + policy.bucket_ms, true);
        assert_eq!(d.surge_left(), 6_000);
        assert_eq!(d.headroom(), 6_000);
        assert!(d.over(6_000).is_none());
        let over = d
            .over(6_001)
            .expect("the surge is spent and the windows are far over");
        assert_eq!(over.timescale, Timescale::Minute);
        d.set_surge(0);
        assert_eq!(d.headroom(), 0, "the windows hold the surge's sends");
    }

    #[test]
    fn adopting_takes_the_rate_seen_while_open() {
        let policy = Policy::for_tests();
        let mut d = Detector::new(&policy, Learned::default(), MONDAY);
        // A new kind at 1,100 a minute, open since its first minute (nothing clean).
        let mut t = MONDAY;
        while t < MONDAY + HOUR_MS {
            d.roll(&policy, 92, t + policy.bucket_ms, false);
            t += policy.bucket_ms;
        }
        assert!(!d.is_warm(&policy));
        d.adopt(&policy, t);
        assert!(d.is_warm(&policy));
        assert!(d.shadow() > 1_000.0, "{}", d.shadow());
        assert!(d.readings(0)[0].limit.count > 1_100 * 3, "{:?}", d.readings(0)[0]);
    }
}
