//! Kinds by name: a concurrent map from name to kind, bounded so that a bug that puts a user id
//! into the kind cannot grow memory (or metric series) without limit.
//!
//! Kinds named in the configuration always have a slot of their own, beyond `max_kinds`, and are
//! never evicted. Other kinds take one of `max_kinds` slots. When the slots are full, a new name
//! goes to the overflow kind, unless a sweep (at most once a second) frees a slot by forgetting
//! a kind that is idle and is not warm yet, or the name has proven itself by frequency
//! and displaces an idle kind that has (see [`admission`]).

mod admission;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::clock::Clock;
use crate::kind::{Kind, Standing};
use crate::name::OVERFLOW_KIND;
use admission::{Admission, Candidate, Candidates};

#[derive(Debug)]
pub(crate) struct Registry<C> {
    kinds: DashMap<Arc<str>, Slot<C>, foldhash::fast::RandomState>,
    /// Slots taken by kinds not named in the configuration: reserved before an insert, so that
    /// racing registrations of new kinds cannot overshoot `max_kinds`.
    taken: AtomicUsize,
    overflow: OnceLock<Arc<Kind<C>>>,
    admission: Admission,
    /// Look-ups of a new kind that found the registry full and were sent to the overflow kind.
    overflowed: AtomicU64,
    /// Kinds forgotten for being idle or displaced by a proven newcomer.
    evicted: AtomicU64,
    /// When a full registry last swept (`u64::MAX`: never).
    last_sweep_ms: AtomicU64,
}

/// A registered kind, and whether it takes one of the `max_kinds` slots (a kind named in the
/// configuration does not).
#[derive(Debug)]
struct Slot<C> {
    kind: Arc<Kind<C>>,
    counted: bool,
}

/// A full registry sweeps at most this often (clock milliseconds), so that a flood of new kind
/// names costs one sweep a second, not one a send. A backtest lets go of idle kinds as often.
pub(crate) const SWEEP_EVERY_MS: u64 = 1_000;

/// How many kinds a registry holds, and when it may forget one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) max_kinds: usize,
    pub(crate) evict_idle_ms: u64,
}

/// A slot taken from `max_kinds`, given back when dropped unless a kind was registered in it, so
/// that a registration that panics (in a user's clock, say) cannot lose it.
struct Claim<'a> {
    taken: &'a AtomicUsize,
}

