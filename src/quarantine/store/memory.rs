//! [`MemoryStore`]: a quarantine in the process's memory, bounded, lost with the process.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;

use super::{Claim, Claimed, FINISHED_KEPT, Outcome, Store, StoreError, new_store_id};
use crate::clock::unix_ms;
use crate::quarantine::item::{Delivery, Filter, Item, ItemId, ItemState, NewItem, Query, ReleaseOrder};

/// A quarantine kept in memory: for tests, examples, and services that accept losing what it
/// holds when the process stops. At most `max_live` live items; more are refused (and handed
/// back to the caller). It is also the plainest reading of the [`Store`] contract.
///
/// ```
/// use spikebreaker::quarantine::{MemoryStore, Quarantine};
/// let quarantine = Quarantine::new(MemoryStore::new(100_000));
/// assert_eq!(quarantine.summary(&Default::default())?.live(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    id: String,
    max_live: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_id: ItemId,
    live: u64,
    items: BTreeMap<ItemId, Entry>,
    /// Finished items, oldest first, at most [`FINISHED_KEPT`].
    finished: VecDeque<ItemId>,
}

#[derive(Debug)]
struct Entry {
    item: Item,
    lease_until_ms: u64,
    /// The releaser whose claim it is while it is `Sending`.
    owner: String,
}

impl MemoryStore {
    /// An empty store that holds at most `max_live` live items.
    pub fn new(max_live: u64) -> Self {
        Self {
            id: new_store_id(),
            max_live,
            state: Mutex::new(State::default()),
        }
    }
}

impl State {
    fn finish(&mut self, id: ItemId, to: ItemState, note: Option<String>, now: u64) {
        let Some(entry) = self.items.get_mut(&id) else {
            return;
        };
        let item = &mut entry.item;
        if item.state.is_finished() {
            return;
        }
        item.state = to;
        item.note = note.or(item.note.take());
        item.finished_at_ms = Some(now);
        item.notification = None;
        self.live -= 1;
        self.finished.push_back(id);
        if self.finished.len() > FINISHED_KEPT {
            if let Some(oldest) = self.finished.pop_front() {
                self.items.remove(&oldest);
            }
        }
    }

    /// Items of `kind` whose lease ran out: claimable again, or held in doubt.
    fn expire(&mut self, kind: &str, now: u64) {
        for entry in self.items.values_mut() {
            let item = &mut entry.item;
            if item.kind != kind || item.state != ItemState::Sending || entry.lease_until_ms > now {
                continue;
            }
            match item.order.map(|o| o.delivery).unwrap_or_default() {
                Delivery::AtLeastOnce => item.state = ItemState::Approved,
                Delivery::AtMostOnce => {
                    item.state = ItemState::Held;
                    item.in_doubt = true;
                    item.order = None;
                }
            }
        }
    }
}

impl Store for MemoryStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn hold(&self, item: NewItem) -> Result<ItemId, StoreError> {
        let mut state = self.state.lock();
        if state.live >= self.max_live {
            return Err(StoreError::Full(format!(
                "{} live items, the bound is {}",
                state.live, self.max_live
            )));
        }
        state.last_id += 1;
        let id = state.last_id;
        state.live += 1;
        let entry = Entry {
            item: Item::held(id, item),
            lease_until_ms: 0,
            owner: String::new(),
        };
        state.items.insert(id, entry);
        Ok(id)
    }

    fn items(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        let state = self.state.lock();
        let from = query.after.map_or(0, |after| after.saturating_add(1));
        Ok(state
            .items
            .range(from..)
            .map(|(_, entry)| &entry.item)
            .filter(|item| query.matches(item))
            .take(query.limit)
            .map(|item| {
                let mut item = item.clone();
                if !query.notifications {
                    item.notification = None;
                }
                item
            })
            .collect())
    }

    fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        let now = unix_ms();
        let mut state = self.state.lock();
        let ids: Vec<ItemId> = state
            .items
            .values()
            .map(|entry| &entry.item)
            .filter(|item| item.state == ItemState::Held && filter.matches(item))
            .map(|item| item.id)
            .collect();
        for &id in &ids {
            state.finish(id, ItemState::Discarded, Some(reason.to_owned()), now);
        }
        Ok(ids.len() as u64)
    }

    fn approve(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError> {
        let mut state = self.state.lock();
        let mut approved = 0;
        for entry in state.items.values_mut() {
            let item = &mut entry.item;
            if item.state == ItemState::Held && filter.matches(item) {
                item.state = ItemState::Approved;
                item.order = Some(*order);
                item.in_doubt = false;
                approved += 1;
            }
        }
        Ok(approved)
    }

    fn releasing(&self) -> Result<Vec<String>, StoreError> {
        let state = self.state.lock();
        let mut kinds: Vec<String> = state
            .items
            .values()
            .filter(|e| matches!(e.item.state, ItemState::Approved | ItemState::Sending))
            .map(|e| e.item.kind.clone())
            .collect();
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }

    fn claim(&self, kind: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = unix_ms();
        let mut state = self.state.lock();
        state.expire(kind, now);
        let mut busy = false;
        for entry in state.items.values_mut() {
            let item = &mut entry.item;
            if item.kind != kind {
                continue;
            }
            match item.state {
                ItemState::Approved => {
                    item.state = ItemState::Sending;
                    item.attempts += 1;
                    entry.lease_until_ms = now.saturating_add(lease.as_millis() as u64);
                    entry.owner = owner.to_owned();
                    return Ok(Claim::Item(Claimed {
                        item: item.clone(),
                        receipt: owner.to_owned(),
                    }));
                }
                ItemState::Sending => busy = true,
                _ => {}
            }
        }
        Ok(if busy { Claim::Busy } else { Claim::Empty })
    }

    fn settle(&self, claimed: &Claimed, outcome: &Outcome) -> Result<(), StoreError> {
        let now = unix_ms();
        let mut state = self.state.lock();
        let id = claimed.item.id;
        match outcome {
            Outcome::Sent => state.finish(id, ItemState::Released, None, now),
            Outcome::Failed(note) => {
                // Only while the claim is still this releaser's (see `Store::settle`).
                if let Some(entry) = state.items.get_mut(&id) {
                    let mine = entry.owner == claimed.receipt;
                    let item = &mut entry.item;
                    if item.state == ItemState::Sending && mine {
                        item.state = ItemState::Held;
                        item.in_doubt = false;
                        item.order = None;
                        item.note = Some(note.clone());
                    }
                }
            }
        }
        Ok(())
    }
}
