//! The quarantine: blocked notifications held before the send returns (sync, async, tower),
//! handed back when the store refuses, told apart by trip, summarised for an operator, discarded
//! with a reason, released through the wrapped sender at the kind's pace with a stable
//! idempotency key; the embedded store's bound, damaged files and crash in mid-release; and, on
//! Redis, two instances releasing together.

#[cfg(feature = "admin")]
mod admin;
#[cfg(feature = "quarantine")]
mod bulk;
#[cfg(all(feature = "cli", feature = "quarantine"))]
mod cli;
#[cfg(feature = "quarantine")]
mod edges;
#[cfg(all(feature = "redis", not(spikebreaker_no_redis_server)))]
mod redis;
#[cfg(all(feature = "redis", not(spikebreaker_no_redis_server)))]
mod redis_edges;
mod release;
mod senders;
mod serving;
#[cfg(feature = "quarantine")]
mod sqlite;
#[cfg(feature = "quarantine")]
mod upgrade;

// A suite whose feature is off, or whose server is missing, shows as ignored, naming what it
// needs, rather than as nothing.
#[cfg(not(feature = "admin"))]
#[test]
#[ignore = "needs --features admin"]
fn admin() {}

#[cfg(not(all(feature = "cli", feature = "quarantine")))]
#[test]
#[ignore = "needs --features cli,quarantine"]
fn cli() {}

#[cfg(not(feature = "redis"))]
#[test]
#[ignore = "needs --features redis"]
fn redis() {}

#[cfg(all(feature = "redis", spikebreaker_no_redis_server))]
#[test]
#[ignore = "no redis-server on the PATH when the tests were built (apt-get install redis-server; \
            SPIKEBREAKER_REDIS_TESTS=require makes it fail instead)"]
fn redis() {}

#[cfg(not(feature = "quarantine"))]
#[test]
#[ignore = "needs --features quarantine"]
fn sqlite() {}

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use spikebreaker::quarantine::Quarantine;
use spikebreaker::{AsyncSender, Breaker, Config, GuardError, Guarded, ManualClock, Notification, Sender};

pub const RECEIPT: &str = "email.receipt";
pub const RUNAWAY: &str = "security.2fa_changed";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub kind: String,
    pub to: String,
    pub body: String,
}

impl Notification for Email {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn recipient(&self) -> Option<&str> {
        Some(&self.to)
    }
}

pub fn email(kind: &str, to: &str) -> Email {
    Email {
        kind: kind.into(),
        to: to.into(),
        body: format!("a {kind} notice for {to}"),
    }
}

/// Records what it sends and under which idempotency key; fails for one address.
#[derive(Debug, Default)]
pub struct Outbox {
    pub sent: Mutex<Vec<(Option<String>, Email)>>,
}

#[derive(Debug, PartialEq)]
pub struct Bounced(pub String);

impl std::fmt::Display for Bounced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bounced", self.0)
    }
}

impl Outbox {
    fn record(&self, key: Option<&str>, email: Email) -> Result<(), Bounced> {
        if email.to == "bounce@example.com" {
            return Err(Bounced(email.to));
        }
        self.sent.lock().unwrap().push((key.map(str::to_owned), email));
        Ok(())
    }

    pub fn keys(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(key, _)| key.clone())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Sender<Email> for Outbox {
    type Output = ();
    type Error = Bounced;

    fn send(&self, email: Email) -> Result<(), Bounced> {
        self.record(None, email)
    }

    fn send_released(&self, email: Email, key: &str) -> Result<(), Bounced> {
        self.record(Some(key), email)
    }
}

impl AsyncSender<Email> for Outbox {
    type Output = ();
    type Error = Bounced;

    async fn send(&self, email: Email) -> Result<(), Bounced> {
        self.record(None, email)
    }

    async fn send_released(&self, email: Email, key: &str) -> Result<(), Bounced> {
        self.record(Some(key), email)
    }
}

pub fn breaker() -> (Breaker<ManualClock>, ManualClock) {
    let clock = ManualClock::starting_at(1_000_000);
    (
        Breaker::with_clock(Config::default(), clock.clone()).unwrap(),
        clock,
    )
}

/// Forces `kind` open on `breaker`, registering it first: an operator control acts on a kind the
/// breaker knows.
pub fn force_open<C: spikebreaker::Clock>(breaker: &Breaker<C>, kind: &str) {
    let _ = breaker.kind(kind);
    breaker.force_open(kind).unwrap();
}

/// Sends `email` through a guarded sender whose kind is open and checks the quarantine held it.
pub fn held<G, E>(guarded: &G, email: Email)
where
    G: Sender<Email, Error = GuardError<Email, E>>,
    E: std::fmt::Debug,
{
    let refused = guarded
        .send(email)
        .map(|_| ())
        .expect_err("sent while its kind is open");
    assert!(refused.is_quarantined(), "{refused:?}");
}

/// A breaker with `RECEIPT` forced open on the manual clock, and a guarded sender that held one
/// receipt in `quarantine`, approved for release.
pub fn one_approved(
    quarantine: &Quarantine,
) -> (
    Breaker<ManualClock>,
    Guarded<Outbox, spikebreaker::guard::ByNotification, ManualClock, Quarantine>,
) {
    use spikebreaker::quarantine::{Filter, ReleaseOrder};
    let (breaker, _) = breaker();
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RECEIPT);
    held(&guarded, email(RECEIPT, "a@example.com"));
    quarantine
        .release(&Filter::kind(RECEIPT), &ReleaseOrder::default())
        .unwrap();
    (breaker, guarded)
}

/// A releaser whose lease ran out reports a failure after the next releaser took its item over:
/// the item stays with the next claim (before: held again under the next releaser's feet), and
/// the next one's send is recorded. Every store must pass it.
pub fn a_late_failure_leaves_the_next_claim(quarantine: Quarantine) {
    use spikebreaker::quarantine::{Claim, Filter, ItemState, Outcome, Query};
    let _approved = one_approved(&quarantine);
    let store = quarantine.store();
    let claim = |owner| match store.claim(RECEIPT, owner, std::time::Duration::ZERO).unwrap() {
        Claim::Item(claimed) => claimed,
        other => panic!("{owner} claimed nothing: {other:?}"),
    };
    let slow = claim("slow");
    // Its lease ran out at once: the next releaser takes the item over.
    let next = claim("next");
    assert_eq!(slow.item.id, next.item.id);
    store.settle(&slow, &Outcome::Failed("timed out".into())).unwrap();
    let state = |state| {
        store
            .items(&Query {
                state: Some(state),
                ..Query::new(Filter::kind(RECEIPT), 10)
            })
            .unwrap()
            .len()
    };
    assert_eq!(state(ItemState::Held), 0, "held again under the next claim");
    store.settle(&next, &Outcome::Sent).unwrap();
    assert_eq!(state(ItemState::Released), 1);
    assert_eq!(state(ItemState::Held), 0);
}
