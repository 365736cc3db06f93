//! Many threads sending at once, with trips and recoveries happening mid-run: nothing is lost or
//! counted twice. Each sender tallies its own decisions; the breaker's figures must match them
//! exactly, and every trip must be reported by exactly one event.
//!
//! Time is a [`ManualClock`] moved in lockstep with the senders: each makes a step's sends, all
//! meet at a barrier, one moves the clock, and all go on only once it has moved. The sends of a
//! step race each other (and cross bucket edges, cooldowns and probes as they do), but where the
//! clock stands at each send does not depend on how threads are scheduled, so the outcome is
//! fixed: each kind's trips are those of the same sends made one after the other on one thread,
//! exactly. (Before, a thread moved the clock as it saw the senders progress; on a busy machine it
//! starved, the senders ran ahead of time, and quiet kinds tripped as floods in 24 runs of 30.)
//!
//! And the bounded registry: a bug that puts a user id into the kind fills it, the overflow kind
//! takes the rest (counted), and once the flood's kinds have been idle for `evict_idle_secs` they
//! give their room back, while kinds in use are never evicted, by a sweep racing sends too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use spikebreaker::config::KindConfig;
use spikebreaker::{Breaker, Config, Decision, ManualClock};

const OVERFLOW_KIND: &str = Breaker::OVERFLOW_KIND;

const THREADS: u64 = 8;
const SENDS: u64 = 25_000;
/// Sends each thread makes between two moves of the clock: 2,000 a step in all.
const STEP_SENDS: u64 = 250;

/// One-second buckets, a warm-up ceiling of 500 a window, a 30-second cooldown and a 5-second
/// probe: a flood trips, recovers after a long pause, and trips again on its probe.
fn config() -> Config {
    Config {
        defaults: KindConfig {
            window_secs: 12,
            cooldown_secs: 30,
            probe_secs: 5,
            ..KindConfig::default()
        },
        ..Config::default()
    }
}

#[derive(Default)]
struct Tally {
    allowed: u64,
    blocked: u64,
}

/// Counts trip events per kind.
fn count_trips(breaker: &Breaker<ManualClock>) -> Arc<Mutex<HashMap<String, u64>>> {
    let trips = Arc::new(Mutex::new(HashMap::new()));
    let seen = Arc::clone(&trips);
    breaker
        .subscribe(move |event| {
            if event.is_trip() {
                *seen.lock().entry(event.kind.to_string()).or_insert(0) += 1;
            }
        })
        .detach();
    trips
}

/// The clock's move after step `step` (from 1): a second, and a minute every tenth step (past
/// the cooldown, so tripped kinds probe and trip again).
fn advance(clock: &ManualClock, step: u64) {
    let secs = if step % 10 == 0 { 60 } else { 1 };
    clock.advance(Duration::from_secs(secs));
}

/// Waits until every sender has made its sends of the step, has one of them run `between`, and
/// lets them all go on only once it has.
fn lockstep(barrier: &Barrier, between: impl FnOnce()) {
    if barrier.wait().is_leader() {
        between();
    }
    barrier.wait();
}

/// Runs `THREADS` senders at once, each making `SENDS` sends through `send(thread, i)`, the
/// clock moved between steps; returns the tallies per kind.
fn run(clock: &ManualClock, send: impl Fn(u64, u64) -> (String, Decision) + Sync) -> HashMap<String, Tally> {
    let barrier = Barrier::new(THREADS as usize);
    let tallies: Vec<HashMap<String, Tally>> = thread::scope(|s| {
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (send, barrier) = (&send, &barrier);
                s.spawn(move || {
                    let mut tally = HashMap::new();
                    for i in 0..SENDS {
                        count(&mut tally, send(t, i));
                        if (i + 1) % STEP_SENDS == 0 {
                            lockstep(barrier, || advance(clock, (i + 1) / STEP_SENDS));
                        }
                    }
                    tally
                })
            })
            .collect();
        senders.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total: HashMap<String, Tally> = HashMap::new();
    for tally in tallies {
        for (kind, t) in tally {
            let entry = total.entry(kind).or_default();
            entry.allowed += t.allowed;
            entry.blocked += t.blocked;
        }
    }
    total
}

/// The same sends as [`run`], at the same clock readings, made one after the other on this
/// thread: what the concurrent run must come to.
fn run_in_order(
    clock: &ManualClock,
    send: impl Fn(u64, u64) -> (String, Decision),
) -> HashMap<String, Tally> {
    let mut tally = HashMap::new();
    for step in 1..=SENDS / STEP_SENDS {
        for t in 0..THREADS {
            for i in (step - 1) * STEP_SENDS..step * STEP_SENDS {
                count(&mut tally, send(t, i));
            }
        }
        advance(clock, step);
    }
    tally
}

fn count(tally: &mut HashMap<String, Tally>, (kind, decision): (String, Decision)) {
    let entry = tally.entry(kind).or_default();
    match decision {
        Decision::Allowed => entry.allowed += 1,
        Decision::Blocked(_) => entry.blocked += 1,
    }
}

