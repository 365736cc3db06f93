//! A wrapped sender that fails, panics or hangs, and a subscriber that panics: the breaker runs
//! no user code while holding a lock, so none of them can poison it, stall other senders or take
//! it down.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

use spikebreaker::{
    Breaker, Config, GuardError, Guarded, KindConfig, ManualClock, Notification, Reason, Sender, State,
};

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
    breaker.force_open("sms.login_code");
    assert!(guarded.send(note(1_002)).unwrap_err().is_blocked());
    breaker.reset("sms.login_code");
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
        breaker.reset("sms.login_code");
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
    breaker.subscribe(|event| panic!("subscriber bug on {}", event.kind));
    let counter = Arc::clone(&heard);
    breaker.subscribe(move |event| {
        if event.is_trip() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
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
    breaker.force_open("e"); // an operator's event goes through the panicking subscriber too
    assert_eq!(heard.load(Ordering::Relaxed), 5);
}
