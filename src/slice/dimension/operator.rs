//! What an operator, a status and a snapshot do with a dimension: reset one slice, run on new
//! settings, show every tracked value, and keep or restore the shares learned.

use std::sync::Arc;

use super::{Context, Slot, Table};
use crate::observe::Event;
use crate::slice::settings::SliceSettings;
use crate::slice::share::Share;
use crate::slice::slices::hash_of;
use crate::slice::status::{DimensionStatus, SliceStatus};
use crate::state::{Reason, State};

impl Table {
    /// Operator: closes `value`'s slice and forgets its windows' counts (not its share). Whether
    /// the value is tracked.
    pub(in crate::slice) fn reset(&mut self, cx: Context<'_>, value: &str, events: &mut Vec<Event>) -> bool {
        self.advance(cx.now);
        let Some(i) = self.slots.iter().position(|slot| &*slot.value == value) else {
            return false;
        };
        let (windows, share) = self.readings(i, cx.now);
        let slot = &mut self.slots[i];
        slot.windows.clear();
        slot.tripped_this_hour = true;
        let from = slot.state;
        slot.state = State::Closed;
        slot.reason = Reason::Reset;
        slot.since_ms = cx.now;
        slot.epoch = u64::MAX;
        events.push(self.event(cx, i, from, State::Closed, Reason::Reset, windows[0], share));
        true
    }

    /// Runs on new settings, keeping counts and what was learned.
    pub(in crate::slice) fn apply(&mut self, settings: Arc<SliceSettings>) {
        self.tracked = settings.tracks(&self.name);
        for slot in &mut self.slots {
            slot.safe = settings.is_safe(&self.name, &slot.value);
        }
        self.settings = settings;
        while self.slots.len() > self.settings.track {
            let i = self.weakest(0).map_or(self.slots.len() - 1, |(i, _)| i);
            self.evict(i);
        }
        self.epoch += 1;
    }

    /// The dimension as an operator sees it at `now`.
    pub(in crate::slice) fn status(&mut self, now: u64) -> DimensionStatus {
        self.advance(now);
        let at = self.at;
        for slot in &mut self.slots {
            slot.windows.roll_to(at);
        }
        let mut slices: Vec<SliceStatus> = (0..self.slots.len())
            .map(|i| {
                let (windows, share) = self.readings(i, now);
                let slot = &self.slots[i];
                SliceStatus {
                    value: Arc::clone(&slot.value),
                    state: slot.state,
                    reason: slot.reason,
                    since_ms: slot.since_ms,
                    expected_share: share,
                    learned_share: slot.share.is_learned().then_some(f64::from(slot.share.longrun)),
                    windows,
                    tripped_on: slot.tripped_on,
                    safe: slot.safe,
                    attempted: slot.attempted,
                    blocked: slot.blocked,
                    trips: slot.trips,
                }
            })
            .collect();
        slices.sort_by(|a, b| {
            b.windows[1]
                .window_count
                .cmp(&a.windows[1].window_count)
                .then_with(|| a.value.cmp(&b.value))
        });
        DimensionStatus {
            dimension: Arc::clone(&self.name),
            warmed_up: self.is_warm(now),
            attempted: self.attempted,
            blocked: self.blocked,
            trips: self.trips,
            slices,
        }
    }

    /// The counts metrics export: sends, blocked, trips, and the open values.
    pub(in crate::slice) fn counts(&self) -> (u64, u64, u64, Vec<(Arc<str>, bool)>) {
        let tripped = self
            .slots
            .iter()
            .filter(|slot| slot.trips > 0)
            .map(|slot| (Arc::clone(&slot.value), slot.state == State::Open))
            .collect();
        (self.attempted, self.blocked, self.trips, tripped)
    }

    /// What was learned, for a snapshot: each learned value's share.
    pub(in crate::slice) fn learned(&self) -> (u32, Vec<(Arc<str>, Share)>) {
        let shares = self
            .slots
            .iter()
            .filter(|slot| slot.share.is_learned())
            .map(|slot| (Arc::clone(&slot.value), slot.share.clone()))
            .collect();
        (self.hours_learned, shares)
    }

    /// Restores what was learned (a snapshot): the values and their shares, tracked from `now`,
    /// the dimension warm at once if it had learned an hour.
    pub(in crate::slice) fn restore(&mut self, hours: u32, shares: Vec<(Arc<str>, Share)>, now: u64) {
        self.slots.clear();
        self.index.clear();
        self.hours_learned = hours;
        self.born_ms = now.saturating_sub(self.settings.warmup_ms);
        for (value, share) in shares.into_iter().take(self.settings.track) {
            let hash = hash_of(&*value);
            let safe = self.settings.is_safe(&self.name, &value);
            let mut slot = Slot::new(value, hash, self.at, now, safe);
            slot.share = share;
            self.index.insert(hash, self.slots.len() as u16);
            self.slots.push(slot);
        }
        self.epoch += 1;
        self.weakest = None;
    }
}
