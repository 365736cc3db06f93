//! The embedded store: durable across a reopen, shared with the operator's tools while a service
//! runs, bounded, refusing damaged files, batching concurrent holds, and resuming a release that
//! a crash cut off (a child process killed in the middle of a send).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use spikebreaker::quarantine::{
    Delivery, Filter, ItemState, Quarantine, Query, ReleaseOrder, Releaser, SqliteOptions, SqliteStore, Step,
    StoreError,
};
use spikebreaker::{Breaker, Config, Guarded, Sender};

use super::{Email, Outbox, RECEIPT, RUNAWAY, breaker, email, force_open, held};

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("quarantine.db")
}

/// Holds `n` notices of `kind` in the store at `path` through a guarded sender.
fn hold_in(
    path: &Path,
    options: SqliteOptions,
    kind: &str,
    n: usize,
) -> Vec<Result<(), spikebreaker::GuardError<Email, super::Bounced>>> {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(SqliteStore::open_with(path, options).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine);
    force_open(&breaker, kind);
    (0..n)
        .map(|i| guarded.send(email(kind, &format!("user{i}@example.com"))))
        .collect()
}

#[test]
fn what_the_store_holds_outlasts_the_process_that_held_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let held = hold_in(&path, SqliteOptions::default(), RUNAWAY, 5);
    assert!(held.iter().all(|r| r.as_ref().unwrap_err().is_quarantined()));

    let quarantine = Quarantine::new(SqliteStore::open(&path).unwrap());
    let items = quarantine.items(&Query::new(Filter::kind(RUNAWAY), 10)).unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(
        items[4].decode::<Email>().unwrap(),
        email(RUNAWAY, "user4@example.com")
    );
    assert_eq!(items[4].recipient.as_deref(), Some("user4@example.com"));
    assert!(
        items
            .iter()
            .all(|i| i.state == ItemState::Held && i.trip == items[0].trip)
    );
}

#[test]
fn the_operators_tools_share_the_file_of_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let (breaker, clock) = breaker();
    let service = Quarantine::new(SqliteStore::open(&path).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(service.clone());
    force_open(&breaker, RECEIPT);
    for i in 0..3 {
        held(&guarded, email(RECEIPT, &format!("u{i}@example.com")));
    }
    // Another connection to the same file, as the command line opens it.
    let tool = Quarantine::new(SqliteStore::open(&path).unwrap());
    assert_eq!(tool.store().id(), service.store().id());
    assert_eq!(tool.summary(&Filter::all()).unwrap().trips[0].held, 3);
    assert_eq!(
        tool.release(&Filter::kind(RECEIPT), &ReleaseOrder::default())
            .unwrap(),
        3
    );

    let mut releaser = Releaser::<Email>::new(service.clone());
    let mut sent = 0;
    loop {
        match releaser.step(&guarded).unwrap() {
            Step::Sent { .. } => sent += 1,
            Step::Wait(wait) => clock.advance(wait),
            Step::Idle => break,
            failed => panic!("{failed:?}"),
        }
    }
    assert_eq!(sent, 3);
    assert_eq!(tool.summary(&Filter::all()).unwrap().trips[0].released, 3);
}

#[test]
fn a_full_store_refuses_and_the_sender_hands_the_notification_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        max_items: 3,
        ..SqliteOptions::default()
    };
    let held = hold_in(&store_path(&dir), options.clone(), RUNAWAY, 5);
    assert!(held[..3].iter().all(|r| r.as_ref().unwrap_err().is_quarantined()));
    for (i, refused) in held.into_iter().enumerate().skip(3) {
        let blocked = refused.unwrap_err().into_blocked().expect("handed back");
        assert_eq!(
            blocked.into_notification(),
            email(RUNAWAY, &format!("user{i}@example.com"))
        );
    }
    // The bound is the file's: another process (or a reopen) counts the same items.
    let store = SqliteStore::open_with(store_path(&dir), options).unwrap();
    let quarantine = Quarantine::new(store);
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().live(), 3);
    quarantine.discard(&Filter::kind(RUNAWAY), "runaway").unwrap();
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().live(), 0);
}

#[test]
fn a_store_at_its_byte_bound_refuses_and_keeps_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        max_bytes: 256 * 1024,
        ..SqliteOptions::default()
    };
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(SqliteStore::open_with(store_path(&dir), options).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    let big = |i: usize| Email {
        body: "x".repeat(4_000),
        ..email(RUNAWAY, &format!("user{i}@example.com"))
    };
    let mut held = 0;
    let mut refused = None;
    for i in 0..200 {
        match guarded.send(big(i)) {
            Err(error) if error.is_quarantined() => held += 1,
            Err(error) => {
                refused = Some((i, error.into_blocked().expect("handed back")));
                break;
            }
            Ok(()) => panic!("sent while open"),
        }
    }
    let (i, blocked) = refused.expect("256 KiB cannot hold 200 notices of 4 KB");
    assert_eq!(blocked.into_notification(), big(i));
    assert!(held > 10, "{held}");
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().live(), held);
}