/// The breaker's figures for every kind match what the senders saw, exactly.
fn assert_exact(
    breaker: &Breaker<ManualClock>,
    tallies: &HashMap<String, Tally>,
    trips: &HashMap<String, u64>,
) {
    for (kind, tally) in tallies {
        let status = breaker.kind_status(kind).unwrap();
        assert_eq!(status.allowed, tally.allowed, "{kind}: allowed");
        assert_eq!(status.blocked, tally.blocked, "{kind}: blocked");
        assert_eq!(
            status.attempted,
            tally.allowed + tally.blocked,
            "{kind}: attempted"
        );
        assert_eq!(
            status.trips,
            trips.get(kind).copied().unwrap_or(0),
            "{kind}: trip events"
        );
    }
}

/// Each kind tripped as often as in the run in order.
fn assert_trips_as_in_order(
    breaker: &Breaker<ManualClock>,
    in_order: &Breaker<ManualClock>,
    kinds: &[String],
) {
    for kind in kinds {
        let (concurrent, alone) = (
            breaker.kind_status(kind).unwrap(),
            in_order.kind_status(kind).unwrap(),
        );
        assert_eq!(concurrent.trips, alone.trips, "{kind}: trips");
    }
}

fn breaker_on_a_manual_clock(config: Config) -> (Breaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    (Breaker::with_clock(config, clock.clone()).unwrap(), clock)
}

#[test]
fn one_kind_hammered_by_every_thread_counts_every_send_once() {
    const KIND: &str = "security.2fa_changed";
    let (breaker, clock) = breaker_on_a_manual_clock(config());
    let trips = count_trips(&breaker);
    let handle = breaker.kind(KIND);
    let tallies = run(&clock, |_, _| (KIND.to_string(), handle.check()));

    let tally = &tallies[KIND];
    assert_eq!(tally.allowed + tally.blocked, THREADS * SENDS);
    assert_exact(&breaker, &tallies, &trips.lock());

    let (in_order, in_order_clock) = breaker_on_a_manual_clock(config());
    let alone = in_order.kind(KIND);
    run_in_order(&in_order_clock, |_, _| (KIND.to_string(), alone.check()));
    assert_trips_as_in_order(&breaker, &in_order, &[KIND.to_string()]);
    assert!(
        handle.status().trips >= 2,
        "tripped, probed and tripped again mid-run: {:?}",
        handle.status()
    );
}

#[test]
fn many_kinds_some_running_away_count_every_send_once() {
    // Kinds 0..4 take most of the traffic and trip; kinds 4..64 share the rest, about 8 sends a
    // second each, far under the ceiling.
    let kind_of = |t: u64, i: u64| {
        let k = if i % 4 != 0 {
            (t + i) % 4
        } else {
            4 + (t * SENDS + i / 4) % 60
        };
        format!("kind.{k}")
    };
    let (breaker, clock) = breaker_on_a_manual_clock(config());
    let trips = count_trips(&breaker);
    let tallies = run(&clock, |t, i| {
        let kind = kind_of(t, i);
        let decision = breaker.check(&kind);
        (kind, decision)
    });

    assert_eq!(tallies.len(), 64);
    let sent: u64 = tallies.values().map(|t| t.allowed + t.blocked).sum();
    assert_eq!(sent, THREADS * SENDS);
    assert_exact(&breaker, &tallies, &trips.lock());

    let (in_order, in_order_clock) = breaker_on_a_manual_clock(config());
    run_in_order(&in_order_clock, |t, i| {
        let kind = kind_of(t, i);
        let decision = in_order.check(&kind);
        (kind, decision)
    });
    let kinds: Vec<String> = (0..64).map(|k| format!("kind.{k}")).collect();
    assert_trips_as_in_order(&breaker, &in_order, &kinds);
    for kind in &kinds[..4] {
        assert!(breaker.kind_status(kind).unwrap().trips >= 1, "{kind} ran away");
    }
    for kind in &kinds[4..] {
        let status = breaker.kind_status(kind).unwrap();
        assert_eq!((status.trips, status.blocked), (0, 0), "{kind} never ran away");
    }
}

#[test]
fn a_flood_of_distinct_kinds_stays_bounded_and_loses_no_send() {
    const MAX_KINDS: usize = 500;
    let (breaker, clock) = breaker_on_a_manual_clock(Config {
        max_kinds: MAX_KINDS,
        ..config()
    });
    // A bug puts the user id into the kind: every send is a new kind.
    let tallies = run(&clock, |t, i| {
        let kind = format!("user.{}", t * SENDS + i);
        let decision = breaker.check(&kind);
        (kind, decision)
    });

    let status = breaker.status();
    let statuses = &status.kinds;
    let registered = statuses.iter().filter(|s| &*s.kind != OVERFLOW_KIND).count();
    assert_eq!(registered, MAX_KINDS, "the first {MAX_KINDS} kinds, no more");
    let overflow = breaker.kind_status(OVERFLOW_KIND).unwrap();
    assert_eq!(
        overflow.attempted, status.overflowed,
        "every overflowed look-up was one send"
    );
    assert_eq!(overflow.attempted, THREADS * SENDS - MAX_KINDS as u64);
    let attempted: u64 = statuses.iter().map(|s| s.attempted).sum();
    assert_eq!(
        attempted,
        THREADS * SENDS,
        "registered kinds and the overflow kind hold every send"
    );
    let blocked: u64 = tallies.values().map(|t| t.blocked).sum();
    assert_eq!(
        blocked, overflow.blocked,
        "only the shared overflow kind can have tripped"
    );
}

