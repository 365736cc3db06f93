//! Detection with the default configuration, on seeded traffic shaped like real notification
//! traffic (daily swings, weekend dips, 5-minute bursts, growth, weekly jobs, daily batches,
//! holidays, daylight saving, restarts), replayed through the backtest engine: the library's own
//! engine on a manual clock. Runaways of every speed, at a kind's busy hour and its quiet one, are
//! stopped; four weeks of legitimate traffic are never blocked.
//!
//! `cargo test --test detection detection:: -- --nocapture` prints the figures the detection guide quotes.

use std::time::Duration;

use crate::support::{
    DAY_MS, HOUR_MS, MINUTE_MS, MONDAY_MS, Profile, Rng, Traffic, WEEK_MS, burst, merge, minute_of_sends,
    poisson_sends, tagged,
};
use spikebreaker::backtest::{Backtest, BacktestReport};
use spikebreaker::status::{Event, Reason, State, Timescale};
use spikebreaker::{Breaker, Config, ManualClock};

/// A send of the ordinary traffic, or of a runaway job of the same or another kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Ordinary(&'static str),
    Runaway(&'static str),
}

/// A replay that tells a runaway's sends from the ordinary ones.
struct Replay {
    backtest: Backtest,
    runaway_sent: u64,
    runaway_allowed: u64,
    /// Ordinary sends blocked, of kinds no runaway sends as.
    ordinary_blocked: u64,
    /// Ordinary sends blocked of a kind a runaway also sends as (while it is open).
    caught_up: u64,
    runaway_kinds: Vec<&'static str>,
}

impl Replay {
    fn new() -> Self {
        Self {
            backtest: Backtest::new(Config::default()).unwrap(),
            runaway_sent: 0,
            runaway_allowed: 0,
            ordinary_blocked: 0,
            caught_up: 0,
            runaway_kinds: Vec::new(),
        }
    }

    fn run(&mut self, sends: impl Iterator<Item = (u64, Source)>) {
        for (t, source) in sends {
            match source {
                Source::Ordinary(kind) => {
                    let blocked = u64::from(!self.backtest.check(t, kind).is_allowed());
                    if self.runaway_kinds.contains(&kind) {
                        self.caught_up += blocked;
                    } else {
                        self.ordinary_blocked += blocked;
                    }
                }
                Source::Runaway(kind) => {
                    if !self.runaway_kinds.contains(&kind) {
                        self.runaway_kinds.push(kind);
                    }
                    self.runaway_sent += 1;
                    self.runaway_allowed += u64::from(self.backtest.check(t, kind).is_allowed());
                }
            }
        }
    }

    fn report(&self) -> BacktestReport {
        self.backtest.report()
    }

    /// The first trip of `kind` at or after `from_ms`.
    fn trip(&self, kind: &str, from_ms: u64) -> Option<Event> {
        self.report().kinds.get(kind).and_then(|k| {
            k.transitions
                .iter()
                .find(|e| e.is_trip() && e.at_ms >= from_ms)
                .cloned()
        })
    }
}

fn ordinary(traffic: Traffic) -> impl Iterator<Item = (u64, Source)> {
    let names: Vec<&'static str> = traffic.profiles().iter().map(|p| p.kind).collect();
    traffic.map(move |(t, index)| (t, Source::Ordinary(names[index])))
}

fn runaway(times: impl Iterator<Item = u64>, kind: &'static str) -> impl Iterator<Item = (u64, Source)> {
    tagged(times, Source::Runaway(kind))
}

/// Two weeks of `profiles` from Monday, then the next `until_ms` of them with `job` merged in.
fn learn_then(
    profiles: &[Profile],
    seed: u64,
    until_ms: u64,
    job: impl Iterator<Item = (u64, Source)>,
) -> Replay {
    let mut replay = Replay::new();
    let learned = MONDAY_MS + 2 * WEEK_MS;
    replay.run(ordinary(Traffic::new(
        profiles.to_vec(),
        seed,
        MONDAY_MS,
        learned,
    )));
    let trips: Vec<String> = replay
        .report()
        .kinds
        .values()
        .flat_map(|k| k.transitions.iter().map(Event::to_string))
        .collect();
    assert!(trips.is_empty(), "the learning weeks tripped: {trips:#?}");
    replay.run(merge(
        ordinary(Traffic::new(profiles.to_vec(), seed + 1, learned, until_ms)),
        job,
    ));
    replay
}

