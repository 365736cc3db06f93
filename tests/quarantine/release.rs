//! Releasing: approved items go through the wrapped sender, paced, with a stable key; failures are
//! held again; the breaker neither blocks nor counts them.

use std::sync::Mutex;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use spikebreaker::quarantine::{
    Claim, Claimed, Delivery, Filter, ItemState, MemoryStore, Outcome, Quarantine, Query, ReleaseOrder,
    Releaser, Step, Store, StoreError,
};
use spikebreaker::status::State;
use spikebreaker::{Breaker, Clock, Guarded, ManualClock, Sender};

use super::{Email, Outbox, RECEIPT, RUNAWAY, breaker, email, force_open, held};

/// Six receipts a minute, evenly, for two hours: the kind's learned normal is 6 a minute.
fn learn_six_a_minute(breaker: &Breaker<ManualClock>, clock: &ManualClock) {
    for _ in 0..(2 * 60 * 6) {
        clock.advance(Duration::from_secs(10));
        assert!(breaker.check(RECEIPT).is_allowed());
    }
    clock.advance(Duration::from_secs(60));
    breaker.refresh();
    assert!(breaker.kind_status(RECEIPT).unwrap().warmed_up);
}

fn hold(
    guarded: &Guarded<Outbox, spikebreaker::guard::ByNotification, ManualClock, Quarantine>,
    kind: &str,
    n: usize,
) {
    for i in 0..n {
        held(guarded, email(kind, &format!("user{i}@example.com")));
    }
}

#[test]
fn a_release_keeps_the_kinds_learned_pace_and_the_breaker_neither_blocks_nor_counts_it() {
    let (breaker, clock) = breaker();
    learn_six_a_minute(&breaker, &clock);
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RECEIPT);
    hold(&guarded, RECEIPT, 4);
    let attempted = breaker.kind_status(RECEIPT).unwrap().attempted;

    assert_eq!(
        quarantine
            .release(&Filter::kind(RECEIPT), &ReleaseOrder::default())
            .unwrap(),
        4
    );
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    let mut sent_at = Vec::new();
    while sent_at.len() < 4 {
        match releaser.step(&guarded).unwrap() {
            Step::Sent { kind, .. } => {
                assert_eq!(kind, RECEIPT);
                sent_at.push(clock.now_ms());
            }
            // Waits are at most a poll (1 s), so that approvals made meanwhile are seen.
            Step::Wait(wait) => {
                assert!(wait <= Duration::from_secs(1), "{wait:?}");
                clock.advance(wait);
            }
            other => panic!("{other:?} after {sent_at:?}"),
        }
    }
    // About one every 10 s: the learned 6 a minute, as the minute window expects it now.
    for pair in sent_at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (9_500..11_000).contains(&gap),
            "{gap} ms between two sends: {sent_at:?}"
        );
    }
    assert_eq!(releaser.step(&guarded).unwrap(), Step::Idle);

    // The kind is still forced open and counted none of the releases.
    let status = breaker.kind_status(RECEIPT).unwrap();
    assert_eq!((status.state, status.attempted), (State::Open, attempted));
    // Each went out once, with a key of its own naming the store and the item.
    let mut keys = guarded.get_ref().keys();
    assert_eq!(keys.len(), 4);
    keys.dedup();
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|key| key.starts_with(quarantine.store().id())));
    let released = Query::new(Filter::kind(RECEIPT), 10).in_state(ItemState::Released);
    assert_eq!(quarantine.items(&released).unwrap().len(), 4);
}

#[test]
fn an_orders_pace_replaces_the_default_and_a_trip_is_released_alone() {
    let (breaker, clock) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    hold(&guarded, RUNAWAY, 2);
    breaker.reset(RUNAWAY).unwrap();
    clock.advance(Duration::from_secs(600));
    force_open(&breaker, RUNAWAY);
    hold(&guarded, RUNAWAY, 3);
    let summary = quarantine.summary(&Filter::kind(RUNAWAY)).unwrap();
    let second_trip = summary.trips[1].trip;

    let order = ReleaseOrder {
        per_minute: Some(120.0),
        delivery: Delivery::AtMostOnce,
    };
    assert_eq!(
        quarantine
            .release(&Filter::kind(RUNAWAY).trip(second_trip), &order)
            .unwrap(),
        3
    );
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    assert!(matches!(releaser.step(&guarded).unwrap(), Step::Sent { .. }));
    assert_eq!(
        releaser.step(&guarded).unwrap(),
        Step::Wait(Duration::from_millis(500))
    );
    assert!(
        quarantine.release(&Filter::all(), &order).is_err(),
        "a release names a kind"
    );
    let summary = quarantine.summary(&Filter::kind(RUNAWAY)).unwrap();
    assert_eq!(
        (
            summary.trips[0].held,
            summary.trips[1].approved,
            summary.trips[1].released
        ),
        (2, 2, 1)
    );
}

