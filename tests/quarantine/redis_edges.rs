//! The Redis store at its edges: a Redis that loses its data, an item too large to hold, an
//! entry that does not parse, and the operators' summaries of a big store (one item at a time
//! from many senders, read by many operators at once).

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use spikebreaker::quarantine::{
    Filter, NewItem, Quarantine, Query, RedisOptions, RedisStore, ReleaseOrder, Releaser,
};
use spikebreaker::status::Reason;
use spikebreaker::{Breaker, Config, Guarded, Sender};

use super::redis::redis_server::Server;
use super::{Email, Outbox, RECEIPT, RUNAWAY, email, force_open, held};

fn options() -> RedisOptions {
    RedisOptions {
        key_prefix: "edges".into(),
        ..RedisOptions::default()
    }
}

fn connection(server: &Server) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

type Service = Guarded<Outbox, spikebreaker::guard::ByNotification, spikebreaker::SystemClock, Quarantine>;

/// Holds `emails` through `guarded`, retrying each (a store that found the server gone refuses
/// for a timeout, then reconnects) until held, for at most 30 s.
fn hold_all(guarded: &Service, emails: &[Email]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for email in emails {
        while !guarded.send(email.clone()).unwrap_err().is_quarantined() {
            assert!(Instant::now() < deadline, "the store never took holds again");
            std::thread::yield_now();
        }
    }
}

/// Releases every held receipt and sends them.
fn release_all(quarantine: &Quarantine, guarded: &Service) {
    let fast = ReleaseOrder {
        per_minute: Some(60_000.0),
        ..ReleaseOrder::default()
    };
    quarantine.release(&Filter::kind(RECEIPT), &fast).unwrap();
    Releaser::<Email>::new(quarantine.clone())
        .poll(Duration::from_millis(10))
        .run(guarded)
        .unwrap();
}

#[test]
fn idempotency_keys_stay_unique_when_redis_loses_its_data() {
    let mut server = Server::start();
    let quarantine = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RECEIPT);
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    let batch = |round: &str| -> Vec<Email> {
        (0..3)
            .map(|i| email(RECEIPT, &format!("{round}{i}@example.com")))
            .collect()
    };
    hold_all(&guarded, &batch("before"));
    release_all(&quarantine, &guarded);
    let before = guarded.get_ref().keys();
    assert_eq!(before.len(), 3);

    // Restarted without an append-only file: empty, as a failover to an empty replica is.
    server.kill();
    server.spawn();
    hold_all(&guarded, &batch("after"));
    release_all(&quarantine, &guarded);
    // A service started after the loss shares the store and its keys' space.
    let late = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
    let late_guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(late.clone());
    hold_all(&late_guarded, &batch("late"));
    release_all(&late, &late_guarded);

    let after: Vec<String> = guarded.get_ref().keys().split_off(3);
    let late_keys = late_guarded.get_ref().keys();
    assert_eq!((after.len(), late_keys.len()), (3, 3));
    let reused: Vec<&String> = after
        .iter()
        .chain(&late_keys)
        .filter(|k| before.contains(k))
        .collect();
    // Before: 3 of 3 keys sent again for new notifications; a provider drops them as duplicates.
    assert!(reused.is_empty(), "reused {reused:?} of {before:?}");
    let mut all: Vec<&String> = before.iter().chain(&after).chain(&late_keys).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 9);
}

#[test]
fn an_oversized_notification_is_refused_by_name_without_marking_the_store_down() {
    let server = Server::start();
    let store = RedisStore::open(&server.url(), options()).unwrap();
    let quarantine = Quarantine::new(store);
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RUNAWAY);
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine.clone());
    let huge = Email {
        body: "x".repeat(64 << 20),
        ..email(RUNAWAY, "a@example.com")
    };
    let started = Instant::now();
    let refused = guarded.send(huge).unwrap_err();
    assert!(refused.is_blocked(), "{:?}", refused.is_quarantined());
    let item = NewItem {
        kind: RUNAWAY.to_owned(),
        trip: 1,
        reason: Reason::Spike,
        held_at_ms: 0,
        recipient: None,
        slice: None,
        notification: RawValue::from_string(format!("\"{}\"", "x".repeat(2 << 20))).unwrap(),
    };
    let error = quarantine.store().hold(item).unwrap_err();
    assert!(error.is_too_large(), "{error}");
    assert!(error.to_string().contains("max_item_bytes"), "{error}");
    // Before: the 64 MiB write outlasted the timeout and the store took Redis for unreachable:
    // the next holds were refused for a second.
    held(&guarded, email(RUNAWAY, "b@example.com"));
    eprintln!("refused and held again in {:?}", started.elapsed());
}