#[test]
fn on_the_system_clock_every_send_is_counted_once_too() {
    let breaker = Breaker::new(config()).unwrap();
    let handle = breaker.kind("security.2fa_changed");
    let allowed = AtomicU64::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mine = (0..SENDS).filter(|_| handle.check().is_allowed()).count() as u64;
                allowed.fetch_add(mine, Ordering::Relaxed);
            });
        }
    });
    let status = handle.status();
    assert_eq!(status.attempted, THREADS * SENDS);
    assert_eq!(status.allowed, allowed.load(Ordering::Relaxed));
    assert!(status.trips >= 1 && status.blocked > 0, "{status:?}");
}

#[test]
fn eviction_racing_sends_never_takes_a_kind_in_use() {
    const MAX_KINDS: usize = 200;
    /// Sends each thread makes between two moves of the clock: 1,000 a step in all.
    const EVICTION_STEP: u64 = 125;
    let (breaker, clock) = breaker_on_a_manual_clock(Config {
        max_kinds: MAX_KINDS,
        evict_idle_secs: 60,
        ..config()
    });
    // Half the threads hold a handle on their own kind, resolved before the flood; the others
    // flood new names.
    let handles: Vec<_> = (0..THREADS)
        .map(|t| (t % 2 == 0).then(|| breaker.kind(&format!("held.{t}"))))
        .collect();
    let barrier = Barrier::new(THREADS as usize);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        // A sweep racing the sends all along, besides the one between steps.
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                breaker.evict_idle();
                thread::yield_now();
            }
        });
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (breaker, barrier, handle, clock) = (&breaker, &barrier, &handles[t as usize], &clock);
                s.spawn(move || {
                    for i in 0..SENDS {
                        match handle {
                            Some(handle) => {
                                let _ = handle.check();
                            }
                            None => {
                                let _ = breaker.check(&format!("user.{}", t * SENDS + i));
                            }
                        }
                        // Time runs ten minutes a step, and every step evicts what is idle.
                        if (i + 1) % EVICTION_STEP == 0 {
                            lockstep(barrier, || {
                                clock.advance(Duration::from_secs(600));
                                breaker.evict_idle();
                            });
                        }
                    }
                    handle.as_ref().map(|h| h.status())
                })
            })
            .collect();
        let held: Vec<_> = senders.into_iter().map(|h| h.join()).collect();
        done.store(true, Ordering::Release);
        for status in held.into_iter().filter_map(|h| h.unwrap()) {
            assert_eq!(status.attempted, SENDS, "{}: a held kind lost sends", status.kind);
        }
    });
    let status = breaker.status();
    assert!(status.evicted > 0);
    let registered = status
        .kinds
        .into_iter()
        .filter(|s| &*s.kind != OVERFLOW_KIND)
        .count();
    assert!(registered <= MAX_KINDS, "{registered}");
    for t in (0..THREADS).step_by(2) {
        assert_eq!(
            breaker.kind_status(&format!("held.{t}")).unwrap().attempted,
            SENDS
        );
    }
}

// The bounded registry: the overflow kind, and idle kinds evicted.

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
    // Kinds under `warm.*` are declared, and so judged by what they learn from their first send.
    let mut config = Config {
        max_kinds: MAX_KINDS,
        evict_idle_secs: 3600,
        ..Config::default()
    };
    config.kinds.insert(
        "warm.*".into(),
        spikebreaker::config::KindOverride {
            expected_per_minute: Some(10.0),
            ..Default::default()
        },
    );
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    let tripped = breaker.kind("warm.tripped");
    while tripped.check().is_allowed() {}
    drop(tripped);
    // A kind with nothing learned that trips its warm-up ceiling and goes quiet (a name a bug
    // made up) has nothing to keep: it is evicted as an idle newcomer is.
    let newcomer = breaker.kind("cold.tripped");
    while newcomer.check().is_allowed() {}
    drop(newcomer);
    assert!(breaker.check("forced").is_allowed());
    breaker.force_close("forced").unwrap();
    let held = breaker.kind("held");
    let _ = held.check();
    let _ = breaker.check("idle");
    clock.advance(Duration::from_secs(2 * 3600));
    let _ = breaker.check("recent");

    assert_eq!(breaker.evict_idle(), 2);
    assert_eq!(registered(&breaker), ["forced", "held", "recent", "warm.tripped"]);
    assert_eq!(breaker.kind_status("warm.tripped").unwrap().trips, 1);
    // An evicted kind comes back as new.
    assert!(breaker.check("idle").is_allowed());
    assert_eq!(breaker.kind_status("idle").unwrap().attempted, 1);
    assert_eq!(breaker.status().evicted, 2);
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
