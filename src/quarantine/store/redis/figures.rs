//! A summary from each trip's figures, which the scripts keep as items move: a few keys a trip
//! read, not the items; and, once, those figures rebuilt for a store an earlier version wrote.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

use serde::Deserialize;
use serde::de::IntoDeserializer;

use super::RedisStore;
use super::streams::{Unreadable, field};
use crate::quarantine::item::{Filter, Item, ItemState};
use crate::quarantine::store::StoreError;
use crate::quarantine::summary::{Gather, RecipientCount, SAMPLE, Summary, TOP_RECIPIENTS, TripSummary};
use crate::state::Reason;

/// Entries a trip's sample reads at most, per stream: the sample is of the oldest live items the
/// first of them show.
const SAMPLE_READ: usize = 10_000;

/// A trip's figures as the hash keeps them.
type Figures = HashMap<String, String>;

fn number(figures: &Figures, name: &str) -> u64 {
    figures
        .get(name)
        .and_then(|value| value.parse::<i64>().ok())
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

impl RedisStore {
    /// [`Store::summary`](crate::quarantine::Store::summary) from the trips' figures; a filter
    /// naming items reads those items instead (a page at a time).
    pub(super) fn figures(&self, filter: &Filter) -> Result<Summary, StoreError> {
        if !filter.ids.is_empty() || !self.has_figures()? {
            return self.gathered(filter);
        }
        let mut trips = Vec::new();
        let mut unreadable = Unreadable::default();
        for kind in self.kinds(filter)? {
            let numbers: Vec<u64> = match filter.trip {
                Some(trip) => vec![trip],
                None => {
                    let key = self.keys.trips(&kind);
                    let members: Vec<String> = self.run(|c| redis::cmd("SMEMBERS").arg(&key).query(c))?;
                    let mut numbers: Vec<u64> = members.iter().filter_map(|m| m.parse().ok()).collect();
                    numbers.sort_unstable();
                    numbers
                }
            };
            if numbers.is_empty() {
                continue;
            }
            let sending = self.sending(&kind, &mut unreadable)?;
            for trip in numbers {
                if let Some(summary) = self.trip_summary(&kind, trip, &sending)? {
                    trips.push(summary);
                }
            }
        }
        // Approved entries a claim could not read, set aside in the held streams.
        if filter.trip.is_none() {
            for entry in self.set_aside(filter)? {
                let why = field(&entry, "unreadable").unwrap_or_default().to_owned();
                unreadable.add(&entry, why);
            }
        }
        unreadable.warn(self);
        Ok(Summary {
            trips,
            unreadable: unreadable.count,
        })
    }

    /// Whether the store keeps trips' figures (a store an earlier version wrote, until rebuilt,
    /// does not).
    fn has_figures(&self) -> Result<bool, StoreError> {
        let layout = self.keys.of("layout");
        self.run(|c| redis::cmd("EXISTS").arg(&layout).query(c))
    }

    /// A summary gathered from the items `filter` names, read a page at a time.
    fn gathered(&self, filter: &Filter) -> Result<Summary, StoreError> {
        let mut gather = Gather::default();
        let unreadable = self.scan(filter, true, true, |item| gather.add(&item))?;
        gather.unreadable(unreadable.count);
        unreadable.warn(self);
        gather.finish(|kind, trip| self.sample(kind, trip, None))
    }

    /// Per trip of `kind`, its items a releaser holds now.
    fn sending(&self, kind: &str, unreadable: &mut Unreadable) -> Result<HashMap<u64, u64>, StoreError> {
        let pending = self.pending(kind)?;
        let mut sending = HashMap::new();
        if pending.is_empty() {
            return Ok(sending);
        }
        let stream = self.keys.release(kind);
        let mut pipe = redis::pipe();
        for id in &pending {
            pipe.cmd("XRANGE").arg(&stream).arg(id).arg(id);
        }
        let entries: Vec<Vec<super::Entry>> = self.run(|c| pipe.query(c))?;
        for entry in entries.into_iter().flatten() {
            match Self::parse(&entry) {
                Ok(item) => *sending.entry(item.trip).or_default() += 1,
                Err(why) => unreadable.add(&entry, why),
            }
        }
        Ok(sending)
    }

    /// One trip's summary from its figures, or `None` if it has none (forgotten: its key
    /// expired, and it leaves the kind's set of trips).
    fn trip_summary(
        &self,
        kind: &str,
        trip: u64,
        sending: &HashMap<u64, u64>,
    ) -> Result<Option<TripSummary>, StoreError> {
        let figures_key = format!("{}{trip}", self.keys.trip_prefix(kind));
        let recipients_key = format!("{}{trip}", self.keys.recipients_prefix(kind));
        let (figures, recipients, top): (Figures, u64, Vec<(String, f64)>) = self.run(|c| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(&figures_key)
                .cmd("ZCARD")
                .arg(&recipients_key)
                .cmd("ZREVRANGE")
                .arg(&recipients_key)
                .arg(0)
                .arg(TOP_RECIPIENTS - 1)
                .arg("WITHSCORES")
                .query(c)
        })?;
        if figures.is_empty() {
            let trips = self.keys.trips(kind);
            self.run(|c| redis::cmd("SREM").arg(&trips).arg(trip).exec(c))?;
            return Ok(None);
        }
        let reason = figures.get("reason").map(String::as_str).unwrap_or_default();
        let Ok(reason) =
            Reason::deserialize(reason.into_deserializer()).map_err(|_: serde::de::value::Error| ())
        else {
            return Ok(None);
        };
        let sending = sending.get(&trip).copied().unwrap_or(0);
        let mut summary = TripSummary::empty(kind, trip, reason);
        summary.held = number(&figures, "held");
        summary.in_doubt = number(&figures, "in_doubt");
        summary.approved = number(&figures, "approved").saturating_sub(sending);
        summary.sending = sending;
        summary.released = number(&figures, "released");
        summary.discarded = number(&figures, "discarded");
        summary.first_held_ms = number(&figures, "first_held");
        summary.last_held_ms = number(&figures, "last_held");
        summary.recipients = recipients;
        summary.top_recipients = self.top_recipients(&recipients_key, top)?;
        summary.sample = self.sample(kind, trip, figures.get("first_entry").map(String::as_str))?;
        Ok(Some(summary))
    }

    /// The trip's most frequent recipients, most first, ties by name: the sorted set orders ties
    /// by name the other way, so the ties at the last place are read again in name order.
    fn top_recipients(&self, key: &str, top: Vec<(String, f64)>) -> Result<Vec<RecipientCount>, StoreError> {
        let count = |score: f64| score.max(0.0) as u64;
        let Some(&(_, last)) = top.last() else {
            return Ok(Vec::new());
        };
        let mut chosen: Vec<RecipientCount> = top
            .iter()
            .filter(|(_, score)| *score > last)
            .map(|(recipient, score)| RecipientCount {
                recipient: recipient.clone(),
                items: count(*score),
            })
            .collect();
        chosen.sort_by(|a, b| b.items.cmp(&a.items).then_with(|| a.recipient.cmp(&b.recipient)));
        let room = TOP_RECIPIENTS - chosen.len();
        let ties: Vec<String> = self.run(|c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(key)
                .arg(last)
                .arg(last)
                .arg("LIMIT")
                .arg(0)
                .arg(room)
                .query(c)
        })?;
        chosen.extend(ties.into_iter().map(|recipient| RecipientCount {
            recipient,
            items: count(last),
        }));
        Ok(chosen)
    }

    /// A trip's (up to 3) oldest live items, held first, else approved: the held stream read
    /// from the trip's first hold, then the release stream, each at most [`SAMPLE_READ`] entries.
    pub(super) fn sample(&self, kind: &str, trip: u64, first: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut sample = Vec::new();
        self.take_sample(
            &self.keys.held(kind),
            first.unwrap_or("-"),
            trip,
            &HashSet::new(),
            &mut sample,
        )?;
        if sample.len() < SAMPLE {
            let sending: HashSet<String> = self.pending(kind)?.into_iter().collect();
            self.take_sample(&self.keys.release(kind), "-", trip, &sending, &mut sample)?;
        }
        Ok(sample)
    }

    /// Adds to `sample` the items of `trip` in `stream` from `from`, not being sent, until it
    /// has [`SAMPLE`] or [`SAMPLE_READ`] entries were read.
    fn take_sample(
        &self,
        stream: &str,
        from: &str,
        trip: u64,
        sending: &HashSet<String>,
        sample: &mut Vec<Item>,
    ) -> Result<(), StoreError> {
        let mut read = 0;
        self.each_entry(stream, from, None, |entry| {
            read += 1;
            if let Ok(item) = Self::parse(&entry) {
                if item.trip == trip && !sending.contains(&entry.0) {
                    sample.push(item);
                }
            }
            Ok(if sample.len() >= SAMPLE || read >= SAMPLE_READ {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
    }

    /// Gives a store an earlier version wrote its trips' figures, once, reading every item: the
    /// first instance to open it does (the others go on meanwhile, their summaries read the items
    /// until it is done). A store without items is marked at once.
    pub(super) fn rebuild_figures(&self) -> Result<(), StoreError> {
        let (layout, seq, rebuilding) = (
            self.keys.of("layout"),
            self.keys.of("seq"),
            self.keys.of("rebuilding"),
        );
        let (has_layout, has_items): (bool, bool) = self.run(|c| {
            redis::pipe()
                .cmd("EXISTS")
                .arg(&layout)
                .cmd("EXISTS")
                .arg(&seq)
                .query(c)
        })?;
        if has_layout {
            return Ok(());
        }
        if !has_items {
            return self.run(|c| redis::cmd("SET").arg(&layout).arg(2).arg("NX").exec(c));
        }
        let mine: bool = self.run(|c| {
            redis::cmd("SET")
                .arg(&rebuilding)
                .arg(&self.id)
                .arg("NX")
                .arg("PX")
                .arg(600_000)
                .query::<Option<String>>(c)
                .map(|set| set.is_some())
        })?;
        if !mine {
            return Ok(());
        }
        tracing::info!(prefix = %self.keys.base, "rebuilding the quarantine's trip figures, once, for this version");
        let mut figures: BTreeMap<(String, u64), Rebuilt> = BTreeMap::new();
        let mut add = |item: &Item, entry: Option<&str>| {
            let rebuilt = figures
                .entry((item.kind.clone(), item.trip))
                .or_insert_with(|| Rebuilt {
                    reason: item.reason,
                    first_entry: None,
                    counts: BTreeMap::new(),
                    first_held: item.held_at_ms,
                    last_held: item.held_at_ms,
                    recipients: BTreeMap::new(),
                });
            let state = match item.state {
                ItemState::Held => "held",
                ItemState::Approved | ItemState::Sending => "approved",
                ItemState::Released => "released",
                ItemState::Discarded => "discarded",
            };
            *rebuilt.counts.entry(state).or_default() += 1;
            if item.in_doubt && item.state == ItemState::Held {
                *rebuilt.counts.entry("in_doubt").or_default() += 1;
            }
            if item.state == ItemState::Held && rebuilt.first_entry.is_none() {
                rebuilt.first_entry = entry.map(str::to_owned);
            }
            rebuilt.first_held = rebuilt.first_held.min(item.held_at_ms);
            rebuilt.last_held = rebuilt.last_held.max(item.held_at_ms);
            if let Some(recipient) = &item.recipient {
                *rebuilt.recipients.entry(recipient.clone()).or_default() += 1;
            }
        };
        for kind in self.kinds(&Filter::all())? {
            for stream in [self.keys.held(&kind), self.keys.release(&kind)] {
                self.each_entry(&stream, "-", None, |entry| {
                    if let Ok(item) = Self::parse(&entry) {
                        add(&item, Some(&entry.0));
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
            }
        }
        self.each_entry(&self.keys.of("finished"), "-", None, |entry| {
            if let Ok(item) = Self::parse(&entry) {
                add(&item, None);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        for ((kind, trip), rebuilt) in figures {
            let key = format!("{}{trip}", self.keys.trip_prefix(&kind));
            let recipients = format!("{}{trip}", self.keys.recipients_prefix(&kind));
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(&key).arg(&recipients).ignore();
            pipe.cmd("HSET")
                .arg(&key)
                .arg("reason")
                .arg(rebuilt.reason.as_str())
                .arg("first_held")
                .arg(rebuilt.first_held)
                .arg("last_held")
                .arg(rebuilt.last_held)
                .ignore();
            if let Some(first) = &rebuilt.first_entry {
                pipe.cmd("HSET").arg(&key).arg("first_entry").arg(first).ignore();
            }
            for (name, count) in &rebuilt.counts {
                pipe.cmd("HSET").arg(&key).arg(*name).arg(*count).ignore();
            }
            for chunk in rebuilt.recipients.iter().collect::<Vec<_>>().chunks(1_000) {
                let mut add = redis::cmd("ZADD");
                add.arg(&recipients);
                for (recipient, items) in chunk {
                    add.arg(**items).arg(*recipient);
                }
                pipe.add_command(add).ignore();
            }
            pipe.cmd("SADD").arg(self.keys.trips(&kind)).arg(trip).ignore();
            self.run(|c| pipe.exec(c))?;
        }
        self.run(|c| {
            redis::pipe()
                .cmd("SET")
                .arg(&layout)
                .arg(2)
                .ignore()
                .cmd("DEL")
                .arg(&rebuilding)
                .ignore()
                .exec(c)
        })
    }
}

/// A trip's figures as a rebuild counts them.
struct Rebuilt {
    reason: Reason,
    first_entry: Option<String>,
    counts: BTreeMap<&'static str, u64>,
    first_held: u64,
    last_held: u64,
    recipients: BTreeMap<String, u64>,
}
