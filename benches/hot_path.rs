//! What a send costs: spikebreaker's allowed send beside the floor (one bare atomic add on a
//! shared counter) and beside governor, the rate limiter users would otherwise reach for, all
//! measured in the same run so that the figures to compare are ratios within a run.
//!
//! `hot_path`: one thread. `contended_2t`: two threads hammering the same counter, limiter or
//! kind; the figure is the time per operation per thread. `guarded_send` and
//! `guarded_send_quarantined` are an allowed send through `Guarded` (a sender that does nothing)
//! without and with a quarantine: the quarantine is reached from refusals only, so the two match.
//!
//! `homed`: a handle resolved while the registry was full and moved to its own kind since,
//! beside a handle resolved on that kind directly.
//!
//! `slices`: a send by handle naming two slices below its kind (`prefix=+447`, `tenant=acme`)
//! beside the same send naming none: what tracking slices adds to a send.
//!
//! Run with `cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use spikebreaker::guard::Slices;
use spikebreaker::quarantine::{MemoryStore, Quarantine};
use spikebreaker::{Breaker, Config, Guarded, ManualClock, Sender};

#[path = "../tests/support/null_sender.rs"]
mod null_sender;
use null_sender::{Note, NullSender};

const KIND: &str = "email.welcome";

/// A breaker on the real clock whose kind no benchmark trips, so every send measured is an
/// allowed send on the ordinary path. A benchmark sends billions in a minute, past any limit a
/// configuration may set, so the kind is forced closed: that lifts its limits (the headroom the
/// send path compares against is the most there is) and leaves the send path as it is.
fn breaker() -> Breaker {
    let breaker = Breaker::new(Config::default()).expect("a valid benchmark configuration");
    let _ = breaker.kind(KIND);
    breaker.force_close(KIND).expect("a registered kind");
    breaker
}

/// A quota governor never reaches during a benchmark.
fn quota() -> Quota {
    Quota::per_second(NonZeroU32::MAX)
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(1));

    let counter = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed))
    });

    let direct = RateLimiter::direct(quota());
    group.bench_function("governor_direct", |b| {
        b.iter(|| assert!(black_box(&direct).check().is_ok()))
    });

    let keyed = RateLimiter::dashmap(quota());
    let key: &'static str = KIND;
    assert!(keyed.check_key(&key).is_ok());
    group.bench_function("governor_keyed", |b| {
        b.iter(|| assert!(black_box(&keyed).check_key(black_box(&key)).is_ok()))
    });

    let breaker = breaker();
    let handle = breaker.kind(KIND);
    group.bench_function("allow_by_handle", |b| {
        b.iter(|| assert!(black_box(&handle).check().is_allowed()))
    });

    group.bench_function("allow_by_name", |b| {
        b.iter(|| assert!(black_box(&breaker).check(black_box(KIND)).is_allowed()))
    });

    let guarded = Guarded::new(NullSender(7), breaker.clone());
    group.bench_function("guarded_send", |b| {
        b.iter(|| assert!(black_box(&guarded).send(Note(black_box(KIND))).is_ok()))
    });

    let quarantined =
        Guarded::new(NullSender(7), breaker.clone()).with_quarantine(Quarantine::new(MemoryStore::new(1)));
    group.bench_function("guarded_send_quarantined", |b| {
        b.iter(|| assert!(black_box(&quarantined).send(Note(black_box(KIND))).is_ok()))
    });

    group.finish();
}

/// Runs `op` `iters` times on each of two threads started together and returns the wall time
/// both took: with the threads in parallel, that is the time per operation per thread × iters.
fn two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    let start = Barrier::new(3);
    let (op, start_ref) = (&op, &start);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(move || {
                start_ref.wait();
                for _ in 0..iters {
                    op();
                }
            });
        }
        start.wait();
        // The scope joins both threads before returning, so elapsed() covers both.
        Instant::now()
    })
    .elapsed()
}

fn contended_2t(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended_2t");
    group.throughput(Throughput::Elements(1));

    let counter = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                black_box(&counter).fetch_add(1, Ordering::Relaxed);
            })
        })
    });

    let direct = RateLimiter::direct(quota());
    group.bench_function("governor_direct", |b| {
        b.iter_custom(|iters| two_threads(iters, || assert!(black_box(&direct).check().is_ok())))
    });

    let breaker = breaker();
    let handle = breaker.kind(KIND);
    group.bench_function("allow_by_handle", |b| {
        b.iter_custom(|iters| two_threads(iters, || assert!(black_box(&handle).check().is_allowed())))
    });

    group.finish();
}

/// A handle resolved while the registry was full, moved to its own kind since, beside a handle
/// resolved on that kind directly: both on a manual clock (the move needs an idle kind evicted).
fn homed(c: &mut Criterion) {
    let mut group = c.benchmark_group("homed");
    group.throughput(Throughput::Elements(1));
    let clock = ManualClock::new();
    let config = Config {
        max_kinds: 1,
        ..Config::default()
    };
    let breaker = Breaker::with_clock(config, clock.clone()).expect("a valid benchmark configuration");
    assert!(breaker.check("idle.kind").is_allowed());
    let homed = breaker.kind(KIND);
    assert_eq!(homed.name(), Breaker::OVERFLOW_KIND);
    while homed.name() != KIND {
        clock.advance(Duration::from_secs(600));
        let _ = homed.check();
    }
    // Never tripped by what the benchmark sends, as `breaker()`'s kind.
    breaker.force_close(KIND).expect("a registered kind");
    let fresh = breaker.kind(KIND);
    group.bench_function("fresh_handle", |b| {
        b.iter(|| assert!(black_box(&fresh).check().is_allowed()))
    });
    group.bench_function("homed_handle", |b| {
        b.iter(|| assert!(black_box(&homed).check().is_allowed()))
    });
    group.finish();
}

fn slices(c: &mut Criterion) {
    let mut group = c.benchmark_group("slices");
    group.throughput(Throughput::Elements(1));
    let breaker = breaker();
    let handle = breaker.kind(KIND);
    group.bench_function("no_slices_by_handle", |b| {
        b.iter(|| assert!(black_box(&handle).check().is_allowed()))
    });
    group.bench_function("two_slices_by_handle", |b| {
        b.iter(|| {
            let slices = Slices::new()
                .with("prefix", black_box("+447"))
                .with("tenant", black_box("acme"));
            assert!(black_box(&handle).check_sliced(&slices).is_ok())
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path, contended_2t, homed, slices);
criterion_main!(benches);
