//! One dimension of a kind (`country`, `tenant`): the values it tracks, each with its windows, its
//! learned share and its state; a sketch of the rest; and the judgement of a send against its
//! slice's limits. Everything here runs under the dimension's own lock; [`operator`] holds what
//! an operator, a status and a snapshot do with it.

mod operator;

use std::collections::HashMap;
use std::sync::Arc;

use super::settings::SliceSettings;
use super::share::{LEARN_FROM_SENDS, Share, TRIPPED_WEIGHT, count_of, slice_limit};
use super::sketch::Sketch;
use super::slices::{SliceId, hash_of};
use super::windows::{HOUR_MS, Position, Windows};
use crate::config::Recovery;
use crate::detect::{Bound, Timescale};
use crate::observe::{Event, Window};
use crate::state::{Reason, State};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An untracked value takes the place of the least busy tracked one once it has been at least
/// this busy lately (sends, halved every minute), and busier than twice that one.
const PROMOTE_AFTER: u32 = 3;
/// A value tracked after its dimension is warm, until it has learned a share of its own (a
/// first-ever country, a tenant of the untracked many that suddenly grows), is expected to hold
/// this share: what a value the tracker did not know may send before its own rule trips it.
pub(super) const NEWCOMER_SHARE: f64 = 0.01;
/// An open slice whose rate is not back within its limits looks again this much later.
const RECHECK_MS: u64 = 5_000;
/// Values remembered after they gave their place up, per value tracked.
const KNOWN_PER_TRACKED: usize = 4;

/// What a send's slice decided.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    Allowed,
    /// The slice is open: refuse the send.
    Refused(SliceRefusal),
}

/// A send refused by one slice of its kind (or by the repeat check).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceRefusal {
    pub(crate) slice: SliceId,
    pub(crate) reason: Reason,
    /// When the slice's trip began (a repeat: when the recipient's window began).
    pub(crate) tripped_at_ms: u64,
    /// When it may let sends through again on its own (`u64::MAX`: only an operator).
    pub(crate) open_until_ms: u64,
}

/// Who is asking, and when: what an event and a metric need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context<'a> {
    pub(crate) kind: &'a Arc<str>,
    pub(crate) now: u64,
    pub(crate) dry_run: bool,
}

/// One tracked value.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    value: Arc<str>,
    hash: u64,
    windows: Windows,
    /// Sends lately, halved every minute (the sketch's measure).
    recent: u32,
    pub(super) share: Share,
    /// Tracked since the start of the clock hour in progress.
    whole_hour: bool,
    /// The hour before, waiting to be learned once this one ends: its sends and whether a trip
    /// touched it, if it was tracked all through it.
    pending: Option<(u32, bool)>,
    tripped_this_hour: bool,
    /// First tracked once its dimension was warm, and not known before: judged by
    /// [`NEWCOMER_SHARE`] until it learns a share. A value tracked while the dimension learned is
    /// not judged until it has learned its own.
    newcomer: bool,
    safe: bool,
    state: State,
    reason: Reason,
    since_ms: u64,
    open_until: u64,
    tripped_on: Option<Window>,
    attempted: u64,
    blocked: u64,
    trips: u64,
    /// Sends the slot may count since `epoch` before it is judged again.
    headroom: u64,
    counted: u64,
    epoch: u64,
}

impl Slot {
    fn new(value: Arc<str>, hash: u64, at: Position, now: u64, safe: bool) -> Self {
        Self {
            value,
            hash,
            windows: Windows::new(at),
            recent: 0,
            share: Share::default(),
            whole_hour: false,
            pending: None,
            tripped_this_hour: false,
            newcomer: false,
            safe,
            state: State::Closed,
            reason: Reason::New,
            since_ms: now,
            open_until: 0,
            tripped_on: None,
            attempted: 0,
            blocked: 0,
            trips: 0,
            headroom: 0,
            counted: 0,
            epoch: u64::MAX,
        }
    }
}

/// A dimension's tracked values, its totals and the sketch of the rest.
#[derive(Debug)]
pub(crate) struct Table {
    pub(super) name: Arc<str>,
    settings: Arc<SliceSettings>,
    /// Whether the settings track this dimension at all.
    tracked: bool,
    at: Position,
    /// Bumped at each bucket and each change of what judges: a slot's headroom is good for its
    /// epoch only.
    epoch: u64,
    hour: u64,
    minute: u64,
    total: Windows,
    total_recent: u32,
    /// The dimension's sends in the hour before, waiting with the slots' to be learned.
    pending_total: Option<u32>,
    pub(super) slots: Vec<Slot>,
    index: FastMap<u64, u16>,
    /// Values that learned a share and gave their place up since, by hash: their overall share
    /// and hours, resumed if they are tracked again (so a value known before is no newcomer).
    /// At most `KNOWN_PER_TRACKED` times `track`.
    known: FastMap<u64, (f32, u32)>,
    sketch: Sketch,
    /// The least busy slot that may give its place up, and how busy it is (`None`: work it out).
    weakest: Option<Option<(usize, u64)>>,
    born_ms: u64,
    pub(super) hours_learned: u32,
    attempted: u64,
    blocked: u64,
    trips: u64,
}

