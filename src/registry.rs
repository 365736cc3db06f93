//! Kinds by name: a concurrent map from name to kind, bounded so that a bug that puts a user id
//! into the kind cannot grow memory (or metric series) without limit.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::clock::Clock;
use crate::kind::Kind;

/// The kind that every kind beyond `max_kinds` shares (public as
/// [`Breaker::OVERFLOW_KIND`](crate::Breaker::OVERFLOW_KIND)).
pub(crate) const OVERFLOW_KIND: &str = "_overflow";

#[derive(Debug)]
pub(crate) struct Registry<C> {
    kinds: DashMap<Arc<str>, Arc<Kind<C>>, foldhash::fast::RandomState>,
    /// Slots taken in `kinds`: reserved before an insert, so that racing registrations of new
    /// kinds cannot overshoot `max_kinds`.
    taken: AtomicUsize,
    overflow: OnceLock<Arc<Kind<C>>>,
    /// Look-ups of a new kind that found the registry full and were sent to the overflow kind.
    overflowed: AtomicU64,
    /// Kinds forgotten for being idle.
    evicted: AtomicU64,
    /// When a full registry last looked for idle kinds to evict (`u64::MAX`: never).
    last_sweep_ms: AtomicU64,
}

/// A full registry looks for idle kinds at most this often (clock milliseconds), so that a
/// flood of new kind names costs one sweep a second, not one a send. A backtest lets go of idle
/// kinds as often.
pub(crate) const SWEEP_EVERY_MS: u64 = 1_000;

/// How many kinds a registry holds, and when it may forget one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) max_kinds: usize,
    pub(crate) evict_idle_ms: u64,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            kinds: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            taken: AtomicUsize::new(0),
            overflow: OnceLock::new(),
            overflowed: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            last_sweep_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl<C: Clock> Registry<C> {
    /// The kind called `name`; if it is new, made by `make`, unless `max_kinds` are already
    /// registered and none is idle enough to evict, in which case the overflow kind (also made
    /// by `make`).
    pub(crate) fn get_or_insert(
        &self,
        name: &str,
        bounds: Bounds,
        now_ms: u64,
        make: impl Fn(&str) -> Arc<Kind<C>>,
    ) -> Arc<Kind<C>> {
        if let Some(kind) = self.kinds.get(name) {
            return Arc::clone(kind.value());
        }
        let room = name != OVERFLOW_KIND
            && (self.take_slot(bounds.max_kinds)
                || (self.sweep_due(now_ms)
                    && self.evict_idle(now_ms, bounds.evict_idle_ms) > 0
                    && self.take_slot(bounds.max_kinds)));
        if !room {
            if name != OVERFLOW_KIND {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
            }
            return Arc::clone(self.overflow.get_or_init(|| make(OVERFLOW_KIND)));
        }
        match self.kinds.entry(Arc::from(name)) {
            Entry::Occupied(entry) => {
                // Another thread registered it meanwhile: give the slot back.
                self.taken.fetch_sub(1, Ordering::Relaxed);
                Arc::clone(entry.get())
            }
            Entry::Vacant(entry) => Arc::clone(entry.insert(make(name)).value()),
        }
    }

    /// Forgets every kind that is idle (see [`Kind::is_idle`]) and held by no handle, so that
    /// no send can be counted on a forgotten kind. Returns how many.
    pub(crate) fn evict_idle(&self, now_ms: u64, idle_ms: u64) -> usize {
        let mut evicted = 0;
        // Under the shard's write lock no look-up can clone a kind, so a count of one is final.
        self.kinds.retain(|_, kind| {
            let evict = Arc::strong_count(kind) == 1 && kind.is_idle(now_ms, idle_ms);
            evicted += usize::from(evict);
            !evict
        });
        self.taken.fetch_sub(evicted, Ordering::Relaxed);
        self.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
        evicted
    }

    /// Claims the next sweep if none ran in the last [`SWEEP_EVERY_MS`].
    fn sweep_due(&self, now_ms: u64) -> bool {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        (last == u64::MAX || now_ms.abs_diff(last) >= SWEEP_EVERY_MS)
            && self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl<C> Registry<C> {
    fn take_slot(&self, max_kinds: usize) -> bool {
        self.taken
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |taken| {
                (taken < max_kinds).then_some(taken + 1)
            })
            .is_ok()
    }

    /// The kind called `name`, if registered.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Kind<C>>> {
        if name == OVERFLOW_KIND {
            return self.overflow.get().cloned();
        }
        self.kinds.get(name).map(|kind| Arc::clone(kind.value()))
    }

    /// `f` on the kind called `name`, if registered, without touching the kind's reference
    /// count. `f` runs under the map's shard lock: it must be short and must not call back into
    /// the breaker or into user code.
    pub(crate) fn with<R>(&self, name: &str, f: impl FnOnce(&Arc<Kind<C>>) -> R) -> Option<R> {
        if let Some(kind) = self.kinds.get(name) {
            return Some(f(kind.value()));
        }
        // Never registered under its own name: asked for by name, it is the shared one.
        if name == OVERFLOW_KIND {
            return self.overflow.get().map(f);
        }
        None
    }

    /// Every registered kind, the overflow kind last if it exists.
    pub(crate) fn all(&self) -> Vec<Arc<Kind<C>>> {
        let mut all: Vec<_> = self.kinds.iter().map(|kind| Arc::clone(kind.value())).collect();
        all.extend(self.overflow.get().cloned());
        all
    }

    /// Registered kinds, the overflow kind not counted.
    pub(crate) fn len(&self) -> usize {
        self.kinds.len()
    }

    pub(crate) fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}
