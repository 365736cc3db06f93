//! Many threads sending at once, with trips and recoveries happening mid-run: nothing is lost or
//! counted twice. Each sender tallies its own decisions; the breaker's figures must match them
//! exactly, and every trip must be reported by exactly one event. Time is a [`ManualClock`] moved
//! by a coordinating thread as the senders progress, so the run crosses bucket edges, cooldowns
//! and probes while sends race, without sleeping.
//!
//! And the bounded registry: a bug that puts a user id into the kind fills it, the overflow kind
//! takes the rest (counted), and once the flood's kinds have been idle for `evict_idle_secs` they
//! give their room back, while kinds in use are never evicted, by a sweep racing sends too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use spikebreaker::config::KindConfig;
use spikebreaker::{Breaker, Config, Decision, ManualClock};

const OVERFLOW_KIND: &str = Breaker::OVERFLOW_KIND;

const THREADS: u64 = 8;
const SENDS: u64 = 25_000;

/// One-second buckets, a warm-up ceiling of 1000 a window, a 30-second cooldown and a 5-second
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

/// Calls `step` each time the senders have made `every` more sends, until `done`.
fn every_sends(progress: &AtomicU64, done: &AtomicBool, every: u64, mut step: impl FnMut(u64)) {
    let mut mark = 0;
    while !done.load(Ordering::Acquire) {
        if progress.load(Ordering::Relaxed) < mark + every {
            thread::yield_now();
            continue;
        }
        mark += every;
        step(mark);
    }
}

/// Moves the clock as the senders progress: a second every 2,000 sends, a minute every 20,000
/// (past the cooldown, so tripped kinds probe and trip again).
fn coordinate(clock: &ManualClock, progress: &AtomicU64, done: &AtomicBool) {
    every_sends(progress, done, 2_000, |mark| {
        let secs = if mark % 20_000 == 0 { 60 } else { 1 };
        clock.advance(Duration::from_secs(secs));
    });
}

/// Runs `THREADS` senders, each making `SENDS` sends through `send(thread, i)`, alongside the
/// clock's coordinator; returns each thread's tally per kind.
fn run(clock: &ManualClock, send: impl Fn(u64, u64) -> (String, Decision) + Sync) -> HashMap<String, Tally> {
    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let tallies: Vec<HashMap<String, Tally>> = thread::scope(|s| {
        s.spawn(|| coordinate(clock, &progress, &done));
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (send, progress) = (&send, &progress);
                s.spawn(move || {
                    let mut tally: HashMap<String, Tally> = HashMap::new();
                    for i in 0..SENDS {
                        let (kind, decision) = send(t, i);
                        let entry = tally.entry(kind).or_default();
                        match decision {
                            Decision::Allowed => entry.allowed += 1,
                            Decision::Blocked(_) => entry.blocked += 1,
                        }
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    tally
                })
            })
            .collect();
        let tallies = senders.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        tallies
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

#[test]
fn one_kind_hammered_by_every_thread_counts_every_send_once() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config(), clock.clone()).unwrap();
    let trips = count_trips(&breaker);
    let handle = breaker.kind("security.2fa_changed");
    let tallies = run(&clock, |_, _| {
        ("security.2fa_changed".to_string(), handle.check())
    });

    let tally = &tallies["security.2fa_changed"];
    assert_eq!(tally.allowed + tally.blocked, THREADS * SENDS);
    assert!(
        tally.blocked > 0 && tally.allowed >= 1_000,
        "the flood tripped after the ceiling"
    );
    let status = handle.status();
    assert!(
        status.trips >= 2,
        "tripped, probed and tripped again mid-run: {status:?}"
    );
    assert_exact(&breaker, &tallies, &trips.lock());
}

#[test]
fn many_kinds_some_running_away_count_every_send_once() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config(), clock.clone()).unwrap();
    let trips = count_trips(&breaker);
    // Kinds 0..4 take most of the traffic and trip; kinds 4..64 share the rest and stay under
    // the ceiling.
    let tallies = run(&clock, |t, i| {
        let k = if i % 4 != 0 {
            (t + i) % 4
        } else {
            4 + (t * SENDS + i / 4) % 60
        };
        let kind = format!("kind.{k}");
        let decision = breaker.check(&kind);
        (kind, decision)
    });

    assert_eq!(tallies.len(), 64);
    let sent: u64 = tallies.values().map(|t| t.allowed + t.blocked).sum();
    assert_eq!(sent, THREADS * SENDS);
    assert_exact(&breaker, &tallies, &trips.lock());
    for k in 0..4 {
        assert!(breaker.kind_status(&format!("kind.{k}")).unwrap().trips >= 1);
    }
    for k in 4..64 {
        let status = breaker.kind_status(&format!("kind.{k}")).unwrap();
        assert_eq!((status.trips, status.blocked), (0, 0), "kind.{k} never ran away");
    }
}

#[test]
fn a_flood_of_distinct_kinds_stays_bounded_and_loses_no_send() {
    const MAX_KINDS: usize = 500;
    let clock = ManualClock::new();
    let config = Config {
        max_kinds: MAX_KINDS,
        ..config()
    };
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    // A bug puts the user id into the kind: every send is a new kind.
    let tallies = run(&clock, |t, i| {
        let kind = format!("user.{}", t * SENDS + i);
        let decision = breaker.check(&kind);
        (kind, decision)
    });

    let status = breaker.status();
    let statuses = &status.kinds;
    let registered = statuses.iter().filter(|s| &*s.kind != OVERFLOW_KIND).count();
    assert!(registered <= MAX_KINDS, "{registered} kinds registered");
    let overflow = breaker.kind_status(OVERFLOW_KIND).unwrap();
    assert_eq!(
        overflow.attempted, status.overflowed,
        "every overflowed look-up was one send"
    );
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
    let clock = ManualClock::new();
    let config = Config {
        max_kinds: MAX_KINDS,
        evict_idle_secs: 60,
        ..config()
    };
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    // Half the threads hold a handle on their own kind, resolved before the flood; the others
    // flood new names.
    let handles: Vec<_> = (0..THREADS)
        .map(|t| (t % 2 == 0).then(|| breaker.kind(&format!("held.{t}"))))
        .collect();
    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        // Time runs ten minutes every 1,000 sends, and every step evicts what is idle.
        s.spawn(|| {
            every_sends(&progress, &done, 1_000, |_| {
                clock.advance(Duration::from_secs(600));
                breaker.evict_idle();
            })
        });
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (breaker, progress, handle) = (&breaker, &progress, &handles[t as usize]);
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
                        progress.fetch_add(1, Ordering::Relaxed);
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
    let breaker = breaker(&clock);
    let tripped = breaker.kind("tripped");
    while tripped.check().is_allowed() {}
    drop(tripped);
    assert!(breaker.check("forced").is_allowed());
    breaker.force_close("forced").unwrap();
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
