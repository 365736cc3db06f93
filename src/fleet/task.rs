//! The sync task: every sync interval it reads each kind through the breaker, sends what is new
//! to Redis in one round trip, and acts on the replies; between syncs it applies what other
//! instances publish. When Redis is unreachable it degrades to local-only detection and
//! reconnects with backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::sync::{self, Action, Keys, KindSync, Outgoing, Reply};
use super::{Command, FleetConfig, FleetStatus};
use crate::breaker::Breaker;
use crate::clock::Clock;
use crate::config::KindSettings;
use crate::kind::KindHandle;
use crate::observe::KindStatus;
use crate::observe::metrics::set_fleet_degraded;

/// A live connection, which also carries this instance's pub/sub messages.
struct Link {
    conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
}

pub(super) struct Task<C: Clock> {
    breaker: Breaker<C>,
    config: FleetConfig,
    client: redis::Client,
    script: redis::Script,
    channel: String,
    /// This instance's id in the fleet: 128 random bits, so that no two instances share one,
    /// whatever Redis remembers (a restarted, emptied Redis included).
    id: String,
    kinds: HashMap<Arc<str>, Tracked>,
    /// Operator commands not yet told to the fleet.
    queued: VecDeque<Command>,
    link: Option<Link>,
    backoff: Duration,
    retry_at: Instant,
    status: Arc<Mutex<Shared>>,
    /// When a kind that could not sync was last logged.
    unsynced_said: Option<Instant>,
}

/// How often a kind that cannot sync is logged, at most.
const UNSYNCED_SAID_EVERY: Duration = Duration::from_secs(60);

/// A kind's fleet state, with the kind object it belongs to: a kind evicted from the breaker and
/// registered again is a new object and starts afresh, and an evicted kind's state goes with it.
/// The object is told by its name's allocation, made when the kind was registered (and kept here,
/// so that no later kind's name can take its place): fleet mode holds no kind, and so keeps none
/// from being evicted.
struct Tracked {
    name: Arc<str>,
    sync: KindSync,
}

impl Tracked {
    fn new(status: &KindStatus, sync: KindSync) -> Self {
        Self {
            name: Arc::clone(&status.kind),
            sync,
        }
    }

    fn tracks(&self, status: &KindStatus) -> bool {
        Arc::ptr_eq(&self.name, &status.kind)
    }
}

/// A kind that this sync sends for: the kind, as read, and what is sent.
struct Entry<C: Clock> {
    kind: KindHandle<C>,
    status: KindStatus,
    settings: Arc<KindSettings>,
    out: Outgoing,
}

/// What the task shows the handle: the status, and per kind (fleet window count, fleet
/// threshold, unsent), turned into [`FleetKindStatus`]es only when asked.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) status: FleetStatus,
    pub(super) kinds: HashMap<Arc<str>, (u64, u64, u64)>,
}

/// Script calls sent in one round trip: a sync of thousands of busy kinds goes in several, each
/// well within the response timeout, rather than one that can never make it.
pub(super) const CALLS_PER_ROUND_TRIP: usize = 256;

impl<C: Clock> Task<C> {
    /// The task for `breaker` as instance `id`, its kinds so far joining fleet mode.
    pub(super) fn new(
        breaker: Breaker<C>,
        config: FleetConfig,
        client: redis::Client,
        status: Arc<Mutex<Shared>>,
        id: String,
    ) -> Self {
        let kinds = breaker
            .handles()
            .iter()
            .map(|kind| {
                let (status, settings) = breaker.sync_view(kind);
                let keys = Keys::new(&config.key_prefix, &status.kind);
                let sync = KindSync::joined(keys, &status, &settings);
                (Arc::clone(&status.kind), Tracked::new(&status, sync))
            })
            .collect();
        Self {
            channel: format!("{}:fleet", config.key_prefix),
            id,
            script: redis::Script::new(sync::SCRIPT),
            backoff: config.interval(),
            retry_at: Instant::now(),
            kinds,
            queued: VecDeque::new(),
            link: None,
            status,
            unsynced_said: None,
            breaker,
            client,
            config,
        }
    }

