//! An operator's bulk action on a big quarantine (a discard or a release of every item a runaway
//! left) while the service goes on holding another kind's refusals on the same file: the bulk
//! action runs as short transactions, so the service's holds get the file between them.
//!
//! `SPIKEBREAKER_BULK_ITEMS` sets how many items the runaway left, half in each of two trips
//! (100,000 by default; the guide's figures are for 2,000,000, a million a trip, with
//! `--release`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use spikebreaker::quarantine::{Filter, Quarantine, ReleaseOrder, SqliteOptions, SqliteStore};
use spikebreaker::{Breaker, Config, Guarded};

use super::{Outbox, RECEIPT, RUNAWAY, email, force_open};

fn bulk_items() -> u64 {
    std::env::var("SPIKEBREAKER_BULK_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

/// How long the service's holds wait for the file's lock before they are handed back: shorter
/// than the default 5 s, so that a bulk action of a test's size, as one transaction, outlasts it.
const SERVICE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Fills the store at `path` with `n` held items of the runaway, half in trip 1 and half in trip
/// 2, in one transaction (how a runaway filled it matters not here).
fn fill(path: &Path, n: u64) {
    drop(SqliteStore::open(path).unwrap());
    let mut connection = rusqlite::Connection::open(path).unwrap();
    let tx = connection.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO items (kind, trip, reason, held_at, recipient, state, notification)
                 VALUES (?1, ?2, 'spike', 0, ?3, 'held', ?4)",
            )
            .unwrap();
        for i in 0..n {
            let to = format!("user{i}@example.com");
            let json = serde_json::to_string(&email(RUNAWAY, &to)).unwrap();
            let trip = (1 + 2 * i / n) as i64;
            insert
                .execute(rusqlite::params![RUNAWAY, trip, to, json])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// What the service saw while the operator's action ran.
#[derive(Debug)]
struct Seen {
    holds: u64,
    handed_back: u64,
    worst: Duration,
    action: Duration,
}

/// Runs `action` (the operator's, on a connection of its own, as the command line has) while the
/// service holds refusals of another kind as fast as it can.
fn while_the_service_holds(path: &Path, action: impl FnOnce(&Quarantine) -> u64 + Send) -> (u64, Seen) {
    let breaker = Breaker::new(Config::default()).unwrap();
    let options = SqliteOptions {
        busy_timeout: SERVICE_BUSY_TIMEOUT,
        max_items: u64::MAX, // room for the service's holds beside a runaway's millions
        ..SqliteOptions::default()
    };
    let service = Quarantine::new(SqliteStore::open_with(path, options).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(service);
    force_open(&breaker, RECEIPT);
    let operator = Quarantine::new(SqliteStore::open_existing(path).unwrap());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let acting = scope.spawn(|| {
            let started = Instant::now();
            let moved = action(&operator);
            done.store(true, Ordering::SeqCst);
            (moved, started.elapsed())
        });
        let mut seen = Seen {
            holds: 0,
            handed_back: 0,
            worst: Duration::ZERO,
            action: Duration::ZERO,
        };
        while !done.load(Ordering::SeqCst) {
            let started = Instant::now();
            let refused = spikebreaker::Sender::send(&guarded, email(RECEIPT, "a@example.com")).unwrap_err();
            seen.worst = seen.worst.max(started.elapsed());
            seen.holds += 1;
            if !refused.is_quarantined() {
                seen.handed_back += 1;
            }
        }
        let (moved, took) = acting.join().unwrap();
        seen.action = took;
        (moved, seen)
    })
}

#[test]
fn a_bulk_release_and_discard_let_the_services_holds_through() {
    let n = bulk_items();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarantine.db");
    fill(&path, n);
    let (approved, seen) = while_the_service_holds(&path, |operator| {
        operator
            .release(&Filter::kind(RUNAWAY).trip(1), &ReleaseOrder::default())
            .unwrap()
    });
    eprintln!("release of {approved}: {seen:?}");
    assert_eq!(approved, n / 2);
    // Before: one transaction for every item; the service's holds waited out their busy timeout
    // and were handed back.
    assert_eq!(seen.handed_back, 0, "{seen:?}");

    let (discarded, seen) = while_the_service_holds(&path, |operator| {
        operator
            .discard(&Filter::kind(RUNAWAY).trip(2), "INC-4711: the runaway")
            .unwrap()
    });
    eprintln!("discard of {discarded}: {seen:?}");
    assert_eq!(discarded, n - n / 2);
    assert_eq!(seen.handed_back, 0, "{seen:?}");
}