impl Table {
    pub(super) fn new(name: Arc<str>, settings: Arc<SliceSettings>, now: u64) -> Self {
        let at = Position::at(now);
        let tracked = settings.tracks(&name);
        Self {
            name,
            tracked,
            settings,
            at,
            epoch: 0,
            hour: now / HOUR_MS,
            minute: now / 60_000,
            total: Windows::new(at),
            total_recent: 0,
            pending_total: None,
            slots: Vec::new(),
            index: FastMap::default(),
            known: FastMap::default(),
            sketch: Sketch::default(),
            weakest: None,
            born_ms: now,
            hours_learned: 0,
            attempted: 0,
            blocked: 0,
            trips: 0,
        }
    }

    /// Whether sends naming this dimension are tracked.
    pub(super) fn is_tracked(&self) -> bool {
        self.tracked
    }

    /// Counts one send of `value` and decides it; a trip or a recovery is pushed to `events`.
    pub(super) fn check(&mut self, cx: Context<'_>, value: &str, events: &mut Vec<Event>) -> Verdict {
        self.advance(cx.now);
        self.attempted += 1;
        self.total.add(self.at);
        self.total_recent = self.total_recent.saturating_add(1);
        let hash = hash_of(value);
        let found = self
            .index
            .get(&hash)
            .map(|&i| usize::from(i))
            .filter(|&i| &*self.slots[i].value == value);
        let i = match found {
            Some(i) => i,
            None => match self.promote(cx.now, value, hash) {
                Some(i) => i,
                None => return Verdict::Allowed,
            },
        };
        self.judge(cx, i, events)
    }

    /// Moves the dimension on to `now`: rolls its totals, decays what is busy lately, and learns
    /// the hour that waited once the next has ended.
    fn advance(&mut self, now: u64) {
        let at = Position::at(now);
        if at.bucket().saturating_add(12) < self.at.bucket() {
            // The clock jumped back more than a minute: start the windows afresh there.
            self.restart(now);
            return;
        }
        if at.bucket() <= self.at.bucket() {
            return;
        }
        let minute = now / 60_000;
        if minute > self.minute {
            let times = minute - self.minute;
            self.sketch.decay(times);
            let shift = times.min(31) as u32;
            self.total_recent >>= shift;
            for slot in &mut self.slots {
                slot.recent >>= shift;
            }
            self.minute = minute;
        }
        let hour = now / HOUR_MS;
        if hour > self.hour {
            self.close_hour(hour);
        }
        self.at = at;
        self.total.roll_to(at);
        self.epoch += 1;
        self.weakest = None;
    }

    fn restart(&mut self, now: u64) {
        let at = Position::at(now);
        self.at = at;
        self.total.restart(at);
        for slot in &mut self.slots {
            slot.windows.restart(at);
            slot.pending = None;
            slot.whole_hour = false;
        }
        self.pending_total = None;
        self.hour = now / HOUR_MS;
        self.minute = now / 60_000;
        self.epoch += 1;
        self.weakest = None;
    }

    /// The clock hour in progress has ended (`next` has begun): learn each slot's share of the
    /// hour before it, unless a trip touched either; keep this one until the next ends.
    fn close_hour(&mut self, next: u64) {
        let consecutive = next == self.hour + 1;
        let learnable = self
            .pending_total
            .filter(|&total| consecutive && total >= LEARN_FROM_SENDS);
        if let Some(total) = learnable {
            let hour_ms = (self.hour - 1) * HOUR_MS;
            let mut learned = false;
            let factor = self.settings.guards[Timescale::Hour.index()].factor;
            for slot in &mut self.slots {
                let Some((own, tripped)) = slot.pending else {
                    continue;
                };
                let share = f64::from(own) / f64::from(total);
                if !(tripped || slot.tripped_this_hour) {
                    slot.share.learn(hour_ms, share, 1.0);
                    learned = true;
                } else if let Some(judged) = judged_share(slot, hour_ms) {
                    // An hour a trip touched teaches a little, capped at what would not have
                    // tripped, so that a slice that grew for good is followed (and a newcomer that
                    // is legitimate is learned) while a runaway teaches itself slowly.
                    slot.share
                        .learn(hour_ms, share.min(factor * judged), TRIPPED_WEIGHT);
                }
            }
            // Only an hour some value learned from counts: until then every value is new.
            self.hours_learned = self.hours_learned.saturating_add(u32::from(learned));
        }
        self.pending_total = consecutive.then_some(self.total.this_hour);
        self.total.this_hour = 0;
        for slot in &mut self.slots {
            slot.pending =
                (consecutive && slot.whole_hour).then_some((slot.windows.this_hour, slot.tripped_this_hour));
            slot.windows.this_hour = 0;
            slot.whole_hour = true;
            slot.tripped_this_hour = slot.state == State::Open;
        }
        self.hour = next;
    }

