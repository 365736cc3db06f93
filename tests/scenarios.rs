//! The detector's defaults on synthetic traffic shaped like real notification traffic, replayed
//! through the backtest engine: runaways are halted fast, normal traffic is never blocked.

mod support;

use spikebreaker::backtest::{Backtest, BacktestReport};
use spikebreaker::{Config, State};
use support::{DAY_MS, HOUR_MS, MINUTE_MS, Profile, Traffic, burst, merge, poisson_sends, ramp_rate, tagged};

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
fn replay<'a>(backtest: &mut Backtest, sends: impl Iterator<Item = (u64, &'a str)>) {
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
    replay(&mut backtest, named(Traffic::new(ordinary(), 1, 0, warm)));
    let before = backtest.report().kinds[RUNAWAY].allowed;

    // Wednesday 03:00: a job sends 125,000 notices at 400 a second while ordinary traffic goes on.
    let start = warm + 3 * HOUR_MS;
    let job = tagged(burst(start, 125_000, 400.0), RUNAWAY);
    replay(
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
    replay(
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
fn a_slow_ramp_trips_before_ten_times_normal() {
    const KIND: &str = "email.digest";
    // High enough a normal that the floor (100 a window) is not what trips it.
    const NORMAL: f64 = 150.0;
    let start = 6 * HOUR_MS;
    let end = start + 2 * HOUR_MS; // the ramp would reach 1.4^12, about 57x normal
    let rate = ramp_rate(start, NORMAL, 1.4, 10 * MINUTE_MS);
    let sends = poisson_sends(move |t| if t < start { NORMAL } else { rate(t) }, 4, 0, end);
    let mut backtest = Backtest::new(Config::default()).unwrap();
    replay(&mut backtest, tagged(sends, KIND));

    let report = backtest.report();
    let trip = report.kinds[KIND]
        .transitions
        .first()
        .expect("the ramp trips")
        .clone();
    assert_eq!(trip.to, State::Open);
    assert!(trip.at_ms >= start, "tripped on normal traffic at {}", trip.at_ms);
    let rate_at_trip = ramp_rate(start, NORMAL, 1.4, 10 * MINUTE_MS)(trip.at_ms);
    println!(
        "ramp: tripped at {rate_at_trip:.0} a minute ({:.1}x normal): {trip:?}",
        rate_at_trip / NORMAL
    );
    assert!(
        rate_at_trip < 10.0 * NORMAL,
        "tripped at {rate_at_trip:.0} a minute"
    );
    assert!((trip.window_count as f64) < 10.0 * NORMAL, "{trip:?}");
}

#[test]
fn a_new_kind_at_a_steady_20_a_minute_is_never_blocked() {
    const NEW: &str = "email.survey";
    let appears = DAY_MS + 9 * HOUR_MS;
    let end = 2 * DAY_MS;
    let new = tagged(poisson_sends(|_| 20.0, 5, appears, end), NEW);
    let mut backtest = Backtest::new(Config::default()).unwrap();
    replay(
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
    replay(
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
