//! A releaser for the life of a service: it serves until stopped, wakes for new approvals, lets
//! no kind keep the others waiting, and never drops a release's idempotency key.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spikebreaker::quarantine::{
    Filter, ItemState, MemoryStore, Quarantine, Query, ReleaseOrder, Released, Releaser, Serving, Step,
};
use spikebreaker::{Breaker, Config, Guarded, Sender, sender_fn};

use super::{Email, Outbox, RECEIPT, RUNAWAY, breaker, email, force_open, held, one_approved};

/// Long enough that a test waiting on it has failed, not lost a race, when it runs out.
const PATIENCE: Duration = Duration::from_secs(20);

/// Hands every released email to the test, with its key.
struct Courier {
    out: Mutex<mpsc::Sender<(String, String)>>,
}

impl Sender<Email> for Courier {
    type Output = ();
    type Error = String;

    fn send(&self, _email: Email) -> Result<(), String> {
        Err("only released items come here".into())
    }

    fn send_released(&self, email: Email, key: &str) -> Result<(), String> {
        if email.to == "panic@example.com" {
            panic!("the provider's client crashed");
        }
        let _ = self.out.lock().unwrap().send((email.to, key.to_owned()));
        Ok(())
    }
}

/// A service on the system clock whose releaser serves on its own thread, polling every `poll`:
/// its breaker, its quarantine (in memory), what the courier is handed, and the releaser.
struct Service {
    breaker: Breaker,
    quarantine: Quarantine,
    received: mpsc::Receiver<(String, String)>,
    serving: Serving,
}

fn service(poll: Duration) -> Service {
    let breaker = Breaker::new(Config::default()).unwrap();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let (out, received) = mpsc::channel();
    let courier = Courier { out: Mutex::new(out) };
    let guarded = Guarded::new(courier, breaker.clone()).with_quarantine(quarantine.clone());
    let serving = Releaser::<Email>::new(quarantine.clone())
        .poll(poll)
        .spawn(guarded)
        .unwrap();
    Service {
        breaker,
        quarantine,
        received,
        serving,
    }
}

fn fast() -> ReleaseOrder {
    ReleaseOrder {
        per_minute: Some(60_000.0),
        ..ReleaseOrder::default()
    }
}

/// Holds one email for `to` in `kind` (forced open) on `quarantine`.
fn hold_one(breaker: &Breaker, quarantine: &Quarantine, kind: &str, to: &str) {
    let holder = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(breaker, kind);
    held(&holder, email(kind, to));
}

#[test]
fn a_serving_releaser_sends_what_is_approved_after_it_started_and_stops_when_told() {
    // Polling once an hour: only the approval's wake-up can get these out in time.
    let Service {
        breaker,
        quarantine,
        received,
        serving,
    } = service(Duration::from_secs(3_600));
    for (i, to) in ["a@example.com", "b@example.com", "c@example.com"]
        .into_iter()
        .enumerate()
    {
        hold_one(&breaker, &quarantine, RECEIPT, to);
        let started = Instant::now();
        let approved = quarantine.release(&Filter::kind(RECEIPT), &fast()).unwrap();
        assert_eq!(approved, 1);
        // Before: `run` on a thread returned at once (nothing approved), and these stayed unsent.
        let (sent_to, key) = received
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("approval {i} was not sent within {PATIENCE:?}"));
        assert_eq!(sent_to, to);
        assert_eq!(key, quarantine.idempotency_key(i as u64 + 1));
        eprintln!("approval {i} sent after {:?}", started.elapsed());
    }
    let started = Instant::now();
    assert_eq!(serving.stop(), Released { sent: 3, failed: 0 });
    assert!(started.elapsed() < PATIENCE, "stopping waited for the poll");
}

#[test]
fn an_approval_made_by_another_process_is_found_within_the_poll_interval() {
    let Service {
        breaker,
        quarantine,
        received,
        serving,
    } = service(Duration::from_millis(50));
    hold_one(&breaker, &quarantine, RECEIPT, "a@example.com");
    // Straight into the store, as the command line does on the service's file: no wake-up.
    quarantine
        .store()
        .approve(&Filter::kind(RECEIPT), &fast())
        .unwrap();
    assert!(received.recv_timeout(PATIENCE).is_ok(), "not found by polling");
    drop(serving);
    let item = &quarantine.items(&Query::new(Filter::kind(RECEIPT), 1)).unwrap()[0];
    assert_eq!(item.state, ItemState::Released);
}

