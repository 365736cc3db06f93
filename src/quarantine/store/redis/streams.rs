//! How items sit in Redis Streams: a stream of held items per kind, a release stream per kind
//! read by the releasers' consumer group, and the finished stream; reading and moving entries.

use super::{GROUP, PAGE, RedisStore, encode};
use crate::quarantine::item::{Filter, Item, ItemId, ItemState};
use crate::quarantine::store::{FINISHED_KEPT, StoreError};

/// A stream entry: its id and fields.
pub(super) type Entry = (String, Vec<String>);
/// A held entry's id and the item it holds.
pub(super) type Held = (String, Item);

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

impl RedisStore {
    /// Every entry of `stream`, page by page.
    pub(super) fn entries(&self, stream: &str) -> Result<Vec<Entry>, StoreError> {
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
    pub(super) fn item(&self, entry: &Entry) -> Result<Item, StoreError> {
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

    /// The entry ids of `kind`'s release stream that a releaser holds.
    pub(super) fn pending(&self, kind: &str) -> Result<Vec<String>, StoreError> {
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
    pub(super) fn scan(
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
    pub(super) fn hold_in_doubt(&self, kind: &str, entry: &Entry) -> Result<(), StoreError> {
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
    pub(super) fn held_matching(&self, filter: &Filter) -> Result<Vec<(String, Vec<Held>)>, StoreError> {
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
    pub(super) fn finish_held(&self, kind: &str, pairs: &[String]) -> Result<u64, StoreError> {
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
    pub(super) fn settle_in_doubt(&self, kind: &str, id: ItemId, finished: &str) -> Result<(), StoreError> {
        for entry in self.entries(&self.keys.held(kind))? {
            let item = self.item(&entry)?;
            if item.id == id && item.in_doubt {
                self.finish_held(kind, &[entry.0.clone(), finished.to_owned()])?;
            }
        }
        Ok(())
    }
}
