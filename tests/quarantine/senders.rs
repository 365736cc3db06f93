//! Holding: what a guarded sender does with a refused notification when it has a quarantine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spikebreaker::quarantine::{Filter, ItemState, MemoryStore, Quarantine, Query};
use spikebreaker::status::Reason;
use spikebreaker::{GuardError, Guarded, Sender};

use super::{Email, Outbox, RECEIPT, RUNAWAY, breaker, email, force_open, held};

#[test]
fn a_blocked_send_is_held_before_the_call_returns_and_an_allowed_one_passes_untouched() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);

    assert_eq!(guarded.send(email(RECEIPT, "a@example.com")), Ok(()));
    let Err(GuardError::Quarantined(receipt)) = guarded.send(email(RUNAWAY, "b@example.com")) else {
        panic!("the runaway's notice was not held");
    };
    assert_eq!((receipt.kind(), receipt.reason()), (RUNAWAY, Reason::ForcedOpen));

    // Held before the call returned: the store has it, whole.
    let items = quarantine.items(&Query::new(Filter::all(), 10)).unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item.id, receipt.id());
    assert_eq!(
        (item.kind.as_str(), item.trip, item.reason),
        (RUNAWAY, receipt.trip(), Reason::ForcedOpen)
    );
    assert_eq!(item.recipient.as_deref(), Some("b@example.com"));
    assert_eq!(item.state, ItemState::Held);
    assert_eq!(item.decode::<Email>().unwrap(), email(RUNAWAY, "b@example.com"));
    // Only the allowed one reached the sender.
    assert_eq!(guarded.get_ref().count(), 1);
}

#[tokio::test]
async fn async_senders_hold_blocked_notifications_too() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    let held = spikebreaker::AsyncSender::send(&guarded, email(RUNAWAY, "a@example.com")).await;
    assert!(matches!(held, Err(GuardError::Quarantined(_))), "{held:?}");
    assert_eq!(
        spikebreaker::AsyncSender::send(&guarded, email(RECEIPT, "b@example.com")).await,
        Ok(())
    );
    assert_eq!(quarantine.summary(&Filter::kind(RUNAWAY)).unwrap().live(), 1);
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn a_tower_service_holds_blocked_requests_too() {
    use spikebreaker::guard::tower::GuardLayer;
    use tower::{Layer, ServiceExt, service_fn};

    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let layer = GuardLayer::new(breaker.clone()).with_quarantine(quarantine.clone());
    let service = layer.layer(service_fn(|email: Email| async move {
        Ok::<_, std::io::Error>(email.to)
    }));
    force_open(&breaker, RUNAWAY);
    let held = service.clone().oneshot(email(RUNAWAY, "a@example.com")).await;
    assert!(held.unwrap_err().is_quarantined());
    let sent = service.oneshot(email(RECEIPT, "b@example.com")).await;
    assert_eq!(sent.ok().as_deref(), Some("b@example.com"));
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().live(), 1);
}

#[test]
fn every_notification_of_one_trip_carries_that_trip_and_the_next_trip_another() {
    let (breaker, clock) = breaker();
    let trips = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&trips);
    breaker
        .subscribe(move |event| {
            if event.is_trip() {
                seen.lock().unwrap().push(event.at_ms);
            }
        })
        .detach();
    let quarantine = Quarantine::new(MemoryStore::new(10_000));
    let plain = Guarded::new(Outbox::default(), breaker.clone());
    let quarantined = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());

    // A detected trip: the warm-up ceiling (500 a minute window) crossed.
    let mut blocked = Vec::new();
    for i in 0..1_100 {
        clock.advance(Duration::from_millis(1));
        if let Err(GuardError::Blocked(b)) = plain.send(email(RUNAWAY, &format!("u{i}@example.com"))) {
            blocked.push(b.tripped_at_ms());
        }
    }
    let first_trip = trips.lock().unwrap()[0];
    assert_eq!(blocked.len(), 600);
    assert!(
        blocked.iter().all(|&at| at == first_trip),
        "{blocked:?} vs {first_trip}"
    );
    for i in 0..3 {
        clock.advance(Duration::from_millis(1));
        held(&quarantined, email(RUNAWAY, &format!("v{i}@example.com")));
    }

    // Reset, and a second trip an hour later.
    breaker.reset(RUNAWAY).unwrap();
    clock.advance(Duration::from_secs(3_600));
    force_open(&breaker, RUNAWAY);
    for i in 0..2 {
        held(&quarantined, email(RUNAWAY, &format!("w{i}@example.com")));
    }

    let summary = quarantine.summary(&Filter::kind(RUNAWAY)).unwrap();
    let per_trip: Vec<(u64, Reason)> = summary.trips.iter().map(|t| (t.held, t.reason)).collect();
    assert_eq!(per_trip, vec![(3, Reason::Warmup), (2, Reason::ForcedOpen)]);
    let (first, second) = (summary.trips[0].trip, summary.trips[1].trip);
    // Named by the wall clock at which each began (this breaker's manual clock jumped an hour;
    // the wall clock did not), and never alike.
    assert!(second > first, "{first} {second}");
}