#[test]
fn a_bound_of_u64_max_holds_on_redis_too() {
    let server = Server::start();
    let options = RedisOptions {
        max_items: u64::MAX,
        ..options()
    };
    let quarantine = Quarantine::new(RedisStore::open(&server.url(), options).unwrap());
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RUNAWAY);
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine);
    held(&guarded, email(RUNAWAY, "a@example.com"));
}

#[test]
fn an_entry_that_does_not_parse_is_skipped_not_fatal_to_the_listing() {
    let server = Server::start();
    let quarantine = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RECEIPT);
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine.clone());
    for i in 0..5 {
        held(&guarded, email(RECEIPT, &format!("user{i}@example.com")));
    }
    // An entry another version wrote, and one with no item at all.
    let mut redis = connection(&server);
    let stream = format!("{{edges:quarantine}}:held:{RECEIPT}");
    for fields in [vec!["id", "99", "item", "{not json"], vec!["junk", "1"]] {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(&fields)
            .query(&mut redis)
            .unwrap();
    }
    // Before: every listing and summary failed on the first of them.
    let items = quarantine.items(&Query::new(Filter::kind(RECEIPT), 100)).unwrap();
    assert_eq!(items.len(), 5);
    let summary = quarantine.summary(&Filter::all()).unwrap();
    assert_eq!(summary.trips[0].held, 5);
    assert_eq!(quarantine.discard(&Filter::kind(RECEIPT), "runaway").unwrap(), 5);
}

#[test]
fn an_approved_entry_that_does_not_parse_is_held_again_and_the_rest_of_its_kind_released() {
    let server = Server::start();
    let quarantine = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RECEIPT);
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine.clone());
    let fast = ReleaseOrder {
        per_minute: Some(60_000.0),
        ..ReleaseOrder::default()
    };
    let mut redis = connection(&server);
    let release = format!("{{edges:quarantine}}:release:{RECEIPT}");
    // Approved in order: a, an entry another version wrote, c.
    held(&guarded, email(RECEIPT, "a@example.com"));
    assert_eq!(quarantine.release(&Filter::kind(RECEIPT), &fast).unwrap(), 1);
    let _: String = redis::cmd("XADD")
        .arg(&release)
        .arg("*")
        .arg(&["id", "99", "item", "{not json"])
        .query(&mut redis)
        .unwrap();
    held(&guarded, email(RECEIPT, "c@example.com"));
    assert_eq!(quarantine.release(&Filter::kind(RECEIPT), &fast).unwrap(), 1);
    // Before: the claim of the middle entry failed at every step; c was never sent.
    let released = Releaser::<Email>::new(quarantine.clone())
        .poll(Duration::from_millis(10))
        .run(&guarded)
        .unwrap();
    assert_eq!((released.sent, released.failed), (2, 0));
    let sent: Vec<String> = guarded
        .get_ref()
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e)| e.to.clone())
        .collect();
    assert_eq!(sent, ["a@example.com", "c@example.com"]);
    // The corrupt one is out of the queue, back among the held with why, counted as unreadable,
    // and the kind is not stuck.
    let summary = quarantine.summary(&Filter::all()).unwrap();
    assert_eq!(summary.unreadable, 1);
    assert_eq!(quarantine.summary(&Filter::kind(RECEIPT)).unwrap().unreadable, 1);
    assert!(quarantine.store().releasing().unwrap().is_empty());
    let len: u64 = redis::cmd("XLEN").arg(&release).query(&mut redis).unwrap();
    assert_eq!(len, 0);
    let held_entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(format!("{{edges:quarantine}}:held:{RECEIPT}"))
        .arg("-")
        .arg("+")
        .query(&mut redis)
        .unwrap();
    assert_eq!(held_entries.len(), 1);
    assert!(
        held_entries[0].1.contains(&"unreadable".to_owned()),
        "{held_entries:?}"
    );
    // The next one approved goes out.
    held(&guarded, email(RECEIPT, "d@example.com"));
    assert_eq!(quarantine.release(&Filter::kind(RECEIPT), &fast).unwrap(), 1);
    let again = Releaser::<Email>::new(quarantine.clone())
        .poll(Duration::from_millis(10))
        .run(&guarded)
        .unwrap();
    assert_eq!(again.sent, 1);
}

// --- The operators' summaries of a big store ---------------------------------------------------

const CHILD_URL: &str = "SPIKEBREAKER_TEST_SUMMARY_URL";
/// Items in the big store, and operators reading its summary at once.
const BIG: usize = 20_000;
const READERS: usize = 8;