/// Fails each item's first attempt, recording every attempt's key.
#[derive(Default)]
struct Flaky {
    attempts: Mutex<Vec<String>>,
}

impl Sender<Email> for Flaky {
    type Output = ();
    type Error = String;

    fn send(&self, _email: Email) -> Result<(), String> {
        Ok(())
    }

    fn send_released(&self, _email: Email, key: &str) -> Result<(), String> {
        let mut attempts = self.attempts.lock().unwrap();
        let first = !attempts.iter().any(|k| k == key);
        attempts.push(key.to_owned());
        if first {
            Err("provider timed out".into())
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_failed_send_is_held_again_with_its_note_and_keeps_its_key() {
    let (breaker, clock) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Flaky::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RECEIPT);
    held(&guarded, email(RECEIPT, "a@example.com"));
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    let fast = ReleaseOrder {
        per_minute: Some(60_000.0),
        ..ReleaseOrder::default()
    };

    quarantine.release(&Filter::kind(RECEIPT), &fast).unwrap();
    let Step::Failed { note, .. } = releaser.step(&guarded).unwrap() else {
        panic!("not failed")
    };
    assert_eq!(note, "send failed: provider timed out");
    let item = &quarantine.items(&Query::new(Filter::kind(RECEIPT), 1)).unwrap()[0];
    assert_eq!(
        (item.state, item.attempts, item.note.as_deref()),
        (ItemState::Held, 1, Some(note.as_str()))
    );

    quarantine.release(&Filter::kind(RECEIPT), &fast).unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(matches!(releaser.step(&guarded).unwrap(), Step::Sent { .. }));
    let attempts = guarded.get_ref().attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0], attempts[1], "one key for every attempt at one item");
}

#[test]
fn an_item_that_does_not_decode_is_held_again_not_lost() {
    #[derive(serde::Deserialize)]
    struct Sms {
        #[allow(dead_code)]
        number: String,
    }
    struct Gateway;
    impl Sender<Sms> for Gateway {
        type Output = ();
        type Error = String;
        fn send(&self, _sms: Sms) -> Result<(), String> {
            Ok(())
        }
    }
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let emails = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RECEIPT);
    held(&emails, email(RECEIPT, "a@example.com"));
    quarantine
        .release(&Filter::kind(RECEIPT), &ReleaseOrder::default())
        .unwrap();

    let sms = Guarded::with_classifier(Gateway, breaker, |_: &Sms| RECEIPT);
    let mut releaser = Releaser::<Sms>::new(quarantine.clone());
    let Step::Failed { note, .. } = releaser.step(&sms).unwrap() else {
        panic!("not failed")
    };
    assert!(note.contains("does not decode"), "{note}");
    let item = &quarantine.items(&Query::new(Filter::kind(RECEIPT), 1)).unwrap()[0];
    assert_eq!(item.state, ItemState::Held);
    assert_eq!(item.decode::<Email>().unwrap(), email(RECEIPT, "a@example.com"));
}

#[tokio::test]
async fn an_async_sender_releases_with_its_key() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RECEIPT);
    assert!(
        spikebreaker::AsyncSender::send(&guarded, email(RECEIPT, "a@example.com"))
            .await
            .unwrap_err()
            .is_quarantined()
    );
    quarantine
        .release(&Filter::kind(RECEIPT), &ReleaseOrder::default())
        .unwrap();
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    let Step::Sent { id, .. } = releaser.step_async(&guarded).await.unwrap() else {
        panic!("not sent")
    };
    assert_eq!(guarded.get_ref().keys(), vec![quarantine.idempotency_key(id)]);
}