#[test]
fn a_damaged_store_file_is_refused_unchanged_and_can_be_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let written = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    // Not a database at all.
    let garbage = written("garbage.db", &[0x5a; 8_192]);
    // A store whose pages were overwritten in the middle.
    let damaged = dir.path().join("damaged.db");
    hold_in(&damaged, SqliteOptions::default(), RUNAWAY, 300);
    let mut bytes = std::fs::read(&damaged).unwrap();
    assert!(bytes.len() > 16 * 4096);
    for byte in &mut bytes[4 * 4096..12 * 4096] {
        *byte = 0xa5;
    }
    let damaged = written("damaged.db", &bytes);
    // Another program's database.
    let foreign = dir.path().join("foreign.db");
    foreign_db(&foreign);

    for path in [&garbage, &damaged, &foreign] {
        let before = std::fs::read(path).unwrap();
        match SqliteStore::open(path) {
            Err(StoreError::Corrupt { path: named, message }) => {
                assert_eq!(&named, path);
                assert!(!message.is_empty());
            }
            other => panic!("{} opened as {other:?}", path.display()),
        }
        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "{} was changed",
            path.display()
        );
    }

    let aside = SqliteStore::set_aside(&damaged).unwrap();
    assert_eq!(std::fs::read(&aside).unwrap(), bytes, "kept for recovery");
    let fresh = hold_in(&damaged, SqliteOptions::default(), RUNAWAY, 1);
    assert!(fresh[0].as_ref().unwrap_err().is_quarantined());
}

/// Another program's SQLite database, sound but not a quarantine store: a store's file with its
/// format mark (text in the file) overwritten.
fn foreign_db(path: &Path) {
    let dir = path.parent().unwrap();
    let source = dir.join("source.db");
    hold_in(&source, SqliteOptions::default(), RECEIPT, 1);
    let mut bytes = std::fs::read(&source).unwrap();
    let mark = b"spikebreaker-quarantine";
    let at = bytes
        .windows(mark.len())
        .position(|w| w == mark)
        .expect("the format mark is stored as text");
    bytes[at..at + mark.len()].copy_from_slice(b"another-programs-format");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn concurrent_holds_share_commits_and_none_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(SqliteStore::open(store_path(&dir)).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let guarded = &guarded;
            scope.spawn(move || {
                for i in 0..100 {
                    let held = guarded.send(email(RUNAWAY, &format!("t{t}-{i}@example.com")));
                    assert!(held.unwrap_err().is_quarantined());
                }
            });
        }
    });
    let items = quarantine.items(&Query::new(Filter::all(), 10_000)).unwrap();
    assert_eq!(items.len(), 800);
    let mut recipients: Vec<_> = items.iter().map(|i| i.recipient.clone().unwrap()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 800);
}

// --- A crash in the middle of a release -------------------------------------------------------

const CHILD_STORE: &str = "SPIKEBREAKER_TEST_RELEASE_STORE";
const CHILD_HANG_AT: &str = "SPIKEBREAKER_TEST_RELEASE_HANG_AT";
const ITEMS: usize = 20;
const HANG_AT: usize = 7;
const CHILD_LEASE: Duration = Duration::from_millis(300);

/// Prints each key it is handed (the provider has the notice), and hangs in its `hang_at`-th
/// send: the process dies there, the sender having accepted the item, the store not knowing.
struct Printer {
    sent: AtomicUsize,
    hang_at: usize,
}

impl Sender<Email> for Printer {
    type Output = ();
    type Error = String;

    fn send(&self, _email: Email) -> Result<(), String> {
        Ok(())
    }

    fn send_released(&self, _email: Email, key: &str) -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "sent {key}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
        if self.sent.fetch_add(1, Ordering::Relaxed) + 1 == self.hang_at {
            loop {
                std::thread::park();
            }
        }
        Ok(())
    }
}

