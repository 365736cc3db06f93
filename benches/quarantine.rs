//! How fast the embedded quarantine takes blocked sends, each written durably (`fsync`) before
//! the send returns, beside the floor measured in the same run: a plain file append and `fsync`
//! per record, the least any durable write of one item costs on this disk.
//!
//! - `quarantine/file_append_fsync`: the reference, one 300-byte record and an `fsync` each.
//! - `quarantine/sqlite_hold_1_thread`: `SqliteStore::hold` from one thread: a commit each.
//! - `quarantine/sqlite_hold_128_threads`: the same from 128 threads at once, as the workers of a
//!   sender service meet a tripped kind: holds that wait together share a commit.
//! - `quarantine/guarded_blocked_send_128_threads`: the whole refusal path, a guarded send of a
//!   tripped kind (classify, refuse, encode as JSON, hold), from 128 threads.
//!
//! Run with `cargo bench --features quarantine --bench quarantine -- --warm-up-time 1
//! --measurement-time 5`. Figures are per item, so elements a second are holds a second.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;
use serde_json::value::RawValue;
use spikebreaker::quarantine::{NewItem, Quarantine, SqliteOptions, SqliteStore, Store};
use spikebreaker::status::Reason;
use spikebreaker::{Breaker, Config, Guarded, Notification, Sender};

const KIND: &str = "security.2fa_changed";
const THREADS: u64 = 128;

#[derive(Serialize)]
struct Email {
    kind: &'static str,
    to: String,
    body: &'static str,
}

impl Notification for Email {
    fn kind(&self) -> &str {
        self.kind
    }

    fn recipient(&self) -> Option<&str> {
        Some(&self.to)
    }
}

struct NullSender;

impl Sender<Email> for NullSender {
    type Output = ();
    type Error = ();

    fn send(&self, _email: Email) -> Result<(), ()> {
        Ok(())
    }
}

const BODY: &str = "Your two-step verification settings changed. If this was not you, contact support.";

fn email(i: u64) -> Email {
    Email {
        kind: KIND,
        to: format!("user{i}@example.com"),
        body: BODY,
    }
}

fn new_item(i: u64) -> NewItem {
    NewItem {
        kind: KIND.to_owned(),
        trip: 1,
        reason: Reason::Spike,
        held_at_ms: i,
        recipient: Some(format!("user{i}@example.com")),
        slice: None,
        notification: serde_json::value::to_raw_value(&email(i)).expect("encodes"),
    }
}

/// A store with room for whatever a run holds.
fn store(dir: &tempfile::TempDir, name: &str) -> SqliteStore {
    let options = SqliteOptions {
        max_items: u64::MAX >> 1,
        max_bytes: 16 << 30,
        ..SqliteOptions::default()
    };
    SqliteStore::open_with(dir.path().join(name), options).expect("a store in a temp dir")
}

/// Runs `op(i)` for `iters` items spread over `threads` threads started together; the wall time.
fn threads(iters: u64, threads: u64, op: impl Fn(u64) + Sync) -> Duration {
    let start = Barrier::new(threads as usize + 1);
    let (op, start_ref) = (&op, &start);
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                start_ref.wait();
                let mut i = t;
                while i < iters {
                    op(i);
                    i += threads;
                }
            });
        }
        start.wait();
        Instant::now()
    })
    .elapsed()
}

fn quarantine(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut group = c.benchmark_group("quarantine");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);

    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("append.log"))
        .expect("a file in a temp dir");
    let record: Box<RawValue> = serde_json::value::to_raw_value(&email(0)).expect("encodes");
    let line = format!("{:<299}\n", record.get());
    group.bench_function("file_append_fsync", |b| {
        b.iter(|| {
            file.write_all(line.as_bytes()).expect("append");
            file.sync_data().expect("fsync");
        })
    });

    let one = store(&dir, "one.db");
    group.bench_function("sqlite_hold_1_thread", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(one.hold(new_item(i)).expect("held"))
        })
    });

    let many = store(&dir, "many.db");
    group.bench_function("sqlite_hold_128_threads", |b| {
        b.iter_custom(|iters| {
            threads(iters, THREADS, |i| {
                black_box(many.hold(new_item(i)).expect("held"));
            })
        })
    });

    let breaker = Breaker::new(Config::default()).expect("a valid config");
    let _ = breaker.kind(KIND); // a control acts on a kind the breaker knows
    breaker.force_open(KIND).unwrap();
    let guarded =
        Guarded::new(NullSender, breaker).with_quarantine(Quarantine::new(store(&dir, "guarded.db")));
    group.bench_function("guarded_blocked_send_128_threads", |b| {
        b.iter_custom(|iters| {
            threads(iters, THREADS, |i| {
                assert!(guarded.send(email(i)).unwrap_err().is_quarantined());
            })
        })
    });

    group.finish();
}

criterion_group!(benches, quarantine);
criterion_main!(benches);
