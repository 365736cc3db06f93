//! [`Releaser`]: sends approved items through the wrapped sender, paced, one at a time.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Quarantine;
use super::item::ItemId;
use super::pace;
use super::store::{Claim, Claimed, Outcome, StoreError, new_store_id};
use crate::breaker::Breaker;
use crate::clock::Clock;
use crate::guard::{AsyncSender, Guarded, Sender};
use crate::observe::metrics::{self, count_quarantine};

/// How long a claimed item stays with its releaser by default: longer than any send should take.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How long a releaser waits by default when every approved item is leased to another.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// Sends the items operators approved ([`Quarantine::release`]) through a guarded sender's
/// wrapped sender, for notifications of type `N`.
///
/// **Pace.** Per kind, one send every `60 / per_minute` seconds of the breaker's clock, where
/// `per_minute` is the order's pace or, by default, the kind's learned normal rate (its `floor`
/// per window while it has learned none). Released items go to the wrapped sender
/// ([`Guarded::get_ref`]), not through the breaker: an operator approved them, so an open kind
/// does not block them, and, never counted, they cannot trip the kind they came from. Kept to
/// the kind's normal rate, they add at most one ordinary kind's traffic for the provider and the
/// recipients. Several releasers (several instances on one Redis store) each keep the pace.
///
/// **Delivery.** One item at a time: claim (a lease, recorded in the store), send with the
/// item's idempotency key ([`Sender::send_released`]), settle (recorded). A releaser that dies
/// between the sender accepting an item and the store recording it leaves that one item leased;
/// when the lease runs out, under [`Delivery::AtLeastOnce`](super::Delivery::AtLeastOnce) the
/// next releaser sends it again (same key), under
/// [`Delivery::AtMostOnce`](super::Delivery::AtMostOnce) it goes back to `Held`, `in_doubt`,
/// and is not sent on its own. Every other item is sent exactly once. A sender's error puts the
/// item back to `Held` with the error as its note.
///
/// Drive it with [`step`](Self::step) (or [`step_async`](Self::step_async)), sleeping for each
/// [`Step::Wait`]; [`run`](Self::run) does that on this thread until nothing is left.
pub struct Releaser<N> {
    quarantine: Quarantine,
    owner: String,
    lease: Duration,
    poll: Duration,
    /// Per kind, when it may send next (breaker clock).
    next_at_ms: HashMap<String, u64>,
    notification: PhantomData<fn() -> N>,
}

/// What one [`Releaser::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Sent an item.
    Sent {
        /// The item.
        id: ItemId,
        /// Its kind.
        kind: String,
    },
    /// An item could not be sent (the sender failed, or it did not decode): held again, with
    /// this note.
    Failed {
        /// The item.
        id: ItemId,
        /// Its kind.
        kind: String,
        /// Why.
        note: String,
    },
    /// Nothing may be sent yet (pace, or items leased to other releasers): step again after this.
    Wait(Duration),
    /// Nothing is approved.
    Idle,
}

/// What [`Releaser::run`] did before nothing was left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Items sent.
    pub sent: u64,
    /// Items that failed and are held again.
    pub failed: u64,
}

/// What [`Releaser::prepare`] left the sender to do.
enum Prepared<N> {
    /// Send the notification with its key, then settle.
    Send(Claimed, N, String),
    /// Settle at once (it did not decode).
    Settle(Claimed, Outcome),
    /// Nothing to send.
    Done(Step),
}

/// How a send's result is recorded.
fn outcome<T, E: fmt::Display>(sent: Result<T, E>) -> Outcome {
    match sent {
        Ok(_) => Outcome::Sent,
        Err(error) => Outcome::Failed(format!("send failed: {error}")),
    }
}

enum Next {
    Claimed(Claimed),
    Wait(Duration),
    Idle,
}

