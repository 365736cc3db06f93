//! Replay throughput of `Backtest`: sends a second through the engine on the manual clock.
//!
//! Reference in the same run: `handle_check`, the engine's own cost (clock set and a pre-resolved
//! handle's check) without the replay's name look-up and tallies. `read/…` prices reading the
//! log line by line (`LogReader`) against reading it whole (`TraceReader`); with the `parallel`
//! feature, `kinds_on_cores/…` replays a log of many kinds on a pool of one thread and of two.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spikebreaker::backtest::{Backtest, LogReader, Trace, TraceReader};
use spikebreaker::{Breaker, Config, ManualClock};

const SENDS: u64 = 1_000_000;
const KINDS: [&str; 8] = [
    "email.welcome",
    "sms.login_code",
    "email.receipt",
    "push.promo",
    "security.2fa_changed",
    "security.password_reset",
    "email.digest",
    "push.reminder",
];

/// A day of sends (about 700 a minute over eight kinds), kinds drawn by a fixed-seed xorshift.
fn log() -> Vec<(u64, usize)> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..SENDS)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (i * 86, (state % KINDS.len() as u64) as usize)
        })
        .collect()
}

fn replay(c: &mut Criterion) {
    let sends = log();
    let csv: String = sends
        .iter()
        .map(|&(t, k)| format!("{t},{}\n", KINDS[k]))
        .collect();
    let mut group = c.benchmark_group("backtest");
    group.throughput(Throughput::Elements(SENDS));

    group.bench_function("handle_check", |b| {
        b.iter_batched(
            || {
                let clock = ManualClock::new();
                let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
                let handles: Vec<_> = KINDS.iter().map(|k| breaker.kind(k)).collect();
                (clock, breaker, handles)
            },
            |(clock, _breaker, handles)| {
                for &(t, k) in &sends {
                    clock.set(t);
                    let _ = black_box(handles[k].check());
                }
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("replay", |b| {
        b.iter_batched(
            || Backtest::new(Config::default()).unwrap(),
            |mut backtest| {
                for &(t, k) in &sends {
                    let _ = black_box(backtest.check(t, KINDS[k]));
                }
                backtest.report()
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("read_and_replay", |b| {
        b.iter_batched(
            || Backtest::new(Config::default()).unwrap(),
            |mut backtest| {
                let mut reader = LogReader::new(csv.as_bytes());
                while let Some(Ok(record)) = reader.next_record() {
                    let _ = black_box(backtest.check(record.t_ms, record.kind));
                }
                backtest.report()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let csv: String = log()
        .iter()
        .map(|&(t, k)| format!("{t},{}\n", KINDS[k]))
        .collect();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(SENDS));
    group.bench_function("line_by_line", |b| {
        b.iter(|| {
            let mut reader = LogReader::new(csv.as_bytes());
            let mut sends = 0u64;
            while let Some(Ok(record)) = reader.next_record() {
                sends += black_box(record.t_ms) & 1;
            }
            sends
        })
    });
    group.bench_function("whole", |b| {
        b.iter(|| TraceReader::new(csv.as_bytes()).read().unwrap().sends())
    });
    group.finish();
}

/// Three days of 200 kinds, from one send every ten minutes to one every ten seconds: the kinds
/// sparse, so that bucket roll-overs, not the send path, cost the most, as in a real log (1.5 M
/// sends).
fn many_kinds() -> Trace {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut sends: Vec<(u64, usize)> = Vec::new();
    for kind in 0..200usize {
        let every_ms = 600_000 >> (kind % 7);
        let mut t = kind as u64;
        while t < 3 * 86_400_000 {
            sends.push((t, kind));
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            t += every_ms / 2 + state % every_ms;
        }
    }
    sends.sort_unstable();
    let csv: String = sends.iter().map(|&(t, k)| format!("{t},kind.{k:03}\n")).collect();
    Trace::read(csv.as_bytes()).unwrap()
}

#[cfg(feature = "parallel")]
fn kinds_on_cores(c: &mut Criterion) {
    let trace = many_kinds();
    let config = Config::default();
    let mut group = c.benchmark_group("kinds_on_cores");
    group.throughput(Throughput::Elements(trace.sends()));
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| pool.install(|| trace.replay(&config).unwrap()))
        });
    }
    group.finish();
}

#[cfg(not(feature = "parallel"))]
fn kinds_on_cores(c: &mut Criterion) {
    let trace = many_kinds();
    let mut group = c.benchmark_group("kinds_on_cores");
    group.throughput(Throughput::Elements(trace.sends()));
    group.sample_size(10);
    group.bench_function("threads_1", |b| {
        b.iter(|| trace.replay(&Config::default()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, replay, read, kinds_on_cores);
criterion_main!(benches);