/// This process's peak resident memory, in MiB (`VmHWM`).
fn peak_rss_mib() -> u64 {
    let mut status = String::new();
    std::fs::File::open("/proc/self/status")
        .unwrap()
        .read_to_string(&mut status)
        .unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1_024
}

#[test]
#[ignore = "a child process of the summary test, which measures its peak memory"]
fn summary_child() {
    let url = std::env::var(CHILD_URL).expect("run by the summary test");
    let quarantine = Quarantine::new(RedisStore::open(&url, options()).unwrap());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..READERS {
            scope.spawn(|| {
                let summary = quarantine.summary(&Filter::all()).unwrap();
                assert_eq!(summary.live(), BIG as u64);
                let page = quarantine.items(&Query::new(Filter::kind(RUNAWAY), 20)).unwrap();
                assert_eq!(page.len(), 20);
            });
        }
    });
    println!("peak {} MiB in {:?}", peak_rss_mib(), started.elapsed());
}

#[test]
fn many_operators_reading_a_big_store_at_once_stay_within_bounded_memory() {
    let server = Server::start();
    {
        let quarantine = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
        let breaker = Breaker::new(Config::default()).unwrap();
        force_open(&breaker, RUNAWAY);
        let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine);
        std::thread::scope(|scope| {
            for t in 0..8 {
                let guarded = &guarded;
                scope.spawn(move || {
                    for i in (t..BIG).step_by(8) {
                        held(guarded, email(RUNAWAY, &format!("user{i}@example.com")));
                    }
                });
            }
        });
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "redis_edges::summary_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, server.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("peak "))
        .unwrap()
        .1
        .to_owned();
    eprintln!("{READERS} summaries of {BIG} items at once: {line}");
    let peak: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
    // Before: every summary read every item (8 readers of 300,000 took 3.0 GB).
    assert!(peak < 100, "peak {peak} MiB");
}

