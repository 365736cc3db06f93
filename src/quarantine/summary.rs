//! What an operator looks at first: per kind and trip, how many items stand where, when they were
//! held, how many distinct recipients they were for and who got the most, and a sample.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::item::{Item, ItemState};
use crate::state::Reason;

/// How many items the sample of a trip shows.
pub(crate) const SAMPLE: usize = 3;
/// How many of a trip's most frequent recipients are named.
pub(crate) const TOP_RECIPIENTS: usize = 5;

/// Every trip's figures ([`Store::summary`](super::Store::summary)), by kind and then trip.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// One entry per kind and trip, oldest trip first within a kind.
    pub trips: Vec<TripSummary>,
    /// Items the store holds but cannot read (a row or stream entry that does not parse: written
    /// by another version, or edited by hand): left out of the trips above and of every listing,
    /// and named in the store's log, rather than failing the whole answer. The embedded store
    /// counts every such row; the Redis store, whose summary reads each trip's figures rather
    /// than its items, counts those its answer read.
    #[serde(default)]
    pub unreadable: u64,
}

/// One trip of one kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TripSummary {
    /// The kind.
    pub kind: String,
    /// The trip (Unix milliseconds it began).
    pub trip: u64,
    /// Why the kind was open (of the trip's first item).
    pub reason: Reason,
    /// Items held, waiting for an operator (`in_doubt` ones included).
    pub held: u64,
    /// Held items a dead releaser may have sent ([`Delivery::AtMostOnce`](super::Delivery)).
    pub in_doubt: u64,
    /// Items approved for release, not yet claimed.
    pub approved: u64,
    /// Items a releaser is sending.
    pub sending: u64,
    /// Items released.
    pub released: u64,
    /// Items discarded.
    pub discarded: u64,
    /// When its first item was held (Unix milliseconds).
    pub first_held_ms: u64,
    /// When its last item was held.
    pub last_held_ms: u64,
    /// Distinct recipients among its items (items naming none not counted).
    pub recipients: u64,
    /// The (up to 5) recipients with the most items, most first.
    pub top_recipients: Vec<RecipientCount>,
    /// Its (up to 3) oldest live items, notifications included.
    pub sample: Vec<Item>,
}

/// A recipient and how many of a trip's items were for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientCount {
    /// The recipient.
    pub recipient: String,
    /// Items for them.
    pub items: u64,
}

impl TripSummary {
    /// A trip of `kind` with no items counted yet.
    pub(crate) fn empty(kind: &str, trip: u64, reason: Reason) -> Self {
        Self {
            kind: kind.to_owned(),
            trip,
            reason,
            held: 0,
            in_doubt: 0,
            approved: 0,
            sending: 0,
            released: 0,
            discarded: 0,
            first_held_ms: 0,
            last_held_ms: 0,
            recipients: 0,
            top_recipients: Vec::new(),
            sample: Vec::new(),
        }
    }

    fn new(item: &Item) -> Self {
        Self {
            first_held_ms: item.held_at_ms,
            last_held_ms: item.held_at_ms,
            ..Self::empty(&item.kind, item.trip, item.reason)
        }
    }

    fn count(&mut self, item: &Item) {
        let slot = match item.state {
            ItemState::Held => &mut self.held,
            ItemState::Approved => &mut self.approved,
            ItemState::Sending => &mut self.sending,
            ItemState::Released => &mut self.released,
            ItemState::Discarded => &mut self.discarded,
        };
        *slot += 1;
        self.in_doubt += u64::from(item.in_doubt);
        self.first_held_ms = self.first_held_ms.min(item.held_at_ms);
        self.last_held_ms = self.last_held_ms.max(item.held_at_ms);
    }

    /// Live items (held, approved, sending).
    pub fn live(&self) -> u64 {
        self.held + self.approved + self.sending
    }
}

/// A trip's figures as they are gathered.
struct Tally {
    summary: TripSummary,
    recipients: HashMap<String, u64>,
}

/// Figures gathered item by item, for a store that reads its items in one pass.
#[derive(Default)]
pub(crate) struct Gather {
    tallies: BTreeMap<(String, u64), Tally>,
    unreadable: u64,
}

impl Gather {
    /// Counts `item` in its trip.
    pub(crate) fn add(&mut self, item: &Item) {
        let tally = self
            .tallies
            .entry((item.kind.clone(), item.trip))
            .or_insert_with(|| Tally {
                summary: TripSummary::new(item),
                recipients: HashMap::new(),
            });
        tally.summary.count(item);
        if let Some(recipient) = &item.recipient {
            *tally.recipients.entry(recipient.clone()).or_default() += 1;
        }
    }

    /// Counts `n` items the store could not read.
    #[cfg(any(feature = "quarantine", feature = "redis"))]
    pub(crate) fn unreadable(&mut self, n: u64) {
        self.unreadable += n;
    }

    /// The summary, each trip's sample read with `sample` (given the kind and the trip).
    pub(crate) fn finish<E>(
        self,
        mut sample: impl FnMut(&str, u64) -> Result<Vec<Item>, E>,
    ) -> Result<Summary, E> {
        let mut trips = Vec::with_capacity(self.tallies.len());
        for ((kind, trip), tally) in self.tallies {
            let mut summary = tally.summary;
            summary.recipients = tally.recipients.len() as u64;
            summary.top_recipients = top(tally.recipients);
            summary.sample = sample(&kind, trip)?;
            trips.push(summary);
        }
        Ok(Summary {
            trips,
            unreadable: self.unreadable,
        })
    }
}

impl Summary {
    /// Live items in every trip.
    pub fn live(&self) -> u64 {
        self.trips.iter().map(TripSummary::live).sum()
    }
}

/// The most frequent recipients, most first (ties by name).
pub(crate) fn top(recipients: HashMap<String, u64>) -> Vec<RecipientCount> {
    let mut counts: Vec<RecipientCount> = recipients
        .into_iter()
        .map(|(recipient, items)| RecipientCount { recipient, items })
        .collect();
    counts.sort_by(|a, b| b.items.cmp(&a.items).then_with(|| a.recipient.cmp(&b.recipient)));
    counts.truncate(TOP_RECIPIENTS);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_recipients_are_the_most_frequent_ties_by_name() {
        let counts: HashMap<String, u64> = [("c", 2), ("a", 5), ("b", 2), ("d", 1), ("e", 1), ("f", 9)]
            .into_iter()
            .map(|(r, n)| (r.to_owned(), n))
            .collect();
        let names: Vec<_> = top(counts).into_iter().map(|c| (c.recipient, c.items)).collect();
        let expected = [("f", 9), ("a", 5), ("b", 2), ("c", 2), ("d", 1)];
        assert_eq!(names, expected.map(|(r, n)| (r.to_owned(), n)).to_vec());
    }
}
