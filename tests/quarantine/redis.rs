//! The Redis Streams store: every instance's blocked sends land in one quarantine, and two
//! instances releasing it at once send each item once.

#[path = "../support/redis_server.rs"]
pub mod redis_server;

use std::sync::Barrier;
use std::time::Duration;

use redis_server::Server;
use spikebreaker::quarantine::{
    Claim, Delivery, Filter, ItemState, Quarantine, Query, RedisOptions, RedisStore, ReleaseOrder, Releaser,
};
use spikebreaker::{Breaker, Config, Guarded, Sender};

use super::{Email, Outbox, RECEIPT, RUNAWAY, email, force_open, held};

fn store(server: &Server, max_items: u64) -> RedisStore {
    let options = RedisOptions {
        key_prefix: "test".into(),
        max_items,
        ..RedisOptions::default()
    };
    RedisStore::open(&server.url(), options).unwrap()
}

/// An instance of a sender service: its own breaker (on the system clock) and its own connection
/// to the shared store.
fn instance(
    server: &Server,
) -> (
    Guarded<Outbox, spikebreaker::guard::ByNotification, spikebreaker::SystemClock, Quarantine>,
    Quarantine,
) {
    let quarantine = Quarantine::new(store(server, 10_000));
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RECEIPT);
    force_open(&breaker, RUNAWAY);
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine.clone());
    (guarded, quarantine)
}

#[test]
fn two_instances_hold_into_one_store_and_releasing_together_send_each_item_once() {
    let server = Server::start();
    let (a, quarantine_a) = instance(&server);
    let (b, quarantine_b) = instance(&server);
    assert_eq!(quarantine_a.store().id(), quarantine_b.store().id());
    for i in 0..100 {
        held(&a, email(RECEIPT, &format!("a{i}@example.com")));
        held(&b, email(RECEIPT, &format!("b{i}@example.com")));
    }
    // One place: either instance sees both instances' items (each instance's trip is named by
    // when it began; two forced in one millisecond share a name).
    let summary = quarantine_b.summary(&Filter::kind(RECEIPT)).unwrap();
    assert_eq!(summary.live(), 200);
    assert_eq!(summary.trips.iter().map(|t| t.recipients).sum::<u64>(), 200);

    let order = ReleaseOrder {
        per_minute: Some(6_000.0), // 10 ms apart, per releaser
        delivery: Delivery::AtLeastOnce,
    };
    assert_eq!(quarantine_a.release(&Filter::kind(RECEIPT), &order).unwrap(), 200);
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        for (guarded, quarantine) in [(&a, &quarantine_a), (&b, &quarantine_b)] {
            let start = &start;
            scope.spawn(move || {
                let mut releaser = Releaser::<Email>::new(quarantine.clone());
                start.wait();
                releaser.run(guarded).unwrap()
            });
        }
    });
    let (keys_a, keys_b) = (a.get_ref().keys(), b.get_ref().keys());
    assert!(
        !keys_a.is_empty() && !keys_b.is_empty(),
        "{} {}",
        keys_a.len(),
        keys_b.len()
    );
    let mut all: Vec<_> = keys_a.iter().chain(&keys_b).cloned().collect();
    assert_eq!(all.len(), 200, "each item sent once");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200);
    let summary = quarantine_a.summary(&Filter::kind(RECEIPT)).unwrap();
    assert_eq!(
        (
            summary.live(),
            summary.trips.iter().map(|t| t.released).sum::<u64>()
        ),
        (0, 200)
    );
}

