//! [`Releaser`]: sends approved items through the wrapped sender, paced, one at a time.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

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
/// **Fairness.** Kinds take turns: each step starts looking after the kind it served last, so a
/// kind with a fast pace cannot keep a slow one waiting, and a wait is never longer than the
/// poll interval, so that a kind whose pace is slow (one an hour at the slowest) never keeps the
/// releaser from another kind, or from items approved meanwhile.
///
/// **Running it.** In a service, [`spawn`](Self::spawn) it on a thread of its own for the
/// service's life (or [`serve`](Self::serve) on a thread you manage): it sends what is approved,
/// waits for new approvals (woken at once by a [`Quarantine::release`] in this process, and
/// polling every [`poll`](Self::poll) interval for those made elsewhere: the command line, another
/// instance) and stops when told. [`run`](Self::run) sends what is approved now and returns;
/// [`step`](Self::step) (or [`step_async`](Self::step_async)) is one send, for a loop of your own.
///
/// **Senders.** A sender that drops the idempotency key (a [`sender_fn`](crate::sender_fn) closure
/// without a [`released`](crate::guard::SenderFn::released) one) is refused with
/// [`StoreError::Invalid`] before anything is claimed.
pub struct Releaser<N> {
    quarantine: Quarantine,
    owner: String,
    lease: Duration,
    poll: Duration,
    /// Per kind, when it may send next (breaker clock).
    next_at_ms: HashMap<String, u64>,
    /// The kind served last: the next step looks at the kinds after it first.
    last_kind: Option<String>,
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
    /// Nothing may be sent yet (pace, or items leased to other releasers): step again after this
    /// (never more than the poll interval, so that new approvals are seen).
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
            last_kind: None,
            notification: PhantomData,
        }
    }

    /// How long a claimed item stays with this releaser before another may take it over: make
    /// it longer than the sender's own timeout.
    pub fn lease(self, lease: Duration) -> Self {
        Self { lease, ..self }
    }

    /// The longest wait between two looks at the store (1 s by default): for items leased to
    /// another releaser, approvals made by another process, and a kind's next send.
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
        refuse_keyless(guarded.get_ref().carries_release_key())?;
        let (claimed, outcome) = match self.prepare(guarded.breaker())? {
            Prepared::Send(claimed, notification, key) => {
                // A sender that panics fails this item (held again, with a note) and takes
                // nothing else down: the item is not left leased until its lease runs out.
                let sent = catch_unwind(AssertUnwindSafe(|| {
                    guarded.get_ref().send_released(notification, &key)
                }));
                let outcome = match sent {
                    Ok(sent) => outcome(sent),
                    Err(panic) => Outcome::Failed(format!("the sender panicked: {}", panic_text(&*panic))),
                };
                (claimed, outcome)
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
        refuse_keyless(guarded.get_ref().carries_release_key())?;
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
    /// system clock), and returns what it sent: for a one-off job. A store error stops it, and
    /// running it again resumes. Items approved after it returns wait for the next run: a service
    /// [`spawn`](Self::spawn)s its releaser instead.
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

    /// Sends approved items on this thread until `stop` is told to stop, then returns what it
    /// sent: the releaser's loop for the life of a service (see [`spawn`](Self::spawn), which
    /// runs it on a thread of its own). Between items it waits for the kind's pace, for an
    /// approval (a [`Quarantine::release`] in this process wakes it at once; one made by another
    /// process is seen within the poll interval) or for `stop`, without polling the store more
    /// often than once a poll interval. A sender's failure holds its item again with a note and a
    /// store's error waits a poll interval; both are logged, and neither stops it. A sender that
    /// drops the idempotency key is refused at once with [`StoreError::Invalid`].
    pub fn serve<S, K, C, Q>(
        &mut self,
        guarded: &Guarded<S, K, C, Q>,
        stop: &Stop,
    ) -> Result<Released, StoreError>
    where
        S: Sender<N>,
        S::Error: fmt::Display,
        C: Clock,
    {
        refuse_keyless(guarded.get_ref().carries_release_key())?;
        let wake = Arc::clone(&self.quarantine.inner.wake);
        let mut released = Released::default();
        while !stop.is_stopped() {
            // Read before the step: an approval made while it runs still wakes the wait after it.
            let seen = wake.seen();
            let wait = match self.step(guarded) {
                Ok(Step::Sent { .. }) => {
                    released.sent += 1;
                    continue;
                }
                Ok(Step::Failed { id, kind, note }) => {
                    released.failed += 1;
                    tracing::warn!(id, kind, note, "a released item failed and is held again");
                    continue;
                }
                Ok(Step::Wait(wait)) => wait,
                Ok(Step::Idle) => self.poll,
                Err(error) => {
                    tracing::warn!(%error, "the releaser cannot reach its store; trying again");
                    self.poll
                }
            };
            wake.wait(seen, wait.min(self.poll), &stop.stopped);
        }
        Ok(released)
    }

    /// Runs [`serve`](Self::serve) on a thread of its own (named `spikebreaker-releaser`) until
    /// the returned [`Serving`] is dropped or [`stop`](Serving::stop)ped. The guarded sender is
    /// moved in: give it a clone of the service's (a `Guarded` over an `Arc` of the sender, or a
    /// sender that is cheap to clone). Fails if the thread cannot be started, or at once if the
    /// sender drops the idempotency key.
    pub fn spawn<S, K, C, Q>(mut self, guarded: Guarded<S, K, C, Q>) -> Result<Serving, StoreError>
    where
        N: 'static,
        S: Sender<N> + Send + 'static,
        S::Error: fmt::Display,
        K: Send + 'static,
        C: Clock,
        Q: Send + 'static,
    {
        refuse_keyless(guarded.get_ref().carries_release_key())?;
        let stop = Stop::new(&self.quarantine);
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("spikebreaker-releaser".into())
            .spawn(move || self.serve(&guarded, &signal).unwrap_or_default())
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot start the releaser's thread: {error}"))
            })?;
        Ok(Serving {
            stop,
            thread: Some(thread),
        })
    }

    /// A stop signal for [`serve`](Self::serve) loops of this releaser's quarantine.
    pub fn stop_signal(&self) -> Stop {
        Stop::new(&self.quarantine)
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
        let poll_ms = self.poll.as_millis().min(u64::MAX as u128) as u64;
        let mut wait_ms: Option<u64> = None;
        let mut failed: Option<StoreError> = None;
        let mut failures = 0;
        // Kinds take turns: those after the one served last first (the list is sorted).
        let turn = self
            .last_kind
            .as_ref()
            .map_or(0, |last| kinds.partition_point(|kind| kind <= last));
        for kind in kinds[turn..].iter().chain(&kinds[..turn]) {
            let at = self.next_at_ms.get(kind).copied().unwrap_or(0);
            let wait = if at > now {
                at - now
            } else {
                match store.claim(kind, &self.owner, self.lease) {
                    Ok(Claim::Item(claimed)) => {
                        self.last_kind = Some(kind.clone());
                        return Ok(Next::Claimed(claimed));
                    }
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
        // Never longer than a poll: a slow kind must not keep the releaser from the others, or
        // from what is approved meanwhile.
        Ok(wait_ms.map_or(Next::Idle, |ms| {
            Next::Wait(Duration::from_millis(ms.min(poll_ms)))
        }))
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

/// The refusal of a sender that would drop the idempotency key.
fn refuse_keyless(carries_key: bool) -> Result<(), StoreError> {
    if carries_key {
        return Ok(());
    }
    Err(StoreError::Invalid(
        "the sender drops a release's idempotency key (a `sender_fn` closure alone): give it one \
         that takes the key with `sender_fn(send).released(|notification, key| ...)`"
            .to_owned(),
    ))
}

/// What a panic said, if it said it in text.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Tells [`Releaser::serve`] loops to stop: at once, waking them from a wait (a send under way
/// finishes first). Cheap to clone; made by [`Releaser::stop_signal`].
#[derive(Clone)]
pub struct Stop {
    stopped: Arc<AtomicBool>,
    wake: Arc<Wake>,
}

impl fmt::Debug for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Stop {
    fn new(quarantine: &Quarantine) -> Self {
        Self {
            stopped: Arc::new(AtomicBool::new(false)),
            wake: Arc::clone(&quarantine.inner.wake),
        }
    }

    /// Stops the loops given this signal.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// A releaser serving on its own thread ([`Releaser::spawn`]): dropping it stops the releaser and
/// waits for the send under way, if any.
#[derive(Debug)]
pub struct Serving {
    stop: Stop,
    thread: Option<JoinHandle<Released>>,
}

impl Serving {
    /// Stops the releaser, waits for its thread, and returns what it sent. A sender that panicked
    /// failed its item (held again); the releaser went on.
    pub fn stop(mut self) -> Released {
        self.finish()
    }

    fn finish(&mut self) -> Released {
        self.stop.stop();
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What releasers waiting in [`Releaser::serve`] are woken by: an approval in this process, or a
/// stop signal.
#[derive(Debug, Default)]
pub(super) struct Wake {
    /// Bumped by every wake-up.
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Wake {
    /// The wake-ups so far: pass it to [`wait`](Self::wait) to wait for the next.
    fn seen(&self) -> u64 {
        *self.generation.lock()
    }

    /// Wakes every waiter.
    pub(super) fn notify(&self) {
        *self.generation.lock() += 1;
        self.changed.notify_all();
    }

    /// Waits until a wake-up after `seen`, `stopped`, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration, stopped: &AtomicBool) {
        let deadline = Instant::now().checked_add(timeout);
        let mut generation = self.generation.lock();
        while *generation == seen && !stopped.load(Ordering::SeqCst) {
            let timed_out = match deadline {
                Some(deadline) => self.changed.wait_until(&mut generation, deadline).timed_out(),
                None => {
                    self.changed.wait(&mut generation);
                    false
                }
            };
            if timed_out {
                break;
            }
        }
    }
}