/// Three weeks after the first Monday, plus `hours`: a Monday at that hour.
fn week_three(hours: u64) -> u64 {
    MONDAY_MS + 2 * WEEK_MS + hours * HOUR_MS
}

/// The 125,000 false "your two-step verification settings changed" notices, at 25 and at 400 a
/// second, on a kind that sends a few a minute, at 03:00 on a Wednesday: halted within 100 sends
/// while every other kind flows.
#[test]
fn the_incident_is_halted_within_100_sends_at_25_and_at_400_a_second() {
    const RUNAWAY: &str = "security.2fa_changed";
    let profiles = [
        Profile::daily("email.welcome", 120.0, 8.0),
        Profile::daily("sms.login_code", 60.0, 8.0),
        Profile::daily(RUNAWAY, 3.0, 6.0),
        Profile::daily("security.password_reset", 0.8, 4.0),
    ];
    for per_second in [25.0, 400.0] {
        let start = week_three(2 * 24 + 3);
        let lasts = (125_000.0 / per_second * 1000.0) as u64;
        let job = runaway(burst(start, 125_000, per_second), RUNAWAY);
        let replay = learn_then(&profiles, 1, start + lasts + 10 * MINUTE_MS, job);
        let trip = replay.trip(RUNAWAY, start).expect("the runaway tripped");
        println!(
            "incident at {per_second}/s: {} of {} let through; {trip}",
            replay.runaway_allowed, replay.runaway_sent
        );
        assert!(
            replay.runaway_allowed <= 100,
            "{} let through",
            replay.runaway_allowed
        );
        assert_eq!(replay.runaway_sent, 125_000);
        assert_eq!(replay.ordinary_blocked, 0, "other kinds flow");
        // The trip says what it was judged on.
        assert_eq!(trip.window.timescale, Timescale::Minute);
        assert!(trip.window.is_over() && trip.window.expected < 10.0, "{trip}");
        assert_eq!(trip.reason, Reason::Spike);
        assert!(trip.to_string().contains("minute window"), "{trip}");
    }
}

/// A bug sending 60 or 90 a minute for a day on a kind that sends at most 5 a minute, starting
/// at its quiet hour or its busy one: stopped within 500 of its sends, and kept stopped.
#[test]
fn a_slow_leak_on_a_small_kind_is_stopped_within_500_sends() {
    const KIND: &str = "security.new_device";
    let profiles = [Profile::daily(KIND, 5.0, 6.0)];
    for (per_minute, hour) in [(60.0, 3), (60.0, 14), (90.0, 3), (90.0, 14)] {
        let start = week_three(24 + hour);
        let leak = poisson_sends(move |_| per_minute, 9, start, start + DAY_MS);
        let replay = learn_then(&profiles, 2, start + DAY_MS, runaway(leak, KIND));
        let trip = replay.trip(KIND, start).expect("the leak tripped");
        println!(
            "slow leak {per_minute}/min from {hour:02}:00: {} of {} let through; {trip}",
            replay.runaway_allowed, replay.runaway_sent
        );
        assert!(
            replay.runaway_allowed <= 500,
            "{} let through",
            replay.runaway_allowed
        );
        assert!(replay.runaway_sent > 80_000);
    }
}

/// A kind that sends 30 a minute at 04:00 and 240 at 16:00 gets a runaway at 03:00 that sends
/// ten times the hour's normal: under three times the daily peak, so a limit set by the busy hour
/// would let it run. Stopped within 5 minutes.
#[test]
fn a_runaway_at_the_quiet_hour_is_stopped_within_5_minutes() {
    const KIND: &str = "email.receipt";
    let profile = Profile {
        weekend: 1.0,
        ..Profile::daily(KIND, 240.0, 8.0)
    };
    let start = week_three(24 + 3);
    let normal = profile.rate_per_minute(start);
    assert!(10.0 * normal < 3.0 * profile.peak_per_minute, "{normal}");
    let extra = 9.0 * normal;
    let job = poisson_sends(move |_| extra, 13, start, start + 4 * HOUR_MS);
    let replay = learn_then(&[profile], 3, start + 4 * HOUR_MS, runaway(job, KIND));
    let trip = replay.trip(KIND, start).expect("the runaway tripped");
    let after = Duration::from_millis(trip.at_ms - start);
    println!(
        "quiet-hour runaway (+{extra:.0}/min on {normal:.0}/min at 03:00): tripped after {after:?}, {} let through; {trip}",
        replay.runaway_allowed
    );
    assert!(after <= Duration::from_secs(5 * 60), "{after:?}");
}

