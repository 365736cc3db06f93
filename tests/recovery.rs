//! The state machine and the operator's controls, on the manual clock: automatic recovery through
//! a half-open probe, manual recovery, force open, force close, reset and dry-run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spikebreaker::{Breaker, Config, Decision, Event, KindHandle, ManualClock, Reason, Recovery, State};

const SECOND: Duration = Duration::from_secs(1);

/// A breaker whose new kinds trip above 100 sends a minute, with events recorded.
fn setup(recovery: Recovery, dry_run: bool) -> (Breaker<ManualClock>, ManualClock, Arc<Mutex<Vec<Event>>>) {
    let mut config = Config::default();
    config.defaults.warmup_ceiling = 100;
    config.defaults.recovery = recovery;
    config.defaults.dry_run = dry_run;
    let clock = ManualClock::starting_at(1_000_000);
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    breaker.subscribe(move |event| sink.lock().unwrap().push(event.clone()));
    (breaker, clock, events)
}

/// Sends `n` at 10 a second; returns how many were allowed.
fn flood(kind: &KindHandle<ManualClock>, clock: &ManualClock, n: u64) -> u64 {
    (0..n)
        .filter(|_| {
            clock.advance(Duration::from_millis(100));
            kind.check().is_allowed()
        })
        .count() as u64
}

fn transitions(events: &Mutex<Vec<Event>>) -> Vec<(State, State, Reason)> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.from, e.to, e.reason))
        .collect()
}

#[test]
fn auto_recovery_waits_for_the_cooldown_and_a_normal_rate_then_probes_and_closes() {
    let (breaker, clock, events) = setup(Recovery::Auto, false);
    let kind = breaker.kind("email.digest");
    assert_eq!(flood(&kind, &clock, 150), 100);
    assert_eq!(kind.status().reason, Reason::Warmup);

    // The runaway keeps sending past the 5-minute cool-down: still open, attempts counted.
    assert_eq!(flood(&kind, &clock, 4_000), 0);
    let status = kind.status();
    assert_eq!(
        (status.state, status.attempted, status.blocked),
        (State::Open, 4_150, 4_050)
    );

    // The job is stopped; once a window has passed quietly the kind probes, then closes.
    clock.advance(61 * SECOND);
    assert_eq!(kind.check(), Decision::Allowed);
    assert_eq!(kind.state(), State::HalfOpen);
    clock.advance(61 * SECOND);
    breaker.refresh();
    assert_eq!(kind.state(), State::Closed);
    assert_eq!(
        transitions(&events),
        [
            (State::Closed, State::Open, Reason::Warmup),
            (State::Open, State::HalfOpen, Reason::Cooldown),
            (State::HalfOpen, State::Closed, Reason::Recovered),
        ]
    );
    let trip = events.lock().unwrap()[0].clone();
    assert_eq!((trip.window_count, trip.threshold), (101, 100));
    assert!(trip.is_trip());
}

#[test]
fn a_probe_that_sees_the_spike_again_reopens_at_once() {
    let (breaker, clock, events) = setup(Recovery::Auto, false);
    let kind = breaker.kind("push.promo");
    flood(&kind, &clock, 150);
    clock.advance(10 * 60 * SECOND);
    assert_eq!(
        flood(&kind, &clock, 150),
        100,
        "the probe allows up to the threshold"
    );
    assert_eq!(kind.status().reason, Reason::ProbeFailed);
    assert_eq!(
        transitions(&events).last(),
        Some(&(State::HalfOpen, State::Open, Reason::ProbeFailed))
    );
}

#[test]
fn manual_recovery_stays_open_until_an_operator_resets() {
    let (breaker, clock, _) = setup(Recovery::Manual, false);
    let kind = breaker.kind("sms.login_code");
    flood(&kind, &clock, 150);
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(kind.check(), Decision::Blocked(Reason::Warmup));
    breaker.reset("sms.login_code");
    let status = kind.status();
    assert_eq!(
        (status.state, status.reason, status.window_count),
        (State::Closed, Reason::Reset, 0)
    );
    assert_eq!(kind.check(), Decision::Allowed);
}

#[test]
fn force_open_blocks_everything_until_reset_whatever_the_rate() {
    let (breaker, clock, events) = setup(Recovery::Auto, false);
    let kind = breaker.kind("email.welcome");
    breaker.force_open("email.welcome");
    assert_eq!(kind.check(), Decision::Blocked(Reason::ForcedOpen));
    clock.advance(Duration::from_secs(3600));
    breaker.refresh();
    assert_eq!(
        kind.check(),
        Decision::Blocked(Reason::ForcedOpen),
        "no automatic recovery"
    );
    breaker.reset("email.welcome");
    assert_eq!(kind.check(), Decision::Allowed);
    let status = kind.status();
    assert_eq!((status.trips, status.blocked, status.forced), (1, 2, false));
    assert_eq!(
        transitions(&events),
        [
            (State::Closed, State::Open, Reason::ForcedOpen),
            (State::Open, State::Closed, Reason::Reset)
        ]
    );
}

#[test]
fn force_close_suspends_detection_until_reset() {
    let (breaker, clock, _) = setup(Recovery::Auto, false);
    let kind = breaker.kind("email.campaign");
    breaker.force_close("email.campaign");
    assert_eq!(flood(&kind, &clock, 500), 500);
    assert!(kind.status().forced);
    breaker.reset("email.campaign");
    assert_eq!(flood(&kind, &clock, 150), 100, "detection is back");
}

#[test]
fn dry_run_reports_the_trip_and_blocks_nothing_until_enforced() {
    let (breaker, clock, events) = setup(Recovery::Manual, true);
    let kind = breaker.kind("push.promo");
    assert_eq!(flood(&kind, &clock, 300), 300);
    let status = kind.status();
    assert_eq!(
        (status.state, status.dry_run, status.blocked),
        (State::Open, true, 0)
    );
    let trip = events.lock().unwrap()[0].clone();
    assert!(trip.is_trip() && trip.dry_run);

    breaker.set_dry_run("push.promo", false);
    assert_eq!(kind.check(), Decision::Blocked(Reason::Warmup));
}

#[test]
fn reset_forgets_the_window_but_keeps_the_learned_baseline() {
    let (breaker, clock, _) = setup(Recovery::Manual, false);
    let kind = breaker.kind("email.receipt");
    for _ in 0..120 {
        flood(&kind, &clock, 30); // 30 sends in 3 s, then a quiet rest of the minute
        clock.advance(57 * SECOND);
    }
    let learned = kind.status();
    assert!(learned.warmed_up && learned.baseline > 25.0, "{learned:?}");
    breaker.force_open("email.receipt");
    breaker.reset("email.receipt");
    let after = kind.status();
    assert_eq!(
        (after.baseline, after.threshold, after.warmed_up),
        (learned.baseline, learned.threshold, true)
    );
}