    /// Tracks `value`, untracked till now, if it has room or has grown busier than the least busy
    /// tracked value; its place, if it got one.
    fn promote(&mut self, now: u64, value: &str, hash: u64) -> Option<usize> {
        let busy = self.sketch.add(hash);
        if self.slots.len() >= self.settings.track {
            if busy < PROMOTE_AFTER {
                return None;
            }
            let (weakest, weight) = self.weakest(now)?;
            if u64::from(busy) <= 2 * weight {
                return None;
            }
            self.evict(weakest);
        }
        let safe = self.settings.is_safe(&self.name, value);
        let i = self.slots.len();
        let mut slot = Slot::new(Arc::from(value), hash, self.at, now, safe);
        slot.recent = busy;
        match self.known.remove(&hash) {
            Some((longrun, hours)) => slot.share = Share::resumed(longrun, hours),
            None => slot.newcomer = self.is_warm(now),
        }
        self.slots.push(slot);
        self.index.insert(hash, i as u16);
        self.weakest = None;
        Some(i)
    }

    /// The slot that may give its place up and is least busy: not open (or open past its
    /// cool-down, so that runaways which tripped and went quiet do not hold every place), weighed
    /// by what it sent lately or, once learned, by what its share makes it send, whichever is more
    /// (so a big value's quiet hour does not cost it its place).
    fn weakest(&mut self, now: u64) -> Option<(usize, u64)> {
        if let Some(cached) = self.weakest {
            return cached;
        }
        let total = f64::from(self.total_recent);
        let found = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.state != State::Open || now >= slot.open_until)
            .map(|(i, slot)| {
                let learned = count_of(f64::from(slot.share.longrun) * total);
                (i, u64::from(slot.recent).max(learned))
            })
            .min_by_key(|&(_, weight)| weight);
        self.weakest = Some(found);
        found
    }

    fn evict(&mut self, i: usize) {
        let gone = self.slots.swap_remove(i);
        self.index.remove(&gone.hash);
        if gone.share.is_learned() {
            if self.known.len() >= KNOWN_PER_TRACKED * self.settings.track {
                // The least of them is forgotten: a value that small is judged as new again.
                let least = self
                    .known
                    .iter()
                    .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
                    .map(|(&hash, _)| hash);
                if let Some(least) = least {
                    self.known.remove(&least);
                }
            }
            self.known
                .insert(gone.hash, (gone.share.longrun, gone.share.hours));
        }
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.hash, i as u16);
        }
        self.weakest = None;
    }

    /// Whether the dimension's slices are judged: it has learned an hour of shares and for its
    /// warm-up.
    fn is_warm(&self, now: u64) -> bool {
        self.hours_learned >= 1 && now >= self.born_ms.saturating_add(self.settings.warmup_ms)
    }

    /// Slot `i`'s windows against their limits now.
    fn readings(&self, i: usize, now: u64) -> ([Window; 3], f64) {
        let slot = &self.slots[i];
        let share = judged_share(slot, now).filter(|_| self.is_warm(now));
        let windows = Timescale::ALL.map(|timescale| {
            let own = slot.windows.sum(timescale);
            let Some(share) = share.filter(|_| !slot.safe) else {
                return Window {
                    timescale,
                    window_count: own,
                    threshold: u64::MAX,
                    expected: 0.0,
                    bound: Bound::None,
                };
            };
            let rest = self.total.sum(timescale).saturating_sub(own);
            let guards = &self.settings.guards[timescale.index()];
            let (threshold, expected, bound) = slice_limit(timescale, share, own, rest, guards);
            Window {
                timescale,
                window_count: own,
                threshold,
                expected,
                bound,
            }
        });
        (windows, share.unwrap_or(0.0))
    }

    /// Counts a send of tracked slot `i` and decides it.
    fn judge(&mut self, cx: Context<'_>, i: usize, events: &mut Vec<Event>) -> Verdict {
        let at = self.at;
        let epoch = self.epoch;
        let slot = &mut self.slots[i];
        slot.windows.add(at);
        slot.recent = slot.recent.saturating_add(1);
        slot.attempted += 1;
        if slot.state == State::Open {
            let cooling = cx.now < slot.open_until;
            if cooling || !self.try_recover(cx, i, events) {
                return self.refuse(cx, i);
            }
            return Verdict::Allowed;
        }
        if slot.epoch == epoch && slot.counted < slot.headroom {
            slot.counted += 1;
            return Verdict::Allowed;
        }
        let (windows, share) = self.readings(i, cx.now);
        if let Some(over) = windows.iter().find(|window| window.is_over()) {
            let over = *over;
            self.trip(cx, i, over, share, events);
            return self.refuse(cx, i);
        }
        let slot = &mut self.slots[i];
        slot.headroom = windows
            .iter()
            .map(|window| window.threshold.saturating_sub(window.window_count))
            .min()
            .unwrap_or(0);
        slot.counted = 0;
        slot.epoch = epoch;
        Verdict::Allowed
    }

    fn refuse(&mut self, cx: Context<'_>, i: usize) -> Verdict {
        let slot = &mut self.slots[i];
        if !cx.dry_run {
            slot.blocked += 1;
            self.blocked += 1;
        }
        Verdict::Refused(SliceRefusal {
            slice: SliceId {
                dimension: Arc::clone(&self.name),
                value: Arc::clone(&slot.value),
            },
            reason: Reason::Slice,
            tripped_at_ms: slot.since_ms,
            open_until_ms: slot.open_until,
        })
    }

    fn trip(&mut self, cx: Context<'_>, i: usize, over: Window, share: f64, events: &mut Vec<Event>) {
        let cooldown_ms = self.settings.cooldown_ms;
        let manual = self.settings.recovery == Recovery::Manual;
        let slot = &mut self.slots[i];
        slot.state = State::Open;
        slot.reason = Reason::Slice;
        slot.since_ms = cx.now;
        slot.open_until = if manual {
            u64::MAX
        } else {
            cx.now.saturating_add(cooldown_ms)
        };
        slot.tripped_on = Some(over);
        slot.tripped_this_hour = true;
        slot.trips += 1;
        self.trips += 1;
        self.weakest = None;
        events.push(self.event(cx, i, State::Closed, State::Open, Reason::Slice, over, share));
    }

    /// An open slot's cool-down has passed: close it if its rate is back within its limits (the
    /// minute window as it stands, the hour window at the rate of the last ten minutes), else
    /// look again a bucket later. Whether it closed.
    fn try_recover(&mut self, cx: Context<'_>, i: usize, events: &mut Vec<Event>) -> bool {
        let (windows, share) = self.readings(i, cx.now);
        let slot = &self.slots[i];
        let [minute, hour, _] = windows;
        let calm = minute.window_count <= minute.threshold
            && slot.windows.recent_complete(2).saturating_mul(6) <= hour.threshold;
        if !calm {
            self.slots[i].open_until = cx.now.saturating_add(RECHECK_MS);
            return false;
        }
        self.close(cx, i, Reason::Recovered, minute, share, events);
        true
    }

    fn close(
        &mut self,
        cx: Context<'_>,
        i: usize,
        reason: Reason,
        window: Window,
        share: f64,
        events: &mut Vec<Event>,
    ) {
        let slot = &mut self.slots[i];
        slot.state = State::Closed;
        slot.reason = reason;
        slot.since_ms = cx.now;
        slot.epoch = u64::MAX;
        self.weakest = None;
        events.push(self.event(cx, i, State::Open, State::Closed, reason, window, share));
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        cx: Context<'_>,
        i: usize,
        from: State,
        to: State,
        reason: Reason,
        window: Window,
        share: f64,
    ) -> Event {
        let slot = &self.slots[i];
        let mut event = Event::new(Arc::clone(cx.kind), cx.now, from, to, reason, window, cx.dry_run);
        event.slice = Some(SliceId {
            dimension: Arc::clone(&self.name),
            value: Arc::clone(&slot.value),
        });
        event.expected_share = Some(share);
        event
    }
}

/// The share a slot is judged by at `t_ms`: its own once learned, a newcomer's, or none (a value
/// tracked while its dimension learned, until it has learned its own).
fn judged_share(slot: &Slot, t_ms: u64) -> Option<f64> {
    if slot.share.is_learned() {
        Some(slot.share.expected(t_ms))
    } else {
        slot.newcomer.then_some(NEWCOMER_SHARE)
    }
}

#[cfg(test)]
mod tests;
