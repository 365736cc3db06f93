//! Fleet mode: one spike, seen and stopped across every instance of a sender service, with Redis
//! as the side channel.
//!
//! A background task on the caller's tokio runtime wakes every sync interval, reads each busy
//! kind's attempted total (cold: the send path gains nothing), and in one round trip to Redis
//! adds the new attempts to the kind's fleet-wide buckets, reads the fleet's sliding-window total
//! back, and applies the kind's own policy to it with a baseline learned from fleet totals. A
//! trip, local or fleet-wide, sets a trip key and is published; every instance holds the kind
//! open while the key lives, and when it expires one instance (by `SET NX`) probes while the
//! others wait. When Redis is down, slow or unreachable, each instance goes on detecting locally
//! (local detection is always in force), keeps its unsent counts while they still matter, and
//! reconnects with backoff.

mod config;
mod sync;
mod task;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::FleetConfig;

use crate::breaker::Breaker;
use crate::clock::Clock;
use crate::error::Error;
use crate::name::validate_kind_name;
use crate::observe::metrics::set_fleet_degraded;
use task::{Shared, Task};

/// Fleet mode for one breaker: a background task that syncs its kinds through Redis. Stops when
/// dropped or [`shutdown`](Self::shutdown). Start one per breaker (two would count every send
/// twice); instances sharing a [`FleetConfig::key_prefix`] and a Redis form one fleet.
///
/// ```no_run
/// use spikebreaker::fleet::{Fleet, FleetConfig};
/// use spikebreaker::{Breaker, Config};
/// # async fn run() -> Result<(), spikebreaker::Error> {
/// let breaker = Breaker::new(Config::default())?;
/// let fleet = Fleet::start(breaker.clone(), FleetConfig::new("redis://127.0.0.1:6379"))?;
/// // Send through `breaker` as usual; trips now reach, and come from, the whole fleet.
/// fleet.force_open("security.2fa_changed")?; // an operator stop on every instance
/// # Ok(()) }
/// ```
pub struct Fleet {
    status: Arc<Mutex<Shared>>,
    commands: mpsc::UnboundedSender<Command>,
    local: Arc<dyn Fn(&Command) + Send + Sync>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("status", &self.status.lock().status)
            .finish_non_exhaustive()
    }
}

/// How an instance's fleet mode stands.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct FleetStatus {
    /// No working link to Redis: the instance detects on its own counts only.
    pub degraded: bool,
    /// Syncs that went through.
    pub syncs: u64,
    /// Syncs and connection attempts that failed.
    pub failures: u64,
    /// How long the last sync that went through took, there and back (all its round trips: a
    /// sync sends at most 256 kinds a round trip).
    pub last_round_trip: Option<Duration>,
    /// Kind syncs that Redis answered with an error, since the start: such a kind is skipped, its
    /// counts kept and sent again at the next sync (each is also logged as a warning).
    pub unsynced: u64,
    /// Per kind, as of the last sync that went through.
    pub kinds: Vec<FleetKindStatus>,
}

/// One kind as the fleet sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetKindStatus {
    /// The kind.
    pub kind: String,
    /// Sends of the kind in the sliding window, fleet-wide.
    pub window_count: u64,
    /// The fleet-wide threshold (the kind's policy on the fleet-wide learned baseline).
    pub threshold: u64,
    /// This instance's counts not yet sent to Redis.
    pub unsent: u64,
}

/// An operator's command to the whole fleet.
#[derive(Debug)]
enum Command {
    ForceOpen(String),
    Reset(String),
}

