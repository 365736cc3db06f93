//! The bounded registry under attack: junk kind names (a user id put into the kind by a bug, or
//! a hostile sender) fill it and flood the overflow kind, and must not turn it against the
//! service's real kinds. Kinds named in the configuration keep their own slot and settings; a
//! name never seen before cannot displace a kind that has learned its baseline; the overflow kind
//! runs a fixed limit that traffic cannot teach; a handle resolved onto the overflow kind moves
//! to its own kind when room returns; and a registration that panics gives its slot back.
//! All on the manual clock.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spikebreaker::status::Reason;
use spikebreaker::{Breaker, Clock, Config, Decision, ManualClock};

use crate::snapshots::{a_learned_week, kinds};

const OVERFLOW_KIND: &str = Breaker::OVERFLOW_KIND;
const MAX_KINDS: usize = 100;
const MINUTE: Duration = Duration::from_secs(60);

/// Room for 100 kinds, forgotten after an hour idle, and `toml` on top.
fn breaker(toml: &str) -> (Breaker<ManualClock>, ManualClock) {
    let mut config = Config::from_toml(toml).unwrap();
    config.max_kinds = MAX_KINDS;
    let clock = ManualClock::new();
    (Breaker::with_clock(config, clock.clone()).unwrap(), clock)
}

/// Sends `count` distinct junk names once each, numbered from `from`, `every` apart.
fn junk(breaker: &Breaker<ManualClock>, clock: &ManualClock, from: u64, count: u64, every: Duration) {
    for i in from..from + count {
        clock.advance(every);
        let _ = breaker.check(&format!("user.{i}"));
    }
}

/// `count` sends of `kind` by name, `every` apart; how many were allowed.
fn sends(
    breaker: &Breaker<ManualClock>,
    clock: &ManualClock,
    kind: &str,
    count: u64,
    every: Duration,
) -> u64 {
    (0..count)
        .filter(|_| {
            clock.advance(every);
            breaker.check(kind).is_allowed()
        })
        .count() as u64
}

#[test]
fn a_configured_kind_keeps_its_own_slot_when_junk_fills_the_registry_and_trips_the_overflow_kind() {
    let (breaker, clock) =
        breaker("[kinds.\"security.2fa_changed\"]\nminute = { floor = 20 }\nwarmup_ceiling = 20\n");
    // The registry fills with junk, and 2,000 more junk names in 20 seconds trip the overflow.
    junk(&breaker, &clock, 0, MAX_KINDS as u64, Duration::from_millis(10));
    junk(&breaker, &clock, 1_000, 2_000, Duration::from_millis(10));
    let overflow = breaker.kind_status(OVERFLOW_KIND).unwrap();
    assert_eq!(
        (overflow.attempted, overflow.blocked, overflow.trips),
        (2_000, 1_500, 1)
    );

    // The configured kind's first send goes through, on its own kind with its own limit of 20.
    assert!(breaker.check("security.2fa_changed").is_allowed());
    assert_eq!(
        sends(
            &breaker,
            &clock,
            "security.2fa_changed",
            999,
            Duration::from_millis(5)
        ),
        19
    );
    let own = breaker.kind_status("security.2fa_changed").unwrap();
    assert_eq!(
        (own.attempted, own.blocked, own.minute().threshold),
        (1_000, 980, 20)
    );
    // A kind nobody configured shares the tripped overflow kind: name it in the configuration
    // to guarantee it a slot.
    assert_eq!(breaker.check("email.new"), Decision::Blocked(Reason::Warmup));
    assert_eq!(
        breaker.status().registered,
        MAX_KINDS + 1,
        "reserved beyond max_kinds"
    );
}

#[test]
fn junk_kept_under_the_limit_cannot_teach_the_overflow_kind_a_higher_one() {
    // The first junk keeps its slots (idle for less than a day), so the rest shares the overflow
    // kind.
    let (breaker, clock) = breaker("evict_idle_secs = 86400\n");
    junk(&breaker, &clock, 0, MAX_KINDS as u64, Duration::from_millis(10));
    // Three hours of junk at 450 a minute, just under the warm-up ceiling of 500: a kind of
    // its own would learn 450 as normal, and allow three times that.
    let mut next = 1_000;
    for _ in 0..3 * 60 {
        junk(&breaker, &clock, next, 450, MINUTE / 450);
        next += 450;
    }
    let overflow = breaker.kind_status(OVERFLOW_KIND).unwrap();
    let minute = overflow.minute();
    assert_eq!(
        (overflow.blocked, minute.expected, minute.threshold),
        (0, 0.0, 500)
    );
    assert!(!overflow.warmed_up, "the overflow kind learned a baseline");

    // A runaway that lands there, beside the junk: 15,000 sends in a minute.
    let mut through = 0;
    for i in 0..15_000u64 {
        clock.advance(MINUTE / 15_000);
        through += u64::from(breaker.check("job.runaway").is_allowed());
        if i % 17 == 0 {
            let _ = breaker.check(&format!("user.{}", next + i));
        }
    }
    assert!(through <= 150, "{through} of 15,000 runaway sends went through");
    assert!(
        kinds(&breaker.snapshot())
            .keys()
            .all(|kind| kind != OVERFLOW_KIND)
    );
}

#[test]
fn a_configured_kind_that_arrives_after_the_registry_fills_runs_on_its_own_settings() {
    let (breaker, clock) =
        breaker("[kinds.\"security.2fa_changed\"]\nminute = { floor = 20 }\nwarmup_ceiling = 20\n");
    junk(&breaker, &clock, 0, MAX_KINDS as u64, Duration::from_millis(10));
    let twofa = breaker.kind("security.2fa_changed");
    assert_eq!(twofa.name(), "security.2fa_changed");
    let through = (0..1_000)
        .filter(|_| {
            clock.advance(Duration::from_millis(10));
            twofa.check().is_allowed()
        })
        .count();
    assert_eq!(through, 20, "its configured limit");
}

