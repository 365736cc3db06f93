//! The breaker: every kind's detector and their configuration; [`builder`] sets one up, and
//! `operator` holds the operator's controls.

mod builder;
#[cfg(feature = "redis")]
mod fleet;
mod operator;
mod persistence;
mod sliced;
mod wire;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::config::{Compiled, Config};
use crate::error::Error;
use crate::kind::{Decision, Detour, Kind, KindHandle, Resolve, Shared};
use crate::name::{self, OVERFLOW_KIND};
#[cfg(feature = "tokio")]
use crate::observe::Events;
use crate::observe::metrics::{BreakerMetrics, NameInUse};
use crate::observe::{BreakerStatus, Event, KindStatus, Problems, Subscribers, Subscription};
use crate::registry::{Bounds, Registry};
use crate::snapshot::file::SnapshotFile;
use crate::state::Reason;

pub use builder::BreakerBuilder;
pub(crate) use sliced::blocked;

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
    metrics: Mutex<BreakerMetrics>,
    /// The kind held by handles that are not on a kind of their own (see [`Kind::parked`]).
    parked: OnceLock<Arc<Kind<C>>>,
    /// Where what was learned is kept across restarts, if anywhere.
    snapshot_file: Option<SnapshotFile>,
    /// Wakes the thread that saves the snapshot file to save now (a stop changed); dropped with
    /// the breaker, which stops the thread.
    saver: Option<mpsc::Sender<()>>,
    /// Its name among the process's live breakers (a second of the same name warns); none for a
    /// replay's breaker.
    _name: Option<NameInUse>,
    /// The clones of the breaker alive: the last to go saves the snapshot file, on its own
    /// thread, before it returns (the saving thread's hold on the breaker does not count).
    clones: AtomicUsize,
    /// What is wrong with the breaker itself (see [`Problem`](crate::status::Problem)).
    problems: Mutex<Problems>,
}

/// Where and how a breaker keeps its snapshot file ([`BreakerBuilder::snapshot_file`]).
#[derive(Debug)]
struct Keeping {
    path: PathBuf,
    save_every: Duration,
    /// A file that cannot be read fails `build()` rather than being set aside.
    strict: bool,
}