/// Every figure a summary reads from a trip's keys, as gathered from the items themselves.
fn figures(summary: &spikebreaker::quarantine::Summary) -> Vec<String> {
    summary
        .trips
        .iter()
        .map(|t| {
            let sample: Vec<u64> = t.sample.iter().map(|item| item.id).collect();
            format!(
                "{} {} {:?} held {} doubt {} approved {} sending {} released {} discarded {} first {} last {} recipients {} top {:?} sample {sample:?}",
                t.kind,
                t.trip,
                t.reason,
                t.held,
                t.in_doubt,
                t.approved,
                t.sending,
                t.released,
                t.discarded,
                t.first_held_ms,
                t.last_held_ms,
                t.recipients,
                t.top_recipients
                    .iter()
                    .map(|r| (r.recipient.as_str(), r.items))
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

#[test]
fn the_figures_a_summary_reads_agree_with_the_items_and_are_rebuilt_for_an_older_store() {
    use spikebreaker::quarantine::{Claim, Delivery, Outcome};
    let server = Server::start();
    let quarantine = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
    let (breaker, clock) = super::breaker();
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    // Two trips of the receipts (recipients tied at the fifth place), one of the runaway.
    force_open(&breaker, RECEIPT);
    for to in ["a", "a", "a", "b", "b", "c", "c", "e", "d", "f"] {
        held(&guarded, email(RECEIPT, &format!("{to}@example.com")));
    }
    breaker.reset(RECEIPT).unwrap();
    clock.advance(Duration::from_secs(600));
    force_open(&breaker, RECEIPT);
    for i in 0..6 {
        held(&guarded, email(RECEIPT, &format!("late{i}@example.com")));
    }
    force_open(&breaker, RUNAWAY);
    for i in 0..3 {
        held(&guarded, email(RUNAWAY, &format!("r{i}@example.com")));
    }
    let trips = quarantine.summary(&Filter::kind(RECEIPT)).unwrap().trips;
    let (first, second) = (trips[0].trip, trips[1].trip);

    // Every move: approved, sent, failed (held again), leased out and held in doubt, still
    // sending, discarded.
    let store = quarantine.store();
    let at_most_once = ReleaseOrder {
        per_minute: Some(60_000.0),
        delivery: Delivery::AtMostOnce,
    };
    quarantine
        .release(&Filter::kind(RECEIPT).trip(first), &at_most_once)
        .unwrap();
    let claim = |owner: &str, lease: Duration| match store.claim(RECEIPT, owner, lease).unwrap() {
        Claim::Item(claimed) => claimed,
        other => panic!("{other:?}"),
    };
    let sent = claim("one", Duration::from_secs(60));
    store.settle(&sent, &Outcome::Sent).unwrap();
    let failed = claim("one", Duration::from_secs(60));
    store.settle(&failed, &Outcome::Failed("bounced".into())).unwrap();
    let _lost = claim("dead", Duration::from_secs(60));
    // A lease of zero: the dead one's has run out; at most once, it is held in doubt.
    let _sending = claim("two", Duration::ZERO);
    let second_trip: Vec<u64> = quarantine
        .items(&Query::new(Filter::kind(RECEIPT).trip(second), 2))
        .unwrap()
        .iter()
        .map(|item| item.id)
        .collect();
    quarantine
        .discard(&Filter::kind(RECEIPT).trip(second).ids(second_trip), "spam")
        .unwrap();

    let all_ids: Vec<u64> = quarantine
        .items(&Query::new(Filter::all(), 1_000))
        .unwrap()
        .iter()
        .map(|item| item.id)
        .collect();
    assert_eq!(all_ids.len(), 19);
    let read = |quarantine: &Quarantine| {
        let from_figures = figures(&quarantine.summary(&Filter::kind(RECEIPT)).unwrap());
        let from_items = figures(
            &quarantine
                .summary(&Filter::kind(RECEIPT).ids(all_ids.clone()))
                .unwrap(),
        );
        (from_figures, from_items)
    };
    let (from_figures, from_items) = read(&quarantine);
    assert_eq!(from_figures, from_items);
    assert!(
        from_figures[0].contains("held 2 doubt 1 approved 6 sending 1 released 1 discarded 0"),
        "{from_figures:?}"
    );
    assert!(
        from_figures[0].contains(r#"top [("a@example.com", 3), ("b@example.com", 2), ("c@example.com", 2), ("d@example.com", 1), ("e@example.com", 1)]"#),
        "{from_figures:?}"
    );
    assert!(
        from_figures[1].contains("held 4 doubt 0 approved 0 sending 0 released 0 discarded 2"),
        "{from_figures:?}"
    );

    // A store an earlier version wrote: items, no figures. The first open rebuilds them.
    let mut redis = connection(&server);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{edges:quarantine}:*")
        .query(&mut redis)
        .unwrap();
    for key in keys {
        if key.contains(":trip") || key.contains(":rcpt:") || key.ends_with(":layout") {
            let _: () = redis::cmd("DEL").arg(&key).query(&mut redis).unwrap();
        }
    }
    let reopened = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
    let (rebuilt, from_items) = read(&reopened);
    assert_eq!(rebuilt, from_items);
    assert_eq!(rebuilt, from_figures);
}

#[test]
fn an_entry_without_a_slice_as_the_release_before_slices_wrote_it_is_listed_and_released() {
    let server = Server::start();
    let quarantine = Quarantine::new(RedisStore::open(&server.url(), options()).unwrap());
    let breaker = Breaker::new(Config::default()).unwrap();
    force_open(&breaker, RECEIPT);
    let guarded = Guarded::new(Outbox::default(), breaker).with_quarantine(quarantine.clone());
    held(&guarded, email(RECEIPT, "old@example.com"));
    // The entry as the release before slices wrote it: its item's JSON has no `slice` field.
    let mut redis = connection(&server);
    let stream = format!("{{edges:quarantine}}:held:{RECEIPT}");
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query(&mut redis)
        .unwrap();
    let (_, fields) = &entries[0];
    let item = &fields.iter().find(|(name, _)| name == "item").unwrap().1;
    let json: serde_json::Value = serde_json::from_str(item).unwrap();
    assert!(json.get("slice").is_none(), "{item}");
    assert!(json.get("kind").is_some(), "{item}");

    quarantine
        .store()
        .hold(NewItem {
            kind: RECEIPT.to_owned(),
            trip: 1,
            reason: Reason::Spike,
            held_at_ms: 0,
            recipient: Some("new@example.com".to_owned()),
            slice: Some("prefix=+447".into()),
            notification: RawValue::from_string(
                serde_json::to_string(&email(RECEIPT, "new@example.com")).unwrap(),
            )
            .unwrap(),
        })
        .unwrap();
    let items = quarantine.items(&Query::new(Filter::kind(RECEIPT), 10)).unwrap();
    let slices: Vec<_> = items.iter().map(|i| i.slice.as_deref()).collect();
    assert_eq!(slices, [None, Some("prefix=+447")]);
    release_all(&quarantine, &guarded);
    assert_eq!(guarded.get_ref().sent.lock().unwrap().len(), 2);
}
