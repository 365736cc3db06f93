//! The breaker: every kind's detector, their configuration, and the operator's controls.

use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::clock::{Clock, SystemClock};
use crate::config::{Compiled, Config};
use crate::error::Error;
use crate::kind::{Decision, Kind, KindHandle, Reason, Shared, State};
use crate::observe::metrics::BreakerMetrics;
use crate::observe::{BreakerStatus, Event, KindStatus, Subscribers};
use crate::registry::{self, Bounds, Registry};
use crate::snapshot::{LearnedBaseline, Snapshot};

/// Per-kind spike detection for a notification sender. Cheap to clone: clones share everything.
///
/// ```
/// use spikebreaker::{Breaker, Config, Decision};
/// let breaker = Breaker::new(Config::default())?;
/// let welcome = breaker.kind("email.welcome"); // resolve once, check on every send
/// assert_eq!(welcome.check(), Decision::Allowed);
/// assert!(breaker.check("sms.login_code").is_allowed()); // or by name
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Breaker<C: Clock = SystemClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Clock> {
    shared: Arc<Shared<C>>,
    registry: Registry<C>,
    config: RwLock<(Config, Arc<Compiled>)>,
    metrics: BreakerMetrics,
}

impl<C: Clock> Clone for Breaker<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> fmt::Debug for Breaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("kinds", &self.inner.registry.len())
            .field("clock", &self.inner.shared.clock)
            .finish_non_exhaustive()
    }
}

impl Breaker<SystemClock> {
    /// The kind that every kind beyond [`Config::max_kinds`] shares: its status, metrics
    /// (`kind="_overflow"`) and events carry this name, whatever the breaker's clock.
    pub const OVERFLOW_KIND: &'static str = registry::OVERFLOW_KIND;

    /// A breaker on the system clock.
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_clock(config, SystemClock::new())
    }
}