    pub(super) async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
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
                // The overflow kind is each instance's own: what junk names do to one instance's
                // registry says nothing of another's.
                if self.id == from || name == crate::name::OVERFLOW_KIND {
                    return;
                }
                // Only kinds this instance knows: a trip of a kind it never registered is none of
                // its business until the kind registers (its first sync then finds the trip key),
                // and must never open the overflow kind instead.
                let known = match op {
                    "force" => self.breaker.force_open(name).is_ok(),
                    "reset" => self.breaker.reset(name).is_ok(),
                    _ => true,
                };
                let Some(kind) = self.breaker.registered(name).filter(|_| known) else {
                    return;
                };
                let (status, settings) = self.breaker.sync_view(&kind);
                match op {
                    "trip" => self.breaker.hold_open(&kind, settings.cooldown_ms),
                    "force" => self.kind_sync(&status, &settings).fleet_forced = true,
                    "reset" => self.kind_sync(&status, &settings).on_reset(),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// The kind's fleet state, fresh if the kind is new to fleet mode or a new object under an
    /// evicted kind's name (whose counts and trips are not this one's).
    fn kind_sync(&mut self, status: &KindStatus, settings: &KindSettings) -> &mut KindSync {
        let prefix = &self.config.key_prefix;
        let fresh = || Tracked::new(status, KindSync::new(Keys::new(prefix, &status.kind), settings));
        let tracked = self
            .kinds
            .entry(Arc::clone(&status.kind))
            .and_modify(|tracked| {
                if !tracked.tracks(status) {
                    *tracked = fresh();
                }
            })
            .or_insert_with(fresh);
        &mut tracked.sync
    }

    /// One sync: record every kind's new attempts, then (linked) send them with the queued
    /// operator commands, [`CALLS_PER_ROUND_TRIP`] kinds a round trip, and act on the replies.
    /// A round trip that fails leaves the kinds after it unsent: their counts are kept and sent
    /// at a later sync.
    async fn sync(&mut self) {
        let batch = self.record();
        if self.link.is_none() && !self.connect().await {
            self.publish_status(None);
            return;
        }
        let started = Instant::now();
        let mut chunks: Vec<&[Entry<C>]> = batch.chunks(CALLS_PER_ROUND_TRIP).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for (round, chunk) in chunks.into_iter().enumerate() {
            let Some(link) = self.link.as_mut() else {
                return;
            };
            // One kind's error (a key tampered with) is that kind's alone: the replies come back
            // one a command, errors among them, rather than one error for the round trip.
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            let commands = if round == 0 { self.queued.len() } else { 0 };
            let mut command_replies = 0;
            for command in self.queued.iter().take(commands) {
                command_replies += queue_command(
                    &mut pipe,
                    command,
                    &self.kinds,
                    &self.config.key_prefix,
                    &self.channel,
                    &self.id,
                );
            }
            // One script call per entry, from the entry alone: `apply` zips the replies with the
            // chunk.
            for entry in chunk {
                let call = entry.out.script_call(
                    self.script.get_hash(),
                    &self.id,
                    &self.channel,
                    &entry.status.kind,
                );
                pipe.add_command(call);
            }
            if commands == 0 && chunk.is_empty() {
                // Nothing to say, but a link that has died silently must still be noticed.
                pipe.cmd("PING").ignore();
            }
            let mut replies = match timeout(
                self.config.response_timeout(),
                pipe.query_async::<Vec<redis::Value>>(&mut link.conn),
            )
            .await
            {
                Ok(Ok(replies)) => replies,
                Ok(Err(err)) => return self.degrade(&err.to_string()),
                Err(_) => return self.degrade("no reply within the response timeout"),
            };
            // A server that forgot the script (restarted, flushed) answers every kind so: load it
            // again on a new link.
            if replies
                .iter()
                .any(|reply| matches!(reply, redis::Value::ServerError(error) if error.code() == "NOSCRIPT"))
            {
                return self.degrade("Redis no longer has the sync script");
            }
            let for_commands: Vec<redis::Value> =
                replies.drain(..command_replies.min(replies.len())).collect();
            if let Some(redis::Value::ServerError(error)) = for_commands
                .iter()
                .find(|reply| matches!(reply, redis::Value::ServerError(_)))
            {
                // Told again at the next sync.
                tracing::warn!(%error, "spikebreaker fleet mode could not tell the fleet an operator's command");
            } else {
                self.queued.drain(..commands);
            }
            self.apply(chunk, replies);
        }
        self.publish_status(Some(started.elapsed()));
    }

    /// Every kind's new attempts, taken as pending deltas; what to send for the kinds that need
    /// this sync.
    fn record(&mut self) -> Vec<Entry<C>> {
        let now = self.breaker.now_ms();
        let interval_ms = self.config.sync_interval_ms;
        let mut batch = Vec::new();
        let kinds = self.breaker.handles();
        for kind in &kinds {
            let (status, settings) = self.breaker.sync_view(kind);
            let sync = self.kind_sync(&status, &settings);
            sync.record(&status, &settings, now);
            if sync.due(&status, now) {
                let out = sync.outgoing(&status, &settings, now, interval_ms);
                let kind = kind.clone();
                batch.push(Entry {
                    kind,
                    status,
                    settings,
                    out,
                });
            }
        }
        // Kinds evicted from the breaker: their counts are long past any window the fleet reads.
        // Every kind still registered was just brought to its own object's state.
        let registered: HashSet<&str> = kinds.iter().map(|kind| kind.name()).collect();
        self.kinds.retain(|name, _| registered.contains(&**name));
        batch
    }

    /// Acts on the script's replies, one per kind of the batch. A kind whose reply is an error
    /// is skipped and counted ([`FleetStatus::unsynced`]): its counts stay pending, to be sent
    /// again.
    fn apply(&mut self, batch: &[Entry<C>], replies: Vec<redis::Value>) {
        for (entry, value) in batch.iter().zip(replies) {
            let reply = match redis::from_redis_value::<Vec<i64>>(value) {
                Ok(values) => {
                    Reply::parse(&values).ok_or_else(|| format!("a reply of {} values", values.len()))
                }
                Err(error) => Err(error.to_string()),
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) => {
                    self.status.lock().status.unsynced += 1;
                    // A kind whose keys stay broken fails at every sync: said once a minute.
                    let now = Instant::now();
                    if self
                        .unsynced_said
                        .is_none_or(|said| now.duration_since(said) >= UNSYNCED_SAID_EVERY)
                    {
                        self.unsynced_said = Some(now);
                        tracing::warn!(
                            kind = %entry.status.kind,
                            error,
                            "spikebreaker fleet mode could not sync a kind; its counts are kept for the next sync"
                        );
                    }
                    continue;
                }
            };
            let Some(Tracked { sync, .. }) = self.kinds.get_mut(&*entry.status.kind) else {
                continue;
            };
            let interval_ms = self.config.sync_interval_ms;
            for action in sync.apply(&entry.status, &entry.settings, &entry.out, reply, interval_ms) {
                match action {
                    Action::HoldOpen(ms) => self.breaker.hold_open(&entry.kind, ms),
                    Action::ForceOpen => self.breaker.force_open_held(&entry.kind),
                    Action::Reset => self.breaker.reset_held(&entry.kind),
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
            Ok::<_, redis::RedisError>(conn)
        };
        let limit = self.config.connect_timeout() + self.config.response_timeout() * 2;
        match timeout(limit, attempt).await {
            Ok(Ok(conn)) => {
                self.link = Some(Link { conn, pushes });
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
        set_fleet_degraded(self.breaker.name(), true);
    }

    fn publish_status(&self, round_trip: Option<Duration>) {
        let mut shared = self.status.lock();
        if let Some(round_trip) = round_trip {
            let status = &mut shared.status;
            status.syncs += 1;
            status.last_round_trip = Some(round_trip);
            status.degraded = false;
            // Every sync, so that a recorder's idle timeout never drops the series.
            set_fleet_degraded(self.breaker.name(), false);
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

/// An operator command, as told to the fleet; how many replies it gets.
fn queue_command(
    pipe: &mut redis::Pipeline,
    command: &Command,
    kinds: &HashMap<Arc<str>, Tracked>,
    prefix: &str,
    channel: &str,
    id: &str,
) -> usize {
    match command {
        Command::ForceOpen(kind) => {
            let keys = Keys::new(prefix, kind);
            pipe.cmd("SET").arg(&keys.force).arg(1);
            pipe.cmd("PUBLISH").arg(channel).arg(format!("force:{id}:{kind}"));
        }
        Command::Reset(kind) => {
            let keys = Keys::new(prefix, kind);
            let mut del = redis::cmd("DEL");
            del.arg(&keys.trip).arg(&keys.probe).arg(&keys.force);
            if let Some(tracked) = kinds.get(kind.as_str()) {
                del.arg(tracked.sync.recent_bucket_keys());
            }
            pipe.add_command(del);
            pipe.cmd("PUBLISH").arg(channel).arg(format!("reset:{id}:{kind}"));
        }
    }
    2
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
        Task::new(
            breaker.clone(),
            config.clone(),
            config.client().unwrap(),
            status,
            "test".into(),
        )
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
