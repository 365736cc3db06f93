//! Detection with the default configuration, on the manual clock: the incident is halted within a
//! few hundred sends, ordinary traffic with daily and weekly swings never trips, a slow ramp does,
//! and a trip stays with its kind; then the same detector on synthetic traffic shaped like real
//! notification traffic, replayed through the backtest engine: runaways are halted fast, normal
//! traffic is never blocked.

mod support;

use std::sync::{Arc, Mutex};

use spikebreaker::backtest::{Backtest, BacktestReport};
use spikebreaker::{Breaker, Clock, Config, Decision, KindHandle, ManualClock, Reason, State};
use support::{
    DAY_MS, HOUR_MS, MINUTE_MS, Profile, Rng, Traffic, burst, merge, minute_of_sends, poisson_sends, tagged,
};

fn breaker() -> (Breaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    (
        Breaker::with_clock(Config::default(), clock.clone()).unwrap(),
        clock,
    )
}

/// Replays `traffic` and returns the sends blocked per kind.
fn replay(
    clock: &ManualClock,
    handles: &[KindHandle<ManualClock>],
    traffic: impl Iterator<Item = (u64, usize)>,
) -> Vec<u64> {
    let mut blocked = vec![0; handles.len()];
    for (t, kind) in traffic {
        clock.set(t);
        if handles[kind].check() != Decision::Allowed {
            blocked[kind] += 1;
        }
    }
    blocked
}

fn ordinary_kinds() -> Vec<Profile> {
    vec![
        Profile::daily("email.welcome", 300.0, 10.0),
        Profile::daily("sms.login_code", 150.0, 10.0),
        Profile {
            growth: 1.5,
            ..Profile::daily("push.promo", 60.0, 5.0)
        },
        Profile::daily("security.2fa_changed", 3.0, 6.0),
        Profile::daily("security.password_reset", 0.5, 4.0),
    ]
}

#[test]
fn the_incident_is_halted_within_a_few_hundred_sends_and_other_kinds_keep_flowing() {
    let (breaker, clock) = breaker();
    let profiles = ordinary_kinds();
    let handles: Vec<_> = profiles.iter().map(|p| breaker.kind(p.kind)).collect();
    let week = 7 * DAY_MS;
    assert_eq!(
        replay(&clock, &handles, Traffic::new(profiles.clone(), 1, 0, week)),
        vec![0; 5]
    );

    // Monday 03:00: 125,000 identical notices at 400 a second, among ordinary traffic.
    let start = week + 3 * HOUR_MS;
    let runaway = burst(start, 125_000, 400.0).map(|t| (t, usize::MAX));
    let ordinary = Traffic::new(profiles, 2, start, start + 10 * MINUTE_MS);
    let twofa = 3;
    let (mut let_through, mut others_blocked, mut first_refusal) = (0, 0, None);
    for (t, kind) in merge(ordinary, runaway) {
        clock.set(t);
        match kind {
            usize::MAX => match handles[twofa].check() {
                Decision::Allowed => let_through += 1,
                Decision::Blocked(reason) => drop(first_refusal.get_or_insert(reason)),
            },
            k if k == twofa => drop(handles[k].check()),
            k => others_blocked += u64::from(!handles[k].check().is_allowed()),
        }
    }
    assert!(let_through <= 200, "{let_through} let through");
    assert!(
        let_through >= 50,
        "{let_through}: tripped before the floor allows"
    );
    assert_eq!(others_blocked, 0);
    assert_eq!(first_refusal, Some(Reason::Spike));
    assert_eq!(handles[twofa].status().trips, 1);
}

#[test]
fn two_weeks_of_daily_and_weekly_swings_and_growth_never_trip() {
    let (breaker, clock) = breaker();
    let profiles = ordinary_kinds();
    let handles: Vec<_> = profiles.iter().map(|p| breaker.kind(p.kind)).collect();
    let blocked = replay(&clock, &handles, Traffic::new(profiles, 3, 0, 14 * DAY_MS));
    assert_eq!(blocked, vec![0; handles.len()]);
    for handle in &handles {
        let status = handle.status();
        assert_eq!(
            (status.state, status.trips),
            (State::Closed, 0),
            "{}",
            status.kind
        );
        assert!(status.warmed_up);
    }
}

