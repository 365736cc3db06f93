//! The send path: a kind's hot lines, what a send reads and writes on them without a lock, and
//! where a send leaves them for cold work.

use super::atomics::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::{Decision, Kind, Packed, Shared};
use crate::clock::Clock;
use crate::slice::Tracker;
use crate::state::{Reason, State};

/// Keeps what it holds on a cache line of its own, so that the line every send writes does not
/// evict the line every send only reads.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(super) struct Line<T>(pub(super) T);

/// Read by every send; written only by cold work.
#[derive(Debug)]
pub(super) struct Limits<C> {
    /// The breaker's clock, copied here so that a send reads it from the line it reads anyway
    /// instead of chasing `shared` ([`SystemClock`](crate::SystemClock) takes no room at all:
    /// it reads a static counter).
    pub(super) clock: C,
    /// The times the current bucket takes: `accept_from <= t < accept_from + accept_span`
    /// ([`Ring::accepts`](crate::detect::Ring::accepts)).
    pub(super) accept_from: AtomicU64,
    pub(super) accept_span: AtomicU64,
    /// Sends the current bucket may count before the window reaches the threshold; 0 when open.
    pub(super) headroom: AtomicU64,
    /// An open kind refuses without the lock until this time.
    pub(super) open_until: AtomicU64,
    /// When the kind last tripped (moved into open), on its clock: the trip's identity, read by
    /// a refusal only ([`Kind::tripped_at`]).
    pub(super) tripped_at: AtomicU64,
    /// [`Packed`] state and reason.
    pub(super) status: AtomicU32,
    pub(super) dry_run: AtomicBool,
}

impl<C> Limits<C> {
    pub(super) fn new(clock: C) -> Self {
        Self {
            clock,
            accept_from: AtomicU64::new(0),
            accept_span: AtomicU64::new(0),
            headroom: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            tripped_at: AtomicU64::new(0),
            status: AtomicU32::new(0),
            dry_run: AtomicBool::new(false),
        }
    }
}

/// Written by sends.
/// Written by sends. The line's other bytes hold what no send reads (the kind's name and what it
/// shares with the breaker), rather than lie empty.
#[derive(Debug)]
pub(super) struct Counters<C> {
    /// Attempts in the current bucket.
    pub(super) count: AtomicU64,
    /// Attempts refused since the kind was created.
    pub(super) blocked: AtomicU64,
    pub(super) name: Arc<str>,
    pub(super) shared: Arc<Shared<C>>,
    /// Its slices and repeat check, made when a send first names any: only sends that name
    /// slices read it (kept in this line's spare room, so that a kind stays 13 cache lines).
    pub(super) slices: OnceLock<Box<Tracker>>,
}

/// Where a send left the lock-free path, for [`Kind::check_cold`] to finish it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColdStep {
    /// Time (the reading carried) left the kind's bucket; the send is not counted yet.
    BucketEdge(u64),
    /// The send is counted and found no headroom.
    OverHeadroom(u64),
}

impl<C: Clock> Kind<C> {
    /// Counts one attempted send and decides it.
    #[inline]
    pub(crate) fn check(&self) -> Decision {
        match self.check_lock_free() {
            Ok(()) => Decision::Allowed,
            Err(step) => self.check_cold(step),
        }
    }

    /// The send path up to where cold work is needed: a clock read, the bucket test, the count
    /// and the headroom compare. `Ok` is an allowed send; a refusal is always cold work's. It
    /// never blocks and never runs user code, so a caller may hold a short lock around it (the
    /// registry's, for a send by name).
    #[inline]
    pub(crate) fn check_lock_free(&self) -> Result<(), ColdStep> {
        let limits = &self.limits.0;
        let now = limits.clock.now_ms();
        let into_bucket = now.wrapping_sub(limits.accept_from.load(Ordering::Relaxed));
        if into_bucket >= limits.accept_span.load(Ordering::Relaxed) {
            return Err(ColdStep::BucketEdge(now));
        }
        self.count(now)
    }

    #[inline]
    fn count(&self, now: u64) -> Result<(), ColdStep> {
        let count = self.counters.0.count.fetch_add(1, Ordering::Relaxed) + 1;
        if count <= self.limits.0.headroom.load(Ordering::Relaxed) {
            return Ok(());
        }
        Err(ColdStep::OverHeadroom(now))
    }