#[test]
#[ignore = "a child process of the crash tests, which kill it in the middle of a release"]
fn release_child() {
    let path = std::env::var(CHILD_STORE).expect("run by the crash tests");
    let hang_at = std::env::var(CHILD_HANG_AT).unwrap().parse().unwrap();
    // Never outlive a parent that failed before killing it: its reader then sees the end.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(120));
        std::process::exit(3);
    });
    let quarantine = Quarantine::new(SqliteStore::open(&path).unwrap());
    let sender = Printer {
        sent: AtomicUsize::new(0),
        hang_at,
    };
    let guarded =
        Guarded::new(sender, Breaker::new(Config::default()).unwrap()).with_quarantine(quarantine.clone());
    let mut releaser = Releaser::<Email>::new(quarantine).lease(CHILD_LEASE);
    releaser.run(&guarded).unwrap();
    panic!("the release finished: the child should have hung in send {hang_at}");
}

/// Holds [`ITEMS`] receipts, approves them under `delivery`, lets a child process release them
/// until it hangs in send [`HANG_AT`], kills it, and resumes in this process. The keys the child
/// sent, the keys this process sent, and the store.
fn crash_in_mid_release(delivery: Delivery) -> (Vec<String>, Vec<String>, Quarantine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    {
        let quarantine = Quarantine::new(SqliteStore::open(&path).unwrap());
        let (breaker, _) = breaker();
        let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
        force_open(&breaker, RECEIPT);
        for i in 0..ITEMS {
            held(&guarded, email(RECEIPT, &format!("u{i}@example.com")));
        }
        let order = ReleaseOrder {
            per_minute: Some(600_000.0),
            delivery,
        };
        assert_eq!(
            quarantine.release(&Filter::kind(RECEIPT), &order).unwrap(),
            ITEMS as u64
        );
    }

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sqlite::release_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_STORE, &path)
        .env(CHILD_HANG_AT, HANG_AT.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child_keys = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        // The test harness starts the first line with the test's name.
        if let Some((_, key)) = line.unwrap().split_once("sent ") {
            child_keys.push(key.to_owned());
            if child_keys.len() == HANG_AT {
                break;
            }
        }
    }
    assert_eq!(child_keys.len(), HANG_AT, "the child stopped early");
    child.kill().unwrap();
    child.wait().unwrap();

    // A new process: the store as the child left it, a releaser that waits out its lease.
    let quarantine = Quarantine::new(SqliteStore::open(&path).unwrap());
    let guarded = Guarded::new(Outbox::default(), Breaker::new(Config::default()).unwrap())
        .with_quarantine(quarantine.clone());
    let mut releaser = Releaser::<Email>::new(quarantine.clone()).poll(Duration::from_millis(20));
    releaser.run(&guarded).unwrap();
    let parent_keys = guarded.get_ref().keys();
    (child_keys, parent_keys, quarantine, dir)
}

#[test]
fn a_release_killed_in_mid_send_repeats_only_that_item_at_least_once() {
    let (child, parent, quarantine, _dir) = crash_in_mid_release(Delivery::AtLeastOnce);
    let in_flight = &child[HANG_AT - 1];
    // The item in flight went out again, under the same key; nothing else twice, nothing lost.
    assert_eq!(parent.len(), ITEMS - HANG_AT + 1);
    assert_eq!(parent.iter().filter(|k| *k == in_flight).count(), 1);
    let mut all: Vec<_> = child.iter().chain(&parent).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), ITEMS);
    let trip = &quarantine.summary(&Filter::kind(RECEIPT)).unwrap().trips[0];
    assert_eq!((trip.released, trip.live()), (ITEMS as u64, 0));
}

#[test]
fn a_release_killed_in_mid_send_holds_that_item_in_doubt_at_most_once() {
    let (child, parent, quarantine, _dir) = crash_in_mid_release(Delivery::AtMostOnce);
    let in_flight = &child[HANG_AT - 1];
    // Everything else went out once; the item in flight was not sent again...
    assert_eq!(parent.len(), ITEMS - HANG_AT);
    assert!(!parent.contains(in_flight));
    let mut all: Vec<_> = child.iter().chain(&parent).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), ITEMS);
    // ...and is not lost: it is held, in doubt, for an operator.
    let trip = &quarantine.summary(&Filter::kind(RECEIPT)).unwrap().trips[0];
    assert_eq!(
        (trip.released, trip.held, trip.in_doubt),
        (ITEMS as u64 - 1, 1, 1)
    );
    let held = Query::new(Filter::kind(RECEIPT), 10).in_state(ItemState::Held);
    let doubt = &quarantine.items(&held).unwrap()[0];
    assert!(doubt.in_doubt);
    assert_eq!(&quarantine.idempotency_key(doubt.id), in_flight);
}

#[test]
fn a_releaser_whose_lease_ran_out_cannot_undo_the_next_ones_claim() {
    let dir = tempfile::tempdir().unwrap();
    super::a_late_failure_leaves_the_next_claim(Quarantine::new(
        SqliteStore::open(store_path(&dir)).unwrap(),
    ));
}
