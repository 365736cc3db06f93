//! [`RedisStore`]: a quarantine in Redis Streams (feature `redis`), where every instance of a
//! fleet holds its blocked sends, so that operators see, and release, one quarantine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Connection, Script};

use super::{
    Claim, Claimed, DEFAULT_MAX_ITEM_BYTES, FINISHED_KEPT, Outcome, Store, StoreError, check_size,
    new_store_id,
};
use crate::clock::unix_ms;
use crate::quarantine::item::{Delivery, Filter, Item, ItemId, ItemState, NewItem, Query, ReleaseOrder};
use crate::quarantine::summary::Summary;

mod figures;
mod streams;

use streams::{Entry, receipt};

const GROUP: &str = "releasers";
/// Entries read a round trip when scanning a stream.
const PAGE: usize = 1_000;

/// Where a [`RedisStore`] keeps its keys and how much it may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Shared by every instance of one fleet (as `FleetConfig::key_prefix`).
    pub key_prefix: String,
    /// Live items (held, approved, sending) the store may hold; a hold beyond is refused.
    pub max_items: u64,
    /// How long a connect or a reply may take before the call fails.
    pub timeout: Duration,
    /// The largest item a hold takes (notification JSON, kind and recipient, in bytes); a larger
    /// one is refused with [`StoreError::TooLarge`] and handed back, without a round trip.
    pub max_item_bytes: u64,
}

impl Default for RedisOptions {
    /// Prefix `spikebreaker`, a million live items, 1 s, items of 1 MiB.
    fn default() -> Self {
        Self {
            key_prefix: "spikebreaker".to_owned(),
            max_items: 1_000_000,
            timeout: Duration::from_secs(1),
            max_item_bytes: DEFAULT_MAX_ITEM_BYTES,
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
///   name), `…:kinds` and `…:releasing` (sets of kinds);
/// - per kind and trip, its figures (`…:trip:<kind>:<trip>`, a hash: held, approved, released,
///   discarded, in doubt, first and last hold) and its recipients (`…:rcpt:<kind>:<trip>`, a
///   sorted set), kept by the same scripts as the items move, with `…:trips:<kind>` naming the
///   trips: a summary reads these, not the items, whatever the store holds. A trip with nothing
///   live left is forgotten a week later (its items' audit stays in the finished stream). A
///   store written by an earlier version has its figures rebuilt once, by the first instance
///   that opens it (`…:layout` says they are there).
///
/// **Item numbers never repeat**, even when Redis loses its data (a restart without an
/// append-only file, a failover to an empty replica): a store with no `…:seq` numbers its items
/// from Redis's clock in microseconds, so a new item's idempotency key never repeats one given
/// before the loss, and the first hold after it puts the store's name back as the instances
/// running it know it.
///
/// **Listings** (`items`) read a kind's streams a page at a time and keep only the page asked
/// for: their memory is bounded, their time grows with the kind's items. An entry that does not
/// parse (another version's, or written by hand) is skipped and logged.
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
    max_item_bytes: u64,
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

    /// The set of a kind's trips that have figures.
    fn trips(&self, kind: &str) -> String {
        format!("{}:trips:{kind}", self.base)
    }

    /// The prefix of a kind's trips' figures (a hash a trip), followed by the trip.
    fn trip_prefix(&self, kind: &str) -> String {
        format!("{}:trip:{kind}:", self.base)
    }

    /// The prefix of a kind's trips' recipients (a sorted set a trip: recipient, items).
    fn recipients_prefix(&self, kind: &str) -> String {
        format!("{}:rcpt:{kind}:", self.base)
    }
}

struct Scripts {
    hold: Script,
    discard: Script,
    approve: Script,
    settle: Script,
    in_doubt: Script,
    empty: Script,
    set_aside: Script,
}

/// The stores' scripts, each atomic on the server; each file says what its keys and arguments
/// are.
const HOLD: &str = include_str!("hold.lua");
const DISCARD: &str = include_str!("discard.lua");
const APPROVE: &str = include_str!("approve.lua");
const SETTLE: &str = include_str!("settle.lua");
const IN_DOUBT: &str = include_str!("in_doubt.lua");
const EMPTY: &str = include_str!("empty.lua");
const SET_ASIDE: &str = include_str!("set_aside.lua");

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

/// A flag as the scripts read it.
fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
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
            max_item_bytes: options.max_item_bytes,
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
                set_aside: Script::new(SET_ASIDE),
            },
        };
        let id_key = store.keys.of("id");
        let fresh = new_store_id();
        store.id = store.run(|c| {
            redis::cmd("SET").arg(&id_key).arg(&fresh).arg("NX").exec(c)?;
            redis::cmd("GET").arg(&id_key).query(c)
        })?;
        store.warn_if_not_durable();
        store.rebuild_figures()?;
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
}

