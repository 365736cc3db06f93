//! How items sit in Redis Streams: a stream of held items per kind, a release stream per kind
//! read by the releasers' consumer group, and the finished stream; reading them a page at a
//! time, and moving entries.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::{GROUP, PAGE, RedisStore, encode, flag};
use crate::quarantine::item::{Filter, Item, ItemId, ItemState, Query};
use crate::quarantine::store::{FINISHED_KEPT, StoreError};

/// A stream entry: its id and fields.
pub(super) type Entry = (String, Vec<String>);
/// A held entry's id and the item it holds.
pub(super) type Held = (String, Item);

/// Items one script moves at most.
const BATCH: usize = 500;
/// Pending entries of a kind looked at, at most (each releaser holds one at a time).
const PENDING_READ: u32 = 10_000;

pub(super) fn field<'e>(entry: &'e Entry, name: &str) -> Option<&'e str> {
    entry
        .1
        .chunks(2)
        .find(|pair| pair.first().map(String::as_str) == Some(name))
        .and_then(|pair| pair.get(1))
        .map(String::as_str)
}

/// A claim's receipt: the stream entry and the releaser that claimed it (ids hold no space).
pub(super) fn receipt(entry: &str, owner: &str) -> String {
    format!("{entry} {owner}")
}

/// Entries a reading skipped because they do not parse: how many, and the first one's id and why.
#[derive(Debug, Default)]
pub(super) struct Unreadable {
    pub(super) count: u64,
    first: Option<(String, String)>,
}

impl Unreadable {
    pub(super) fn add(&mut self, entry: &Entry, why: String) {
        self.count += 1;
        self.first.get_or_insert_with(|| (entry.0.clone(), why));
    }

    /// Names the first entry skipped, and how many, in the log.
    pub(super) fn warn(&self, store: &RedisStore) {
        if let Some((entry, why)) = &self.first {
            tracing::warn!(
                prefix = %store.keys.base,
                entry,
                entries = self.count,
                "the quarantine skipped entries it cannot read: {why}"
            );
        }
    }
}

impl RedisStore {
    /// Calls `each` with the entries of `stream` after `after` (`-`: from the start), a page at
    /// a time, until it breaks or the stream ends; stops at `until`, if given (inclusive).
    pub(super) fn each_entry(
        &self,
        stream: &str,
        after: &str,
        until: Option<&str>,
        mut each: impl FnMut(Entry) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        let mut from = after.to_owned();
        let until = until.unwrap_or("+");
        loop {
            let page: Vec<Entry> = self.run(|c| {
                redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(&from)
                    .arg(until)
                    .arg("COUNT")
                    .arg(PAGE)
                    .query(c)
            })?;
            let done = page.len() < PAGE;
            if let Some((last, _)) = page.last() {
                from = format!("({last}");
            }
            for entry in page {
                if each(entry)?.is_break() {
                    return Ok(());
                }
            }
            if done {
                return Ok(());
            }
        }
    }