impl<C: Clock> Clone for Breaker<C> {
    fn clone(&self) -> Self {
        self.inner.clones.fetch_add(1, Ordering::Relaxed);
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> Drop for Breaker<C> {
    /// The last clone of the breaker is gone: save what it learned and stopped one last time.
    fn drop(&mut self) {
        if self.inner.clones.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.close();
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
    /// The kind that every kind without room of its own shares (see [`Config::max_kinds`]): its
    /// status, metrics (`kind="_overflow"`) and events carry this name, whatever the breaker's
    /// clock. It runs a fixed limit that traffic cannot teach: it never learns, so it
    /// trips above the `warmup_ceiling` (and `ceiling`) of the defaults, or of
    /// `[kinds._overflow]` if the configuration has one.
    pub const OVERFLOW_KIND: &'static str = OVERFLOW_KIND;

    /// The name of a breaker not named otherwise ([`BreakerBuilder::name`]): the `breaker` label
    /// of its metrics.
    pub const DEFAULT_NAME: &'static str = "default";

    /// A breaker on the system clock.
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_clock(config, SystemClock::new())
    }
}

impl<C: Clock> Breaker<C> {
    /// A breaker on the given clock ([`ManualClock`](crate::ManualClock) for tests and replays).
    pub fn with_clock(config: Config, clock: C) -> Result<Self, Error> {
        Self::assemble(config, clock, Breaker::DEFAULT_NAME.to_owned(), None, true)
    }

    /// A breaker for a backtest's or the tuner's replay, on its own clock: many run at once, all
    /// named `"default"`, so they take no part in the check for two live breakers of one name.
    pub(crate) fn for_replay(config: Config, clock: C) -> Result<Self, Error> {
        Self::assemble(config, clock, Breaker::DEFAULT_NAME.to_owned(), None, false)
    }

    /// What [`BreakerBuilder::build`] builds: with a snapshot file, restored from it and saved
    /// every `save_every` on a thread that holds the breaker weakly; its name claimed among the
    /// live breakers or not (a replay's).
    fn assemble(
        config: Config,
        clock: C,
        name: String,
        keeping: Option<Keeping>,
        claim_name: bool,
    ) -> Result<Self, Error> {
        let compiled = Arc::new(config.compile()?);
        let name: Arc<str> = Arc::from(name);
        let snapshot_file = keeping
            .as_ref()
            .map(|keeping| SnapshotFile::new(keeping.path.clone()));
        // Read before the breaker exists, so that a strict breaker refused leaves the file as
        // it found it.
        let loaded = match &snapshot_file {
            Some(file) => {
                file.probe()?;
                Self::load(file, keeping.as_ref().is_some_and(|k| k.strict))?
            }
            None => Ok(None),
        };
        let (saver, woken) = match snapshot_file {
            Some(_) => {
                let (saver, woken) = mpsc::channel();
                (Some(saver), Some(woken))
            }
            None => (None, None),
        };
        let breaker = Self {
            inner: Arc::new(Inner {
                metrics: Mutex::new(BreakerMetrics::register(&name)),
                _name: claim_name.then(|| NameInUse::claim(&name)),
                shared: Arc::new(Shared {
                    clock,
                    subscribers: Subscribers::default(),
                    name,
                    newcomers: Default::default(),
                    families: Default::default(),
                }),
                registry: Registry::default(),
                config: RwLock::new((config, compiled)),
                parked: OnceLock::new(),
                snapshot_file,
                saver,
                clones: AtomicUsize::new(1),
                problems: Mutex::new(Problems::default()),
            }),
        };
        if let (Some(keeping), Some(woken)) = (keeping, woken) {
            breaker.restore_loaded(loaded, keeping.strict)?;
            breaker.save_periodically(keeping.save_every, woken);
        }
        if claim_name {
            breaker.inner.export_problems();
        }
        Ok(breaker)
    }

    /// Whether the breaker takes no part in the check for two live breakers of one name.
    #[cfg(test)]
    pub(crate) fn claims_no_name(&self) -> bool {
        self.inner._name.is_none()
    }

    /// The breaker's name: the `breaker` label of its metrics ([`BreakerBuilder::name`]).
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// The handle for `kind`: resolve it once and call [`KindHandle::check`] on every send for
    /// the lock-free path. Registers the kind if it is new (see [`Config::max_kinds`]); with no
    /// room for it, the handle sends to the overflow kind and moves to its own kind once there
    /// is room. For a name that breaks the kind-name rule
    /// ([`validate_kind_name`](crate::config::validate_kind_name)) nothing is registered and the handle
    /// refuses every send with [`Reason::InvalidKind`].
    pub fn kind(&self, kind: &str) -> KindHandle<C> {
        match self.inner.resolve(kind) {
            Ok(found) if kind == OVERFLOW_KIND || found.name().as_ref() != OVERFLOW_KIND => {
                KindHandle::own(found)
            }
            Ok(overflow) => {
                let resolver: Weak<dyn Resolve<C>> = Arc::downgrade(&self.inner) as Weak<dyn Resolve<C>>;
                self.detoured(Detour::homing(kind, overflow, resolver))
            }
            Err(_) => self.detoured(Detour::Invalid(Arc::from(kind))),
        }
    }

    fn detoured(&self, detour: Detour<C>) -> KindHandle<C> {
        let parked = self.inner.parked.get_or_init(|| {
            let defaults = Arc::clone(&self.inner.config.read().1.defaults);
            Arc::new(Kind::parked(defaults, Arc::clone(&self.inner.shared)))
        });
        KindHandle::detoured(Arc::clone(parked), detour)
    }

    /// Counts one send of `kind` and decides it (a registry look-up, then [`KindHandle::check`]).
    /// A name that breaks the kind-name rule ([`validate_kind_name`](crate::config::validate_kind_name))
    /// is refused with [`Reason::InvalidKind`] and registers nothing; a registered name is never
    /// checked again, so the rule costs a send by name nothing.
    pub fn check(&self, kind: &str) -> Decision {
        match self.check_named(kind) {
            Ok(()) => Decision::Allowed,
            Err(refused) => Decision::Blocked(refused.reason),
        }
    }

    /// [`check`](Self::check), with a refusal naming the kind that refused (the overflow kind
    /// when `kind` was sent there), when its trip began and when it may reopen. The kind is in
    /// hand already, so a refusal reads two more atomics and an allowed send nothing more.
    pub(crate) fn check_named(&self, kind: &str) -> Result<(), Refused> {
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
            None => match self.inner.resolve(kind) {
                Ok(found) => {
                    let decision = found.check();
                    (found, decision)
                }
                Err(_) => {
                    return Err(Refused {
                        reason: Reason::InvalidKind,
                        kind: Arc::from(kind),
                        tripped_at_ms: 0,
                        open_until_ms: 0,
                    });
                }
            },
        };
        match decision {
            Decision::Allowed => Ok(()),
            Decision::Blocked(reason) => Err(Refused {
                reason,
                kind: Arc::clone(found.name()),
                tripped_at_ms: found.tripped_at(),
                open_until_ms: found.open_until(),
            }),
        }
    }

    /// Calls `subscriber` with every transition of every kind (see [`Event`]), on the thread
    /// that caused it, after the kind's lock is released, until the returned [`Subscription`] is
    /// dropped ([`Subscription::detach`] keeps it for the breaker's life).
    ///
    /// ```
    /// use spikebreaker::{Breaker, Config};
    /// let breaker = Breaker::new(Config::default())?;
    /// let paging = breaker.subscribe(|event| {
    ///     if event.is_trip() && !event.dry_run {
    ///         eprintln!("page: {event}");
    ///     }
    /// });
    /// // ... until shutdown; or `paging.detach()` to keep it for the breaker's life.
    /// drop(paging);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe(&self, subscriber: impl Fn(&Event) + Send + Sync + 'static) -> Subscription {
        self.inner.shared.subscribers.add(Arc::new(subscriber))
    }