impl<N> fmt::Debug for Releaser<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Releaser")
            .field("owner", &self.owner)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<N: DeserializeOwned> Releaser<N> {
    /// A releaser for `quarantine`'s approved items, under a random owner name.
    pub fn new(quarantine: Quarantine) -> Self {
        Self {
            quarantine,
            owner: new_store_id(),
            lease: DEFAULT_LEASE,
            poll: DEFAULT_POLL,
            next_at_ms: HashMap::new(),
            notification: PhantomData,
        }
    }

    /// How long a claimed item stays with this releaser before another may take it over: make
    /// it longer than the sender's own timeout.
    pub fn lease(self, lease: Duration) -> Self {
        Self { lease, ..self }
    }

    /// How long to wait when every approved item is leased to another releaser.
    pub fn poll(self, poll: Duration) -> Self {
        Self { poll, ..self }
    }

    /// Sends the next item whose kind's pace allows, through `guarded`'s wrapped sender.
    pub fn step<S, K, C, Q>(&mut self, guarded: &Guarded<S, K, C, Q>) -> Result<Step, StoreError>
    where
        S: Sender<N>,
        S::Error: fmt::Display,
        C: Clock,
    {
        let (claimed, outcome) = match self.prepare(guarded.breaker())? {
            Prepared::Send(claimed, notification, key) => {
                let sent = guarded.get_ref().send_released(notification, &key);
                (claimed, outcome(sent))
            }
            Prepared::Settle(claimed, outcome) => (claimed, outcome),
            Prepared::Done(step) => return Ok(step),
        };
        self.settle(guarded.breaker(), claimed, outcome)
    }

    /// [`step`](Self::step) for an asynchronous sender. The store's calls block the task
    /// briefly (a disk commit, a Redis round trip).
    pub async fn step_async<S, K, C, Q>(&mut self, guarded: &Guarded<S, K, C, Q>) -> Result<Step, StoreError>
    where
        S: AsyncSender<N>,
        S::Error: fmt::Display,
        C: Clock,
    {
        let (claimed, outcome) = match self.prepare(guarded.breaker())? {
            Prepared::Send(claimed, notification, key) => {
                let sent = guarded.get_ref().send_released(notification, &key).await;
                (claimed, outcome(sent))
            }
            Prepared::Settle(claimed, outcome) => (claimed, outcome),
            Prepared::Done(step) => return Ok(step),
        };
        self.settle(guarded.breaker(), claimed, outcome)
    }

    /// Claims the next item and decodes it, ready to send.
    fn prepare<C: Clock>(&mut self, breaker: &Breaker<C>) -> Result<Prepared<N>, StoreError> {
        let claimed = match self.next(breaker)? {
            Next::Claimed(claimed) => claimed,
            Next::Wait(wait) => return Ok(Prepared::Done(Step::Wait(wait))),
            Next::Idle => return Ok(Prepared::Done(Step::Idle)),
        };
        Ok(match claimed.item.decode::<N>() {
            Ok(notification) => {
                let key = self.quarantine.idempotency_key(claimed.item.id);
                Prepared::Send(claimed, notification, key)
            }
            Err(error) => Prepared::Settle(claimed, Outcome::Failed(error)),
        })
    }

    /// Steps until nothing is approved, sleeping this thread through each wait (so: on the
    /// system clock). Returns what it sent; a store error stops it, and running it again resumes.
    pub fn run<S, K, C, Q>(&mut self, guarded: &Guarded<S, K, C, Q>) -> Result<Released, StoreError>
    where
        S: Sender<N>,
        S::Error: fmt::Display,
        C: Clock,
    {
        let mut released = Released::default();
        loop {
            match self.step(guarded)? {
                Step::Sent { .. } => released.sent += 1,
                Step::Failed { .. } => released.failed += 1,
                Step::Wait(wait) => std::thread::sleep(wait),
                Step::Idle => return Ok(released),
            }
        }
    }

    /// Claims the oldest approved item of the first kind whose pace allows a send now.
    fn next<C: Clock>(&mut self, breaker: &Breaker<C>) -> Result<Next, StoreError> {
        let store = self.quarantine.store();
        let kinds = store.releasing()?;
        if kinds.is_empty() {
            self.next_at_ms.clear();
            return Ok(Next::Idle);
        }
        let now = breaker.now_ms();
        let poll_ms = self.poll.as_millis() as u64;
        let mut wait_ms: Option<u64> = None;
        let mut failed: Option<StoreError> = None;
        let mut failures = 0;
        for kind in &kinds {
            let at = self.next_at_ms.get(kind).copied().unwrap_or(0);
            let wait = if at > now {
                at - now
            } else {
                match store.claim(kind, &self.owner, self.lease) {
                    Ok(Claim::Item(claimed)) => return Ok(Next::Claimed(claimed)),
                    Ok(Claim::Busy) => poll_ms,
                    Ok(Claim::Empty) => continue,
                    // One kind's trouble (an item the store cannot read) must not hold up the
                    // others: that kind waits a poll, the rest go on.
                    Err(error) => {
                        tracing::warn!(kind = kind.as_str(), %error, "cannot claim the next item of this kind");
                        self.next_at_ms.insert(kind.clone(), now.saturating_add(poll_ms));
                        failed.get_or_insert(error);
                        failures += 1;
                        poll_ms
                    }
                }
            };
            wait_ms = Some(wait_ms.map_or(wait, |w| w.min(wait)));
        }
        // Every kind releasing failed (none merely waiting for its pace or another releaser):
        // the store itself is in trouble; say so.
        if let Some(error) = failed.filter(|_| failures == kinds.len()) {
            return Err(error);
        }
        Ok(wait_ms.map_or(Next::Idle, |ms| Next::Wait(Duration::from_millis(ms))))
    }

    /// Records how the send went and when the kind may send next.
    fn settle<C: Clock>(
        &mut self,
        breaker: &Breaker<C>,
        claimed: Claimed,
        outcome: Outcome,
    ) -> Result<Step, StoreError> {
        let item = &claimed.item;
        let per_minute = item
            .order
            .and_then(|order| order.per_minute)
            .unwrap_or_else(|| pace::normal_per_minute(breaker, &item.kind));
        let next = breaker.now_ms().saturating_add(pace::interval_ms(per_minute));
        self.next_at_ms.insert(item.kind.clone(), next);
        self.quarantine.store().settle(&claimed, &outcome)?;
        Ok(match outcome {
            Outcome::Sent => {
                count_quarantine(metrics::QUARANTINE_RELEASED, breaker.name(), &item.kind, 1);
                Step::Sent {
                    id: item.id,
                    kind: item.kind.clone(),
                }
            }
            Outcome::Failed(note) => Step::Failed {
                id: item.id,
                kind: item.kind.clone(),
                note,
            },
        })
    }
}
