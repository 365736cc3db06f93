//! The quarantine: where blocked notifications go to wait for an operator, who looks at what was
//! held, discards the runaway and releases the legitimate notices caught in the trip.
//!
//! - [`Quarantine`] is the handle: give it to a sender
//!   ([`Guarded::with_quarantine`](crate::Guarded::with_quarantine), or the tower layer's) and
//!   every notification the breaker refuses is written to its [`Store`] before the send returns,
//!   with its kind, reason, trip, time and recipient. A store that refuses (full, unreachable)
//!   leaves the notification with the caller, as without a quarantine: nothing is dropped.
//! - The same handle is the operator's: [`summary`](Quarantine::summary) (per kind and trip:
//!   counts, distinct recipients, a sample), [`items`](Quarantine::items),
//!   [`discard`](Quarantine::discard) with a reason kept for audit, and
//!   [`release`](Quarantine::release), which approves items for a [`Releaser`] to send.
//! - A [`Releaser`] runs where the sender is (the command line and the admin router only
//!   approve): it re-sends approved items through the wrapped sender, paced, one at a time, each
//!   with a stable idempotency key ([`Sender::send_released`](crate::Sender::send_released)),
//!   and resumes after a crash under the order's [`Delivery`] guarantee.
//! - Stores: [`MemoryStore`]; `SqliteStore`, an embedded file (feature `quarantine`);
//!   `RedisStore`, Redis Streams shared by a fleet (feature `redis`); or your own [`Store`].
//!
//! A trip is named by the wall-clock time it began (Unix milliseconds, see [`NewItem::trip`]),
//! so that trips stay apart across restarts and across the instances of a fleet.
//!
//! The allowed send path does not change: a sender reaches its quarantine from the refusal path
//! only, which reads one more relaxed atomic (the kind's trip) before it writes.
//!
//! ```
//! use spikebreaker::quarantine::{Filter, MemoryStore, Quarantine, ReleaseOrder, Releaser, Step};
//! use spikebreaker::{Breaker, Config, Guarded, ManualClock, Notification, Sender};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Email { kind: String, to: String }
//! impl Notification for Email {
//!     fn kind(&self) -> &str { &self.kind }
//!     fn recipient(&self) -> Option<&str> { Some(&self.to) }
//! }
//! struct Smtp;
//! impl Sender<Email> for Smtp {
//!     type Output = ();
//!     type Error = std::io::Error;
//!     fn send(&self, _email: Email) -> std::io::Result<()> { Ok(()) }
//! }
//!
//! let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
//! let quarantine = Quarantine::new(MemoryStore::new(100_000));
//! let smtp = Guarded::new(Smtp, breaker.clone()).with_quarantine(quarantine.clone());
//!
//! let _ = breaker.kind("email.receipt"); // controls act on kinds the breaker knows
//! breaker.force_open("email.receipt")?;
//! for to in ["a@example.com", "b@example.com"] {
//!     assert!(smtp.send(Email { kind: "email.receipt".into(), to: to.into() }).is_err()); // held
//! }
//! let trip = quarantine.summary(&Filter::kind("email.receipt"))?.trips[0].clone();
//! assert_eq!((trip.held, trip.recipients), (2, 2));
//!
//! breaker.reset("email.receipt")?;
//! quarantine.release(&Filter::kind("email.receipt").trip(trip.trip), &ReleaseOrder::default())?;
//! let mut releaser = Releaser::<Email>::new(quarantine.clone());
//! assert!(matches!(releaser.step(&smtp)?, Step::Sent { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod item;
mod lend;
mod pace;
mod release;
mod store;
mod summary;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::breaker::Breaker;
use crate::clock::{SystemClock, unix_ms};
use crate::guard::Blocked;
use crate::guard::Quarantined;
use crate::guard::park::{Attach, Park};
use crate::observe::metrics::{self, count_quarantine};
use crate::state::Reason;