#[test]
fn a_flood_of_new_names_cannot_evict_an_idle_kind_that_has_learned_its_baseline() {
    let (breaker, clock) = breaker("");
    // A kind that learned 3,000 a minute at every hour of last week (restored), and sends so for
    // an hour.
    let snapshot = a_learned_week("email.digest", 3_000.0, [0.0, 0.01]);
    breaker.restore(&snapshot).unwrap();
    assert_eq!(
        sends(&breaker, &clock, "email.digest", 60 * 3_000, MINUTE / 3_000),
        60 * 3_000
    );
    // Two quiet hours for the digest while a flood of new names fills the registry and goes on,
    // one name every 100 ms, so that the full registry sweeps every second.
    junk(&breaker, &clock, 0, 2 * 36_000, Duration::from_millis(100));
    let status = breaker.status();
    assert_eq!(status.registered, MAX_KINDS);
    assert!(status.evicted > 0, "the flood's own idle kinds were evicted");

    // Its next normal hour: 180,000 sends, all through on the baseline it kept.
    assert_eq!(
        sends(&breaker, &clock, "email.digest", 60 * 3_000, MINUTE / 3_000),
        180_000
    );
    assert_eq!(breaker.kind_status("email.digest").unwrap().attempted, 360_000);
}

#[test]
fn a_new_kind_that_proves_itself_takes_the_slot_of_an_idle_learned_kind() {
    let (breaker, clock) = breaker("");
    // The registry fills with kinds that learn their baseline, then go quiet for two hours.
    for minute in 0..70 {
        for k in 0..MAX_KINDS {
            let _ = breaker.check(&format!("report.{k}"));
        }
        clock.set((minute + 1) * 60_000);
    }
    clock.advance(2 * 60 * MINUTE);
    // A new kind, ten a minute: on the overflow kind until it has knocked 16 times.
    let mut own_after = None;
    for send in 1..=40u64 {
        clock.advance(MINUTE / 10);
        let _ = breaker.check("email.new_feature");
        if own_after.is_none() && breaker.kind_status("email.new_feature").is_some() {
            own_after = Some(send);
        }
    }
    assert_eq!(own_after, Some(16));
    let status = breaker.status();
    assert_eq!((status.registered, status.evicted), (MAX_KINDS, 1));
}

#[test]
fn a_handle_resolved_onto_the_overflow_kind_moves_to_its_own_kind_when_room_returns() {
    let (breaker, clock) = breaker("");
    junk(&breaker, &clock, 0, MAX_KINDS as u64, Duration::from_millis(10));
    let job = breaker.kind("job.export");
    assert_eq!(job.name(), OVERFLOW_KIND);
    // An hour later the junk is idle; a runaway sends 3,000 through the handle and by name.
    clock.advance(61 * MINUTE);
    let mut through = 0;
    for i in 0..3_000 {
        clock.advance(Duration::from_millis(10));
        let decision = if i % 2 == 0 {
            job.check()
        } else {
            breaker.check("job.export")
        };
        through += u64::from(decision.is_allowed());
    }
    assert_eq!(job.name(), "job.export");
    assert_eq!(through, 500, "the warm-up ceiling, counted in one place");
    let own = breaker.kind_status("job.export").unwrap();
    assert_eq!((own.attempted, own.blocked), (3_000, 2_500));
}

/// A clock that panics on one chosen read.
#[derive(Clone, Debug, Default)]
struct PanickyClock {
    now: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    panic_on: Arc<AtomicU64>,
}

impl Clock for PanickyClock {
    fn now_ms(&self) -> u64 {
        let read = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        assert_ne!(read, self.panic_on.load(Ordering::Relaxed), "the clock broke");
        self.now.load(Ordering::Relaxed)
    }
}

#[test]
fn a_clock_that_panics_while_a_kind_registers_loses_no_slot() {
    let clock = PanickyClock::default();
    let config = Config {
        max_kinds: 50,
        ..Config::default()
    };
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    for i in 0..25 {
        // The look-up reads the clock, then the new kind does: that second read panics.
        clock.reads.store(0, Ordering::Relaxed);
        clock.panic_on.store(2, Ordering::Relaxed);
        let name = format!("panicked.{i}");
        let registering = catch_unwind(AssertUnwindSafe(|| breaker.check(&name)));
        assert!(registering.is_err(), "the clock did not panic");
        assert!(breaker.kind_status(&name).is_none());
    }
    clock.panic_on.store(0, Ordering::Relaxed);
    for i in 0..50 {
        assert_eq!(breaker.kind(&format!("kind.{i}")).name(), format!("kind.{i}"));
    }
    assert_eq!(breaker.status().registered, 50, "all 50 slots usable");
}

#[test]
fn relearning_the_overflow_kind_leaves_its_limit_fixed() {
    let (breaker, clock) = breaker("evict_idle_secs = 86400\n");
    junk(
        &breaker,
        &clock,
        0,
        MAX_KINDS as u64 + 300,
        Duration::from_millis(100),
    );
    breaker.relearn(OVERFLOW_KIND).unwrap();
    let overflow = breaker.kind_status(OVERFLOW_KIND).unwrap();
    assert!(!overflow.warmed_up, "{overflow:?}");
    assert_eq!(overflow.minute().threshold, 500, "the warm-up ceiling, as before");
}