/// A bug that grows 1.4x every 10 minutes from the hour's normal, at night, in the morning ramp
/// and at the busy hour: tripped at 5 times the normal at the latest.
#[test]
fn a_ramp_trips_by_five_times_the_hours_normal() {
    const KIND: &str = "email.digest";
    let profile = Profile::daily(KIND, 100.0, 8.0);
    for hour in [3, 10, 16] {
        let start = week_three(24 + hour);
        let normal = profile.rate_per_minute(start);
        // The ramp replaces the kind's own traffic from `start`: what it sends beyond normal.
        let ramp_profile = profile.clone();
        let extra = move |t: u64| {
            let ramped = normal * 1.4f64.powf((t - start) as f64 / (10 * MINUTE_MS) as f64);
            (ramped - ramp_profile.rate_per_minute(t)).max(0.0)
        };
        let job = poisson_sends(extra, 17, start, start + 3 * HOUR_MS);
        let replay = learn_then(
            std::slice::from_ref(&profile),
            4,
            start + 3 * HOUR_MS,
            runaway(job, KIND),
        );
        let trip = replay.trip(KIND, start).expect("the ramp tripped");
        let at = 1.4f64.powf((trip.at_ms - start) as f64 / (10 * MINUTE_MS) as f64);
        println!("ramp from {normal:.1}/min at {hour:02}:00: tripped at {at:.2}x; {trip}");
        assert!(at <= 5.0, "tripped at {at:.2}x the hour's normal");
    }
}

/// A kind never seen before: bursting at 300 a second it is held to the warm-up ceiling; at a
/// steady 20 a minute it is never blocked.
#[test]
fn an_unseen_kind_bursting_is_held_to_500_and_a_steady_one_never_blocked() {
    let start = week_three(10);
    let burst_job = runaway(burst(start, 50_000, 300.0), "push.broken_campaign");
    let steady = poisson_sends(|_| 20.0, 5, start, start + DAY_MS);
    let new_steady = tagged(steady, Source::Ordinary("email.survey"));
    let profiles = [Profile::daily("email.welcome", 120.0, 8.0)];
    let replay = learn_then(&profiles, 6, start + DAY_MS, merge(burst_job, new_steady));
    println!(
        "unseen kind at 300/s: {} of {} let through; new kind at 20/min for a day: {} sent, {} blocked",
        replay.runaway_allowed,
        replay.runaway_sent,
        replay.report().kinds["email.survey"].attempted,
        replay.ordinary_blocked
    );
    assert!(replay.runaway_allowed <= 500, "{}", replay.runaway_allowed);
    assert_eq!(replay.ordinary_blocked, 0);
    assert!(replay.report().kinds["email.survey"].attempted > 25_000);
}

/// A new kind that arrives above the warm-up ceiling and stays steady (1,100 a minute, legitimate)
/// trips, keeps learning the rate it sends while open, and after its warm-up takes that rate as
/// its normal (`adopted`): blocked for about an hour, then never again.
#[test]
fn a_steady_new_kind_above_the_warm_up_ceiling_is_adopted_after_its_warm_up() {
    const NEW: &str = "email.migration_notice";
    let start = week_three(9);
    let sends = tagged(poisson_sends(|_| 1_100.0, 21, start, start + DAY_MS), NEW);
    let mut backtest = Backtest::new(Config::default()).unwrap();
    let (mut blocked_early, mut blocked_late, mut sent) = (0u64, 0u64, 0u64);
    for (t, kind) in sends {
        sent += 1;
        if !backtest.check(t, kind).is_allowed() {
            if t < start + 2 * HOUR_MS {
                blocked_early += 1;
            } else {
                blocked_late += 1;
            }
        }
    }
    let report = backtest.report();
    let events = &report.kinds[NEW].transitions;
    let adopted = events
        .iter()
        .find(|e| e.reason == Reason::Adopted)
        .expect("adopted");
    println!(
        "steady new kind at 1,100/min: {blocked_early} of {sent} blocked in the first two hours, {blocked_late} after; adopted after {:?}",
        Duration::from_millis(adopted.at_ms - start)
    );
    assert!(adopted.at_ms - start <= 70 * MINUTE_MS, "{adopted}");
    assert!(blocked_early <= 70 * 1_100, "{blocked_early}");
    assert_eq!(blocked_late, 0);
    assert_eq!(report.kinds[NEW].state, State::Closed);
}

