//! Replay throughput of `Backtest`: sends a second through the engine on the manual clock.
//!
//! Reference in the same run: `handle_check`, the engine's own cost (clock set and a pre-resolved
//! handle's check) without the replay's name look-up and tallies.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spikebreaker::backtest::{Backtest, LogReader};
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

criterion_group!(benches, replay);
criterion_main!(benches);
