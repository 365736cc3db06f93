//! What an operator sees and does, all on the manual clock: events to page on, the breaker's
//! status, and the state machine under the operator's controls: automatic recovery through a
//! half-open probe, manual recovery, force open, force close, reset and dry-run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spikebreaker::config::{KindConfig, Recovery};
use spikebreaker::status::{BreakerStatus, Event, Reason, State};
use spikebreaker::{Breaker, Config, Decision, KindHandle, ManualClock};

/// A breaker on the manual clock with every event it emits recorded.
fn recorded(config: Config) -> (Breaker<ManualClock>, ManualClock, Arc<Mutex<Vec<Event>>>) {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    breaker
        .subscribe(move |event| sink.lock().unwrap().push(event.clone()))
        .detach();
    (breaker, clock, events)
}

/// `sends` sends of `kind`, one every `every`; returns how many were allowed.
fn send(breaker: &Breaker<ManualClock>, clock: &ManualClock, kind: &str, sends: u32, every: Duration) -> u32 {
    let kind = breaker.kind(kind);
    let mut allowed = 0;
    for _ in 0..sends {
        clock.advance(every);
        allowed += u32::from(kind.check().is_allowed());
    }
    allowed
}

#[test]
fn a_pager_pages_once_on_a_trip_with_its_reason_and_figures() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let pages = Arc::new(Mutex::new(Vec::new()));
    let pager = Arc::clone(&pages);
    breaker
        .subscribe(move |event| {
            if event.is_trip() && !event.dry_run {
                pager.lock().unwrap().push(format!(
                    "{} tripped ({}): {} sends in the window, threshold {}",
                    event.kind,
                    event.reason.as_str(),
                    event.window.window_count,
                    event.window.threshold
                ));
            }
        })
        .detach();

    let allowed = send(
        &breaker,
        &clock,
        "security.2fa_changed",
        5_000,
        Duration::from_millis(2),
    );
    assert_eq!(allowed, 500);
    assert_eq!(
        send(&breaker, &clock, "email.welcome", 50, Duration::from_millis(2)),
        50
    );

    let pages = pages.lock().unwrap();
    assert_eq!(
        *pages,
        ["security.2fa_changed tripped (warmup): 501 sends in the window, threshold 500"]
    );
}

#[test]
fn a_trip_and_its_recovery_are_reported_in_order() {
    let (breaker, clock, events) = recorded(Config::default());
    send(&breaker, &clock, "push.promo", 2_000, Duration::from_millis(5));
    // Quiet through the cool-down (300 s) and the probe (60 s).
    clock.advance(Duration::from_secs(300));
    breaker.refresh();
    clock.advance(Duration::from_secs(60));
    breaker.refresh();

    let events = events.lock().unwrap();
    let moves: Vec<_> = events.iter().map(|e| (e.from, e.to, e.reason)).collect();
    assert_eq!(
        moves,
        [
            (State::Closed, State::Open, Reason::Warmup),
            (State::Open, State::HalfOpen, Reason::Cooldown),
            (State::HalfOpen, State::Closed, Reason::Recovered),
        ]
    );
    assert!(events[0].is_trip() && !events[0].is_would_trip());
    assert!(events[0].window.is_over());
    assert!(events[2].is_recovery() && !events[2].is_trip());
    assert!(
        events
            .iter()
            .all(|event| &*event.kind == "push.promo" && !event.is_forced())
    );
}

#[test]
fn forcing_and_resetting_are_reported_and_hold_the_state() {
    let (breaker, clock, events) = recorded(Config::default());
    assert!(breaker.force_open("sms.login").unwrap_err().is_unknown_kind());
    drop(breaker.kind("sms.login"));
    breaker.force_open("sms.login").unwrap();
    assert_eq!(send(&breaker, &clock, "sms.login", 10, Duration::from_secs(1)), 0);
    breaker.reset("sms.login").unwrap();
    assert_eq!(
        send(&breaker, &clock, "sms.login", 10, Duration::from_secs(1)),
        10
    );
    breaker.force_close("sms.login").unwrap();
    assert_eq!(
        send(&breaker, &clock, "sms.login", 3_000, Duration::from_millis(1)),
        3_000
    );

    let events = events.lock().unwrap();
    let reasons: Vec<_> = events.iter().map(|e| (e.to, e.reason, e.is_forced())).collect();
    assert_eq!(
        reasons,
        [
            (State::Open, Reason::ForcedOpen, true),
            (State::Closed, Reason::Reset, false),
            (State::Closed, Reason::ForcedClosed, true),
        ]
    );
    assert!(events[0].is_trip());
    let status = breaker.kind_status("sms.login").unwrap();
    assert!(status.forced);
    assert_eq!((status.blocked, status.trips), (10, 1));
}

