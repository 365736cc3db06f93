//! The embedded store at its edges: an item too large to hold, a bound of `u64::MAX`, a file
//! whose schema another program changed, and rows it cannot read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::value::RawValue;
use spikebreaker::quarantine::{
    Filter, ItemState, NewItem, Quarantine, Query, ReleaseOrder, Released, Releaser, SqliteOptions,
    SqliteStore, Store, StoreError,
};
use spikebreaker::status::Reason;
use spikebreaker::{Breaker, Config, Guarded, Sender};

use super::{Email, Outbox, RECEIPT, RUNAWAY, email, force_open, held};

fn path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("quarantine.db")
}

fn new_item(kind: &str, json: String) -> NewItem {
    NewItem {
        kind: kind.to_owned(),
        trip: 1,
        reason: Reason::Spike,
        held_at_ms: 0,
        recipient: Some("a@example.com".to_owned()),
        slice: None,
        notification: RawValue::from_string(json).unwrap(),
    }
}

fn sql(path: &Path, statements: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

#[test]
fn an_item_over_the_size_bound_is_refused_by_name_and_handed_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        max_item_bytes: 4_096,
        ..SqliteOptions::default()
    };
    let quarantine = Quarantine::new(SqliteStore::open_with(path(&dir), options).unwrap());
    let breaker = Breaker::new(Config::default()).unwrap();
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    let huge = Email {
        body: "x".repeat(8_192),
        ..email(RUNAWAY, "a@example.com")
    };
    let refused = guarded.send(huge.clone()).unwrap_err();
    assert!(refused.is_blocked(), "{refused:?}");
    let back = refused.into_blocked().expect("handed back").into_notification();
    assert_eq!(back, huge, "handed back whole");
    let error = quarantine
        .store()
        .hold(new_item(RUNAWAY, format!("\"{}\"", "x".repeat(8_192))))
        .unwrap_err();
    assert!(error.is_too_large(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("max_item_bytes") && text.contains(RUNAWAY),
        "{text}"
    );
    // The next hold goes in as ever.
    held(&guarded, email(RUNAWAY, "b@example.com"));
}

#[test]
fn a_bound_of_u64_max_holds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        max_items: u64::MAX,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(path(&dir), options).unwrap();
    // Before: stored as -1, every hold refused as full.
    assert_eq!(store.hold(new_item(RUNAWAY, "{}".into())).unwrap(), 1);
    drop(store);
    let again = SqliteStore::open_existing(path(&dir)).unwrap();
    assert_eq!(again.hold(new_item(RUNAWAY, "{}".into())).unwrap(), 2);
}

#[test]
fn a_file_whose_schema_is_not_ours_is_refused_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "CREATE TRIGGER swallow AFTER INSERT ON items BEGIN DELETE FROM items WHERE id = NEW.id; END;",
            "trigger `swallow`",
        ),
        ("DROP TRIGGER live_insert;", "trigger `live_insert` is missing"),
        (
            "ALTER TABLE items ADD COLUMN extra TEXT;",
            "table `items` differs",
        ),
        (
            "CREATE INDEX by_recipient ON items (recipient);",
            "index `by_recipient`",
        ),
    ];
    for (i, (change, named)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("q{i}.db"));
        drop(SqliteStore::open(&file).unwrap());
        sql(&file, change);
        let before = std::fs::read(&file).unwrap();
        // Before: opened, and with the first trigger every hold "succeeded" and was gone.
        match SqliteStore::open(&file) {
            Err(StoreError::Corrupt { message, .. }) => {
                assert!(message.contains(named), "{change}: {message}");
            }
            other => panic!("{change}: opened as {other:?}"),
        }
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "{change}: the file was changed"
        );
    }
    // A store as this version lays it out, reopened, is ours.
    let file = dir.path().join("ours.db");
    drop(SqliteStore::open(&file).unwrap());
    SqliteStore::open(&file).unwrap();
}

