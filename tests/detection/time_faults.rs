//! A faulty clock: standing still, jumping forward by hours (a suspended machine), going back by
//! seconds and by hours (a clock stepped back). None of these may panic, trip a kind on a phantom
//! spike, or unblock a kind held open by an operator or by manual recovery.
//!
//! What a forward jump does with automatic recovery: the cooldown counts clock time, so a jump
//! past it lets a tripped kind go half-open at its next send; if the runaway is still sending, the
//! kind trips again (`ProbeFailed`) as soon as the window crosses the threshold once more.

use std::time::Duration;

use spikebreaker::config::{KindConfig, KindOverride, Recovery};
use spikebreaker::status::{Reason, State};
use spikebreaker::{Breaker, Clock, Config, Decision, KindHandle, ManualClock};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

fn breaker(clock: &ManualClock) -> Breaker<ManualClock> {
    let mut config = Config::default();
    config.kinds.insert(
        "manual".into(),
        KindOverride {
            recovery: Some(Recovery::Manual),
            ..KindOverride::default()
        },
    );
    Breaker::with_clock(config, clock.clone()).unwrap()
}

/// `per_minute` sends a minute, evenly spaced, for `minutes`; every one must be allowed.
fn steady(kind: &KindHandle<ManualClock>, clock: &ManualClock, per_minute: u64, minutes: u64) {
    for _ in 0..minutes * per_minute {
        clock.advance(Duration::from_millis(MINUTE / per_minute));
        assert_eq!(kind.check(), Decision::Allowed, "{:?}", kind.status());
    }
}

/// Sends until the kind blocks (at most `limit` sends); returns the sends allowed.
fn run_away(kind: &KindHandle<ManualClock>, limit: u64) -> u64 {
    (0..limit).take_while(|_| kind.check().is_allowed()).count() as u64
}

/// A kind that has learned 200 sends a minute over two hours.
fn warm(breaker: &Breaker<ManualClock>, clock: &ManualClock, name: &str) -> KindHandle<ManualClock> {
    let kind = breaker.kind(name);
    steady(&kind, clock, 200, 120);
    assert!(kind.status().warmed_up);
    kind
}

#[test]
fn a_clock_standing_still_counts_every_send_and_trips_on_the_ceiling_only() {
    let clock = ManualClock::starting_at(5 * HOUR);
    let breaker = breaker(&clock);
    let kind = breaker.kind("stuck");
    let allowed = (0..5_000).filter(|_| kind.check().is_allowed()).count() as u64;
    assert_eq!(allowed, KindConfig::default().warmup_ceiling);
    let status = kind.status();
    assert_eq!(
        (status.attempted, status.blocked, status.trips),
        (5_000, 5_000 - allowed, 1)
    );
    // No time passes, so no cooldown ends: the kind stays open.
    assert!(!kind.check().is_allowed(), "a stuck clock ended a cooldown");
    assert_eq!(kind.state(), State::Open);
}

#[test]
fn a_forward_jump_of_hours_is_quiet_time_not_a_spike() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let kind = warm(&breaker, &clock, "email.receipt");
    let before = kind.status().minute().expected;
    clock.advance(Duration::from_secs(6 * 3600));
    steady(&kind, &clock, 200, 30);
    let status = kind.status();
    assert_eq!((status.trips, status.blocked), (0, 0));
    // Six hours with no sign of life teach nothing: the recent rate is still what it was.
    assert!(
        status.minute().expected > before * 0.9,
        "{} vs {before}",
        status.minute().expected
    );
}