#[test]
fn a_slow_kind_keeps_no_other_kind_and_no_new_approval_waiting() {
    let (breaker, clock) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    for to in ["a@example.com", "b@example.com"] {
        held(&guarded, email(RUNAWAY, to));
    }
    let slow = ReleaseOrder {
        per_minute: Some(1.0),
        ..ReleaseOrder::default()
    };
    quarantine.release(&Filter::kind(RUNAWAY), &slow).unwrap();
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    assert!(matches!(releaser.step(&guarded).unwrap(), Step::Sent { .. }));
    // Before: Wait(60 s), the slow kind's next send, which a loop sleeps through whole.
    assert_eq!(
        releaser.step(&guarded).unwrap(),
        Step::Wait(Duration::from_secs(1))
    );

    // Approved meanwhile: sent at the next step, not after the slow kind's minute.
    force_open(&breaker, RECEIPT);
    held(&guarded, email(RECEIPT, "c@example.com"));
    quarantine.release(&Filter::kind(RECEIPT), &fast()).unwrap();
    clock.advance(Duration::from_secs(1));
    let Step::Sent { kind, .. } = releaser.step(&guarded).unwrap() else {
        panic!("the new approval waited")
    };
    assert_eq!(kind, RECEIPT);

    // A pace slower than one an hour is refused by name (before: 1e-6 a minute, a send every
    // two years, was accepted).
    let glacial = ReleaseOrder {
        per_minute: Some(1e-6),
        ..ReleaseOrder::default()
    };
    let error = quarantine.release(&Filter::kind(RUNAWAY), &glacial).unwrap_err();
    assert!(error.to_string().contains("per_minute"), "{error}");
}

#[test]
fn kinds_take_turns_whatever_their_names() {
    let (breaker, clock) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    for kind in [RECEIPT, RUNAWAY] {
        force_open(&breaker, kind);
        for i in 0..3 {
            held(&guarded, email(kind, &format!("{i}@example.com")));
        }
        quarantine.release(&Filter::kind(kind), &fast()).unwrap();
    }
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    let mut order = Vec::new();
    while order.len() < 6 {
        // Both kinds' paces allow a send at every step.
        clock.advance(Duration::from_secs(1));
        match releaser.step(&guarded).unwrap() {
            Step::Sent { kind, .. } => order.push(if kind == RECEIPT { 'R' } else { 'S' }),
            other => panic!("{other:?}"),
        }
    }
    // Before: RRRSSS, the kind that sorts first sending all it had while the other waited.
    assert_eq!(order.iter().collect::<String>(), "RSRSRS");
}

#[test]
fn a_closure_sender_carries_the_key_or_is_refused_by_name() {
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let (breaker, _) = one_approved(&quarantine);
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let keyless = Guarded::new(sender_fn(|_: Email| Ok::<_, std::io::Error>(())), breaker.clone());
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    // Before: sent, and the key silently dropped.
    let error = releaser.step(&keyless).unwrap_err();
    assert!(error.to_string().contains("idempotency key"), "{error}");
    assert!(error.to_string().contains(".released("), "{error}");
    assert!(
        Releaser::<Email>::new(quarantine.clone())
            .spawn(keyless.clone())
            .is_err()
    );
    let untouched = &quarantine.items(&Query::new(Filter::kind(RECEIPT), 1)).unwrap()[0];
    assert_eq!(untouched.state, ItemState::Approved, "nothing was claimed");

    let recorded = Arc::clone(&keys);
    let keyed = Guarded::new(
        sender_fn(|_: Email| Ok::<_, std::io::Error>(())).released(move |_: Email, key: &str| {
            recorded.lock().unwrap().push(key.to_owned());
            Ok::<_, std::io::Error>(())
        }),
        breaker.clone(),
    );
    let Step::Sent { id, .. } = releaser.step(&keyed).unwrap() else {
        panic!("not sent")
    };
    assert_eq!(*keys.lock().unwrap(), vec![quarantine.idempotency_key(id)]);
}

#[tokio::test]
async fn an_async_closure_sender_carries_the_key() {
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let (breaker, _) = one_approved(&quarantine);
    let (out, mut keys) = tokio::sync::mpsc::unbounded_channel();
    let keyed = Guarded::new(
        sender_fn(|_: Email| async { Ok::<_, std::io::Error>(()) }).released(move |_: Email, key: &str| {
            let (out, key) = (out.clone(), key.to_owned());
            async move {
                let _ = out.send(key);
                Ok::<_, std::io::Error>(())
            }
        }),
        breaker,
    );
    let mut releaser = Releaser::<Email>::new(quarantine.clone());
    let Step::Sent { id, .. } = releaser.step_async(&keyed).await.unwrap() else {
        panic!("not sent")
    };
    assert_eq!(keys.recv().await, Some(quarantine.idempotency_key(id)));

    let keyless = Guarded::new(
        sender_fn(|_: Email| async { Ok::<_, std::io::Error>(()) }),
        keyed.breaker().clone(),
    );
    assert!(releaser.step_async(&keyless).await.is_err());
}

#[test]
fn a_sender_that_panics_fails_its_item_and_the_releaser_goes_on() {
    let Service {
        breaker,
        quarantine,
        received,
        serving,
    } = service(spikebreaker::quarantine::DEFAULT_POLL);
    hold_one(&breaker, &quarantine, RECEIPT, "panic@example.com");
    hold_one(&breaker, &quarantine, RECEIPT, "a@example.com");
    quarantine.release(&Filter::kind(RECEIPT), &fast()).unwrap();
    let (to, _) = received.recv_timeout(PATIENCE).expect("the releaser stopped");
    assert_eq!(to, "a@example.com");
    assert_eq!(serving.stop(), Released { sent: 1, failed: 1 });
    let panicked = &quarantine.items(&Query::new(Filter::kind(RECEIPT), 1)).unwrap()[0];
    assert_eq!(panicked.state, ItemState::Held);
    let note = panicked.note.as_deref().unwrap_or_default();
    assert!(note.contains("the provider's client crashed"), "{note}");
}