    /// Finishes a send that left the lock-free path. May call subscribers: hold no lock.
    #[cold]
    #[inline(never)]
    pub(crate) fn check_cold(&self, step: ColdStep) -> Decision {
        let now = match step {
            ColdStep::BucketEdge(now) => {
                self.on_bucket_edge(now);
                match self.count(now) {
                    Ok(()) => return Decision::Allowed,
                    Err(_) => now,
                }
            }
            ColdStep::OverHeadroom(now) => now,
        };
        self.over_headroom(now)
    }

    /// The current state, from the word the send path reads.
    pub(crate) fn state(&self) -> State {
        Packed::unpack(self.limits.0.status.load(Ordering::Acquire)).state
    }

    /// Time left the current bucket: roll the window over, unless another thread is already
    /// doing cold work on this kind (then this send counts in the bucket it finds).
    #[cold]
    #[inline(never)]
    fn on_bucket_edge(&self, now: u64) {
        let Some(mut cold) = self.cold.try_lock() else {
            return;
        };
        let mut events = Vec::new();
        self.advance(&mut cold, now, &mut events);
        // This thread's send is not counted yet: it cannot show as allowed before it is decided.
        self.export(&mut cold, !events.is_empty());
        drop(cold);
        self.shared().subscribers.emit(&events);
    }

    /// The send found no headroom: the kind is open, or this send may cross the threshold.
    #[cold]
    #[inline(never)]
    fn over_headroom(&self, now: u64) -> Decision {
        let limits = &self.limits.0;
        let status = Packed::unpack(limits.status.load(Ordering::Acquire));
        if status.state == State::Open && now < limits.open_until.load(Ordering::Relaxed) {
            return self.refuse(status.reason);
        }
        let mut events = Vec::new();
        let decision = {
            let mut cold = self.cold.lock();
            self.advance(&mut cold, now, &mut events);
            let decision = self.judge(&mut cold, now, &mut events);
            if !events.is_empty() {
                // After the decision, so that this send counts as what it became.
                self.export(&mut cold, true);
            }
            decision
        };
        self.shared().subscribers.emit(&events);
        decision
    }

    /// When the kind last tripped, on its clock: every send refused by one trip reads the same
    /// value. Read after a refusal only, so the allowed send path never touches it.
    pub(crate) fn tripped_at(&self) -> u64 {
        self.limits.0.tripped_at.load(Ordering::Relaxed)
    }

    /// Until when an open kind refuses without looking (its cool-down's end; `u64::MAX` until an
    /// operator acts). Read after a refusal only, as [`tripped_at`](Self::tripped_at) is.
    pub(crate) fn open_until(&self) -> u64 {
        self.limits.0.open_until.load(Ordering::Relaxed)
    }

    /// Refuses a send for `reason`, unless the kind runs in dry-run.
    pub(super) fn refuse(&self, reason: Reason) -> Decision {
        if self.limits.0.dry_run.load(Ordering::Relaxed) {
            return Decision::Allowed;
        }
        self.counters.0.blocked.fetch_add(1, Ordering::Relaxed);
        Decision::Blocked(reason)
    }
}

#[cfg(all(test, not(spikebreaker_loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::KindConfig;
    use crate::detect::Learned;
    use crate::kind::Shared;
    use crate::observe::Subscribers;

    fn kind(clock: &ManualClock) -> Kind<ManualClock> {
        let settings = KindConfig::default().compile("defaults").unwrap();
        let shared = Arc::new(Shared {
            clock: clock.clone(),
            subscribers: Subscribers::default(),
            name: Arc::from("default"),
            newcomers: Default::default(),
            families: Default::default(),
        });
        Kind::new(
            "email.welcome".into(),
            Arc::new(settings),
            Learned::default(),
            shared,
        )
    }

    #[test]
    fn a_send_a_little_behind_the_bucket_stays_on_the_lock_free_path() {
        let clock = ManualClock::starting_at(100_000);
        let kind = kind(&clock);
        assert_eq!(kind.check_lock_free(), Ok(()));
        clock.set(100_000 - 59_000); // behind by less than a window
        assert_eq!(kind.check_lock_free(), Ok(()));
        clock.set(100_000 - 61_000); // a window or more back: cold work moves the ring
        assert_eq!(kind.check_lock_free(), Err(ColdStep::BucketEdge(39_000)));
        clock.set(105_000); // the next bucket: cold work rolls over
        assert_eq!(kind.check_lock_free(), Err(ColdStep::BucketEdge(105_000)));
    }
}
