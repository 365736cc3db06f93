//! Kinds by name: a concurrent map from name to kind, bounded so that a bug that puts a user id
//! into the kind cannot grow memory (or metric series) without limit.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::kind::Kind;

/// The kind that every kind beyond `max_kinds` shares.
pub const OVERFLOW_KIND: &str = "_overflow";

#[derive(Debug)]
pub(crate) struct Registry<C> {
    kinds: DashMap<Arc<str>, Arc<Kind<C>>, foldhash::fast::RandomState>,
    overflow: OnceLock<Arc<Kind<C>>>,
    /// Look-ups of a new kind that found the registry full and were sent to the overflow kind.
    overflowed: AtomicU64,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            kinds: DashMap::with_hasher(foldhash::fast::RandomState::default()),
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
        if name == OVERFLOW_KIND || self.kinds.len() >= max_kinds {
            if name != OVERFLOW_KIND {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
            }
            return Arc::clone(self.overflow.get_or_init(|| make(OVERFLOW_KIND)));
        }
        Arc::clone(
            self.kinds
                .entry(Arc::from(name))
                .or_insert_with(|| make(name))
                .value(),
        )
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
        if name == OVERFLOW_KIND {
            return self.overflow.get().map(f);
        }
        self.kinds.get(name).map(|kind| f(kind.value()))
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