    /// The id of `stream`'s last entry, if any.
    pub(super) fn last_entry(&self, stream: &str) -> Result<Option<String>, StoreError> {
        let last: Vec<Entry> = self.run(|c| {
            redis::cmd("XREVRANGE")
                .arg(stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(c)
        })?;
        Ok(last.into_iter().next().map(|(id, _)| id))
    }

    /// The item an entry holds, numbered from its `id` field if it has one; why not, if it does
    /// not parse.
    pub(super) fn parse(entry: &Entry) -> Result<Item, String> {
        let json = field(entry, "item").ok_or_else(|| "no item".to_owned())?;
        let mut item: Item = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if let Some(id) = field(entry, "id") {
            item.id = id.parse().map_err(|_| format!("bad id {id:?}"))?;
        }
        Ok(item)
    }

    /// The item an entry holds: one that does not parse is an error naming the entry.
    pub(super) fn item(&self, entry: &Entry) -> Result<Item, StoreError> {
        Self::parse(entry).map_err(|message| {
            StoreError::Unavailable(format!("redis: entry {} of the quarantine: {message}", entry.0))
        })
    }

    /// The item an approved entry holds; `None` if it does not parse: then it is taken out of the
    /// release queue, back to the held stream as it was (with why), where summaries count it as
    /// unreadable and the next claim does not meet it again.
    pub(super) fn claimable(&self, kind: &str, entry: &Entry) -> Result<Option<Item>, StoreError> {
        let why = match Self::parse(entry) {
            Ok(item) => return Ok(Some(item)),
            Err(why) => why,
        };
        let (release, held, aside) = (
            self.keys.release(kind),
            self.keys.held(kind),
            self.keys.of("unreadable"),
        );
        let held_as: String = self.run(|c| {
            self.scripts
                .set_aside
                .key(&release)
                .key(&held)
                .key(&aside)
                .arg(&entry.0)
                .arg(kind)
                .arg(format!("unreadable, not released: {why}"))
                .arg(&entry.1)
                .invoke(c)
        })?;
        tracing::warn!(
            prefix = %self.keys.base,
            entry = entry.0,
            held_as,
            kind,
            "the quarantine held again an approved entry it cannot read, and released the next: {why}"
        );
        Ok(None)
    }

    /// Entries a claim set aside (as [`claimable`](Self::claimable) does) still held, of the kind
    /// `filter` names or every kind: the entries themselves, for the log.
    pub(super) fn set_aside(&self, filter: &Filter) -> Result<Vec<Entry>, StoreError> {
        let members: Vec<String> =
            self.run(|c| redis::cmd("SMEMBERS").arg(self.keys.of("unreadable")).query(c))?;
        let mut held = Vec::new();
        for member in members {
            let Some((id, kind)) = member.split_once(' ') else {
                continue;
            };
            if filter.kind.as_ref().is_some_and(|k| k != kind) {
                continue;
            }
            let stream = self.keys.held(kind);
            let found: Vec<Entry> =
                self.run(|c| redis::cmd("XRANGE").arg(&stream).arg(id).arg(id).query(c))?;
            held.extend(found);
        }
        Ok(held)
    }

    /// The kinds `filter` names, or every kind the store has held.
    pub(super) fn kinds(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
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

    /// The entry ids of `kind`'s release stream that a releaser holds (at most 10,000).
    pub(super) fn pending(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let stream = self.keys.release(kind);
        let pending: Vec<(String, String, u64, u64)> = self
            .run(|c| {
                redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(PENDING_READ)
                    .query(c)
            })
            .or_else(|error| match error {
                // No group yet: nothing approved so far.
                StoreError::Unavailable(message) if message.contains("NOGROUP") => Ok(Vec::new()),
                other => Err(other),
            })?;
        Ok(pending.into_iter().map(|(id, ..)| id).collect())
    }

    /// Calls `each` with every readable item `filter` names, live ones (held and release
    /// streams) and finished ones as asked, stream by stream, a page at a time; entries that do
    /// not parse are skipped and counted.
    pub(super) fn scan(
        &self,
        filter: &Filter,
        live: bool,
        finished: bool,
        mut each: impl FnMut(Item),
    ) -> Result<Unreadable, StoreError> {
        let mut unreadable = Unreadable::default();
        if live {
            for kind in self.kinds(filter)? {
                self.each_entry(&self.keys.held(&kind), "-", None, |entry| {
                    read(entry, filter, &[], &mut unreadable, &mut each)
                })?;
                let pending = self.pending(&kind)?;
                self.each_entry(&self.keys.release(&kind), "-", None, |entry| {
                    read(entry, filter, &pending, &mut unreadable, &mut each)
                })?;
            }
        }
        if finished {
            self.each_entry(&self.keys.of("finished"), "-", None, |entry| {
                read(entry, filter, &[], &mut unreadable, &mut each)
            })?;
        }
        Ok(unreadable)
    }

    /// [`Store::items`](crate::quarantine::Store::items): the streams read a page at a time,
    /// only the `limit` lowest ids above `after` kept.
    pub(super) fn page(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        let (live, finished) = match query.state {
            Some(state) => (!state.is_finished(), state.is_finished()),
            None => (true, true),
        };
        let mut kept: BTreeMap<ItemId, Item> = BTreeMap::new();
        let unreadable = self.scan(&query.filter, live, finished, |mut item| {
            if !query.matches(&item) || query.limit == 0 {
                return;
            }
            if kept.len() == query.limit && kept.last_key_value().is_some_and(|(&last, _)| last < item.id) {
                return;
            }
            if !query.notifications {
                item.notification = None;
            }
            kept.insert(item.id, item);
            if kept.len() > query.limit {
                kept.pop_last();
            }
        })?;
        unreadable.warn(self);
        Ok(kept.into_values().collect())
    }

    /// Moves an at-most-once item whose lease ran out back to held, in doubt.
    pub(super) fn hold_in_doubt(&self, kind: &str, entry: &Entry) -> Result<(), StoreError> {
        let mut item = self.item(entry)?;
        item.state = ItemState::Held;
        item.in_doubt = true;
        item.order = None;
        let json = encode(&item)?;
        let (release, held, layout) = (
            self.keys.release(kind),
            self.keys.held(kind),
            self.keys.of("layout"),
        );
        let figures = format!("{}{}", self.keys.trip_prefix(kind), item.trip);
        self.run(|c| {
            self.scripts
                .in_doubt
                .key(&release)
                .key(&held)
                .key(&layout)
                .key(&figures)
                .arg(&entry.0)
                .arg(item.id)
                .arg(&json)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    /// Calls `batch` with the held entries of `kind` that `filter` names, up to 500 at a time,
    /// reading the stream a page at a time up to its last entry when this began (items held
    /// since are not this call's); what the calls returned, summed. Entries that do not parse
    /// are left where they are (and logged).
    pub(super) fn move_held(
        &self,
        kind: &str,
        filter: &Filter,
        mut batch: impl FnMut(&[Held]) -> Result<u64, StoreError>,
    ) -> Result<u64, StoreError> {
        let stream = self.keys.held(kind);
        let Some(last) = self.last_entry(&stream)? else {
            return Ok(0);
        };
        let mut moved = 0;
        let mut matching: Vec<Held> = Vec::new();
        let mut unreadable = Unreadable::default();
        self.each_entry(&stream, "-", Some(&last), |entry| {
            match Self::parse(&entry) {
                Ok(item) if filter.matches(&item) => matching.push((entry.0, item)),
                Ok(_) => {}
                Err(why) => unreadable.add(&entry, why),
            }
            if matching.len() == BATCH {
                moved += batch(&matching)?;
                matching.clear();
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if !matching.is_empty() {
            moved += batch(&matching)?;
        }
        unreadable.warn(self);
        Ok(moved)
    }

    /// Moves held entries to the finished stream, as `state` (`discarded` or `released`):
    /// 4-tuples of (entry id, finished item as JSON, trip, was in doubt).
    pub(super) fn finish_held(&self, kind: &str, state: &str, tuples: &[String]) -> Result<u64, StoreError> {
        let (held, live, finished, layout) = (
            self.keys.held(kind),
            self.keys.of("live"),
            self.keys.of("finished"),
            self.keys.of("layout"),
        );
        let (trips, recipients) = (self.keys.trip_prefix(kind), self.keys.recipients_prefix(kind));
        self.run(|c| {
            self.scripts
                .discard
                .key(&held)
                .key(&live)
                .key(&finished)
                .key(&layout)
                .arg(FINISHED_KEPT)
                .arg(state)
                .arg(&trips)
                .arg(&recipients)
                .arg(tuples)
                .invoke::<u64>(c)
        })
    }

    /// Finds `item` held in doubt (another releaser took over its lease) and records it released.
    pub(super) fn settle_in_doubt(&self, kind: &str, item: &Item, finished: &str) -> Result<(), StoreError> {
        let mut found = None;
        self.each_entry(&self.keys.held(kind), "-", None, |entry| {
            Ok(match Self::parse(&entry) {
                Ok(held) if held.id == item.id && held.in_doubt => {
                    found = Some(entry.0);
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            })
        })?;
        if let Some(entry) = found {
            let tuple = [entry, finished.to_owned(), item.trip.to_string(), flag(true)];
            self.finish_held(kind, "released", &tuple)?;
        }
        Ok(())
    }
}

/// Reads one entry of a scan: its item to `each` if `filter` names it (`Sending` if a releaser
/// holds it), or counted as unreadable.
fn read(
    entry: Entry,
    filter: &Filter,
    sending: &[String],
    unreadable: &mut Unreadable,
    each: &mut impl FnMut(Item),
) -> Result<ControlFlow<()>, StoreError> {
    match RedisStore::parse(&entry) {
        Ok(mut item) => {
            if sending.contains(&entry.0) {
                item.state = ItemState::Sending;
            }
            if filter.matches(&item) {
                each(item);
            }
        }
        Err(why) => unreadable.add(&entry, why),
    }
    Ok(ControlFlow::Continue(()))
}