impl<C: Clock> Breaker<C> {
    /// A breaker on the given clock ([`ManualClock`](crate::ManualClock) for tests and replays).
    pub fn with_clock(config: Config, clock: C) -> Result<Self, Error> {
        let compiled = Arc::new(config.compile()?);
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    clock,
                    subscribers: Subscribers::default(),
                }),
                registry: Registry::default(),
                config: RwLock::new((config, compiled)),
                metrics: BreakerMetrics::register(),
            }),
        })
    }

    /// The handle for `kind`: resolve it once and call [`KindHandle::check`] on every send for
    /// the lock-free path. Registers the kind if it is new (see [`Config::max_kinds`]).
    pub fn kind(&self, kind: &str) -> KindHandle<C> {
        KindHandle {
            kind: self.resolve(kind),
        }
    }

    /// Counts one send of `kind` and decides it (a registry look-up, then [`KindHandle::check`]).
    pub fn check(&self, kind: &str) -> Decision {
        match self.check_named(kind) {
            Ok(()) => Decision::Allowed,
            Err((reason, _)) => Decision::Blocked(reason),
        }
    }

    /// [`check`](Self::check), with a refusal carrying the kind that refused: the overflow kind
    /// when `kind` was sent there. The kind is in hand already, so a refusal that wants the
    /// trip ([`Kind::tripped_at`]) reads one more atomic and an allowed send nothing more.
    pub(crate) fn check_named(&self, kind: &str) -> Result<(), (Reason, Arc<Kind<C>>)> {
        // Decided under the registry's read lock while the send stays lock-free, which spares
        // the kind's reference count two atomic writes; cold work, which may call subscribers,
        // runs after the lock is released.
        let lock_free = self.inner.registry.with(kind, |found| {
            found.check_lock_free().map_err(|step| (Arc::clone(found), step))
        });
        let (found, decision) = match lock_free {
            Some(Ok(())) => return Ok(()),
            Some(Err((found, step))) => {
                let decision = found.check_cold(step);
                (found, decision)
            }
            None => {
                let found = self.resolve(kind);
                let decision = found.check();
                (found, decision)
            }
        };
        match decision {
            Decision::Allowed => Ok(()),
            Decision::Blocked(reason) => Err((reason, found)),
        }
    }

    fn resolve(&self, name: &str) -> Arc<Kind<C>> {
        if let Some(kind) = self.inner.registry.get(name) {
            return kind;
        }
        // Held while registering, so that a concurrent reload cannot miss the new kind.
        let config = self.inner.config.read();
        let compiled = &config.1;
        let bounds = Bounds {
            max_kinds: compiled.max_kinds,
            evict_idle_ms: compiled.evict_idle_ms,
        };
        let now = self.inner.shared.clock.now_ms();
        let registered = self.inner.registry.len();
        let kind = self.inner.registry.get_or_insert(name, bounds, now, |name| {
            let shared = Arc::clone(&self.inner.shared);
            Arc::new(Kind::new(
                Arc::from(name),
                Arc::clone(compiled.settings(name)),
                Default::default(),
                shared,
            ))
        });
        // A name sent to the overflow kind comes this far on every send: export only when the
        // registry changed, and leave the overflow count to `refresh`.
        if self.inner.registry.len() != registered {
            self.export_registry_metrics();
        }
        kind
    }

    fn export_registry_metrics(&self) {
        let registry = &self.inner.registry;
        self.inner.metrics.export(registry.len(), registry.overflowed());
    }

    /// Calls `subscriber` with every transition of every kind (see [`Event`]).
    pub fn subscribe(&self, subscriber: impl Fn(&Event) + Send + Sync + 'static) {
        self.inner.shared.subscribers.add(Arc::new(subscriber));
    }

    /// Operator: blocks `kind` until [`reset`](Self::reset).
    pub fn force_open(&self, kind: &str) {
        self.resolve(kind).force(State::Open);
    }

    /// Operator: lets `kind` flow, detection suspended, until [`reset`](Self::reset).
    pub fn force_close(&self, kind: &str) {
        self.resolve(kind).force(State::Closed);
    }

    /// Operator: closes `kind` and resumes automatic detection, forgetting the window's counts
    /// but keeping the learned baseline.
    pub fn reset(&self, kind: &str) {
        self.resolve(kind).reset();
    }

    /// Operator: in dry-run, `kind` detects and reports (events, status, metrics) but never
    /// blocks. A configuration reload sets it back to the configured value.
    pub fn set_dry_run(&self, kind: &str, on: bool) {
        self.resolve(kind).set_dry_run(on);
    }

    /// The whole breaker's status: every kind's, brought up to the clock's now and sorted by
    /// kind, with how many kinds the registry holds and may hold, how many look-ups it sent to
    /// the overflow kind and how many idle kinds it forgot (see [`BreakerStatus`]).
    pub fn status(&self) -> BreakerStatus {
        let mut kinds: Vec<_> = self
            .inner
            .registry
            .all()
            .iter()
            .map(|kind| kind.status())
            .collect();
        kinds.sort_by(|a, b| a.kind.cmp(&b.kind));
        let registry = &self.inner.registry;
        BreakerStatus {
            at_ms: self.inner.shared.clock.now_ms(),
            kinds,
            registered: registry.len(),
            max_kinds: self.inner.config.read().1.max_kinds,
            overflowed: registry.overflowed(),
            evicted: registry.evicted(),
        }
    }

    /// One kind's status, if it has been seen.
    pub fn kind_status(&self, kind: &str) -> Option<KindStatus> {
        self.inner.registry.get(kind).map(|kind| kind.status())
    }

    /// Rolls every kind's window up to now, makes due transitions (recoveries) and exports every
    /// metric (see [`metrics`](crate::metrics)), for a service that wants this for quiet kinds
    /// too: call it every few seconds, or before each metrics scrape. Sends do this as they go.
    pub fn refresh(&self) {
        for kind in self.inner.registry.all() {
            kind.refresh();
        }
        self.export_registry_metrics();
    }

    /// Forgets every kind that is closed, not forced, held by no [`KindHandle`] and not sent for
    /// [`Config::evict_idle_secs`], with its counts and learned baseline; returns how many. A
    /// full registry does this on its own (at most once a second) before sending a new kind to
    /// the overflow kind, so stale kinds (a flood of user ids put into the kind by a bug) give
    /// their room back to real ones.
    ///
    /// ```
    /// use spikebreaker::{Breaker, Config, ManualClock};
    /// use std::time::Duration;
    /// let clock = ManualClock::new();
    /// let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
    /// assert!(breaker.check("user.12345").is_allowed());
    /// clock.advance(Duration::from_secs(2 * 3600));
    /// assert_eq!(breaker.evict_idle(), 1);
    /// assert!(breaker.kind_status("user.12345").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evict_idle(&self) -> usize {
        let idle_ms = self.inner.config.read().1.evict_idle_ms;
        let now = self.inner.shared.clock.now_ms();
        self.inner.registry.evict_idle(now, idle_ms)
    }

    /// The time on the breaker's clock (fleet mode's and the quarantine's releases read it).
    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.shared.clock.now_ms()
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.inner.config.read().0.clone()
    }

    /// Runs on `config` from now on, keeping every kind's counts and learned baseline. An invalid
    /// configuration is refused with the error and the running one stays in force.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let compiled = Arc::new(config.compile()?);
        // Kinds take their new policy under the write lock, so a kind registered meanwhile
        // cannot miss it; `apply` makes no transition and so calls no subscriber meanwhile.
        let mut slot = self.inner.config.write();
        for kind in self.inner.registry.all() {
            kind.apply(Arc::clone(compiled.settings(kind.name())));
        }
        *slot = (config, compiled);
        Ok(())
    }

    /// Every kind's learned baseline.
    pub fn snapshot(&self) -> Snapshot {
        let config = self.inner.config.read().0.clone();
        let kinds = self
            .inner
            .registry
            .all()
            .iter()
            .map(|kind| {
                let window_secs = config.kind_config(kind.name()).window_secs;
                (
                    kind.name().to_string(),
                    LearnedBaseline::capture(&kind.baseline(), window_secs),
                )
            })
            .collect();
        Snapshot {
            version: Snapshot::VERSION,
            kinds,
        }
    }

    /// Replaces learned baselines with a snapshot's, registering its kinds. A snapshot that fails
    /// [`Snapshot::validate`] is refused whole and the breaker keeps what it had.
    pub fn restore(&self, snapshot: &Snapshot) -> Result<(), Error> {
        snapshot.validate()?;
        let config = self.config();
        for (name, learned) in &snapshot.kinds {
            let window_secs = config.kind_config(name).window_secs;
            self.resolve(name).restore(learned.to_baseline(window_secs));
        }
        Ok(())
    }
}

/// Fleet mode's way into the breaker, in one place: the sync task reads and acts on kinds through
/// these alone, on the kind objects it read (a kind evicted and registered again is another one).
#[cfg(feature = "redis")]
impl<C: Clock> Breaker<C> {
    /// Every registered kind, the overflow kind last if it exists.
    pub(crate) fn handles(&self) -> Vec<KindHandle<C>> {
        let all = self.inner.registry.all();
        all.into_iter().map(|kind| KindHandle { kind }).collect()
    }

    /// What a sync reads of `kind`: its figures as they stand (taken under its lock, nothing
    /// counted or rolled over) and the settings it runs on.
    pub(crate) fn sync_view(&self, kind: &KindHandle<C>) -> (KindStatus, Arc<crate::config::KindSettings>) {
        kind.kind.sync_view()
    }

    /// Opens `kind` for the fleet unless an operator forced its state, for at least `hold_ms`.
    pub(crate) fn hold_open(&self, kind: &KindHandle<C>, hold_ms: u64) {
        kind.kind.hold_open(hold_ms);
    }
}
