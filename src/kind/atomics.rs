//! The synchronisation primitives a kind is built on, in one place, so that the model checker can
//! swap them: under `cfg(spikebreaker_loom)` the kind's atomics and its lock come from `loom`.

#[cfg(spikebreaker_loom)]
pub(super) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(not(spikebreaker_loom))]
pub(super) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// A mutual-exclusion lock for cold per-kind work: `parking_lot` normally, `loom`'s under the
/// model checker. Never held across user code.
#[derive(Debug, Default)]
pub(super) struct Mutex<T> {
    #[cfg(not(spikebreaker_loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(spikebreaker_loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(not(spikebreaker_loom))]
pub(super) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(spikebreaker_loom)]
pub(super) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(super) fn new(value: T) -> Self {
        Self {
            #[cfg(not(spikebreaker_loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(spikebreaker_loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(spikebreaker_loom))]
        return self.inner.lock();
        #[cfg(spikebreaker_loom)]
        return self.inner.lock().unwrap_or_else(|poison| poison.into_inner());
    }

    pub(super) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(spikebreaker_loom))]
        return self.inner.try_lock();
        #[cfg(spikebreaker_loom)]
        return self.inner.try_lock().ok();
    }
}