#[test]
fn a_forward_jump_past_the_cooldown_half_opens_and_a_runaway_trips_again_at_once() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let kind = warm(&breaker, &clock, "security.2fa_changed");
    let threshold = kind.status().minute().threshold;
    assert!(run_away(&kind, 100_000) <= threshold);
    assert_eq!(kind.state(), State::Open);

    clock.advance(Duration::from_secs(3 * 3600)); // suspended for three hours, runaway still on
    let first = kind.check();
    assert_eq!((first, kind.state()), (Decision::Allowed, State::HalfOpen));
    let allowed = run_away(&kind, 100_000);
    let status = kind.status();
    let probe_threshold = status.tripped_on.expect("tripped").threshold;
    assert!(
        allowed < probe_threshold && probe_threshold < threshold + threshold / 10,
        "re-tripped within one threshold of sends: {allowed} (thresholds {threshold}, {probe_threshold})"
    );
    assert_eq!(
        (status.state, status.reason, status.trips),
        (State::Open, Reason::ProbeFailed, 2)
    );
}

#[test]
fn going_back_by_seconds_keeps_the_counts_and_trips_nothing() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let kind = warm(&breaker, &clock, "push.chat");
    for back_ms in [500, 5_000, 30_000, 59_000] {
        let window_before = kind.status().minute().window_count;
        clock.set(clock.now_ms() - back_ms);
        assert_eq!(kind.check(), Decision::Allowed);
        let status = kind.status();
        assert_eq!(
            status.minute().window_count,
            window_before + 1,
            "back {back_ms} ms: no count lost or doubled"
        );
        steady(&kind, &clock, 200, 10);
    }
    let status = kind.status();
    assert_eq!(
        (status.trips, status.blocked, status.state),
        (0, 0, State::Closed)
    );
}

#[test]
fn going_back_by_hours_neither_trips_nor_unblocks() {
    let clock = ManualClock::starting_at(10 * HOUR);
    let breaker = breaker(&clock);
    let normal = warm(&breaker, &clock, "email.receipt");
    let manual = breaker.kind("manual");
    let auto = breaker.kind("auto");
    assert!(run_away(&manual, 10_000) <= 1_000 && run_away(&auto, 10_000) <= 1_000);
    let forced = breaker.kind("forced");
    breaker.force_open("forced").unwrap();

    clock.set(clock.now_ms() - 5 * HOUR);
    steady(&normal, &clock, 200, 30);
    for kind in [&manual, &auto, &forced] {
        assert!(
            !kind.check().is_allowed(),
            "{} unblocked by a clock set back",
            kind.name()
        );
    }
    // Back to the real time and far beyond: only a human unblocks a manual or forced kind.
    clock.set(clock.now_ms() + 24 * HOUR);
    for kind in [&manual, &forced] {
        assert!(
            !kind.check().is_allowed(),
            "{} unblocked by a clock jump",
            kind.name()
        );
        assert_eq!(kind.state(), State::Open);
    }
    assert_eq!(normal.status().trips, 0);
    assert_eq!(
        (manual.status().trips, forced.status().trips, auto.status().trips),
        (1, 1, 1)
    );
}

#[test]
fn the_clock_at_the_edge_of_its_range_panics_nothing() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let kind = warm(&breaker, &clock, "edge");
    let mut attempted = kind.status().attempted;
    for at in [u64::MAX - 1, u64::MAX, 0, u64::MAX / 2, 1, u64::MAX] {
        clock.set(at);
        for _ in 0..3 {
            let _ = kind.check();
        }
        breaker.refresh();
        attempted += 3;
        assert_eq!(kind.status().attempted, attempted, "a send was lost at {at}");
    }
}

/// Silence teaches nothing before a kind is warm: a kind registered and kept quiet through its
/// warm-up time (a service restarted at night) is still warming up, held to the warm-up ceiling,
/// not to the floor of a normal of zero.
#[test]
fn a_kind_silent_through_its_warm_up_is_still_warming_up() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let kind = breaker.kind("quiet");
    for _ in 0..=KindConfig::default().warmup_secs / 60 {
        clock.advance(Duration::from_secs(60));
        breaker.refresh();
    }
    assert!(!kind.status().warmed_up);
    let allowed = run_away(&kind, 10_000);
    assert_eq!(allowed, KindConfig::default().warmup_ceiling);
    assert_eq!(kind.status().reason, Reason::Warmup);
}