pub use crate::guard::park::NoQuarantine;
pub use item::{Delivery, Filter, Item, ItemId, ItemState, NewItem, Query, ReleaseOrder};
pub use lend::{Acked, HoldError, Lender, Lent, Loan};
use release::Wake;
pub use release::{DEFAULT_LEASE, DEFAULT_POLL, Released, Releaser, Serving, Step, Stop};
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::redis::{RedisOptions, RedisStore};
#[cfg(feature = "quarantine")]
#[cfg_attr(docsrs, doc(cfg(feature = "quarantine")))]
pub use store::sqlite::{SqliteOptions, SqliteStore};
pub use store::{Claim, Claimed, DEFAULT_MAX_ITEM_BYTES, FINISHED_KEPT, Outcome, Store, StoreError};
pub use summary::{RecipientCount, Summary, TripSummary};

/// The `breaker` label of a quarantine no guarded sender has taken yet.
const DEFAULT_NAME: &str = Breaker::<SystemClock>::DEFAULT_NAME;

/// A quarantine: a [`Store`] and what the senders and operators sharing it need. Cheap to clone:
/// clones share the store.
#[derive(Clone)]
pub struct Quarantine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Box<dyn Store>,
    /// Per kind, the trip last seen (its start on the breaker's clock) and its name in the store.
    trips: Mutex<Trips>,
    /// When a refused hold was last logged (Unix ms): at most one warning a second.
    last_warning_ms: AtomicU64,
    /// The name of the breaker whose refusals it holds (the `breaker` label of its metrics):
    /// `"default"` until a guarded sender takes it.
    breaker: RwLock<Arc<str>>,
    /// Wakes the releasers serving this quarantine when an operator approves items here.
    wake: Arc<Wake>,
}

/// The trips a quarantine has named.
#[derive(Default)]
struct Trips {
    /// Per kind, the trip last seen: its start on the breaker's clock, and its name.
    last: HashMap<Arc<str>, (u64, u64)>,
    /// The last name given: names only grow, so two trips never share one.
    named: u64,
}

/// Kinds whose last trip a quarantine remembers; past this, it starts its memory afresh.
const TRIPS_REMEMBERED: usize = 65_536;

impl fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quarantine")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl Quarantine {
    /// A quarantine kept in `store`.
    pub fn new(store: impl Store + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Box::new(store),
                trips: Mutex::new(Trips::default()),
                last_warning_ms: AtomicU64::new(0),
                breaker: RwLock::new(Arc::from(DEFAULT_NAME)),
                wake: Arc::new(Wake::default()),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// Per kind and trip: how many items stand where, the distinct recipients and who got the
    /// most, and a sample.
    pub fn summary(&self, filter: &Filter) -> Result<Summary, StoreError> {
        self.inner.store.summary(filter)
    }

    /// A page of items, oldest first.
    pub fn items(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        self.inner.store.items(query)
    }

    /// Discards the held items of a kind (or of one of its trips, or those named), keeping
    /// `reason` with each for audit; how many. Items approved for release are left to the
    /// releaser, so that an operator releases the legitimate items of a trip, then discards the
    /// rest.
    pub fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        let kind = filter.for_action().map_err(StoreError::Invalid)?;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a discard must give a reason (it is kept for audit)".to_owned(),
            ));
        }
        let discarded = self.inner.store.discard(filter, reason)?;
        count_quarantine(metrics::QUARANTINE_DISCARDED, &self.breaker(), kind, discarded);
        Ok(discarded)
    }

    /// Approves the held items of a kind (or of one of its trips, or those named) for release
    /// under `order`; how many. A [`Releaser`] running with the sender sends them (one serving in
    /// this process is woken at once).
    pub fn release(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError> {
        filter.for_action().map_err(StoreError::Invalid)?;
        order.validate().map_err(StoreError::Invalid)?;
        let approved = self.inner.store.approve(filter, order)?;
        if approved > 0 {
            self.inner.wake.notify();
        }
        Ok(approved)
    }

    /// The idempotency key of item `id`: stable across attempts, unique across stores.
    pub fn idempotency_key(&self, id: ItemId) -> String {
        format!("{}-{id}", self.inner.store.id())
    }

    /// The store's name for the trip of `kind` that began at `tripped_at_ms` on a breaker clock
    /// reading `now_ms`: the wall-clock time it began, reckoned once per trip so that every item
    /// of the trip carries the same value, and later than any name given before (two trips in
    /// one millisecond, or a clock that is not the wall's, still get two names).
    fn trip(&self, kind: &Arc<str>, tripped_at_ms: u64, now_ms: u64) -> u64 {
        let mut trips = self.inner.trips.lock();
        if let Some(&(at, trip)) = trips.last.get(kind) {
            if at == tripped_at_ms {
                return trip;
            }
        }
        if trips.last.len() >= TRIPS_REMEMBERED {
            trips.last.clear();
        }
        let began = unix_ms().saturating_sub(now_ms.saturating_sub(tripped_at_ms));
        let trip = began.max(trips.named + 1);
        trips.named = trip;
        trips.last.insert(Arc::clone(kind), (tripped_at_ms, trip));
        trip
    }

    /// The `breaker` label of its metrics.
    fn breaker(&self) -> Arc<str> {
        Arc::clone(&self.inner.breaker.read())
    }

    fn warn_refused(&self, kind: &str, error: &dyn fmt::Display) {
        let now = unix_ms();
        let last = self.inner.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000
            && self
                .inner
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(kind, %error, "quarantine refused a blocked notification: handed back to the caller");
        }
    }
}

