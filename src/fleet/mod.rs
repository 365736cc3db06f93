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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, timeout};

pub use config::FleetConfig;

use crate::breaker::Breaker;
use crate::clock::Clock;
use crate::error::Error;
use crate::kind::{FleetView, Kind};
use crate::metrics::FLEET_DEGRADED;
use crate::state::{Reason, State};
use sync::{Action, Keys, KindSync, Outgoing, Reply};

/// Fleet mode for one breaker: a background task that syncs its kinds through Redis. Stops when
/// dropped or [`shutdown`](Self::shutdown). Start one per breaker (two would count every send
/// twice); instances sharing a [`FleetConfig::key_prefix`] and a Redis form one fleet.
///
/// ```no_run
/// use spikebreaker::{Breaker, Config, Fleet, FleetConfig};
/// # async fn run() -> Result<(), spikebreaker::Error> {
/// let breaker = Breaker::new(Config::default())?;
/// let fleet = Fleet::start(breaker.clone(), FleetConfig::new("redis://127.0.0.1:6379"))?;
/// // Send through `breaker` as usual; trips now reach, and come from, the whole fleet.
/// fleet.force_open("security.2fa_changed"); // an operator stop on every instance
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
    /// How long the last sync that went through took, there and back.
    pub last_round_trip: Option<Duration>,
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
        metrics::gauge!(FLEET_DEGRADED).set(1.0);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let local_breaker = breaker.clone();
        let local: Arc<dyn Fn(&Command) + Send + Sync> = Arc::new(move |command: &Command| match command {
            Command::ForceOpen(kind) => local_breaker.force_open(kind),
            Command::Reset(kind) => local_breaker.reset(kind),
        });
        let task = Task::new(breaker, config, client, Arc::clone(&status));
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
    /// unreachable now).
    pub fn force_open(&self, kind: &str) {
        self.command(Command::ForceOpen(kind.to_owned()));
    }

    /// Operator: closes `kind` on every instance, lifting a fleet-wide trip or force and the
    /// fleet-wide window's counts. Applies here at once, elsewhere within a sync interval.
    pub fn reset(&self, kind: &str) {
        self.command(Command::Reset(kind.to_owned()));
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

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A live connection, which also carries this instance's pub/sub messages.
struct Link {
    conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
}

struct Task<C: Clock> {
    breaker: Breaker<C>,
    config: FleetConfig,
    client: redis::Client,
    script: redis::Script,
    channel: String,
    /// This instance's number in the fleet, given by Redis on the first connection.
    id: Option<String>,
    kinds: HashMap<Arc<str>, Tracked<C>>,
    /// Operator commands not yet told to the fleet.
    queued: VecDeque<Command>,
    link: Option<Link>,
    backoff: Duration,
    retry_at: Instant,
    status: Arc<Mutex<Shared>>,
}

/// A kind's fleet state, with the kind object it belongs to: a kind evicted from the breaker and
/// registered again is a new object and starts afresh, and an evicted kind's state goes with it.
/// Weak, so that fleet mode keeps no kind from being evicted.
struct Tracked<C: Clock> {
    kind: Weak<Kind<C>>,
    sync: KindSync,
}

impl<C: Clock> Tracked<C> {
    fn new(kind: &Arc<Kind<C>>, sync: KindSync) -> Self {
        Self {
            kind: Arc::downgrade(kind),
            sync,
        }
    }

    fn tracks(&self, kind: &Arc<Kind<C>>) -> bool {
        std::ptr::eq(self.kind.as_ptr(), Arc::as_ptr(kind))
    }
}

/// What the task shows the handle: the status, and per kind (fleet window count, fleet
/// threshold, unsent), turned into [`FleetKindStatus`]es only when asked.
#[derive(Debug)]
struct Shared {
    status: FleetStatus,
    kinds: HashMap<Arc<str>, (u64, u64, u64)>,
}

impl<C: Clock> Task<C> {
    /// The task for `breaker`, its kinds so far joining fleet mode.
    fn new(
        breaker: Breaker<C>,
        config: FleetConfig,
        client: redis::Client,
        status: Arc<Mutex<Shared>>,
    ) -> Self {
        let kinds = breaker
            .kinds()
            .into_iter()
            .map(|kind| {
                let keys = Keys::new(&config.key_prefix, kind.name());
                let sync = KindSync::joined(keys, &kind.fleet_view());
                (Arc::clone(kind.name()), Tracked::new(&kind, sync))
            })
            .collect();
        Self {
            channel: format!("{}:fleet", config.key_prefix),
            id: None,
            script: redis::Script::new(sync::SCRIPT),
            backoff: config.interval(),
            retry_at: Instant::now(),
            kinds,
            queued: VecDeque::new(),
            link: None,
            status,
            breaker,
            client,
            config,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(self.config.interval());
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(command) = commands.recv() => self.queued.push_back(command),
                push = next_push(&mut self.link) => match push {
                    Some(push) => self.on_push(push),
                    None => self.degrade("the connection closed"),
                },
                _ = tick.tick() => self.sync().await,
            }
        }
        if self.link.is_some() {
            self.sync().await;
        }
    }

    /// A pub/sub message from another instance (or this one): apply it now rather than at the
    /// next sync.
    fn on_push(&mut self, push: redis::PushInfo) {
        match push.kind {
            redis::PushKind::Disconnection => self.degrade("the connection closed"),
            redis::PushKind::Message => {
                let Some(payload) = push.data.get(1) else { return };
                let Ok(text) = redis::from_redis_value_ref::<String>(payload) else {
                    return;
                };
                // `op:instance:kind`; this instance already applied its own messages.
                let Some((op, rest)) = text.split_once(':') else {
                    return;
                };
                let Some((from, name)) = rest.split_once(':') else {
                    return;
                };
                if self.id.as_deref() == Some(from) {
                    return;
                }
                let kind = self.breaker.kind_arc(name);
                match op {
                    "trip" => {
                        let view = kind.fleet_view();
                        kind.hold_open(Reason::Fleet, view.policy.cooldown_ms);
                    }
                    "force" => {
                        self.breaker.force_open(name);
                        self.kind_sync(&kind, &kind.fleet_view()).fleet_forced = true;
                    }
                    "reset" => {
                        self.breaker.reset(name);
                        self.kind_sync(&kind, &kind.fleet_view()).on_reset();
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// The kind's fleet state, fresh if the kind is new to fleet mode or a new object under an
    /// evicted kind's name (whose counts and trips are not this one's).
    fn kind_sync(&mut self, kind: &Arc<Kind<C>>, view: &FleetView) -> &mut KindSync {
        let prefix = &self.config.key_prefix;
        let fresh = || Tracked::new(kind, KindSync::new(Keys::new(prefix, kind.name()), view));
        let tracked = self
            .kinds
            .entry(Arc::clone(kind.name()))
            .and_modify(|tracked| {
                if !tracked.tracks(kind) {
                    *tracked = fresh();
                }
            })
            .or_insert_with(fresh);
        &mut tracked.sync
    }

    /// One sync: record every kind's new attempts, then (linked) send them with the queued
    /// operator commands in one round trip and act on the replies.
    async fn sync(&mut self) {
        let batch = self.record();
        if self.link.is_none() && !self.connect().await {
            self.publish_status(None);
            return;
        }
        let (Some(link), Some(id)) = (self.link.as_mut(), self.id.as_deref()) else {
            return;
        };

        let mut pipe = redis::pipe();
        let commands = self.queued.len();
        for command in &self.queued {
            queue_command(
                &mut pipe,
                command,
                &self.kinds,
                &self.config.key_prefix,
                &self.channel,
                id,
            );
        }
        // One script call per batch entry, from the entry alone: `apply` zips the replies with
        // the batch.
        for (kind, _, out) in &batch {
            pipe.add_command(out.script_call(self.script.get_hash(), id, &self.channel, kind.name()));
        }
        if commands == 0 && batch.is_empty() {
            // Nothing to say, but a link that has died silently must still be noticed.
            pipe.cmd("PING").ignore();
        }
        let started = Instant::now();
        let replies = match timeout(
            self.config.response_timeout(),
            pipe.query_async::<Vec<redis::Value>>(&mut link.conn),
        )
        .await
        {
            Ok(Ok(replies)) => replies,
            Ok(Err(err)) => return self.degrade(&err.to_string()),
            Err(_) => return self.degrade("no reply within the response timeout"),
        };
        let round_trip = started.elapsed();
        self.queued.drain(..commands);
        self.apply(&batch, replies);
        self.publish_status(Some(round_trip));
    }

    /// Every kind's new attempts, taken as pending deltas; what to send for the kinds that need
    /// this sync.
    fn record(&mut self) -> Vec<(Arc<Kind<C>>, FleetView, Outgoing)> {
        let now = self.breaker.clock().now_ms();
        let interval_ms = self.config.sync_interval_ms;
        let mut batch = Vec::new();
        for kind in self.breaker.kinds() {
            let view = kind.fleet_view();
            let sync = self.kind_sync(&kind, &view);
            sync.record(&view, now);
            if sync.due(&view, now) {
                let outgoing = sync.outgoing(&view, now, interval_ms);
                batch.push((kind, view, outgoing));
            }
        }
        // Kinds evicted from the breaker: their counts are long past any window the fleet reads.
        self.kinds.retain(|_, tracked| tracked.kind.strong_count() > 0);
        batch
    }

    /// Acts on the script's replies, one per kind of the batch.
    fn apply(&mut self, batch: &[(Arc<Kind<C>>, FleetView, Outgoing)], replies: Vec<redis::Value>) {
        for ((kind, view, out), value) in batch.iter().zip(replies) {
            let Some(reply) = redis::from_redis_value::<Vec<i64>>(value)
                .ok()
                .and_then(|values| Reply::parse(&values))
            else {
                continue;
            };
            let Some(Tracked { sync, .. }) = self.kinds.get_mut(kind.name()) else {
                continue;
            };
            for action in sync.apply(view, out, reply, self.config.sync_interval_ms) {
                match action {
                    Action::HoldOpen(ms) => kind.hold_open(Reason::Fleet, ms),
                    Action::ForceOpen => kind.force(State::Open),
                    Action::Reset => kind.reset(),
                }
            }
        }
    }

    /// Connects (or waits out the backoff): true when linked.
    async fn connect(&mut self) -> bool {
        if Instant::now() < self.retry_at {
            return false;
        }
        let (sender, pushes) = mpsc::unbounded_channel();
        let settings = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout()))
            .set_response_timeout(Some(self.config.response_timeout()))
            .set_push_sender(sender);
        let attempt = async {
            let mut conn = self
                .client
                .get_multiplexed_async_connection_with_config(&settings)
                .await?;
            conn.subscribe(&self.channel).await?;
            self.script.load_async(&mut conn).await?;
            // The fleet numbers its instances, so that ids are unique across hosts.
            let id = match &self.id {
                Some(id) => id.clone(),
                None => redis::cmd("INCR")
                    .arg(format!("{}:instances", self.config.key_prefix))
                    .query_async::<u64>(&mut conn)
                    .await?
                    .to_string(),
            };
            Ok::<_, redis::RedisError>((conn, id))
        };
        let limit = self.config.connect_timeout() + self.config.response_timeout() * 2;
        match timeout(limit, attempt).await {
            Ok(Ok((conn, id))) => {
                self.link = Some(Link { conn, pushes });
                self.id = Some(id);
                self.backoff = self.config.interval();
                tracing::info!(channel = %self.channel, "spikebreaker fleet mode connected to Redis");
                true
            }
            Ok(Err(err)) => {
                self.degrade(&err.to_string());
                false
            }
            Err(_) => {
                self.degrade("no connection within the connect timeout");
                false
            }
        }
    }

    /// Falls back to local-only detection until a reconnection succeeds.
    fn degrade(&mut self, why: &str) {
        let was_linked = self.link.take().is_some();
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_millis(self.config.max_backoff_ms));
        let mut shared = self.status.lock();
        let status = &mut shared.status;
        status.failures += 1;
        if was_linked || !status.degraded || status.failures == 1 {
            tracing::warn!(
                error = why,
                "spikebreaker fleet mode degraded: detecting locally until Redis is back"
            );
        }
        status.degraded = true;
        metrics::gauge!(FLEET_DEGRADED).set(1.0);
    }

    fn publish_status(&self, round_trip: Option<Duration>) {
        let mut shared = self.status.lock();
        if let Some(round_trip) = round_trip {
            let status = &mut shared.status;
            status.syncs += 1;
            status.last_round_trip = Some(round_trip);
            if status.degraded {
                metrics::gauge!(FLEET_DEGRADED).set(0.0);
            }
            status.degraded = false;
        }
        shared.kinds.retain(|kind, _| self.kinds.contains_key(kind));
        for (kind, Tracked { sync, .. }) in &self.kinds {
            let figures = (sync.window, sync.threshold, sync.unsent());
            match shared.kinds.get_mut(kind) {
                Some(slot) => *slot = figures,
                None => {
                    shared.kinds.insert(Arc::clone(kind), figures);
                }
            }
        }
    }
}

async fn next_push(link: &mut Option<Link>) -> Option<redis::PushInfo> {
    match link {
        Some(link) => link.pushes.recv().await,
        None => std::future::pending().await,
    }
}

/// An operator command, as told to the fleet.
fn queue_command<C: Clock>(
    pipe: &mut redis::Pipeline,
    command: &Command,
    kinds: &HashMap<Arc<str>, Tracked<C>>,
    prefix: &str,
    channel: &str,
    id: &str,
) {
    match command {
        Command::ForceOpen(kind) => {
            let keys = Keys::new(prefix, kind);
            pipe.cmd("SET").arg(&keys.force).arg(1).ignore();
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(format!("force:{id}:{kind}"))
                .ignore();
        }
        Command::Reset(kind) => {
            let keys = Keys::new(prefix, kind);
            let mut del = redis::cmd("DEL");
            del.arg(&keys.trip).arg(&keys.probe).arg(&keys.force);
            if let Some(tracked) = kinds.get(kind.as_str()) {
                del.arg(tracked.sync.recent_bucket_keys());
            }
            pipe.add_command(del).ignore();
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(format!("reset:{id}:{kind}"))
                .ignore();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;

    fn task(breaker: &Breaker<ManualClock>) -> Task<ManualClock> {
        let config = FleetConfig::default();
        let status = Arc::new(Mutex::new(Shared {
            status: FleetStatus::default(),
            kinds: HashMap::new(),
        }));
        Task::new(breaker.clone(), config.clone(), config.client().unwrap(), status)
    }

    fn unsent(task: &Task<ManualClock>, kind: &str) -> Option<u64> {
        task.kinds.get(kind).map(|tracked| tracked.sync.unsent())
    }

    #[test]
    fn evicted_kinds_are_forgotten_and_a_kind_registered_again_starts_afresh() {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        let mut task = task(&breaker);
        for i in 0..50 {
            let _ = breaker.check(&format!("user.{i}"));
        }
        for _ in 0..5 {
            let _ = breaker.check("email.welcome");
        }
        task.record();
        task.publish_status(None);
        assert_eq!(task.kinds.len(), 51);
        assert_eq!(unsent(&task, "email.welcome"), Some(5));

        // Churn: every kind is evicted, and one comes back before the next sync.
        clock.advance(Duration::from_secs(2 * 3600));
        assert_eq!(breaker.evict_idle(), 51);
        for _ in 0..3 {
            let _ = breaker.check("email.welcome");
        }
        task.record();
        task.publish_status(None);
        assert_eq!(task.kinds.len(), 1, "the evicted kinds' fleet state is gone");
        assert_eq!(task.status.lock().kinds.len(), 1, "and so is their status");
        assert_eq!(
            unsent(&task, "email.welcome"),
            Some(3),
            "the new kind's first sends are the fleet's, though fewer than the old kind's"
        );
    }
}