#[test]
fn a_releaser_that_dies_with_a_claim_leaves_the_item_to_the_next_as_its_order_says() {
    let server = Server::start();
    let (service, quarantine) = instance(&server);
    for kind in [RECEIPT, RUNAWAY] {
        held(&service, email(kind, "a@example.com"));
    }
    let order = |delivery| ReleaseOrder {
        per_minute: Some(60_000.0),
        delivery,
    };
    quarantine
        .release(&Filter::kind(RECEIPT), &order(Delivery::AtLeastOnce))
        .unwrap();
    quarantine
        .release(&Filter::kind(RUNAWAY), &order(Delivery::AtMostOnce))
        .unwrap();
    // A releaser on another instance claims both, then dies before it settles either.
    let other = store(&server, 10_000);
    for kind in [RECEIPT, RUNAWAY] {
        let claim =
            spikebreaker::quarantine::Store::claim(&other, kind, "dead", Duration::from_secs(60)).unwrap();
        assert!(matches!(claim, Claim::Item(_)), "{claim:?}");
    }

    let mut releaser = Releaser::<Email>::new(quarantine.clone())
        .lease(Duration::from_millis(200))
        .poll(Duration::from_millis(20));
    let released = releaser.run(&service).unwrap();
    assert_eq!((released.sent, released.failed), (1, 0));
    let sent = service.get_ref().sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.kind, RECEIPT, "at least once: taken over and sent");
    let held = Query::new(Filter::kind(RUNAWAY), 10).in_state(ItemState::Held);
    let doubt = quarantine.items(&held).unwrap();
    assert_eq!(doubt.len(), 1, "at most once: held in doubt, not sent");
    assert!(doubt[0].in_doubt);
}

#[test]
fn a_full_redis_store_hands_the_notification_back() {
    let server = Server::start();
    let quarantine = Quarantine::new(store(&server, 2));
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RUNAWAY);
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine.clone());
    for to in ["a@example.com", "b@example.com"] {
        held(&guarded, email(RUNAWAY, to));
    }
    let blocked = guarded
        .send(email(RUNAWAY, "c@example.com"))
        .unwrap_err()
        .into_blocked()
        .unwrap();
    assert_eq!(blocked.into_notification(), email(RUNAWAY, "c@example.com"));
    assert_eq!(
        quarantine.discard(&Filter::kind(RUNAWAY), "runaway job").unwrap(),
        2
    );
    let discarded = Query::new(Filter::all(), 10).in_state(ItemState::Discarded);
    let audit = quarantine.items(&discarded).unwrap();
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|i| i.note.as_deref() == Some("runaway job") && i.notification.is_none())
    );
    held(&guarded, email(RUNAWAY, "d@example.com"));
}

#[test]
fn a_redis_store_that_cannot_be_reached_refuses_and_the_notification_comes_back() {
    let mut server = Server::start();
    let (service, _quarantine) = instance(&server);
    server.kill();
    let blocked = service
        .send(email(RUNAWAY, "a@example.com"))
        .unwrap_err()
        .into_blocked()
        .unwrap();
    assert_eq!(blocked.into_notification(), email(RUNAWAY, "a@example.com"));
}

#[test]
fn a_server_found_unreachable_is_not_waited_for_again_until_its_timeout_has_passed() {
    let server = Server::start();
    let (service, quarantine) = instance(&server);
    let all = || quarantine.items(&Query::new(Filter::all(), 1));
    assert!(all().is_ok());
    server.signal("STOP"); // a black hole: the connection stays open, no reply comes
    // The first call waits its timeout (1 s) and fails; the refused notification comes back.
    let blocked = service.send(email(RUNAWAY, "a@example.com")).unwrap_err();
    assert!(blocked.is_blocked(), "{blocked:?}");
    // Those after it fail at once, without waiting on the server (before: a second each).
    let error = all().unwrap_err().to_string();
    assert!(error.contains("trying again in"), "{error}");
    assert!(
        service
            .send(email(RUNAWAY, "b@example.com"))
            .unwrap_err()
            .is_blocked()
    );
    // Back, it is used again once the timeout has passed.
    server.signal("CONT");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while all().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store never tried again"
        );
        std::thread::yield_now();
    }
    held(&service, email(RUNAWAY, "c@example.com"));
}

#[test]
fn a_redis_that_can_lose_acknowledged_holds_is_named_at_open() {
    // The test servers run as a cache would: no append-only file, the default eviction policy.
    let server = Server::start();
    let store = store(&server, 10);
    let problems = store.durability_problems();
    assert!(
        problems.iter().any(|p| p.contains("appendonly no")),
        "{problems:?}"
    );
    // Made durable, nothing is said.
    let mut redis = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut redis)
        .unwrap();
    assert_eq!(store.durability_problems(), Vec::<String>::new());
}

#[test]
fn a_late_failure_on_redis_leaves_the_next_claim() {
    let server = Server::start();
    super::a_late_failure_leaves_the_next_claim(Quarantine::new(store(&server, 10)));
}