#[test]
fn held_released_discarded_and_refused_items_are_counted_per_breaker_and_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let breaker = Breaker::builder()
            .clock(ManualClock::starting_at(1_000_000))
            .name("mailer")
            .build()
            .unwrap();
        let quarantine = Quarantine::new(MemoryStore::new(3));
        let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
        force_open(&breaker, RUNAWAY);
        force_open(&breaker, RECEIPT);
        hold(&guarded, RUNAWAY, 2);
        hold(&guarded, RECEIPT, 1);
        assert!(
            guarded
                .send(email(RUNAWAY, "z@example.com"))
                .unwrap_err()
                .is_blocked()
        ); // full
        quarantine.discard(&Filter::kind(RUNAWAY), "runaway").unwrap();
        quarantine
            .release(&Filter::kind(RECEIPT), &ReleaseOrder::default())
            .unwrap();
        let mut releaser = Releaser::<Email>::new(quarantine.clone());
        assert!(matches!(releaser.step(&guarded).unwrap(), Step::Sent { .. }));
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, kind: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                let mut labels = key.key().labels();
                key.key().name() == name
                    && labels.any(|l| l.key() == "breaker" && l.value() == "mailer")
                    && key.key().labels().any(|l| l.key() == "kind" && l.value() == kind)
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
    };
    use spikebreaker::status::metrics::{
        QUARANTINE_DISCARDED, QUARANTINE_HELD, QUARANTINE_REFUSED, QUARANTINE_RELEASED,
    };
    assert_eq!(counter(QUARANTINE_HELD, RUNAWAY), Some(2));
    assert_eq!(counter(QUARANTINE_REFUSED, RUNAWAY), Some(1));
    assert_eq!(counter(QUARANTINE_DISCARDED, RUNAWAY), Some(2));
    assert_eq!(counter(QUARANTINE_HELD, RECEIPT), Some(1));
    assert_eq!(counter(QUARANTINE_RELEASED, RECEIPT), Some(1));
}

/// A memory store whose items of one kind cannot be read back when claimed (as a Redis entry
/// another version wrote, say).
#[derive(Debug)]
struct Unreadable {
    inner: MemoryStore,
    kind: &'static str,
}

impl Store for Unreadable {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn hold(&self, item: spikebreaker::quarantine::NewItem) -> Result<u64, StoreError> {
        self.inner.hold(item)
    }
    fn items(&self, query: &Query) -> Result<Vec<spikebreaker::quarantine::Item>, StoreError> {
        self.inner.items(query)
    }
    fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        self.inner.discard(filter, reason)
    }
    fn approve(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError> {
        self.inner.approve(filter, order)
    }
    fn releasing(&self) -> Result<Vec<String>, StoreError> {
        self.inner.releasing()
    }
    fn claim(&self, kind: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError> {
        if kind == self.kind {
            return Err(StoreError::Unavailable(
                "entry 17: expected value at line 1".into(),
            ));
        }
        self.inner.claim(kind, owner, lease)
    }
    fn settle(&self, claimed: &Claimed, outcome: &Outcome) -> Result<(), StoreError> {
        self.inner.settle(claimed, outcome)
    }
}

#[test]
fn an_item_the_store_cannot_read_holds_up_its_kind_alone() {
    let (breaker, clock) = breaker();
    // The unreadable kind sorts first, so it is tried first at every step.
    let quarantine = Quarantine::new(Unreadable {
        inner: MemoryStore::new(100),
        kind: RECEIPT,
    });
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    for (kind, n) in [(RECEIPT, 1), (RUNAWAY, 2)] {
        force_open(&breaker, kind);
        for i in 0..n {
            held(&guarded, email(kind, &format!("{i}@example.com")));
        }
    }
    let one_a_minute = ReleaseOrder {
        per_minute: Some(1.0),
        ..ReleaseOrder::default()
    };
    for kind in [RECEIPT, RUNAWAY] {
        quarantine.release(&Filter::kind(kind), &one_a_minute).unwrap();
    }
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    let sent = |step: Result<Step, StoreError>| match step {
        Ok(Step::Sent { kind, .. }) => kind,
        other => panic!("the readable kind was not released: {other:?}"),
    };
    // Before: the unreadable kind's error stopped every release.
    assert_eq!(sent(releaser.step(&guarded)), RUNAWAY);
    // The readable kind waits for its pace: a wait, not the other kind's error.
    clock.advance(Duration::from_secs(5));
    assert!(matches!(releaser.step(&guarded), Ok(Step::Wait(_))));
    clock.advance(Duration::from_secs(60));
    assert_eq!(sent(releaser.step(&guarded)), RUNAWAY);
    assert_eq!(guarded.get_ref().count(), 2);
    // Only the unreadable kind left: the error is the store's, and said.
    clock.advance(Duration::from_secs(60));
    let error = releaser.step(&guarded).unwrap_err();
    assert!(error.to_string().contains("entry 17"), "{error}");
}

#[test]
fn a_late_failure_in_memory_leaves_the_next_claim() {
    super::a_late_failure_leaves_the_next_claim(Quarantine::new(MemoryStore::new(10)));
}