/// The one slow-ramp test: the backtest replay ran the same kind, rate and seed through the same
/// engine, so its checks of the trip event (opened on the ramp, below ten times normal) are here.
#[test]
fn a_slow_ramp_trips_before_it_reaches_ten_times_normal() {
    let (breaker, clock) = breaker();
    let trips = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&trips);
    breaker.subscribe(move |event| {
        if event.is_trip() {
            sink.lock().unwrap().push(event.clone());
        }
    });
    let kind = breaker.kind("email.digest");
    let normal = 150.0; // a minute
    let mut rng = Rng::new(4);
    let mut minute = 0u64;
    let mut send_minute = |rate: f64, clock: &ManualClock| {
        let mut blocked = false;
        for t in minute_of_sends(&mut rng, minute, rate) {
            clock.set(t);
            blocked |= !kind.check().is_allowed();
        }
        minute += 1;
        blocked
    };
    for _ in 0..2 * 24 * 60 {
        assert!(!send_minute(normal, &clock), "tripped on normal traffic");
    }
    // The bug: the rate grows 1.4x every 10 minutes.
    let start = clock.now_ms();
    let mut rate = normal;
    for step in 0.. {
        if (0..10).any(|_| send_minute(rate, &clock)) {
            break;
        }
        rate *= 1.4;
        assert!(
            rate < 10.0 * normal,
            "not tripped after {step} steps, at {rate:.0} a minute"
        );
    }
    assert_eq!(kind.status().reason, Reason::Spike);
    let trip = trips.lock().unwrap()[0].clone();
    assert_eq!(trip.to, State::Open);
    assert!(trip.at_ms >= start, "tripped on normal traffic at {}", trip.at_ms);
    assert!((trip.window.window_count as f64) < 10.0 * normal, "{trip:?}");
}

#[test]
fn a_quiet_kind_going_to_a_handful_a_minute_does_not_trip() {
    let (breaker, clock) = breaker();
    let kind = breaker.kind("security.new_device");
    let mut rng = Rng::new(5);
    for minute in 0..3 * 24 * 60u64 {
        let rate = if minute < 2 * 24 * 60 { 1.0 } else { 5.0 };
        for t in minute_of_sends(&mut rng, minute, rate) {
            clock.set(t);
            assert!(kind.check().is_allowed());
        }
    }
}

#[test]
fn a_trip_stays_with_its_kind() {
    let (breaker, clock) = breaker();
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

// The same detector on synthetic traffic, replayed through the backtest engine.

/// Ordinary traffic: kinds from under one a minute to several hundred a minute at the daily
/// peak, each with a 4x to 10x daily swing, weekend dips and overdispersed 5-minute bursts.
fn ordinary() -> Vec<Profile> {
    vec![
        Profile::daily("email.welcome", 400.0, 10.0),
        Profile::daily("sms.login_code", 200.0, 10.0),
        Profile::daily("email.receipt", 100.0, 8.0),
        Profile::daily("push.promo", 30.0, 5.0),
        Profile::daily("security.2fa_changed", 3.0, 6.0),
        Profile::daily("security.password_reset", 0.8, 4.0),
    ]
}

/// Replays `sends` (time, kind) on `backtest`.
fn replay_backtest<'a>(backtest: &mut Backtest, sends: impl Iterator<Item = (u64, &'a str)>) {
    for (t, kind) in sends {
        let _ = backtest.check(t, kind);
    }
}

fn named(traffic: Traffic) -> impl Iterator<Item = (u64, &'static str)> {
    let names: Vec<&'static str> = traffic.profiles().iter().map(|p| p.kind).collect();
    traffic.map(move |(t, index)| (t, names[index]))
}

fn assert_never_blocked(report: &BacktestReport, kind: &str) {
    let k = &report.kinds[kind];
    assert!(k.attempted > 0, "{kind} was sent");
    assert_eq!(k.blocked, 0, "{kind} blocked: {:?}", k.transitions);
    assert!(k.transitions.is_empty(), "{kind} moved: {:?}", k.transitions);
}