impl Store for RedisStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn hold(&self, item: NewItem) -> Result<ItemId, StoreError> {
        check_size(&item, self.max_item_bytes)?;
        let kind = item.kind.clone();
        let (trip, reason, held_at, recipient) = (
            item.trip,
            item.reason.as_str(),
            item.held_at_ms,
            item.recipient.clone(),
        );
        let json = encode(&Item::held(0, item))?;
        let (seq, live, kinds, held, id, layout, trips) = (
            self.keys.of("seq"),
            self.keys.of("live"),
            self.keys.of("kinds"),
            self.keys.held(&kind),
            self.keys.of("id"),
            self.keys.of("layout"),
            self.keys.trips(&kind),
        );
        let figures = format!("{}{trip}", self.keys.trip_prefix(&kind));
        let recipients = format!("{}{trip}", self.keys.recipients_prefix(&kind));
        let (written, value): (i64, u64) = self.run(|c| {
            self.scripts
                .hold
                .key(&seq)
                .key(&live)
                .key(&kinds)
                .key(&held)
                .key(&id)
                .key(&layout)
                .key(&trips)
                .key(&figures)
                .key(&recipients)
                .arg(self.max_items)
                .arg(&kind)
                .arg(&json)
                .arg(&self.id)
                .arg(trip)
                .arg(reason)
                .arg(held_at)
                .arg(recipient.as_deref().unwrap_or(""))
                .arg(flag(recipient.is_some()))
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
        self.page(query)
    }

    fn summary(&self, filter: &Filter) -> Result<Summary, StoreError> {
        self.figures(filter)
    }

    fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        let now = unix_ms();
        let mut discarded = 0;
        for kind in self.kinds(filter)? {
            discarded += self.move_held(&kind, filter, |batch| {
                let mut tuples: Vec<String> = Vec::with_capacity(4 * batch.len());
                for (entry, item) in batch {
                    let was_in_doubt = item.in_doubt;
                    let mut item = item.clone();
                    item.state = ItemState::Discarded;
                    item.note = Some(reason.to_owned());
                    item.finished_at_ms = Some(now);
                    item.notification = None;
                    item.in_doubt = false;
                    tuples.extend([
                        entry.clone(),
                        encode(&item)?,
                        item.trip.to_string(),
                        flag(was_in_doubt),
                    ]);
                }
                self.finish_held(&kind, "discarded", &tuples)
            })?;
        }
        Ok(discarded)
    }

    fn approve(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError> {
        let mut approved = 0;
        for kind in self.kinds(filter)? {
            let (held, release, releasing, layout, trips) = (
                self.keys.held(&kind),
                self.keys.release(&kind),
                self.keys.of("releasing"),
                self.keys.of("layout"),
                self.keys.trip_prefix(&kind),
            );
            approved += self.move_held(&kind, filter, |batch| {
                let mut tuples: Vec<String> = Vec::with_capacity(5 * batch.len());
                for (entry, item) in batch {
                    let was_in_doubt = item.in_doubt;
                    let mut item = item.clone();
                    item.state = ItemState::Approved;
                    item.order = Some(*order);
                    item.in_doubt = false;
                    tuples.extend([
                        entry.clone(),
                        item.id.to_string(),
                        encode(&item)?,
                        item.trip.to_string(),
                        flag(was_in_doubt),
                    ]);
                }
                self.run(|c| {
                    self.scripts
                        .approve
                        .key(&held)
                        .key(&release)
                        .key(&releasing)
                        .key(&layout)
                        .arg(&kind)
                        .arg(&trips)
                        .arg(&tuples)
                        .invoke::<u64>(c)
                })
            })?;
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
            let Some(mut item) = self.claimable(kind, &entry)? else {
                continue;
            };
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
        loop {
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
            let Some(entry) = read.into_iter().flatten().flat_map(|(_, entries)| entries).next() else {
                break;
            };
            // One that does not parse is set aside, and the next one read.
            let Some(mut item) = self.claimable(kind, &entry)? else {
                continue;
            };
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
        let (release, live, finished, held, layout) = (
            self.keys.release(kind),
            self.keys.of("live"),
            self.keys.of("finished"),
            self.keys.held(kind),
            self.keys.of("layout"),
        );
        let trip = format!("{}{}", self.keys.trip_prefix(kind), item.trip);
        let recipients = format!("{}{}", self.keys.recipients_prefix(kind), item.trip);
        let (entry, owner) = claimed.receipt.split_once(' ').unwrap_or((&claimed.receipt, ""));
        let settled: i64 = self.run(|c| {
            self.scripts
                .settle
                .key(&release)
                .key(&live)
                .key(&finished)
                .key(&held)
                .key(&layout)
                .key(&trip)
                .key(&recipients)
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
            self.settle_in_doubt(kind, &item, &json)?;
        }
        Ok(())
    }
}