#[test]
fn a_row_that_does_not_parse_is_skipped_and_counted_not_fatal_to_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (breaker, _) = super::breaker();
    let quarantine = Quarantine::new(SqliteStore::open(path(&dir)).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RECEIPT);
    for i in 0..30 {
        held(&guarded, email(RECEIPT, &format!("user{i}@example.com")));
    }
    // Another version's reason, a notification that is not JSON, an attempt count out of range.
    sql(
        &path(&dir),
        "UPDATE items SET reason = 'tidal_wave' WHERE id = 2;
         UPDATE items SET notification = '{not json' WHERE id = 3;
         UPDATE items SET attempts = -1 WHERE id = 21;",
    );
    // Before: each listing failed whole on the first of them.
    let summary = quarantine.summary(&Filter::all()).unwrap();
    assert_eq!((summary.trips[0].held, summary.unreadable), (27, 3));
    let items = quarantine.items(&Query::new(Filter::kind(RECEIPT), 100)).unwrap();
    assert_eq!(items.len(), 27);
    // A page stays full past the rows it skips, and paging goes on after them.
    let first = quarantine.items(&Query::new(Filter::kind(RECEIPT), 20)).unwrap();
    assert_eq!(first.len(), 20);
    assert_eq!(first.last().unwrap().id, 23);
    let rest = quarantine
        .items(&Query {
            after: Some(23),
            ..Query::new(Filter::kind(RECEIPT), 20)
        })
        .unwrap();
    assert_eq!(rest.len(), 7);
    let held_only = Query::new(Filter::kind(RECEIPT), 100).in_state(ItemState::Held);
    assert_eq!(quarantine.items(&held_only).unwrap().len(), 27);
}

#[test]
fn an_approved_row_that_does_not_parse_is_held_again_and_the_rest_of_its_kind_released() {
    let dir = tempfile::tempdir().unwrap();
    let quarantine = Quarantine::new(SqliteStore::open(path(&dir)).unwrap());
    let breaker = Breaker::new(Config::default()).unwrap();
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RECEIPT);
    for to in ["a@example.com", "b@example.com", "c@example.com"] {
        held(&guarded, email(RECEIPT, to));
    }
    let fast = ReleaseOrder {
        per_minute: Some(60_000.0),
        ..ReleaseOrder::default()
    };
    assert_eq!(quarantine.release(&Filter::kind(RECEIPT), &fast).unwrap(), 3);
    // The middle one's notification overwritten with something that is not JSON.
    sql(
        &path(&dir),
        "UPDATE items SET notification = '{not json' WHERE id = 2;",
    );
    // Before: the claim of item 2 failed at every step; item 3 was never sent.
    let released = Releaser::<Email>::new(quarantine.clone())
        .poll(Duration::from_millis(10))
        .run(&guarded)
        .unwrap();
    assert_eq!(released, Released { sent: 2, failed: 0 });
    let sent: Vec<String> = guarded
        .get_ref()
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| e.to.clone())
        .collect();
    assert_eq!(sent, ["a@example.com", "c@example.com"]);
    // The corrupt one is out of the queue, counted as unreadable, and the kind is not stuck.
    let summary = quarantine.summary(&Filter::all()).unwrap();
    assert_eq!(summary.unreadable, 1);
    assert!(quarantine.store().releasing().unwrap().is_empty());
    let (note, in_doubt, state): (String, bool, String) = rusqlite::Connection::open(path(&dir))
        .unwrap()
        .query_row(
            "SELECT note, in_doubt, state FROM items WHERE id = 2",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), in_doubt), ("held", true));
    assert!(note.contains("unreadable"), "{note}");
    // The operator discards it by its id.
    let one = Filter::kind(RECEIPT).ids([2]);
    assert_eq!(quarantine.discard(&one, "corrupt").unwrap(), 1);
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().unreadable, 0);
    // The next one approved goes out.
    held(&guarded, email(RECEIPT, "d@example.com"));
    quarantine
        .release(&Filter::kind(RECEIPT).ids([4]), &fast)
        .unwrap();
    let again = Releaser::<Email>::new(quarantine.clone()).run(&guarded).unwrap();
    assert_eq!(again.sent, 1);
}
