//! The detector on fed traffic: warm-up, trips, calm, learning late, clock faults, surges.

use super::*;
use crate::detect::limit::{Bound, Timescale, upper_quantile};

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
fn relearning_takes_the_rate_seen_while_open() {
    let policy = Policy::for_tests();
    let mut d = Detector::new(&policy, Learned::default(), MONDAY);
    // A new kind at 1,100 a minute, open since its first minute (nothing clean).
    let mut t = MONDAY;
    while t < MONDAY + HOUR_MS {
        d.roll(&policy, 92, t + policy.bucket_ms, false);
        t += policy.bucket_ms;
    }
    assert!(!d.is_warm(&policy));
    d.relearn(&policy, t);
    assert!(d.is_warm(&policy));
    assert!(d.shadow() > 1_000.0, "{}", d.shadow());
    assert!(d.readings(0)[0].limit.count > 1_100 * 3, "{:?}", d.readings(0)[0]);
}