impl Fleet {
    /// Starts syncing `breaker` through the Redis in `config`, on the current tokio runtime. The
    /// first connection is made in the background: until it succeeds the instance detects
    /// locally, as it does whenever Redis is unreachable.
    ///
    /// Fails on an invalid `config`, or when called outside a tokio runtime.
    pub fn start<C: Clock>(breaker: Breaker<C>, config: FleetConfig) -> Result<Self, Error> {
        config.validate()?;
        let id = instance_id()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::invalid(
                "fleet.runtime",
                "none",
                "Fleet::start must be called inside a tokio runtime",
            )
        })?;
        let client = config.client()?;
        let status = Arc::new(Mutex::new(Shared {
            status: FleetStatus {
                degraded: true,
                ..FleetStatus::default()
            },
            kinds: HashMap::new(),
        }));
        set_fleet_degraded(breaker.name(), true);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let local_breaker = breaker.clone();
        // A kind this instance does not know yet is forced or reset by the fleet's keys once it
        // registers and syncs.
        let local: Arc<dyn Fn(&Command) + Send + Sync> = Arc::new(move |command: &Command| {
            let _unknown_here = match command {
                Command::ForceOpen(kind) => local_breaker.force_open(kind),
                Command::Reset(kind) => local_breaker.reset(kind),
            };
        });
        let task = Task::new(breaker, config, client, Arc::clone(&status), id);
        let task = runtime.spawn(task.run(stop_rx, command_rx));
        Ok(Self {
            status,
            commands,
            local,
            stop,
            task: Some(task),
        })
    }

    /// How fleet mode stands on this instance.
    pub fn status(&self) -> FleetStatus {
        let shared = self.status.lock();
        let mut kinds: Vec<_> = shared
            .kinds
            .iter()
            .map(|(kind, &(window_count, threshold, unsent))| FleetKindStatus {
                kind: kind.to_string(),
                window_count,
                threshold,
                unsent,
            })
            .collect();
        kinds.sort_by(|a, b| a.kind.cmp(&b.kind));
        FleetStatus {
            kinds,
            ..shared.status.clone()
        }
    }

    /// Operator: blocks `kind` on every instance until [`reset`](Self::reset). Applies here at
    /// once and reaches the other instances within a sync interval (on reconnection, if Redis is
    /// unreachable now); an instance that does not know the kind yet applies it when the kind
    /// registers there. Refuses a name that breaks the kind-name rule
    /// ([`validate_kind_name`]), and the overflow kind, which is each instance's own (force it
    /// on one instance with [`Breaker::force_open`](crate::Breaker::force_open)).
    pub fn force_open(&self, kind: &str) -> Result<(), Error> {
        fleet_kind(kind)?;
        self.command(Command::ForceOpen(kind.to_owned()));
        Ok(())
    }

    /// Operator: closes `kind` on every instance, lifting a fleet-wide trip or force and the
    /// fleet-wide window's counts. Applies here at once, elsewhere within a sync interval.
    /// Refuses a name that breaks the kind-name rule, and the overflow kind (each instance's own).
    pub fn reset(&self, kind: &str) -> Result<(), Error> {
        fleet_kind(kind)?;
        self.command(Command::Reset(kind.to_owned()));
        Ok(())
    }

    fn command(&self, command: Command) {
        (self.local)(&command);
        // The task owns the receiver until it stops; after that there is no fleet to tell.
        let _ = self.commands.send(command);
    }

    /// Stops the task after a last sync attempt (bounded by the response timeout).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Checks that `kind` is one the fleet acts on together: a valid name, not the overflow kind.
fn fleet_kind(kind: &str) -> Result<(), Error> {
    validate_kind_name(kind)?;
    if kind == crate::name::OVERFLOW_KIND {
        return Err(Error::InvalidKindName {
            name: crate::name::shown(kind),
            reason: "the overflow kind is each instance's own: force or reset it on the instance",
        });
    }
    Ok(())
}

/// 128 random bits from the operating system, as 32 hex digits: an id no other instance of the
/// fleet has, before or after a restart of Redis.
fn instance_id() -> Result<String, Error> {
    let mut bits = [0u8; 16];
    getrandom::fill(&mut bits).map_err(|error| {
        Error::invalid(
            "fleet.instance_id",
            error,
            "needs 128 random bits from the operating system",
        )
    })?;
    Ok(bits.iter().map(|byte| format!("{byte:02x}")).collect())
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
