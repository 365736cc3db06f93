//! Unbounded kinds: a bug that puts a user id into the kind fills the registry, the overflow
//! kind takes the rest (counted), and once the flood's kinds have been idle for
//! `evict_idle_secs` they give their room back, while kinds in use are never evicted.

use std::time::Duration;

use spikebreaker::{Breaker, Config, ManualClock};

const OVERFLOW_KIND: &str = Breaker::OVERFLOW_KIND;

const MAX_KINDS: usize = 100;

fn breaker(clock: &ManualClock) -> Breaker<ManualClock> {
    let config = Config {
        max_kinds: MAX_KINDS,
        evict_idle_secs: 3600,
        ..Config::default()
    };
    Breaker::with_clock(config, clock.clone()).unwrap()
}

fn registered(breaker: &Breaker<ManualClock>) -> Vec<String> {
    breaker
        .status()
        .kinds
        .into_iter()
        .map(|s| s.kind.to_string())
        .filter(|k| k != OVERFLOW_KIND)
        .collect()
}

#[test]
fn after_a_flood_of_user_ids_goes_idle_real_kinds_get_their_room_back() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    // Kinds in steady use take half the room.
    let steady: Vec<String> = (0..50).map(|i| format!("email.kind_{i}")).collect();
    for kind in &steady {
        assert!(breaker.check(kind).is_allowed());
    }
    for user in 0..1_000 {
        let _ = breaker.check(&format!("security.2fa_changed.user_{user}"));
    }
    assert_eq!(registered(&breaker).len(), MAX_KINDS);
    assert_eq!(breaker.status().overflowed, 950);
    // A new real kind during the flood's hour shares the overflow kind.
    clock.advance(Duration::from_secs(600));
    assert_eq!(breaker.kind("sms.new_feature").name(), OVERFLOW_KIND);

    // The steady kinds keep sending every minute for the hour; the flood's kinds do not.
    for _ in 0..60 {
        clock.advance(Duration::from_secs(60));
        for kind in &steady {
            assert!(breaker.check(kind).is_allowed());
        }
    }
    let newcomer = breaker.kind("sms.new_feature");
    assert_eq!(
        newcomer.name(),
        "sms.new_feature",
        "the full registry evicted idle kinds"
    );
    assert_eq!(breaker.status().evicted, 50);
    let now = registered(&breaker);
    assert!(
        steady.iter().all(|k| now.contains(k)),
        "a kind in use was evicted"
    );
    assert_eq!(now.len(), 51);
    assert_eq!(breaker.status().overflowed, 951, "the overflow stays counted");
    assert_eq!(breaker.kind_status(OVERFLOW_KIND).unwrap().attempted, 950);
}

#[test]
fn open_forced_held_and_recent_kinds_are_never_evicted() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let tripped = breaker.kind("tripped");
    while tripped.check().is_allowed() {}
    drop(tripped);
    breaker.force_close("forced");
    let held = breaker.kind("held");
    let _ = held.check();
    let _ = breaker.check("idle");
    clock.advance(Duration::from_secs(2 * 3600));
    let _ = breaker.check("recent");

    assert_eq!(breaker.evict_idle(), 1);
    assert_eq!(registered(&breaker), ["forced", "held", "recent", "tripped"]);
    assert_eq!(breaker.kind_status("tripped").unwrap().trips, 1);
    // An evicted kind comes back as new.
    assert!(breaker.check("idle").is_allowed());
    assert_eq!(breaker.kind_status("idle").unwrap().attempted, 1);
    assert_eq!(breaker.status().evicted, 1);
}

#[test]
fn a_kind_idle_for_less_than_evict_idle_secs_is_kept() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock);
    let _ = breaker.check("a");
    clock.advance(Duration::from_secs(3_000));
    let _ = breaker.check("b");
    clock.advance(Duration::from_secs(599)); // "a" idle 3599 s (and its bucket began earlier)
    assert_eq!(breaker.evict_idle(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(breaker.evict_idle(), 1);
    assert_eq!(registered(&breaker), ["b"]);
}
