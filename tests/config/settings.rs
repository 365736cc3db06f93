//! Settings that would break detection without a word: a warm-up too short to learn a rate.

use std::time::Duration;

use spikebreaker::{Breaker, Config, ManualClock};

/// 2023-11-14T22:13:20Z: 200 seconds into a 5-minute slot.
const START: u64 = 1_700_000_000_000;

/// Sends `kind` at `per_minute`, evenly, for `minutes`; returns how many were blocked.
fn steady(
    breaker: &Breaker<ManualClock>,
    clock: &ManualClock,
    kind: &str,
    per_minute: u64,
    minutes: u64,
) -> u64 {
    let handle = breaker.kind(kind);
    let mut blocked = 0;
    for _ in 0..per_minute * minutes {
        clock.advance(Duration::from_millis(60_000 / per_minute));
        blocked += u64::from(!handle.check().is_allowed());
    }
    blocked
}

/// Before: with `warmup_secs` of 300 or less a kind could be warm before it had learned its rate
/// from a whole 5-minute slot: judged as expecting nothing, it tripped at its floor on its own
/// traffic, and open it never learned the rate that would have calmed it (49,232 to 50,350 of
/// its 50,400 sends blocked, by where in a slot it began).
#[test]
fn a_short_warm_up_learns_the_rate_before_it_judges_by_it() {
    for warmup_secs in [1, 60, 120, 180, 240, 300] {
        // Started on a slot's edge, a second in, halfway, and a second before the next.
        for into_slot_ms in [0, 1_000, 150_000, 299_000] {
            let clock = ManualClock::starting_at(START + 100_000 + into_slot_ms);
            let config = Config::from_toml(&format!("[defaults]\nwarmup_secs = {warmup_secs}\n")).unwrap();
            let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
            let blocked = steady(&breaker, &clock, "email.digest", 280, 180);
            let status = breaker.kind_status("email.digest").unwrap();
            assert_eq!(
                (blocked, status.trips),
                (0, 0),
                "warmup_secs = {warmup_secs}, {into_slot_ms} ms into the slot: {:?}",
                status.tripped_on
            );
            assert!(status.warmed_up && status.minute().expected > 200.0, "{status:?}");
        }
    }
}