/// Four weeks of legitimate traffic on nine kinds, from 0.2 a minute to 500 a minute at the daily
/// peak: 8x daily swings, weekend dips, overdispersed 5-minute bursts, 1.5x growth, a weekly job
/// (its first run announced as a planned surge), a daily batch, a holiday at 0.3x and the day
/// after it, the daily pattern an hour earlier from daylight saving on, and a restart restored
/// from a snapshot after three days down. Nothing is blocked.
#[test]
fn four_weeks_of_legitimate_traffic_are_never_blocked() {
    let holiday = MONDAY_MS + 17 * DAY_MS;
    let daylight_saving = MONDAY_MS + 21 * DAY_MS;
    let profiles: Vec<Profile> = [
        Profile::daily("email.welcome", 500.0, 8.0),
        Profile {
            weekend: 0.6,
            burst_cv: 0.4,
            ..Profile::daily("sms.login_code", 200.0, 8.0)
        },
        Profile {
            growth: 1.5,
            growth_days: 28.0,
            ..Profile::daily("email.receipt", 100.0, 6.0)
        },
        Profile {
            burst_cv: 0.5,
            ..Profile::daily("push.promo", 40.0, 8.0)
        },
        Profile::daily("security.2fa_changed", 3.0, 6.0),
        Profile::daily("security.password_reset", 0.8, 4.0),
        Profile {
            weekend: 1.0,
            ..Profile::daily("email.rare", 0.2, 2.0)
        },
        Profile {
            weekly: Some((9, 60, 600.0)),
            ..Profile::daily("email.weekly_digest", 2.0, 4.0)
        },
        Profile {
            peak_per_minute: 0.0,
            batch: Some((2, 15, 200.0)),
            ..Profile::steady("email.daily_summary", 0.0)
        },
    ]
    .into_iter()
    .map(|p| Profile {
        holiday_ms: Some(holiday),
        daylight_saving_ms: Some(daylight_saving),
        ..p
    })
    .collect();

    let down = MONDAY_MS + 10 * DAY_MS + 14 * HOUR_MS;
    let back = down + 3 * DAY_MS;
    let end = MONDAY_MS + 4 * WEEK_MS;
    let mut before = Replay::new();
    let announced = MONDAY_MS + 9 * HOUR_MS;
    before.run(ordinary(Traffic::new(profiles.clone(), 31, MONDAY_MS, announced)));
    // The weekly job's first run is new: whoever starts it announces it.
    before
        .backtest
        .breaker()
        .plan_surge("email.weekly_digest", 40_000, Duration::from_secs(2 * 3600))
        .unwrap();
    before.run(ordinary(Traffic::new(profiles.clone(), 32, announced, down)));
    let snapshot = before.backtest.breaker().snapshot();

    let mut after = Replay::new();
    after.backtest.breaker().restore(&snapshot).unwrap();
    after.run(ordinary(Traffic::new(profiles.clone(), 33, back, end)));

    for replay in [&before, &after] {
        for (kind, figures) in &replay.report().kinds {
            println!(
                "four weeks: {kind:<26} {:>9} sent, {:>2} blocked, {} trips",
                figures.attempted, figures.blocked, figures.trips
            );
            assert_eq!(
                (figures.blocked, figures.trips),
                (0, 0),
                "{kind}: {:?}",
                figures.transitions
            );
        }
    }
    assert_eq!(before.ordinary_blocked + after.ordinary_blocked, 0);
    assert!(before.report().sends + after.report().sends > 5_000_000);
}