impl Claim<'_> {
    /// Keeps the slot: a kind now holds it.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            kinds: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            taken: AtomicUsize::new(0),
            overflow: OnceLock::new(),
            admission: Admission::default(),
            overflowed: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            last_sweep_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl<C: Clock> Registry<C> {
    /// The kind called `name`; if it is new, made by `make`: in a slot of its own beyond
    /// `max_kinds` when the configuration `names` it, else in a free slot, one a sweep frees, or
    /// one a proven name may take; failing all of those, the overflow kind (also made by `make`).
    pub(crate) fn get_or_insert(
        &self,
        name: &str,
        names: bool,
        bounds: Bounds,
        now_ms: u64,
        make: impl Fn(&Arc<str>) -> Arc<Kind<C>>,
    ) -> Arc<Kind<C>> {
        if let Some(slot) = self.kinds.get(name) {
            return Arc::clone(&slot.kind);
        }
        if name == OVERFLOW_KIND {
            return self.overflow(&make);
        }
        let claim = if names {
            None
        } else {
            match self.claim(name, bounds, now_ms) {
                Some(claim) => Some(claim),
                None => {
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                    return self.overflow(&make);
                }
            }
        };
        match self.kinds.entry(Arc::from(name)) {
            // Another thread registered it meanwhile: the claim goes back as it drops.
            Entry::Occupied(entry) => Arc::clone(&entry.get().kind),
            Entry::Vacant(entry) => {
                // The kind shares its name with the key: one allocation a kind.
                let kind = make(entry.key());
                let counted = claim.is_some();
                if let Some(claim) = claim {
                    claim.keep();
                }
                Arc::clone(&entry.insert(Slot { kind, counted }).kind)
            }
        }
    }

    fn overflow(&self, make: impl Fn(&Arc<str>) -> Arc<Kind<C>>) -> Arc<Kind<C>> {
        Arc::clone(self.overflow.get_or_init(|| make(&Arc::from(OVERFLOW_KIND))))
    }

    /// A slot for `name`: a free one, one the sweep frees, or a displaced kind's.
    fn claim(&self, name: &str, bounds: Bounds, now_ms: u64) -> Option<Claim<'_>> {
        if let Some(claim) = self.take_slot(bounds.max_kinds) {
            return Some(claim);
        }
        if self.sweep_due(now_ms) && self.sweep(now_ms, bounds) > 0 {
            if let Some(claim) = self.take_slot(bounds.max_kinds) {
                return Some(claim);
            }
        }
        let candidates = self.admission.knock(name, bounds.max_kinds)?;
        candidates
            .iter()
            .any(|candidate| self.displace(candidate, bounds, now_ms))
            .then(|| Claim { taken: &self.taken })
    }

    /// Forgets `candidate` for a proven newcomer, if it still may be displaced; its slot passes
    /// to the newcomer (still counted in `taken`).
    fn displace(&self, candidate: &Candidate, bounds: Bounds, now_ms: u64) -> bool {
        let removed = self.kinds.remove_if(&candidate.name, |_, slot| {
            slot.counted
                && Arc::strong_count(&slot.kind) == 1
                && slot
                    .kind
                    .standing(now_ms)
                    .is_some_and(|standing| Candidate::displaceable(standing, bounds.evict_idle_ms))
        });
        if removed.is_some() {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        removed.is_some()
    }

    /// The sweep of a full registry: forgets every kind idle for `evict_idle_ms` that is not warm
    /// yet, and keeps the idle ones that have as candidates a proven newcomer may
    /// displace. Returns how many it forgot.
    fn sweep(&self, now_ms: u64, bounds: Bounds) -> usize {
        let mut candidates = Candidates::default();
        let evicted = self.retain_evicting(now_ms, |name, standing| {
            let candidate = Candidate::of(name, standing, bounds.evict_idle_ms);
            match candidate {
                Some(_) if !standing.learned => true,
                Some(candidate) => {
                    candidates.offer(candidate);
                    false
                }
                None => false,
            }
        });
        self.admission.set_candidates(candidates);
        evicted
    }

    /// Forgets every kind not named in the configuration that is idle (see [`Kind::standing`])
    /// and held by no handle, so that no send can be counted on a forgotten kind. Returns how
    /// many.
    pub(crate) fn evict_idle(&self, now_ms: u64, idle_ms: u64) -> usize {
        self.retain_evicting(now_ms, |_, standing| standing.idle_ms >= idle_ms)
    }

    /// Forgets the counted kinds held by no handle for which `evict` says so, given how they
    /// stand; returns how many.
    fn retain_evicting(&self, now_ms: u64, mut evict: impl FnMut(&Arc<str>, Standing) -> bool) -> usize {
        let mut evicted = 0;
        // Under the shard's write lock no look-up can clone a kind, so a count of one is final.
        self.kinds.retain(|name, slot| {
            let gone = slot.counted
                && Arc::strong_count(&slot.kind) == 1
                && slot
                    .kind
                    .standing(now_ms)
                    .is_some_and(|standing| evict(name, standing));
            evicted += usize::from(gone);
            !gone
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
    fn take_slot(&self, max_kinds: usize) -> Option<Claim<'_>> {
        self.taken
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |taken| {
                (taken < max_kinds).then_some(taken + 1)
            })
            .ok()
            .map(|_| Claim { taken: &self.taken })
    }

    /// After a reload: a kind the configuration now names gives its slot back, and one it no
    /// longer names takes one (the registry may hold more than `max_kinds` of them until some
    /// are evicted).
    pub(crate) fn reclassify(&self, names: impl Fn(&str) -> bool) {
        for mut entry in self.kinds.iter_mut() {
            let counted = !names(entry.key());
            if entry.counted != counted {
                entry.counted = counted;
                if counted {
                    self.taken.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.taken.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The kind called `name`, if registered (the overflow kind by its own name).
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Kind<C>>> {
        if name == OVERFLOW_KIND {
            return self.overflow.get().cloned();
        }
        self.kinds.get(name).map(|slot| Arc::clone(&slot.kind))
    }

    /// `f` on the kind called `name`, if registered, without touching the kind's reference
    /// count. `f` runs under the map's shard lock: it must be short and must not call back into
    /// the breaker or into user code.
    pub(crate) fn with<R>(&self, name: &str, f: impl FnOnce(&Arc<Kind<C>>) -> R) -> Option<R> {
        if let Some(slot) = self.kinds.get(name) {
            return Some(f(&slot.kind));
        }
        // Never registered under its own name: asked for by name, it is the shared one.
        if name == OVERFLOW_KIND {
            return self.overflow.get().map(f);
        }
        None
    }

    /// Every registered kind, the overflow kind last if it exists.
    pub(crate) fn all(&self) -> Vec<Arc<Kind<C>>> {
        let mut all: Vec<_> = self.kinds.iter().map(|slot| Arc::clone(&slot.kind)).collect();
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
