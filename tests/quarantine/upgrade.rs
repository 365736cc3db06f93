//! Upgrading: a store file the release before slices wrote (layout version 1, its items without
//! a `slice`) opens with this build, migrated once, every held item still listed and releasable.

use std::path::Path;

use serde_json::value::RawValue;
use spikebreaker::Guarded;
use spikebreaker::quarantine::{
    Delivery, Filter, ItemState, NewItem, Quarantine, Query, ReleaseOrder, Releaser, SqliteStore, Step,
    Store, StoreError,
};
use spikebreaker::status::Reason;

use super::{Email, Outbox, RUNAWAY, breaker, email, force_open};

/// The schema version 1 laid out, as the release before slices wrote it.
const SCHEMA_V1: &str = include_str!("../../src/quarantine/store/sqlite/schema_v1.sql");

/// A store file as the release before slices left it: its schema and meta, and `n` items held
/// through the INSERT that release's writer ran.
fn v1_file(path: &Path, n: usize) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
    db.execute_batch(SCHEMA_V1).unwrap();
    db.execute_batch(
        "INSERT INTO meta (key, value) VALUES ('format', 'spikebreaker-quarantine'), ('version', 1), \
         ('id', 'v1-store'), ('live', 0), ('finished', 0), ('max_items', 100000)",
    )
    .unwrap();
    for i in 0..n {
        let to = format!("user{i}@example.com");
        db.execute(
            "INSERT INTO items (kind, trip, reason, held_at, recipient, state, notification)
             VALUES (?1, ?2, ?3, ?4, ?5, 'held', ?6)",
            rusqlite::params![
                RUNAWAY,
                1_000_i64,
                "spike",
                2_000_i64,
                to,
                serde_json::to_string(&email(RUNAWAY, &to)).unwrap()
            ],
        )
        .unwrap();
    }
}

fn version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |row| {
            row.get(0)
        })
        .unwrap()
}

#[test]
fn a_store_file_of_the_release_before_slices_opens_migrated_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarantine.db");
    v1_file(&path, 3);

    let store = SqliteStore::open(&path).expect("a version-1 file opens");
    assert_eq!(store.id(), "v1-store", "the same store, not a fresh one");
    let quarantine = Quarantine::new(store);
    let items = quarantine.items(&Query::new(Filter::kind(RUNAWAY), 10)).unwrap();
    assert_eq!(items.len(), 3, "every held item is listed");
    assert!(
        items
            .iter()
            .all(|i| i.state == ItemState::Held && i.slice.is_none())
    );
    assert_eq!(
        items[2].decode::<Email>().unwrap(),
        email(RUNAWAY, "user2@example.com")
    );
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().live(), 3);

    // A new hold names its slice.
    let id = quarantine
        .store()
        .hold(NewItem {
            kind: RUNAWAY.to_owned(),
            trip: 3_000,
            reason: Reason::Spike,
            held_at_ms: 4_000,
            recipient: Some("new@example.com".to_owned()),
            slice: Some("prefix=+447".into()),
            notification: RawValue::from_string(
                serde_json::to_string(&email(RUNAWAY, "new@example.com")).unwrap(),
            )
            .unwrap(),
        })
        .unwrap();
    let items = quarantine.items(&Query::new(Filter::kind(RUNAWAY), 10)).unwrap();
    let new = items.iter().find(|i| i.id == id).unwrap();
    assert_eq!(new.slice.as_deref(), Some("prefix=+447"));

    // The old items release through the sender.
    let (breaker, clock) = breaker();
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    let order = ReleaseOrder {
        per_minute: Some(600.0),
        delivery: Delivery::AtLeastOnce,
    };
    assert_eq!(
        quarantine
            .release(&Filter::kind(RUNAWAY).trip(1_000), &order)
            .unwrap(),
        3
    );
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    let mut sent = 0;
    for _ in 0..100 {
        match releaser.step(&guarded).unwrap() {
            Step::Sent { .. } => sent += 1,
            Step::Wait(wait) => clock.advance(wait),
            Step::Idle => break,
            other => panic!("{other:?} after {sent} sent"),
        }
    }
    assert_eq!(sent, 3, "every item of the old file is released");
    assert_eq!(guarded.get_ref().sent.lock().unwrap().len(), 3);
    drop((guarded, quarantine));
    assert_eq!(version(&path), 2);

    // Reopening is a no-op: the file is version 2, the same items.
    let before = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT sql FROM sqlite_schema WHERE name = 'items'", [], |row| {
            row.get::<_, String>(0)
        })
        .unwrap();
    let quarantine = Quarantine::new(SqliteStore::open(&path).unwrap());
    assert_eq!(
        quarantine
            .items(&Query::new(Filter::kind(RUNAWAY), 10))
            .unwrap()
            .len(),
        4
    );
    drop(quarantine);
    let after = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT sql FROM sqlite_schema WHERE name = 'items'", [], |row| {
            row.get::<_, String>(0)
        })
        .unwrap();
    assert_eq!((version(&path), before), (2, after));
}

#[test]
fn a_version_one_file_changed_by_another_program_or_a_newer_version_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("changed.db");
    v1_file(&changed, 1);
    rusqlite::Connection::open(&changed)
        .unwrap()
        .execute_batch("CREATE INDEX theirs ON items (recipient)")
        .unwrap();
    let newer = dir.path().join("newer.db");
    v1_file(&newer, 1);
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("UPDATE meta SET value = 3 WHERE key = 'version'")
        .unwrap();
    for (path, says) in [(&changed, "theirs"), (&newer, "version")] {
        match SqliteStore::open(path) {
            Err(StoreError::Corrupt { message, .. }) => assert!(message.contains(says), "{message}"),
            other => panic!("{} opened as {other:?}", path.display()),
        }
    }
    assert_eq!(version(&changed), 1, "left unchanged");
}