    /// Every event (see [`subscribe`](Self::subscribe)) on a bounded tokio channel of
    /// `capacity`, for a task to receive; dropping the [`Events`] unsubscribes. A send never
    /// waits for the channel: while it is full, events are dropped and counted
    /// ([`Events::missed`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use spikebreaker::{Breaker, Config, ManualClock};
    /// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
    /// let mut events = breaker.events(1024);
    /// let _ = breaker.kind("sms.otp");
    /// breaker.force_open("sms.otp")?;
    /// let event = events.recv().await.expect("the trip");
    /// assert!(event.is_trip());
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn events(&self, capacity: usize) -> Events {
        Events::new(&self.inner.shared.subscribers, capacity)
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
            problems: self.inner.problems(),
        }
    }

    /// One kind's status, if it has been seen.
    pub fn kind_status(&self, kind: &str) -> Option<KindStatus> {
        self.inner.registry.get(kind).map(|kind| kind.status())
    }

    /// Rolls every kind's window up to now, makes due transitions (recoveries) and exports every
    /// metric (see [`metrics`](crate::status::metrics)), for a service that wants this for quiet kinds
    /// too: call it every few seconds, or before each metrics scrape. Sends do this as they go.
    ///
    /// It also finds a metrics recorder installed after the breaker: its handles, and every
    /// kind's, are registered again with it (see [`metrics`](crate::status::metrics)).
    pub fn refresh(&self) {
        let rebind = self.inner.metrics.lock().follow_the_recorder();
        if rebind {
            self.inner.problems.lock().recorder_late = true;
        }
        for kind in self.inner.registry.all() {
            kind.refresh(rebind);
            kind.export_slices();
        }
        self.inner.export_registry_metrics();
        self.inner.export_problems();
    }

    /// Forgets every kind that is closed, not forced, held by no [`KindHandle`], not named in the
    /// configuration and not sent for [`Config::evict_idle_secs`], with its counts and what it
    /// learned; returns how many. A full registry does this on its own (at most once a second)
    /// before sending a new kind to the overflow kind, but there only for kinds that are not warm
    /// yet, so that stale kinds (a flood of user ids put into the kind by a bug) give
    /// their room back to real ones while a warm kind waits for a newcomer that has proven
    /// itself (see [`Config::max_kinds`]).
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

    /// Runs on `config` from now on, keeping every kind's counts and what they learned. An invalid
    /// configuration is refused with the error and the running one stays in force.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let compiled = Arc::new(config.compile()?);
        // Kinds take their new policy under the write lock, so a kind registered meanwhile
        // cannot miss it; `apply` makes no transition and so calls no subscriber meanwhile.
        let mut slot = self.inner.config.write();
        for kind in self.inner.registry.all() {
            let settings = compiled.settings(kind.name());
            kind.apply(Arc::clone(settings));
            kind.apply_slices(&settings.slices);
        }
        let now = self.inner.shared.clock.now_ms();
        let families = &self.inner.shared.families;
        families.apply(|key| compiled.family(key).cloned(), now);
        self.inner.registry.reclassify(|name| compiled.names(name));
        *slot = (config, compiled);
        Ok(())
    }
}

/// A send refused by name: why, by which kind, when that kind's trip began and until when it
/// refuses without looking (0 for both when no trip refused it: a name that breaks the rule;
/// `u64::MAX` until an operator acts).
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) reason: Reason,
    pub(crate) kind: Arc<str>,
    pub(crate) tripped_at_ms: u64,
    pub(crate) open_until_ms: u64,
}

impl<C: Clock> Inner<C> {
    fn export_registry_metrics(&self) {
        let registry = &self.registry;
        self.metrics.lock().export(registry.len(), registry.overflowed());
    }
}

impl<C: Clock> Resolve<C> for Inner<C> {
    fn resolve(&self, name: &str) -> Result<Arc<Kind<C>>, &'static str> {
        if let Some(kind) = self.registry.get(name) {
            return Ok(kind);
        }
        if let Some(reason) = name::problem(name) {
            return Err(reason);
        }
        // Held while registering, so that a concurrent reload cannot miss the new kind.
        let config = self.config.read();
        let compiled = &config.1;
        let bounds = Bounds {
            max_kinds: compiled.max_kinds,
            evict_idle_ms: compiled.evict_idle_ms,
        };
        let now = self.shared.clock.now_ms();
        let registered = self.registry.len();
        let kind = self
            .registry
            .get_or_insert(name, compiled.names(name), bounds, now, |name| {
                Arc::new(Kind::new(
                    Arc::clone(name),
                    Arc::clone(compiled.settings(name)),
                    Default::default(),
                    Arc::clone(&self.shared),
                ))
            });
        // A name sent to the overflow kind comes this far on every send: export only when the
        // registry changed, and leave the overflow count to `refresh`.
        if self.registry.len() != registered {
            self.export_registry_metrics();
        }
        Ok(kind)
    }
}

impl<C: Clock> Breaker<C> {
    /// The kind called `name` if it is registered (the overflow kind by its own name only):
    /// never registers one.
    pub(crate) fn registered(&self, name: &str) -> Option<KindHandle<C>> {
        self.inner.registry.get(name).map(KindHandle::own)
    }
}