#[test]
fn dry_run_reports_a_would_trip_and_blocks_nothing() {
    let config = Config {
        defaults: KindConfig {
            dry_run: true,
            ..KindConfig::default()
        },
        ..Config::default()
    };
    let (breaker, clock, events) = recorded(config);
    assert_eq!(
        send(&breaker, &clock, "push.promo", 3_000, Duration::from_millis(2)),
        3_000
    );

    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert!(event.is_would_trip() && event.is_trip() && event.dry_run);
    assert_eq!(
        (event.to, event.reason, event.window.threshold),
        (State::Open, Reason::Warmup, 500)
    );
    let status = breaker.kind_status("push.promo").unwrap();
    assert_eq!(
        (status.state, status.blocked, status.allowed),
        (State::Open, 0, 3_000)
    );
}

#[test]
fn the_breaker_status_counts_the_overflow_and_serialises() {
    let config = Config {
        max_kinds: 2,
        ..Config::default()
    };
    let (breaker, clock, _) = recorded(config);
    for kind in ["email.welcome", "sms.login", "user-1", "user-2", "user-2"] {
        send(&breaker, &clock, kind, 1, Duration::from_millis(1));
    }

    let status = breaker.status();
    assert_eq!(
        (status.registered, status.max_kinds, status.overflowed),
        (2, 2, 3)
    );
    assert_eq!(status.at_ms, 5);
    let kinds: Vec<_> = status.kinds.iter().map(|k| (&*k.kind, k.attempted)).collect();
    assert_eq!(
        kinds,
        [
            (Breaker::OVERFLOW_KIND, 3),
            ("email.welcome", 1),
            ("sms.login", 1)
        ]
    );
    assert_eq!(breaker.kind("user-9").name(), Breaker::OVERFLOW_KIND);
    assert_eq!(breaker.status().overflowed, 4);

    let json = serde_json::to_string(&status).unwrap();
    assert!(json.contains(r#""overflowed":3"#), "{json}");
    let back: BreakerStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, status);
}

/// A subscriber may call back into the breaker on any event, reloads and look-ups included,
/// without deadlocking: no subscriber runs while the breaker holds its configuration lock.
#[test]
fn a_subscriber_may_call_back_into_the_breaker_around_a_reload() {
    use std::sync::mpsc;

    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let inner = breaker.clone();
    breaker
        .subscribe(move |event| {
            let _ = inner.config();
            let _ = inner.check(&format!("{}.echo", event.kind));
            let _ = inner.status();
        })
        .detach();
    let kind = breaker.kind("push.promo");
    while kind.check().is_allowed() {} // trip at the warm-up ceiling
    clock.advance(std::time::Duration::from_secs(3600)); // a recovery is due

    let (done, finished) = mpsc::channel();
    let reloader = breaker.clone();
    std::thread::spawn(move || {
        let mut config = Config::default();
        config.defaults.minute.factor = 4.0;
        reloader.reload(config).unwrap();
        let _ = reloader.check("push.promo"); // the due recovery, and its subscriber call
        done.send(()).unwrap();
    });
    // A watchdog, not a wait for a race: the thread takes microseconds unless it deadlocks.
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("reload and recovery finished");
    assert_eq!(breaker.config().defaults.minute.factor, 4.0);
    assert_eq!(kind.state(), spikebreaker::status::State::HalfOpen);
}

// Recovery and the operator's controls, on kinds that trip above 100 sends a minute.

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
    breaker
        .subscribe(move |event| sink.lock().unwrap().push(event.clone()))
        .detach();
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

    // The job is stopped. A minute later the minute window is quiet, but the last two complete
    // 5-minute slots still hold the runaway's thousands, at a rate over the warm-up ceiling of
    // an hour: still open.
    clock.advance(61 * SECOND);
    assert_eq!(kind.check(), Decision::Blocked(Reason::Warmup));
    // Once they have passed quietly the kind probes, then closes.
    clock.advance(15 * 60 * SECOND);
    assert_eq!(kind.check(), Decision::Allowed, "{:?}", kind.status());
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
    assert_eq!((trip.window.window_count, trip.window.threshold), (101, 100));
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
    breaker.reset("sms.login_code").unwrap();
    let status = kind.status();
    assert_eq!(
        (status.state, status.reason, status.minute().window_count),
        (State::Closed, Reason::Reset, 0)
    );
    assert_eq!(kind.check(), Decision::Allowed);
}

