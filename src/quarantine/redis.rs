//! [`RedisStore`]: a quarantine in Redis Streams (feature `redis`), where every instance of a
//! fleet holds its blocked sends, so that operators see, and release, one quarantine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Connection, Script};

use super::item::{Delivery, Filter, Item, ItemId, ItemState, NewItem, Query, ReleaseOrder};
use super::store::{Claim, Claimed, Outcome, Store, StoreError};
use super::summary::{Gather, Summary};
use super::{FINISHED_KEPT, new_store_id};
use crate::clock::unix_ms;

const GROUP: &str = "releasers";
/// Entries read a round trip when scanning a stream.
const PAGE: usize = 1_000;
/// Items one script moves at most.
const BATCH: usize = 500;

/// Where a [`RedisStore`] keeps its keys and how much it may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Shared by every instance of one fleet (as `FleetConfig::key_prefix`).
    pub key_prefix: String,
    /// Live items (held, approved, sending) the store may hold; a hold beyond is refused.
    pub max_items: u64,
    /// How long a connect or a reply may take before the call fails.
    pub timeout: Duration,
}

impl Default for RedisOptions {
    /// Prefix `spikebreaker`, a million live items, 1 s.
    fn default() -> Self {
        Self {
            key_prefix: "spikebreaker".to_owned(),
            max_items: 1_000_000,
            timeout: Duration::from_secs(1),
        }
    }
}

/// A quarantine in Redis Streams, shared by a fleet.
///
/// Keys (all under one hash tag, `{<key_prefix>:quarantine}`, so each script runs on one node):
/// - `…:held:<kind>`, a stream of held items (fields `id`, `item`: the item as JSON);
/// - `…:release:<kind>`, a stream of approved items read through the consumer group `releasers`:
///   a claim is `XREADGROUP` (one consumer gets each entry), a lease is the entry's idle time in
///   the group's pending list, a lease that ran out is taken over with `XAUTOCLAIM`, a settle is
///   `XACK` and `XDEL`;
/// - `…:finished`, a stream of released and discarded items without their notifications, capped
///   at about [`FINISHED_KEPT`] entries;
/// - `…:seq` (item numbers), `…:live` (live items, against the bound), `…:id` (the store's
///   name), `…:kinds` and `…:releasing` (sets of kinds).
///
/// Every change that moves an item between streams or counts it is one Lua script, so two
/// instances acting at once never send an item twice, except as the release's
/// [`Delivery`] allows when a releaser dies or outlives its lease.
///
/// Holds are one round trip each (a script), made on the thread of the refused send; if Redis is
/// down or slow past `timeout`, the hold is refused and the notification goes back to its
/// caller. When full (`max_items`), holds are refused the same way.
pub struct RedisStore {
    id: String,
    keys: Keys,
    max_items: u64,
    client: redis::Client,
    timeout: Duration,
    /// One connection, reopened after a failure.
    connection: Mutex<Option<Connection>>,
    /// Until when (Unix ms) calls fail at once, the server having been unreachable: so that a
    /// runaway's refusals do not queue up a `timeout` each behind a dead server.
    down_until_ms: AtomicU64,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("id", &self.id)
            .field("prefix", &self.keys.base)
            .finish_non_exhaustive()
    }
}

struct Keys {
    base: String,
}

impl Keys {
    fn of(&self, name: &str) -> String {
        format!("{}:{name}", self.base)
    }

    fn held(&self, kind: &str) -> String {
        format!("{}:held:{kind}", self.base)
    }

    fn release(&self, kind: &str) -> String {
        format!("{}:release:{kind}", self.base)
    }
}

struct Scripts {
    hold: Script,
    discard: Script,
    approve: Script,
    settle: Script,
    in_doubt: Script,
    empty: Script,
}

