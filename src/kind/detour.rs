//! Handles that are not on a kind of their own: one resolved while the registry had no room for
//! its kind sends to the overflow kind and moves to its own kind once there is room; one resolved
//! for a name that breaks the kind-name rule refuses every send.
//!
//! Such a handle holds a parked kind ([`Kind::parked`]) whose send path leaves for the cold path
//! at once, and its [`Detour`] decides there. A handle on a kind of its own never reads any of
//! this: its send path is the kind's, unchanged.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use super::{Decision, Kind};
use crate::clock::Clock;
use crate::detect::{Bound, Timescale};
use crate::observe::{KindStatus, Window};
use crate::state::{Reason, State};

/// A handle on the overflow kind looks for room of its own at most this often (clock
/// milliseconds), as often as a full registry sweeps.
const LOOK_EVERY_MS: u64 = 1_000;

/// How a handle looking for room finds its kind by name: the breaker's registry.
pub(crate) trait Resolve<C>: Send + Sync {
    /// The kind called `name`, registered if new: its own, or the overflow kind when there is no
    /// room for it. `Err` with the reason for a name that breaks the kind-name rule.
    fn resolve(&self, name: &str) -> Result<Arc<Kind<C>>, &'static str>;
}

/// Where the sends of a handle that is not on a kind of its own go.
pub(crate) enum Detour<C> {
    /// To the overflow kind until its own kind has room, then to its own kind.
    Homing {
        name: Arc<str>,
        overflow: Arc<Kind<C>>,
        /// The handle's own kind, once it has moved there (for good): after that a send reads
        /// it with one load and takes the kind's own send path, no lock, no reference count.
        home: OnceLock<Arc<Kind<C>>>,
        resolver: Weak<dyn Resolve<C>>,
        /// When it last looked for room (clock milliseconds).
        looked_at_ms: AtomicU64,
    },
    /// Nowhere: the name breaks the kind-name rule.
    Invalid(Arc<str>),
}

impl<C> fmt::Debug for Detour<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Homing { name, .. } => f
                .debug_struct("Homing")
                .field("name", name)
                .finish_non_exhaustive(),
            Self::Invalid(name) => f.debug_tuple("Invalid").field(name).finish(),
        }
    }
}

impl<C: Clock> Detour<C> {
    /// A handle for `name`, resolved onto `overflow` just now, that moves to its own kind once
    /// `resolver` finds room for it.
    pub(crate) fn homing(name: &str, overflow: Arc<Kind<C>>, resolver: Weak<dyn Resolve<C>>) -> Self {
        let now = overflow.shared().clock.now_ms();
        Self::Homing {
            name: Arc::from(name),
            home: OnceLock::new(),
            overflow,
            resolver,
            looked_at_ms: AtomicU64::new(now),
        }
    }

    /// Counts one send and decides it. On the overflow kind, a send looks for room at most once
    /// a second (of the breaker's clock), as a send by name does, counted like one in
    /// [`overflowed`](crate::status::BreakerStatus::overflowed) and towards the name's admission: the
    /// first look that finds room moves the handle to its own kind for good.
    #[cold]
    #[inline(never)]
    pub(crate) fn check(&self) -> Decision {
        match self {
            Self::Invalid(_) => Decision::Blocked(Reason::InvalidKind),
            Self::Homing {
                name,
                overflow,
                home,
                resolver,
                looked_at_ms,
            } => {
                if let Some(home) = home.get() {
                    return home.check();
                }
                if !Self::look_due(overflow, looked_at_ms) {
                    return overflow.check();
                }
                let own = resolver
                    .upgrade()
                    .and_then(|resolver| resolver.resolve(name).ok())
                    .filter(|kind| !Arc::ptr_eq(kind, overflow));
                match own {
                    Some(own) => home.get_or_init(|| own).check(),
                    None => overflow.check(),
                }
            }
        }
    }

    /// Claims the next look for room if none was made in the last [`LOOK_EVERY_MS`].
    fn look_due(overflow: &Kind<C>, looked_at_ms: &AtomicU64) -> bool {
        let now = overflow.shared().clock.now_ms();
        let last = looked_at_ms.load(Ordering::Relaxed);
        now.abs_diff(last) >= LOOK_EVERY_MS
            && looked_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The name of the kind the handle sends to: the overflow kind's until it moves, then its
    /// own; a name that breaks the rule as given.
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Invalid(name) => name,
            Self::Homing {
                name, overflow, home, ..
            } => match home.get() {
                Some(_) => name,
                None => overflow.name(),
            },
        }
    }

    /// The state of the kind the handle sends to; a name that breaks the rule is open for good.
    pub(crate) fn state(&self) -> State {
        match self {
            Self::Invalid(_) => State::Open,
            Self::Homing { home, overflow, .. } => home.get().unwrap_or(overflow).state(),
        }
    }

    /// The status of the kind the handle sends to. A name that breaks the rule has no kind: it
    /// shows open for that reason, with nothing counted.
    pub(crate) fn status(&self) -> KindStatus {
        match self {
            // Nothing may be sent: every window's threshold is nothing.
            Self::Invalid(name) => KindStatus::nothing_counted(
                Arc::clone(name),
                State::Open,
                Reason::InvalidKind,
                Timescale::ALL.map(refused),
            ),
            Self::Homing { home, overflow, .. } => home.get().unwrap_or(overflow).status(),
        }
    }

    /// The handle's own kind, once a homing handle has moved there.
    pub(crate) fn home(&self) -> Option<&Kind<C>> {
        match self {
            Self::Homing { home, .. } => home.get().map(|home| &**home),
            Self::Invalid(_) => None,
        }
    }
}

/// A window that takes nothing, for a name that breaks the kind-name rule.
fn refused(timescale: Timescale) -> Window {
    Window {
        timescale,
        window_count: 0,
        threshold: 0,
        expected: 0.0,
        bound: Bound::None,
    }
}
