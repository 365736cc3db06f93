//! Kinds by name: a concurrent map from name to kind, bounded so that a bug that puts a user id
//! into the kind cannot grow memory (or metric series) without limit.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::kind::Kind;

/// The kind that every kind beyond `max_kinds` shares.
pub const OVERFLOW_KIND: &str = "_overflow";

#[derive(Debug)]
pub(crate) struct Registry<C> {
    kinds: DashMap<Arc<str>, Arc<Kind<C>>, foldhash::fast::RandomState>,
    /// Slots taken in `kinds`: reserved before an insert, so that racing registrations of new
    /// kinds cannot overshoot `max_kinds`.
    taken: AtomicUsize,
    overflow: OnceLock<Arc<Kind<C>>>,
    /// Look-ups of a new kind that found the registry full and were sent to the overflow kind.
    overflowed: AtomicU64,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            kinds: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            taken: AtomicUsize::new(0),
            overflow: OnceLock::new(),
            overflowed: AtomicU64::new(0),
        }
    }
}

impl<C> Registry<C> {
    /// The kind called `name`; if it is new, made by `make`, unless `max_kinds` are already
    /// registered, in which case the overflow kind (also made by `make`).
    pub(crate) fn get_or_insert(
        &self,
        name: &str,
        max_kinds: usize,
        make: impl Fn(&str) -> Arc<Kind<C>>,
    ) -> Arc<Kind<C>> {
        if let Some(kind) = self.kinds.get(name) {
            return Arc::clone(kind.value());
        }
        if name == OVERFLOW_KIND || !self.take_slot(max_kinds) {
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
}
