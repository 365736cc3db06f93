//! Guarding a sender. A blocked notification comes back to the caller whole, with its kind and
//! reason; the sender's own errors pass through untouched; sync, async and tower alike. A wrapped
//! sender that fails, panics or hangs, and a subscriber that panics, cannot poison the breaker,
//! stall other senders or take it down: the breaker runs no user code while holding a lock.
//! Sending by name (`Breaker::check`, what `Guarded` does) decides exactly as sending through a
//! resolved handle.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use crate::support::{Profile, Traffic, burst, merge};
use spikebreaker::config::{KindConfig, TimescaleConfig};
use spikebreaker::status::{Reason, State};
use spikebreaker::{
    AsyncSender, Breaker, Config, Decision, GuardError, Guarded, ManualClock, Notification, Sender,
};

#[derive(Debug, Clone, PartialEq)]
struct Email {
    kind: &'static str,
    to: String,
}

impl Notification for Email {
    fn kind(&self) -> &str {
        self.kind
    }
}

/// Records what it sends; fails for one address.
#[derive(Default)]
struct Outbox {
    sent: Mutex<Vec<Email>>,
}

#[derive(Debug, PartialEq)]
struct Bounced(String);

impl Sender<Email> for Outbox {
    type Output = usize;
    type Error = Bounced;

    fn send(&self, email: Email) -> Result<usize, Bounced> {
        if email.to == "bounce@example.com" {
            return Err(Bounced(email.to));
        }
        let mut sent = self.sent.lock().unwrap();
        sent.push(email);
        Ok(sent.len())
    }
}

impl AsyncSender<Email> for Outbox {
    type Output = usize;
    type Error = Bounced;

    async fn send(&self, email: Email) -> Result<usize, Bounced> {
        Sender::send(self, email)
    }
}

fn tripped_breaker() -> Breaker<ManualClock> {
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    drop(breaker.kind("security.2fa_changed")); // registered, nothing sent
    breaker.force_open("security.2fa_changed").unwrap();
    breaker
}

fn email(kind: &'static str, to: &str) -> Email {
    Email { kind, to: to.into() }
}

#[test]
fn a_blocked_notification_comes_back_whole_with_its_kind_and_reason() {
    let guarded = Guarded::new(Outbox::default(), tripped_breaker());
    let original = email("security.2fa_changed", "a@example.com");
    let Err(GuardError::Blocked(blocked)) = Sender::send(&guarded, original.clone()) else {
        panic!("expected a block");
    };
    assert_eq!(
        (blocked.kind(), blocked.reason()),
        ("security.2fa_changed", Reason::ForcedOpen)
    );
    assert_eq!(
        blocked.to_string(),
        "notification of kind `security.2fa_changed` blocked by spikebreaker (forced_open)"
    );
    assert_eq!(blocked.into_notification(), original);
    assert!(
        guarded.get_ref().sent.lock().unwrap().is_empty(),
        "nothing reached the sender"
    );
}

#[test]
fn other_kinds_and_sender_errors_pass_through_untouched() {
    let guarded = Guarded::new(Outbox::default(), tripped_breaker());
    assert_eq!(
        Sender::send(&guarded, email("email.welcome", "a@example.com")),
        Ok(1)
    );
    let error = Sender::send(&guarded, email("email.welcome", "bounce@example.com")).unwrap_err();
    assert!(!error.is_blocked());
    assert!(matches!(error, GuardError::Sender(Bounced(ref to)) if to == "bounce@example.com"));
    assert_eq!(
        guarded.breaker().kind_status("email.welcome").unwrap().attempted,
        2
    );
}