#[test]
fn force_open_blocks_everything_until_reset_whatever_the_rate() {
    let (breaker, clock, events) = setup(Recovery::Auto, false);
    let kind = breaker.kind("email.welcome");
    breaker.force_open("email.welcome").unwrap();
    assert_eq!(kind.check(), Decision::Blocked(Reason::ForcedOpen));
    clock.advance(Duration::from_secs(3600));
    breaker.refresh();
    assert_eq!(
        kind.check(),
        Decision::Blocked(Reason::ForcedOpen),
        "no automatic recovery"
    );
    breaker.reset("email.welcome").unwrap();
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
    breaker.force_close("email.campaign").unwrap();
    assert_eq!(flood(&kind, &clock, 500), 500);
    assert!(kind.status().forced);
    breaker.reset("email.campaign").unwrap();
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

    breaker.set_dry_run("push.promo", false).unwrap();
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
    assert!(
        learned.warmed_up && learned.minute().expected > 25.0,
        "{learned:?}"
    );
    breaker.force_open("email.receipt").unwrap();
    breaker.reset("email.receipt").unwrap();
    let after = kind.status();
    assert_eq!(
        (after.minute().expected, after.minute().threshold, after.warmed_up),
        (learned.minute().expected, learned.minute().threshold, true)
    );
}

// What no automatic rule can know: a lasting change, a surge announced in advance.

/// `per_minute` sends a minute of `kind`, evenly spread, for `minutes`; how many were allowed.
fn steady(kind: &KindHandle<ManualClock>, clock: &ManualClock, per_minute: u64, minutes: u64) -> u64 {
    let every = Duration::from_millis(60_000 / per_minute);
    (0..per_minute * minutes)
        .filter(|_| {
            clock.advance(every);
            kind.check().is_allowed()
        })
        .count() as u64
}

fn reasons(events: &Mutex<Vec<Event>>, kind: &str) -> Vec<Reason> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|event| &*event.kind == kind)
        .map(|event| event.reason)
        .collect()
}

