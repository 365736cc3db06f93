//! One kind's detector: its windows on the three timescales, what it has learned, and the limits
//! it derives from them. The kind drives it from cold work: once per bucket it closes the bucket
//! ([`Detector::roll`]), which learns what completed and sets the limits, and it publishes
//! [`Detector::headroom`] for the send path: the least room any timescale has left.
//!
//! - this file: the windows, and what they teach as they roll;
//! - [`judge`]: the limits set from what was learned, and every window judged against its own.

mod judge;
#[cfg(test)]
mod tests;

use super::learned::{HOUR_MS, HourStats, Learned, MAX_SILENT_HOURS, MINUTE_MS};
use super::policy::Policy;
use super::ring::Ring;
use super::tally::Tally;
use judge::NOT_JUDGED;

pub(crate) use judge::{Limit, Reading};

/// The hour window's slots.
const HOUR_SLOT_MS: u64 = 5 * MINUTE_MS;
/// The day window's slots.
const DAY_SLOT_MS: u64 = 2 * HOUR_MS;

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
    /// Halvings of the warm-up ceilings: a newcomer whose stem of name many newcomers shared
    /// lately (see `kind::newcomers`).
    warmup_halvings: u8,
    /// The 5-minute slot filling now began before the kind was made or restored: it was counted
    /// only in part, and teaches a warming kind no rate. A flag, not a slot number, to keep a
    /// kind within its cache lines: only the slot a kind is made or restored in can be partial.
    partial_slot: bool,
}

/// Whether the 5-minute slot holding `now_ms` began before it: a kind made or restored then counts
/// only part of it.
fn starts_partial(now_ms: u64) -> bool {
    now_ms % HOUR_SLOT_MS != 0
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
            warmup_halvings: 0,
            partial_slot: starts_partial(now_ms),
        };
        detector.set_limits(policy, now_ms);
        detector
    }

    /// Lowers the warm-up ceilings by `halvings` halvings (a newcomer among many of its stem).
    pub(crate) fn set_warmup_halvings(&mut self, policy: &Policy, halvings: u8, now_ms: u64) {
        self.warmup_halvings = halvings;
        self.set_limits(policy, now_ms);
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
        let closed = self.hour.add(t_ms, 0);
        let partial = closed.is_some() && std::mem::take(&mut self.partial_slot);
        if let Some(slot) = closed.filter(|_| policy.learns && (!partial || self.learned.is_warm(policy))) {
            let middle = slot.index * HOUR_SLOT_MS + HOUR_SLOT_MS / 2;
            let seasonal = self.learned.seasonal_rate(middle);
            self.learned.learn_slot(
                policy,
                HOUR_SLOT_MS,
                slot.count,
                slot.skipped,
                self.slot_clean,
                seasonal,
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

    /// Takes the rate attempted while open as the kind's normal and counts it warm: an
    /// operator's relearn, never automatic (a runaway that lasts must not become its own
    /// normal). The recent rate may stand that far above the week from now on. The hours not yet
    /// learned (this one and the last) are learned as ordinary hours, trip or not, so a weekly
    /// job relearned after its first run is known at its hour of the week.
    pub(crate) fn relearn(&mut self, policy: &Policy, now_ms: u64) {
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
        if let Some(seasonal) = learned.seasonal_rate(now_ms).filter(|&s| s > 0.0) {
            learned.lift = learned.lift.max((f64::from(learned.recent) / seasonal) as f32);
        }
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
    #[cfg(test)]
    pub(crate) fn shadow(&self) -> f64 {
        f64::from(self.shadow)
    }

    /// Replaces what was learned (a restored snapshot).
    pub(crate) fn restore(&mut self, policy: &Policy, learned: Learned, now_ms: u64) {
        self.learned = learned;
        self.partial_slot = starts_partial(now_ms);
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