#[test]
fn a_runaway_of_125_000_notices_is_halted_within_200_and_nothing_else_is_blocked() {
    const RUNAWAY: &str = "security.2fa_changed";
    let mut backtest = Backtest::new(Config::default()).unwrap();
    let warm = 2 * DAY_MS;
    replay_backtest(&mut backtest, named(Traffic::new(ordinary(), 1, 0, warm)));
    let before = backtest.report().kinds[RUNAWAY].allowed;

    // Wednesday 03:00: a job sends 125,000 notices at 400 a second while ordinary traffic goes on.
    let start = warm + 3 * HOUR_MS;
    let job = tagged(burst(start, 125_000, 400.0), RUNAWAY);
    replay_backtest(
        &mut backtest,
        merge(named(Traffic::new(ordinary(), 2, start, start + HOUR_MS)), job),
    );

    let report = backtest.report();
    let runaway = &report.kinds[RUNAWAY];
    let let_through = runaway.allowed - before;
    println!(
        "runaway: {let_through} let through, tripped: {:?}",
        runaway.transitions[0]
    );
    assert!(let_through <= 200, "let through {let_through}");
    assert!(runaway.blocked >= 124_800, "blocked {}", runaway.blocked);
    assert_eq!(runaway.transitions[0].to, State::Open);
    assert!(runaway.transitions[0].at_ms >= start);
    for profile in ordinary().iter().filter(|p| p.kind != RUNAWAY) {
        assert_never_blocked(&report, profile.kind);
    }
}

#[test]
fn two_weeks_of_normal_traffic_with_growth_are_never_blocked() {
    let mut profiles = ordinary();
    // One kind grows by half over the two weeks (new customers).
    profiles[2].growth = 1.5;
    profiles[2].growth_days = 14.0;
    let mut backtest = Backtest::new(Config::default()).unwrap();
    replay_backtest(
        &mut backtest,
        named(Traffic::new(profiles.clone(), 3, 0, 14 * DAY_MS)),
    );
    let report = backtest.report();
    println!("two weeks: {} sends", report.sends);
    assert!(report.sends > 1_000_000, "{} sends", report.sends);
    for profile in &profiles {
        assert_never_blocked(&report, profile.kind);
    }
}

#[test]
fn a_new_kind_at_a_steady_20_a_minute_is_never_blocked() {
    const NEW: &str = "email.survey";
    let appears = DAY_MS + 9 * HOUR_MS;
    let end = 2 * DAY_MS;
    let new = tagged(poisson_sends(|_| 20.0, 5, appears, end), NEW);
    let mut backtest = Backtest::new(Config::default()).unwrap();
    replay_backtest(
        &mut backtest,
        merge(named(Traffic::new(ordinary(), 6, 0, end)), new),
    );
    let report = backtest.report();
    assert_never_blocked(&report, NEW);
    assert!(report.kinds[NEW].attempted > 15 * 60 * 20 / 2);
}

#[test]
fn a_new_kind_bursting_at_300_a_second_is_halted_within_1_000() {
    const NEW: &str = "push.broken_campaign";
    let appears = DAY_MS + 10 * HOUR_MS;
    let end = appears + HOUR_MS;
    let job = tagged(burst(appears, 50_000, 300.0), NEW);
    let mut backtest = Backtest::new(Config::default()).unwrap();
    replay_backtest(
        &mut backtest,
        merge(named(Traffic::new(ordinary(), 7, 0, end)), job),
    );
    let report = backtest.report();
    let new = &report.kinds[NEW];
    println!(
        "new kind burst: {} let through: {:?}",
        new.allowed, new.transitions[0]
    );
    assert!(new.allowed <= 1_000, "let through {}", new.allowed);
    assert_eq!(new.attempted, 50_000);
    assert_eq!(new.transitions[0].to, State::Open);
    for profile in ordinary() {
        assert_never_blocked(&report, profile.kind);
    }
}