#[test]
fn a_lasting_step_up_stays_open_is_reported_once_and_relearn_takes_it_as_normal() {
    let (breaker, clock, events) = recorded(Config::default());
    let kind = breaker.kind("push.feed");
    assert_eq!(steady(&kind, &clock, 20, 2 * 24 * 60), 2 * 24 * 60 * 20);

    // A new feature sends ten times as much, for good: tripped, and open while it lasts.
    let allowed = steady(&kind, &clock, 200, 3 * 60);
    assert!(
        allowed < 200,
        "tripped within the first minute: {allowed} allowed"
    );
    let status = breaker.kind_status("push.feed").unwrap();
    assert_eq!((status.state, status.trips), (State::Open, 1));
    assert!(status.open_for_ms >= 2 * 3_600_000, "{}", status.open_for_ms);
    let still_open = reasons(&events, "push.feed")
        .into_iter()
        .filter(|reason| *reason == Reason::StillOpen)
        .count();
    assert_eq!(still_open, 1, "an hour open is reported, once");

    // The operator looks, sees a legitimate change, and relearns: the new level is normal.
    breaker.relearn("push.feed").unwrap();
    assert_eq!(reasons(&events, "push.feed").last(), Some(&Reason::Relearned));
    let after = steady(&kind, &clock, 200, 4 * 60);
    assert_eq!(
        after,
        200 * 4 * 60,
        "nothing blocked after relearn: {:#?}",
        events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(3)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(breaker.kind_status("push.feed").unwrap().trips, 1);
}

#[test]
fn surges_planned_in_the_config_begin_and_end_on_time_and_cover_their_sends_only() {
    const DAY_MS: u64 = 86_400_000;
    let surge = |kind: &str, sends: u64, from: &str, until: &str| spikebreaker::config::SurgeConfig {
        kind: kind.into(),
        sends,
        from: from.into(),
        until: until.into(),
    };
    let config = Config {
        surges: vec![
            surge(
                "email.campaign",
                30_000,
                "1970-01-02T00:00:00Z",
                "1970-01-02T01:00:00Z",
            ),
            surge(
                "email.digest",
                20_000,
                "1970-01-01T22:00:00Z",
                "1970-01-01T23:00:00Z",
            ),
        ],
        ..Config::default()
    };
    let (breaker, clock, events) = recorded(config.clone());

    // A kind already sending: its surge begins on time, and its end trips nothing.
    let digest = breaker.kind("email.digest");
    assert_eq!(steady(&digest, &clock, 10, 22 * 60), 10 * 22 * 60);
    assert_eq!(steady(&digest, &clock, 300, 30), 300 * 30);
    let left = breaker.kind_status("email.digest").unwrap().surge.unwrap().sends;
    assert!((11_000..=11_100).contains(&left), "{left} left of 20,000");
    breaker.reload(config).unwrap(); // the same surge, already in force: not begun again
    assert_eq!(steady(&digest, &clock, 300, 30), 300 * 30);
    assert_eq!(steady(&digest, &clock, 10, 60), 10 * 60);
    assert_eq!(
        reasons(&events, "email.digest"),
        [Reason::Surge, Reason::SurgeEnded],
        "no trip during or after the surge, and begun once"
    );
    assert_eq!(breaker.kind_status("email.digest").unwrap().surge, None);

    // A kind first seen during its surge has it from its first send; past its sends, it trips.
    clock.set(DAY_MS);
    let campaign = breaker.kind("email.campaign");
    let allowed = steady(&campaign, &clock, 1_000, 40);
    assert!(
        (30_000..=30_500).contains(&allowed),
        "{allowed} allowed of a 30,000 surge"
    );
    let status = breaker.kind_status("email.campaign").unwrap();
    assert_eq!(
        (status.state, status.surge.map(|s| s.sends)),
        (State::Open, Some(0))
    );
    assert_eq!(
        reasons(&events, "email.campaign")[..2],
        [Reason::Surge, Reason::Warmup]
    );
}

#[test]
fn controls_on_a_kind_the_breaker_does_not_know_are_refused_and_never_reach_the_overflow_kind() {
    let config = Config {
        max_kinds: 1,
        ..Config::default()
    };
    let (breaker, clock, events) = recorded(config);
    assert_eq!(
        send(&breaker, &clock, "email.welcome", 1, Duration::from_millis(1)),
        1
    );
    // A runaway without room of its own trips the overflow kind.
    let runaway = |sends| {
        (0..sends)
            .filter(|_| {
                clock.advance(Duration::from_millis(2));
                breaker.check("job.runaway").is_allowed()
            })
            .count()
    };
    assert_eq!(runaway(1_500), 500, "the warm-up ceiling");
    let overflow_events = events.lock().unwrap().len();

    type Control = fn(&Breaker<ManualClock>, &str) -> Result<(), spikebreaker::Error>;
    let controls: [(&str, Control); 4] = [
        ("force_close", |b, k| b.force_close(k)),
        ("reset", |b, k| b.reset(k)),
        ("set_dry_run", |b, k| b.set_dry_run(k, true)),
        ("force_open", |b, k| b.force_open(k)),
    ];
    for (control, call) in controls {
        let error = call(&breaker, "job.runaway").unwrap_err();
        assert!(error.is_unknown_kind(), "{control}: {error}");
        assert!(error.to_string().contains("\"job.runaway\""), "{error}");
        assert_eq!(runaway(5_000), 0, "{control} let the runaway through");
        let error = call(&breaker, "job\n").unwrap_err();
        assert!(error.is_invalid_kind_name(), "{control}: {error}");
    }
    let overflow = breaker.kind_status(Breaker::OVERFLOW_KIND).unwrap();
    assert!(!overflow.forced && !overflow.dry_run, "{overflow:?}");
    assert_eq!(
        events.lock().unwrap().len(),
        overflow_events,
        "no control reached it"
    );
    assert!(breaker.kind_status("job.runaway").is_none());
    // Asked for by its own name, the overflow kind is an operator's to control.
    breaker.reset(Breaker::OVERFLOW_KIND).unwrap();
    assert_eq!(
        breaker.kind_status(Breaker::OVERFLOW_KIND).unwrap().reason,
        Reason::Reset
    );
}

#[test]
fn a_kind_named_in_the_configuration_can_be_controlled_before_its_first_send() {
    let config =
        Config::from_toml("max_kinds = 1\n[kinds.\"security.2fa_changed\"]\nminute.floor = 20\n").unwrap();
    let (breaker, clock, _) = recorded(config);
    assert_eq!(
        send(&breaker, &clock, "email.welcome", 1, Duration::from_millis(1)),
        1
    );
    breaker.force_open("security.2fa_changed").unwrap();
    assert_eq!(
        breaker.check("security.2fa_changed"),
        Decision::Blocked(Reason::ForcedOpen)
    );
    assert_eq!(breaker.status().registered, 2, "its own slot, beyond max_kinds");
}

#[test]
fn a_surge_of_nothing_or_of_no_end_is_refused() {
    let (breaker, _clock, events) = recorded(Config::default());
    let _ = breaker.kind("email.campaign");
    for (sends, duration, field) in [
        (0, Duration::from_secs(60), "sends"),
        (10, Duration::ZERO, "duration"),
        (10, Duration::MAX, "duration"),
        (10, Duration::from_secs(31 * 86_400), "duration"),
    ] {
        let error = breaker.plan_surge("email.campaign", sends, duration).unwrap_err();
        assert!(error.is_config() && error.to_string().contains(field), "{error}");
    }
    assert_eq!(breaker.kind_status("email.campaign").unwrap().surge, None);
    assert!(events.lock().unwrap().is_empty());
}