const HOLD: &str = r"
-- KEYS: seq, live, kinds, held stream. ARGV: max, kind, item json.
local live = tonumber(redis.call('GET', KEYS[2]) or '0')
if live >= tonumber(ARGV[1]) then return {0, live} end
local id = redis.call('INCR', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('XADD', KEYS[4], '*', 'id', id, 'item', ARGV[3])
return {1, id}
";

const DISCARD: &str = r"
-- KEYS: held stream, live, finished. ARGV: kept, then pairs of (entry id, finished json).
local discarded = 0
for i = 2, #ARGV, 2 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('DECR', KEYS[2])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'item', ARGV[i + 1])
    discarded = discarded + 1
  end
end
return discarded
";

const APPROVE: &str = r"
-- KEYS: held stream, release stream, releasing set. ARGV: kind, then triples of
-- (held entry id, item id, approved json).
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], 'releasers', '0', 'MKSTREAM')
local approved = 0
for i = 2, #ARGV, 3 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'id', ARGV[i + 1], 'item', ARGV[i + 2])
    approved = approved + 1
  end
end
if approved > 0 then redis.call('SADD', KEYS[3], ARGV[1]) end
return approved
";

const SETTLE: &str = r"
-- KEYS: release stream, live, finished, held stream. ARGV: entry id, outcome ('sent' or
-- 'failed'), item id, json (finished or held again), kept, the settling releaser.
-- A failure reported after the lease ran out and another releaser claimed the entry is not this
-- releaser's to settle: the entry stays with its new claim.
if ARGV[2] == 'failed' then
  local pending = redis.call('XPENDING', KEYS[1], 'releasers', ARGV[1], ARGV[1], 1)
  if #pending == 0 or pending[1][2] ~= ARGV[6] then return 0 end
end
local acked = redis.call('XACK', KEYS[1], 'releasers', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if acked == 0 then return 0 end
if ARGV[2] == 'sent' then
  redis.call('DECR', KEYS[2])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'item', ARGV[4])
else
  redis.call('XADD', KEYS[4], '*', 'id', ARGV[3], 'item', ARGV[4])
end
return 1
";

const IN_DOUBT: &str = r"
-- KEYS: release stream, held stream. ARGV: entry id, item id, held json.
-- An at-most-once item whose lease ran out: held again, in doubt, unless settled meanwhile.
if redis.call('XACK', KEYS[1], 'releasers', ARGV[1]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'item', ARGV[3])
return 1
";

const EMPTY: &str = r"
-- KEYS: release stream, releasing set. ARGV: kind. Forgets a kind with nothing left to release.
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
";

/// A stream entry: its id and fields.
type Entry = (String, Vec<String>);
/// A held entry's id and the item it holds.
type Held = (String, Item);

fn field<'e>(entry: &'e Entry, name: &str) -> Option<&'e str> {
    entry
        .1
        .chunks(2)
        .find(|pair| pair.first().map(String::as_str) == Some(name))
        .and_then(|pair| pair.get(1))
        .map(String::as_str)
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

