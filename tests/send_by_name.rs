//! Sending by name (`Breaker::check`) decides exactly as sending through a resolved handle, at
//! every bucket edge, trip and recovery, and a subscriber called from a send by name may call
//! back into the breaker, registering kinds too.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use spikebreaker::{Breaker, Config, Decision, KindConfig, ManualClock, State};
use support::{Profile, Traffic, burst, merge};

const KINDS: [&str; 3] = ["email.welcome", "sms.login_code", "security.2fa_changed"];

fn small_config() -> Config {
    Config {
        defaults: KindConfig {
            floor: 20,
            warmup_ceiling: 50,
            warmup_secs: 600,
            cooldown_secs: 60,
            probe_secs: 30,
            ..KindConfig::default()
        },
        ..Config::default()
    }
}

#[test]
fn by_name_and_by_handle_decide_every_send_alike() {
    let traffic: Vec<(u64, usize)> = merge(
        Traffic::new(
            vec![
                Profile::steady(KINDS[0], 30.0),
                Profile::steady(KINDS[1], 10.0),
                Profile::steady(KINDS[2], 2.0),
            ],
            11,
            0,
            3 * 3_600_000,
        ),
        // A runaway after two hours: trips, cools down, probes, recovers or trips again.
        burst(2 * 3_600_000, 3_000, 50.0).map(|t| (t, 2)),
    )
    .collect();

    let by_name_clock = ManualClock::new();
    let by_name = Breaker::with_clock(small_config(), by_name_clock.clone()).unwrap();
    let by_handle_clock = ManualClock::new();
    let by_handle = Breaker::with_clock(small_config(), by_handle_clock.clone()).unwrap();
    let handles: Vec<_> = KINDS.iter().map(|kind| by_handle.kind(kind)).collect();
    // Registered at the same time on both sides, so that their statuses compare whole.
    KINDS.iter().for_each(|kind| drop(by_name.kind(kind)));

    let mut blocked = 0;
    for (i, &(t, kind)) in traffic.iter().enumerate() {
        by_name_clock.set(t);
        by_handle_clock.set(t);
        let named = by_name.check(KINDS[kind]);
        assert_eq!(
            named,
            handles[kind].check(),
            "send {i} of {} at {t} ms",
            KINDS[kind]
        );
        blocked += u64::from(named != Decision::Allowed);
    }
    assert!(
        blocked > 0,
        "the runaway was never blocked: the test saw no cold path"
    );
    assert_eq!(by_name.status(), by_handle.status());
}

#[test]
fn a_subscriber_may_register_kinds_and_send_by_name_from_a_send_by_name() {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(small_config(), clock).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = breaker.clone();
        let seen = Arc::clone(&calls);
        breaker.subscribe(move |event| {
            seen.fetch_add(1, Ordering::Relaxed);
            // Enough new kinds to land in every shard of the registry, the tripping kind's too:
            // a send by name that ran its cold work under the registry's lock would deadlock.
            for i in 0..200 {
                let _ = inner.check(&format!("tenant{i}.email.receipt"));
            }
            assert_eq!(inner.check(&event.kind), Decision::Blocked(event.reason));
        });
        let allowed = (0..100).filter(|_| breaker.check(KINDS[2]).is_allowed()).count();
        let _ = done.send((
            allowed,
            calls.load(Ordering::Relaxed),
            breaker.kind(KINDS[2]).state(),
        ));
    });
    // A watchdog for a deadlock, not a wait for a result that takes time.
    let (allowed, calls, state) = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("a send by name deadlocked with its subscriber");
    assert_eq!((allowed, calls, state), (50, 1, State::Open));
}