#[test]
fn a_classifier_names_the_kind_of_a_type_that_does_not() {
    struct Push {
        topic: String,
    }
    struct Apns(RefCell<u32>);
    impl Sender<Push> for Apns {
        type Output = ();
        type Error = ();
        fn send(&self, _: Push) -> Result<(), ()> {
            *self.0.borrow_mut() += 1;
            Ok(())
        }
    }
    let breaker = tripped_breaker();
    drop(breaker.kind("push.promo"));
    breaker.force_open("push.promo").unwrap();
    let guarded = Guarded::with_classifier(Apns(RefCell::new(0)), breaker, |p: &Push| p.topic.as_str());
    let blocked = guarded
        .send(Push {
            topic: "push.promo".into(),
        })
        .unwrap_err()
        .into_blocked()
        .unwrap();
    assert_eq!(blocked.into_notification().topic, "push.promo");
    assert!(
        guarded
            .send(Push {
                topic: "push.news".into()
            })
            .is_ok()
    );
    assert_eq!(*guarded.get_ref().0.borrow(), 1);
}

#[tokio::test]
async fn async_senders_are_guarded_the_same_way() {
    let guarded = Guarded::new(Outbox::default(), tripped_breaker());
    let blocked = AsyncSender::send(&guarded, email("security.2fa_changed", "a@example.com")).await;
    assert_eq!(
        blocked
            .unwrap_err()
            .into_blocked()
            .unwrap()
            .into_notification()
            .to,
        "a@example.com"
    );
    assert_eq!(
        AsyncSender::send(&guarded, email("email.welcome", "b@example.com")).await,
        Ok(1)
    );
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn a_tower_service_behind_the_layer_hands_blocked_requests_back() {
    use spikebreaker::guard::tower::GuardLayer;
    use tower::{Layer, ServiceExt, service_fn};

    let layer = GuardLayer::new(tripped_breaker());
    let service = layer.layer(service_fn(
        |email: Email| async move { Ok::<_, Bounced>(email.to) },
    ));
    let sent = service
        .clone()
        .oneshot(email("email.welcome", "a@example.com"))
        .await;
    assert_eq!(sent.ok().as_deref(), Some("a@example.com"));
    let refused = service
        .oneshot(email("security.2fa_changed", "b@example.com"))
        .await;
    let blocked = refused.unwrap_err().into_blocked().unwrap();
    assert_eq!(
        (blocked.kind(), blocked.notification().to.as_str()),
        ("security.2fa_changed", "b@example.com")
    );
}

#[test]
fn a_notification_refused_on_the_overflow_kind_comes_back_naming_it() {
    let config = Config {
        max_kinds: 1,
        ..Config::default()
    };
    let breaker = Breaker::with_clock(config, ManualClock::new()).unwrap();
    let _ = breaker.check("email.welcome");
    breaker.force_open(Breaker::OVERFLOW_KIND).unwrap();
    let guarded = Guarded::new(Outbox::default(), breaker);
    let Err(GuardError::Blocked(blocked)) = Sender::send(&guarded, email("user-4711", "a@example.com"))
    else {
        panic!("expected a block");
    };
    assert_eq!(
        (blocked.kind(), blocked.reason()),
        (Breaker::OVERFLOW_KIND, Reason::ForcedOpen)
    );
    assert!(Sender::send(&guarded, email("email.welcome", "b@example.com")).is_ok());
    // Each refused send was looked up once: the overflow count matches the overflow kind's.
    for user in 0..99 {
        let to = format!("user-{user}");
        assert!(
            Sender::send(&guarded, email("user-id-in-kind", &to))
                .unwrap_err()
                .is_blocked()
        );
    }
    let overflow = guarded.breaker().kind_status(Breaker::OVERFLOW_KIND).unwrap();
    assert_eq!(
        (guarded.breaker().status().overflowed, overflow.attempted),
        (100, 100)
    );
}

// Senders and subscribers that fail, panic or hang.

const CEILING: u64 = 1_000;

#[derive(Debug, PartialEq)]
struct Note {
    kind: &'static str,
    id: u64,
}

impl Notification for Note {
    fn kind(&self) -> &str {
        self.kind
    }
}

fn note(id: u64) -> Note {
    Note {
        kind: "sms.login_code",
        id,
    }
}

#[derive(Debug, PartialEq)]
struct Refused(u64);

/// A provider that refuses every notification.
struct Failing;

impl Sender<Note> for Failing {
    type Output = ();
    type Error = Refused;
    fn send(&self, n: Note) -> Result<(), Refused> {
        Err(Refused(n.id))
    }
}

/// A provider whose client panics on odd ids.
struct Panicking;

impl Sender<Note> for Panicking {
    type Output = u64;
    type Error = Refused;
    fn send(&self, n: Note) -> Result<u64, Refused> {
        assert!(n.id % 2 == 0, "provider client bug on {}", n.id);
        Ok(n.id)
    }
}

/// A provider that hangs on id 0 until released, and sends everything else.
struct Hanging {
    entered: mpsc::SyncSender<()>,
    release: parking_lot::Mutex<mpsc::Receiver<()>>,
}

impl Sender<Note> for Hanging {
    type Output = u64;
    type Error = Refused;
    fn send(&self, n: Note) -> Result<u64, Refused> {
        if n.id == 0 {
            self.entered.send(()).unwrap();
            self.release.lock().recv().unwrap();
        }
        Ok(n.id)
    }
}

fn breaker() -> Breaker<ManualClock> {
    let config = Config {
        defaults: KindConfig {
            warmup_ceiling: CEILING,
            ..KindConfig::default()
        },
        ..Config::default()
    };
    Breaker::with_clock(config, ManualClock::new()).unwrap()
}

#[test]
fn a_failing_senders_error_passes_through_untouched_and_every_attempt_counts() {
    let guarded = Guarded::new(Failing, breaker());
    for id in 0..CEILING {
        match guarded.send(note(id)) {
            Err(GuardError::Sender(e)) => assert_eq!(e, Refused(id)),
            other => panic!("{other:?}"),
        }
    }
    // A job retrying a failing send in a loop is a runaway too.
    let blocked = guarded.send(note(CEILING)).unwrap_err().into_blocked().unwrap();
    assert_eq!(
        (blocked.reason(), blocked.into_notification()),
        (Reason::Warmup, note(CEILING))
    );
    let status = guarded.breaker().kind_status("sms.login_code").unwrap();
    assert_eq!(
        (status.attempted, status.allowed, status.blocked),
        (CEILING + 1, CEILING, 1)
    );
}

#[test]
fn a_panicking_sender_leaves_the_breaker_usable_from_every_thread() {
    let guarded = Guarded::new(Panicking, breaker());
    let panics = AtomicU64::new(0);
    thread::scope(|s| {
        for t in 0..4 {
            let (guarded, panics) = (&guarded, &panics);
            s.spawn(move || {
                for i in 0..100 {
                    let id = t * 100 + i;
                    match catch_unwind(AssertUnwindSafe(|| guarded.send(note(id)))) {
                        Ok(sent) => assert_eq!(sent.unwrap(), id),
                        Err(_) => {
                            panics.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(panics.load(Ordering::Relaxed), 200);
    // Nothing is poisoned: sends, operator controls and status all still work.
    let breaker = guarded.breaker();
    assert_eq!(guarded.send(note(1_000)).unwrap(), 1_000);
    breaker.force_open("sms.login_code").unwrap();
    assert!(guarded.send(note(1_002)).unwrap_err().is_blocked());
    breaker.reset("sms.login_code").unwrap();
    assert_eq!(guarded.send(note(1_004)).unwrap(), 1_004);
    let status = breaker.kind_status("sms.login_code").unwrap();
    assert_eq!(
        (status.attempted, status.blocked, status.state),
        (403, 1, State::Closed)
    );
}

#[test]
fn a_hanging_sender_stalls_only_its_own_send() {
    let (entered, on_entered) = mpsc::sync_channel(1);
    let (release, on_release) = mpsc::channel();
    let hanging = Hanging {
        entered,
        release: parking_lot::Mutex::new(on_release),
    };
    let guarded = Guarded::new(hanging, breaker());
    thread::scope(|s| {
        let stuck = s.spawn(|| guarded.send(note(0)));
        on_entered.recv().unwrap(); // the send is inside the provider now, and stays there
        let breaker = guarded.breaker();
        // Other threads keep sending the same kind, and it trips as usual.
        let sent: u64 = thread::scope(|s| {
            let senders: Vec<_> = (0..4)
                .map(|t| {
                    let guarded = &guarded;
                    s.spawn(move || {
                        (1..=500)
                            .filter(|i| guarded.send(note(t * 1_000 + i)).is_ok())
                            .count()
                    })
                })
                .collect();
            senders.into_iter().map(|h| h.join().unwrap() as u64).sum()
        });
        assert_eq!(sent, CEILING - 1, "the hung send counts toward the ceiling");
        let status = breaker.kind_status("sms.login_code").unwrap();
        assert_eq!(
            (status.state, status.trips, status.attempted),
            (State::Open, 1, 2_001)
        );
        // Operator controls do not wait on the hung send either.
        breaker.reset("sms.login_code").unwrap();
        breaker.reload(Config::default()).unwrap();
        assert!(breaker.check("sms.login_code").is_allowed());
        release.send(()).unwrap();
        assert_eq!(stuck.join().unwrap().unwrap(), 0);
    });
}

#[test]
fn a_panicking_subscriber_does_not_take_the_breaker_down_and_the_others_still_hear() {
    let breaker = breaker();
    let heard = Arc::new(AtomicU64::new(0));
    breaker
        .subscribe(|event| panic!("subscriber bug on {}", event.kind))
        .detach();
    let counter = Arc::clone(&heard);
    breaker
        .subscribe(move |event| {
            if event.is_trip() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .detach();
    let kinds = ["a", "b", "c", "d"];
    thread::scope(|s| {
        for kind in kinds {
            let breaker = &breaker;
            s.spawn(move || {
                let allowed = (0..2 * CEILING)
                    .filter(|_| breaker.check(kind).is_allowed())
                    .count();
                assert_eq!(allowed as u64, CEILING);
            });
        }
    });
    assert_eq!(
        heard.load(Ordering::Relaxed),
        4,
        "every trip reached the second subscriber"
    );
    drop(breaker.kind("e"));
    breaker.force_open("e").unwrap(); // an operator's event goes through the panicking subscriber too
    assert_eq!(heard.load(Ordering::Relaxed), 5);
}

// Sending by name decides as sending through a handle.

const KINDS: [&str; 3] = ["email.welcome", "sms.login_code", "security.2fa_changed"];

fn small_config() -> Config {
    Config {
        defaults: KindConfig {
            minute: TimescaleConfig {
                floor: 20,
                ..TimescaleConfig::MINUTE
            },
            warmup_ceiling: 50,
            warmup_secs: 600,
            cooldown_secs: 60,
            probe_secs: 30,
            ..KindConfig::default()
        },
        ..Config::default()
    }
}

#[test]
fn by_name_and_by_handle_decide_every_send_alike() {
    let traffic: Vec<(u64, usize)> = merge(
        Traffic::new(
            vec![
                Profile::steady(KINDS[0], 30.0),
                Profile::steady(KINDS[1], 10.0),
                Profile::steady(KINDS[2], 2.0),
            ],
            11,
            0,
            3 * 3_600_000,
        ),
        // A runaway after two hours: trips, cools down, probes, recovers or trips again.
        burst(2 * 3_600_000, 3_000, 50.0).map(|t| (t, 2)),
    )
    .collect();

    let by_name_clock = ManualClock::new();
    let by_name = Breaker::with_clock(small_config(), by_name_clock.clone()).unwrap();
    let by_handle_clock = ManualClock::new();
    let by_handle = Breaker::with_clock(small_config(), by_handle_clock.clone()).unwrap();
    let handles: Vec<_> = KINDS.iter().map(|kind| by_handle.kind(kind)).collect();
    // Registered at the same time on both sides, so that their statuses compare whole.
    KINDS.iter().for_each(|kind| drop(by_name.kind(kind)));

    let mut blocked = 0;
    for (i, &(t, kind)) in traffic.iter().enumerate() {
        by_name_clock.set(t);
        by_handle_clock.set(t);
        let named = by_name.check(KINDS[kind]);
        assert_eq!(
            named,
            handles[kind].check(),
            "send {i} of {} at {t} ms",
            KINDS[kind]
        );
        blocked += u64::from(named != Decision::Allowed);
    }
    assert!(
        blocked > 0,
        "the runaway was never blocked: the test saw no cold path"
    );
    assert_eq!(by_name.status(), by_handle.status());
}

#[test]
fn a_subscriber_may_register_kinds_and_send_by_name_from_a_send_by_name() {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(small_config(), clock).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = breaker.clone();
        let seen = Arc::clone(&calls);
        breaker
            .subscribe(move |event| {
                seen.fetch_add(1, Ordering::Relaxed);
                // Enough new kinds to land in every shard of the registry, the tripping kind's too:
                // a send by name that ran its cold work under the registry's lock would deadlock.
                for i in 0..200 {
                    let _ = inner.check(&format!("tenant{i}.email.receipt"));
                }
                assert_eq!(inner.check(&event.kind), Decision::Blocked(event.reason));
            })
            .detach();
        let allowed = (0..100).filter(|_| breaker.check(KINDS[2]).is_allowed()).count();
        let _ = done.send((
            allowed,
            calls.load(Ordering::Relaxed),
            breaker.kind(KINDS[2]).state(),
        ));
    });
    // A watchdog for a deadlock, not a wait for a result that takes time.
    let (allowed, calls, state) = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("a send by name deadlocked with its subscriber");
    assert_eq!((allowed, calls, state), (50, 1, State::Open));
}

/// A closure is a sender (sync or async), and so is a shared sender, by `Arc` or by reference.
#[test]
fn closures_and_shared_senders_are_senders() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sent);
    let smtp = spikebreaker::sender_fn(move |email: Email| -> Result<String, std::io::Error> {
        counted.fetch_add(1, Ordering::Relaxed);
        Ok(email.to)
    });
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    let email = || Email {
        kind: "email.welcome",
        to: "a@example.com".into(),
    };
    assert_eq!(
        Guarded::new(smtp.clone(), breaker.clone()).send(email()).unwrap(),
        "a@example.com"
    );
    let shared = Arc::new(smtp);
    assert!(
        Guarded::new(Arc::clone(&shared), breaker.clone())
            .send(email())
            .is_ok()
    );
    assert!(Guarded::new(&*shared, breaker.clone()).send(email()).is_ok());
    assert_eq!(sent.load(Ordering::Relaxed), 3);

    let push = spikebreaker::sender_fn(|email: Email| async move { Ok::<_, std::io::Error>(email.to.len()) });
    let guarded = Guarded::new(Arc::new(push), breaker.clone());
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(
        runtime.block_on(AsyncSender::send(&guarded, email())).unwrap(),
        13
    );
    breaker.force_open("email.welcome").unwrap();
    let refused = runtime
        .block_on(AsyncSender::send(&guarded, email()))
        .unwrap_err();
    assert_eq!(refused.into_blocked().unwrap().into_notification(), email());
}

/// A refusal says when the kind may reopen: the end of its cool-down, or never on its own.
#[test]
fn a_refusal_says_when_the_kind_may_reopen() {
    let clock = ManualClock::new();
    let config =
        Config::from_toml("[defaults]\ncooldown_secs = 120\n[kinds.manual]\nrecovery = \"manual\"\n")
            .unwrap();
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    let guarded = Guarded::new(
        spikebreaker::sender_fn(|_: Email| Ok::<_, ()>(())),
        breaker.clone(),
    );
    let runaway = |kind: &'static str| loop {
        clock.advance(Duration::from_millis(10));
        if let Err(GuardError::Blocked(blocked)) = guarded.send(Email {
            kind,
            to: String::new(),
        }) {
            break blocked;
        }
    };
    let auto = runaway("auto");
    assert_eq!(auto.reopens_at_ms(), Some(auto.tripped_at_ms() + 120_000));
    assert_eq!(
        runaway("manual").reopens_at_ms(),
        None,
        "only an operator reopens it"
    );
    breaker.force_open("auto").unwrap();
    assert_eq!(runaway("auto").reopens_at_ms(), None, "forced open");
    assert_eq!(runaway("").reopens_at_ms(), None, "an invalid name");
    assert_eq!(Decision::Blocked(Reason::Spike).to_string(), "blocked (spike)");
}