fn encode(item: &Item) -> Result<String, StoreError> {
    serde_json::to_string(item)
        .map_err(|error| StoreError::Invalid(format!("cannot encode item {}: {error}", item.id)))
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port`, `redis+unix:///path`), naming the
    /// store on first use.
    pub fn open(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|_| {
            StoreError::Invalid("the Redis url must be redis://host:port or redis+unix:///path".into())
        })?;
        let keys = Keys {
            base: format!("{{{}:quarantine}}", options.key_prefix),
        };
        let mut store = Self {
            id: String::new(),
            keys,
            max_items: options.max_items,
            client,
            timeout: options.timeout,
            connection: Mutex::new(None),
            down_until_ms: AtomicU64::new(0),
            scripts: Scripts {
                hold: Script::new(HOLD),
                discard: Script::new(DISCARD),
                approve: Script::new(APPROVE),
                settle: Script::new(SETTLE),
                in_doubt: Script::new(IN_DOUBT),
                empty: Script::new(EMPTY),
            },
        };
        let id_key = store.keys.of("id");
        let fresh = new_store_id();
        store.id = store.run(|c| {
            redis::cmd("SET").arg(&id_key).arg(&fresh).arg("NX").exec(c)?;
            redis::cmd("GET").arg(&id_key).query(c)
        })?;
        store.warn_if_not_durable();
        Ok(store)
    }

    /// What the server's settings can lose of what it acknowledged, one sentence each: no
    /// append-only file (a restart loses the holds made since its last snapshot), or an eviction
    /// policy that may drop keys under memory pressure. Empty when both are sound, or when the
    /// server refuses `CONFIG GET` (managed services often do: nothing is second-guessed). The
    /// store warns of each when it opens.
    pub fn durability_problems(&self) -> Vec<String> {
        let setting = |name: &str| -> Option<String> {
            let pair: Vec<String> = self
                .run(|c| redis::cmd("CONFIG").arg("GET").arg(name).query(c))
                .ok()?;
            pair.into_iter().nth(1)
        };
        let mut problems = Vec::new();
        if setting("appendonly").as_deref() == Some("no") {
            problems.push(
                "the quarantine's Redis runs without an append-only file (appendonly no): a restart loses the holds made since its last snapshot".to_owned(),
            );
        }
        if let Some(policy) = setting("maxmemory-policy").filter(|p| p != "noeviction") {
            problems.push(format!(
                "the quarantine's Redis may evict keys under memory pressure (maxmemory-policy {policy}): set noeviction so that a full Redis refuses holds rather than dropping held items"
            ));
        }
        problems
    }

    fn warn_if_not_durable(&self) {
        for problem in self.durability_problems() {
            tracing::warn!("{problem}");
        }
    }

    /// Runs `call` on the connection, opening one if needed; a failed call drops it. After the
    /// server was found unreachable, every call fails at once for one `timeout`, then the next
    /// tries again: during an outage a refusal waits for the server once per `timeout`, not once
    /// per refusal.
    fn run<T>(&self, call: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        self.reachable()?;
        let mut slot = self.connection.lock();
        // Queued behind a call that just found the server gone: fail at once too.
        self.reachable()?;
        let unreachable = |error: redis::RedisError| {
            if error.is_io_error()
                || error.is_timeout()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
            {
                let until = unix_ms().saturating_add(self.timeout.as_millis() as u64);
                self.down_until_ms.store(until, Ordering::Relaxed);
            }
            unavailable(error)
        };
        if slot.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(unreachable)?;
            connection
                .set_read_timeout(Some(self.timeout))
                .map_err(unreachable)?;
            connection
                .set_write_timeout(Some(self.timeout))
                .map_err(unreachable)?;
            *slot = Some(connection);
        }
        let Some(connection) = slot.as_mut() else {
            return Err(StoreError::Unavailable("redis: no connection".into()));
        };
        call(connection).map_err(|error| {
            *slot = None;
            unreachable(error)
        })
    }

    /// Fails at once while the server is taken for unreachable.
    fn reachable(&self) -> Result<(), StoreError> {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        let now = unix_ms();
        if now < until {
            return Err(StoreError::Unavailable(format!(
                "redis: unreachable moments ago; trying again in {} ms",
                until - now
            )));
        }
        Ok(())
    }

    /// Every entry of `stream`, page by page.
    fn entries(&self, stream: &str) -> Result<Vec<Entry>, StoreError> {
        let mut all: Vec<Entry> = Vec::new();
        let mut from = "-".to_owned();
        loop {
            let page: Vec<Entry> = self.run(|c| {
                redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(&from)
                    .arg("+")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query(c)
            })?;
            let done = page.len() < PAGE;
            if let Some((last, _)) = page.last() {
                from = format!("({last}");
            }
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// The item an entry holds, numbered from its `id` field if it has one.
    fn item(&self, entry: &Entry) -> Result<Item, StoreError> {
        let bad = |message: String| {
            StoreError::Unavailable(format!("redis: entry {} of the quarantine: {message}", entry.0))
        };
        let json = field(entry, "item").ok_or_else(|| bad("no item".into()))?;
        let mut item: Item = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        if let Some(id) = field(entry, "id") {
            item.id = id.parse().map_err(|_| bad(format!("bad id {id:?}")))?;
        }
        Ok(item)
    }

    /// The kinds `filter` names, or every kind the store has held.
    fn kinds(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        match &filter.kind {
            Some(kind) => Ok(vec![kind.clone()]),
            None => {
                let kinds_key = self.keys.of("kinds");
                let mut kinds: Vec<String> = self.run(|c| redis::cmd("SMEMBERS").arg(&kinds_key).query(c))?;
                kinds.sort();
                Ok(kinds)
            }
        }
    }

    /// The entry ids of `kind`'s release stream that a releaser holds.
    fn pending(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let stream = self.keys.release(kind);
        let pending: Vec<(String, String, u64, u64)> = self
            .run(|c| {
                redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(u32::MAX)
                    .query(c)
            })
            .or_else(|error| match error {
                // No group yet: nothing approved so far.
                StoreError::Unavailable(message) if message.contains("NOGROUP") => Ok(Vec::new()),
                other => Err(other),
            })?;
        Ok(pending.into_iter().map(|(id, ..)| id).collect())
    }

    /// Calls `each` with every item `filter` names, live ones (held and release streams) and
    /// finished ones as asked, stream by stream.
    fn scan(
        &self,
        filter: &Filter,
        live: bool,
        finished: bool,
        mut each: impl FnMut(Item),
    ) -> Result<(), StoreError> {
        if live {
            for kind in self.kinds(filter)? {
                for entry in self.entries(&self.keys.held(&kind))? {
                    let item = self.item(&entry)?;
                    if filter.matches(&item) {
                        each(item);
                    }
                }
                let pending = self.pending(&kind)?;
                for entry in self.entries(&self.keys.release(&kind))? {
                    let mut item = self.item(&entry)?;
                    if pending.contains(&entry.0) {
                        item.state = ItemState::Sending;
                    }
                    if filter.matches(&item) {
                        each(item);
                    }
                }
            }
        }
        if finished {
            for entry in self.entries(&self.keys.of("finished"))? {
                let item = self.item(&entry)?;
                if filter.matches(&item) {
                    each(item);
                }
            }
        }
        Ok(())
    }

    /// Moves an at-most-once item whose lease ran out back to held, in doubt.
    fn hold_in_doubt(&self, kind: &str, entry: &Entry) -> Result<(), StoreError> {
        let mut item = self.item(entry)?;
        item.state = ItemState::Held;
        item.in_doubt = true;
        item.order = None;
        let json = encode(&item)?;
        let (release, held) = (self.keys.release(kind), self.keys.held(kind));
        self.run(|c| {
            self.scripts
                .in_doubt
                .key(&release)
                .key(&held)
                .arg(&entry.0)
                .arg(item.id)
                .arg(&json)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    /// Per kind `filter` names, the held entries it names: entry id and item.
    fn held_matching(&self, filter: &Filter) -> Result<Vec<(String, Vec<Held>)>, StoreError> {
        let mut matching = Vec::new();
        for kind in self.kinds(filter)? {
            let mut held = Vec::new();
            for entry in self.entries(&self.keys.held(&kind))? {
                let item = self.item(&entry)?;
                if filter.matches(&item) {
                    held.push((entry.0, item));
                }
            }
            matching.push((kind, held));
        }
        Ok(matching)
    }

    /// Moves held entries to the finished stream: pairs of (entry id, finished item as JSON).
    fn finish_held(&self, kind: &str, pairs: &[String]) -> Result<u64, StoreError> {
        let (held, live, finished) = (
            self.keys.held(kind),
            self.keys.of("live"),
            self.keys.of("finished"),
        );
        self.run(|c| {
            self.scripts
                .discard
                .key(&held)
                .key(&live)
                .key(&finished)
                .arg(FINISHED_KEPT)
                .arg(pairs)
                .invoke::<u64>(c)
        })
    }

    /// Finds `id` held in doubt (another releaser took over its lease) and records it released.
    fn settle_in_doubt(&self, kind: &str, id: ItemId, finished: &str) -> Result<(), StoreError> {
        for entry in self.entries(&self.keys.held(kind))? {
            let item = self.item(&entry)?;
            if item.id == id && item.in_doubt {
                self.finish_held(kind, &[entry.0.clone(), finished.to_owned()])?;
            }
        }
        Ok(())
    }
}

/// A claim's receipt: the stream entry and the releaser that claimed it (ids hold no space).
fn receipt(entry: &str, owner: &str) -> String {
    format!("{entry} {owner}")
}

impl Store for RedisStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn hold(&self, item: NewItem) -> Result<ItemId, StoreError> {
        let kind = item.kind.clone();
        let json = encode(&Item::held(0, item))?;
        let (seq, live, kinds, held) = (
            self.keys.of("seq"),
            self.keys.of("live"),
            self.keys.of("kinds"),
            self.keys.held(&kind),
        );
        let (written, value): (i64, u64) = self.run(|c| {
            self.scripts
                .hold
                .key(&seq)
                .key(&live)
                .key(&kinds)
                .key(&held)
                .arg(self.max_items)
                .arg(&kind)
                .arg(&json)
                .invoke(c)
        })?;
        if written == 1 {
            Ok(value)
        } else {
            Err(StoreError::Full(format!(
                "{value} live items, the bound is {}",
                self.max_items
            )))
        }
    }

    fn items(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        let (live, finished) = match query.state {
            Some(state) => (!state.is_finished(), state.is_finished()),
            None => (true, true),
        };
        let mut items = Vec::new();
        self.scan(&query.filter, live, finished, |mut item| {
            if query.matches(&item) {
                if !query.notifications {
                    item.notification = None;
                }
                items.push(item);
            }
        })?;
        items.sort_by_key(|item| item.id);
        items.truncate(query.limit);
        Ok(items)
    }

    fn summary(&self, filter: &Filter) -> Result<Summary, StoreError> {
        let mut gather = Gather::default();
        self.scan(filter, true, true, |item| gather.add(&item))?;
        gather.finish(self)
    }

    fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        let now = unix_ms();
        let mut discarded = 0;
        for (kind, held) in self.held_matching(filter)? {
            let mut pairs: Vec<String> = Vec::new();
            for (entry, mut item) in held {
                item.state = ItemState::Discarded;
                item.note = Some(reason.to_owned());
                item.finished_at_ms = Some(now);
                item.notification = None;
                pairs.extend([entry, encode(&item)?]);
            }
            for batch in pairs.chunks(2 * BATCH) {
                discarded += self.finish_held(&kind, batch)?;
            }
        }
        Ok(discarded)
    }

    fn approve(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError> {
        let mut approved = 0;
        for (kind, held) in self.held_matching(filter)? {
            let mut triples: Vec<String> = Vec::new();
            for (entry, mut item) in held {
                item.state = ItemState::Approved;
                item.order = Some(*order);
                item.in_doubt = false;
                triples.extend([entry, item.id.to_string(), encode(&item)?]);
            }
            let (held, release, releasing) = (
                self.keys.held(&kind),
                self.keys.release(&kind),
                self.keys.of("releasing"),
            );
            for batch in triples.chunks(3 * BATCH) {
                approved += self.run(|c| {
                    self.scripts
                        .approve
                        .key(&held)
                        .key(&release)
                        .key(&releasing)
                        .arg(&kind)
                        .arg(batch)
                        .invoke::<u64>(c)
                })?;
            }
        }
        Ok(approved)
    }

    fn releasing(&self) -> Result<Vec<String>, StoreError> {
        let key = self.keys.of("releasing");
        let mut kinds: Vec<String> = self.run(|c| redis::cmd("SMEMBERS").arg(&key).query(c))?;
        kinds.sort();
        Ok(kinds)
    }

    fn claim(&self, kind: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError> {
        let stream = self.keys.release(kind);
        let lease_ms = lease.as_millis().min(u64::MAX as u128) as u64;
        // Leases that ran out: taken over (at least once) or held in doubt (at most once).
        loop {
            let (_, taken, _): (String, Vec<Entry>, Vec<String>) = self.run(|c| {
                redis::cmd("XAUTOCLAIM")
                    .arg(&stream)
                    .arg(GROUP)
                    .arg(owner)
                    .arg(lease_ms)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(1)
                    .query(c)
            })?;
            let Some(entry) = taken.into_iter().next() else {
                break;
            };
            let mut item = self.item(&entry)?;
            match item.order.map(|o| o.delivery).unwrap_or_default() {
                Delivery::AtMostOnce => self.hold_in_doubt(kind, &entry)?,
                Delivery::AtLeastOnce => {
                    item.state = ItemState::Sending;
                    item.attempts += 1;
                    return Ok(Claim::Item(Claimed {
                        item,
                        receipt: receipt(&entry.0, owner),
                    }));
                }
            }
        }
        let read: Option<Vec<(String, Vec<Entry>)>> = self.run(|c| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(owner)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(&stream)
                .arg(">")
                .query(c)
        })?;
        if let Some(entry) = read.into_iter().flatten().flat_map(|(_, entries)| entries).next() {
            let mut item = self.item(&entry)?;
            item.state = ItemState::Sending;
            item.attempts += 1;
            return Ok(Claim::Item(Claimed {
                item,
                receipt: receipt(&entry.0, owner),
            }));
        }
        if !self.pending(kind)?.is_empty() {
            return Ok(Claim::Busy);
        }
        let releasing = self.keys.of("releasing");
        let forgotten: i64 = self.run(|c| {
            self.scripts
                .empty
                .key(&stream)
                .key(&releasing)
                .arg(kind)
                .invoke(c)
        })?;
        Ok(if forgotten == 1 { Claim::Empty } else { Claim::Busy })
    }

    fn settle(&self, claimed: &Claimed, outcome: &Outcome) -> Result<(), StoreError> {
        let kind = claimed.item.kind.as_str();
        let mut item = claimed.item.clone();
        let (tag, json) = match outcome {
            Outcome::Sent => {
                item.state = ItemState::Released;
                item.finished_at_ms = Some(unix_ms());
                item.notification = None;
                ("sent", encode(&item)?)
            }
            Outcome::Failed(note) => {
                item.state = ItemState::Held;
                item.in_doubt = false;
                item.order = None;
                item.note = Some(note.clone());
                ("failed", encode(&item)?)
            }
        };
        let (release, live, finished, held) = (
            self.keys.release(kind),
            self.keys.of("live"),
            self.keys.of("finished"),
            self.keys.held(kind),
        );
        let (entry, owner) = claimed.receipt.split_once(' ').unwrap_or((&claimed.receipt, ""));
        let settled: i64 = self.run(|c| {
            self.scripts
                .settle
                .key(&release)
                .key(&live)
                .key(&finished)
                .key(&held)
                .arg(entry)
                .arg(tag)
                .arg(item.id)
                .arg(&json)
                .arg(FINISHED_KEPT)
                .arg(owner)
                .invoke(c)
        })?;
        if settled == 0 && *outcome == Outcome::Sent {
            // Another releaser found the lease run out and held the item in doubt; it was sent.
            self.settle_in_doubt(kind, item.id, &json)?;
        }
        Ok(())
    }
}