impl Attach for Quarantine {
    /// Labels its metrics with `breaker`; a quarantine shared by guarded senders of two
    /// differently named breakers keeps the first name and warns.
    fn attach(&self, breaker: &str) {
        let mut current = self.inner.breaker.write();
        if &**current == breaker {
            return;
        }
        if &**current != DEFAULT_NAME {
            tracing::warn!(
                first = &**current,
                breaker,
                "one quarantine serves two breakers: its metrics keep the first one's name"
            );
            return;
        }
        *current = Arc::from(breaker);
    }
}

impl<N: Serialize> Park<N> for Quarantine {
    fn park(
        &self,
        blocked: Blocked<N>,
        recipient_of: impl FnOnce(&N) -> Option<&str>,
        now_ms: u64,
    ) -> Result<Quarantined, Blocked<N>> {
        // A name that breaks the kind-name rule is the caller's bug, not a runaway: nothing an
        // operator could release or discard by kind, so it goes back to the caller.
        if blocked.reason() == Reason::InvalidKind {
            return Err(blocked);
        }
        let kind = Arc::clone(blocked.kind_name());
        let notification = match serde_json::value::to_raw_value(blocked.notification()) {
            Ok(json) => json,
            Err(error) => {
                count_quarantine(metrics::QUARANTINE_REFUSED, &self.breaker(), &kind, 1);
                self.warn_refused(&kind, &format_args!("cannot encode it as JSON: {error}"));
                return Err(blocked);
            }
        };
        // A slice's trips are its own, apart from its kind's and from each other's.
        let trip_of = match blocked.slice() {
            None => Arc::clone(&kind),
            Some(slice) => Arc::from(format!("{kind} {slice}")),
        };
        let trip = self.trip(&trip_of, blocked.tripped_at_ms(), now_ms);
        let item = NewItem {
            kind: kind.to_string(),
            trip,
            reason: blocked.reason(),
            held_at_ms: unix_ms(),
            recipient: recipient_of(blocked.notification()).map(str::to_owned),
            slice: blocked.slice().map(|slice| slice.to_string().into()),
            notification,
        };
        match self.inner.store.hold(item) {
            Ok(id) => {
                count_quarantine(metrics::QUARANTINE_HELD, &self.breaker(), &kind, 1);
                Ok(Quarantined::new(id, kind, blocked.reason(), trip))
            }
            Err(error) => {
                count_quarantine(metrics::QUARANTINE_REFUSED, &self.breaker(), &kind, 1);
                self.warn_refused(&kind, &error);
                Err(blocked)
            }
        }
    }
}