#[test]
fn a_full_store_hands_the_notification_back_and_drops_nothing() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(2));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    for to in ["a@example.com", "b@example.com"] {
        held(&guarded, email(RUNAWAY, to));
    }
    let refused = guarded.send(email(RUNAWAY, "c@example.com")).unwrap_err();
    let blocked = refused
        .into_blocked()
        .expect("handed back as without a quarantine");
    assert_eq!(blocked.into_notification(), email(RUNAWAY, "c@example.com"));
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().live(), 2);

    // Discarding makes room again.
    assert_eq!(
        quarantine.discard(&Filter::kind(RUNAWAY), "runaway job").unwrap(),
        2
    );
    held(&guarded, email(RUNAWAY, "d@example.com"));
}

#[test]
fn a_summary_counts_each_trip_with_its_distinct_recipients_and_a_sample() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(10_000));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    force_open(&breaker, RECEIPT);
    // The runaway sends the same notice to one user over and over, and once to a few others.
    for i in 0..50 {
        let to = if i % 10 == 0 {
            format!("user{i}@example.com")
        } else {
            "loop@example.com".into()
        };
        held(&guarded, email(RUNAWAY, &to));
    }
    held(&guarded, email(RECEIPT, "x@example.com"));

    let summary = quarantine.summary(&Filter::all()).unwrap();
    assert_eq!(summary.trips.len(), 2);
    let runaway = summary.trips.iter().find(|t| t.kind == RUNAWAY).unwrap();
    assert_eq!((runaway.held, runaway.recipients), (50, 6));
    assert_eq!(runaway.top_recipients[0].recipient, "loop@example.com");
    assert_eq!(runaway.top_recipients[0].items, 45);
    assert_eq!(runaway.sample.len(), 3);
    assert!(runaway.sample.iter().all(|item| item.notification.is_some()));
    assert!(runaway.first_held_ms <= runaway.last_held_ms);
    assert_eq!(quarantine.summary(&Filter::kind(RECEIPT)).unwrap().trips.len(), 1);
}

#[test]
fn a_discard_names_a_kind_and_keeps_its_reason_for_audit() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    for i in 0..4 {
        held(&guarded, email(RUNAWAY, &format!("u{i}@example.com")));
    }
    assert!(
        quarantine
            .discard(&Filter::all(), "everything")
            .unwrap_err()
            .to_string()
            .contains("name a kind")
    );
    assert!(
        quarantine
            .discard(&Filter::kind(RUNAWAY), " ")
            .unwrap_err()
            .to_string()
            .contains("reason")
    );
    assert_eq!(
        quarantine
            .discard(&Filter::kind(RUNAWAY), "bug #4711: loop in the 2FA job")
            .unwrap(),
        4
    );

    let query = Query::new(Filter::kind(RUNAWAY), 10).in_state(ItemState::Discarded);
    let discarded = quarantine.items(&query).unwrap();
    assert_eq!(discarded.len(), 4);
    for item in discarded {
        assert_eq!(item.note.as_deref(), Some("bug #4711: loop in the 2FA job"));
        assert!(item.finished_at_ms.is_some() && item.notification.is_none());
        assert!(item.recipient.is_some(), "the audit keeps whom it was for");
    }
    assert_eq!(quarantine.summary(&Filter::all()).unwrap().live(), 0);
}

#[test]
fn a_classifier_sender_names_recipients_with_a_function() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Push {
        topic: String,
        device: String,
    }
    struct Apns;
    impl Sender<Push> for Apns {
        type Output = ();
        type Error = String;
        fn send(&self, _push: Push) -> Result<(), String> {
            Ok(())
        }
    }
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::with_classifier(Apns, breaker.clone(), |p: &Push| p.topic.as_str())
        .with_recipient(|p: &Push| Some(p.device.as_str()))
        .with_quarantine(quarantine.clone());
    force_open(&breaker, "push.promo");
    let push = Push {
        topic: "push.promo".into(),
        device: "device-42".into(),
    };
    assert!(guarded.send(push).unwrap_err().is_quarantined());
    let items = quarantine.items(&Query::new(Filter::all(), 10)).unwrap();
    assert_eq!(items[0].recipient.as_deref(), Some("device-42"));
}

#[test]
fn a_name_that_breaks_the_kind_name_rule_is_handed_back_not_held() {
    // Such an item could never be released or discarded by kind; the bug is the caller's.
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine.clone());
    for bad in ["", "line\nbreak"] {
        let Err(GuardError::Blocked(blocked)) = guarded.send(email(bad, "a@example.com")) else {
            panic!("{bad:?} was not handed back");
        };
        assert_eq!(blocked.reason(), Reason::InvalidKind);
        assert_eq!(blocked.into_notification(), email(bad, "a@example.com"));
    }
    assert!(
        quarantine
            .items(&Query::new(Filter::all(), 10))
            .unwrap()
            .is_empty()
    );
}