/// A weekly job of an hour at 600 a minute on a kind that otherwise sends 2 a minute: announced
/// the first time, or relearned by an operator within the hour after its first run, it is
/// normal every week after; left alone, it trips every week (it looks exactly like a runaway,
/// and what a trip teaches is capped).
#[test]
fn a_weekly_job_announced_or_relearned_once_is_normal_every_week_after() {
    const KIND: &str = "email.weekly_digest";
    let profile = Profile {
        weekly: Some((9, 60, 600.0)),
        ..Profile::daily(KIND, 2.0, 4.0)
    };
    #[derive(Debug, PartialEq)]
    enum Operator {
        Announces,
        Relearns,
        LeavesIt,
    }
    for operator in [Operator::Announces, Operator::Relearns, Operator::LeavesIt] {
        let mut replay = Replay::new();
        let mut blocked = Vec::new();
        for week in 0..4 {
            let from = MONDAY_MS + week * WEEK_MS;
            // The first run's hour, 09:00 to 10:00, and the operator's act around it.
            let act_at = match operator {
                Operator::Announces => from + 9 * HOUR_MS,
                _ => from + 10 * HOUR_MS + 20 * 60_000,
            };
            let breaks = if week == 0 && operator != Operator::LeavesIt {
                vec![from, act_at, from + WEEK_MS]
            } else {
                vec![from, from + WEEK_MS]
            };
            for (i, span) in breaks.windows(2).enumerate() {
                if i == 1 {
                    let breaker = replay.backtest.breaker();
                    match operator {
                        Operator::Announces => {
                            breaker.plan_surge(KIND, 40_000, Duration::from_secs(2 * 3600))
                        }
                        _ => breaker.relearn(KIND),
                    }
                    .unwrap();
                }
                let seed = 40 + week * 3 + i as u64;
                replay.run(ordinary(Traffic::new(
                    vec![profile.clone()],
                    seed,
                    span[0],
                    span[1],
                )));
            }
            blocked.push(replay.ordinary_blocked - blocked.iter().sum::<u64>());
        }
        println!("weekly job ({operator:?} after its first run): blocked per week {blocked:?}");
        match operator {
            Operator::Announces => assert_eq!(blocked, [0, 0, 0, 0]),
            Operator::Relearns => {
                assert!(blocked[0] > 10_000, "{blocked:?}");
                assert_eq!(blocked[1..], [0, 0, 0]);
            }
            Operator::LeavesIt => assert!(blocked.iter().all(|&b| b > 10_000), "{blocked:?}"),
        }
    }
}

/// The clock jumps five days ahead (a machine suspended, a custom clock): nothing learned is
/// lost, and the kinds' ordinary traffic afterwards is never blocked.
#[test]
fn a_clock_jump_of_days_collapses_nothing() {
    let profiles = [
        Profile::daily("email.welcome", 200.0, 8.0),
        Profile::daily("security.2fa_changed", 3.0, 6.0),
    ];
    let mut replay = Replay::new();
    let jump = MONDAY_MS + 2 * WEEK_MS;
    replay.run(ordinary(Traffic::new(profiles.to_vec(), 51, MONDAY_MS, jump)));
    let learned = replay.backtest.breaker().snapshot();
    let resume = jump + 5 * DAY_MS;
    replay.run(ordinary(Traffic::new(
        profiles.to_vec(),
        52,
        resume,
        resume + WEEK_MS,
    )));
    println!(
        "a 5-day clock jump: {} blocked in the week after",
        replay.ordinary_blocked
    );
    assert_eq!(replay.ordinary_blocked, 0);
    let after = replay.backtest.breaker().snapshot();
    // A snapshot's contents are read from its JSON (they are not API).
    let json = |snapshot: &spikebreaker::Snapshot| -> serde_json::Value {
        serde_json::from_str(&snapshot.to_json()).unwrap()
    };
    let (learned, after) = (json(&learned), json(&after));
    for (kind, was) in learned["kinds"].as_object().unwrap() {
        let now = &after["kinds"][kind];
        let longrun = |learned: &serde_json::Value| learned["longrun_per_hour"].as_f64().unwrap();
        assert!(
            longrun(now) > 0.8 * longrun(was),
            "{kind}: {} -> {}",
            longrun(was),
            longrun(now)
        );
    }
}

// On the manual clock, without the backtest engine.

#[test]
fn a_quiet_kind_going_to_a_handful_a_minute_does_not_trip() {
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let kind = breaker.kind("security.new_device");
    let mut rng = Rng::new(5);
    let first = MONDAY_MS / MINUTE_MS;
    for minute in first..first + 3 * 24 * 60 {
        let rate = if minute < first + 2 * 24 * 60 { 1.0 } else { 5.0 };
        for t in minute_of_sends(&mut rng, minute, rate) {
            clock.set(t);
            assert!(kind.check().is_allowed(), "{:?}", kind.status());
        }
    }
}

#[test]
fn a_trip_stays_with_its_kind() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let runaway = breaker.kind("push.promo");
    let bystander = breaker.kind("email.receipt");
    let mut blocked = 0;
    for t in 0..5_000u64 {
        clock.set(t);
        blocked += u64::from(!runaway.check().is_allowed());
        if t % 100 == 0 {
            assert!(bystander.check().is_allowed());
        }
    }
    assert_eq!(
        blocked,
        5_000 - 500,
        "the warm-up ceiling lets 500 through in a window"
    );
    assert_eq!(runaway.state(), State::Open);
    assert_eq!(runaway.status().reason, Reason::Warmup);
    assert_eq!(bystander.state(), State::Closed);
}
