//! Families: the kinds of one `prefix.*` override, judged together as well as one by one.
//!
//! A bug that sends as many names, each under its own limits (ten to a thousand fixed names, or
//! a new one for every send), multiplies whatever a single kind may send. The kinds a pattern
//! configures are also counted together: their sum has a detector of its own, which learns the
//! sum's week as a kind learns its own, from clean sends only. When the sum goes over its limit,
//! the family is open: its **newcomers** (members with less than a day learned) are refused until
//! the sum is calm again, while its established members go on under their own limits (a runaway
//! among them is caught by its own detector; what the sum catches is what no member's own week
//! knows). The sum is judged only once it has learned a day itself: a fresh breaker, where every
//! member is new, is judged kind by kind.
//!
//! Members add each bucket they close to the sum when they roll it over (cold work, under their
//! own lock, then the family's: never the other way round), so the send path is unchanged and the
//! sum lags a member by at most a bucket. A member's sends count while it is closed and clean,
//! and while the family holds it, so that the family sees what its newcomers still attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::Kind;
use super::machine::Cold;
use crate::clock::Clock;
use crate::config::KindSettings;
use crate::detect::{Detector, Learned, Reading};
use crate::observe::{Event, Window};
use crate::state::{Reason, State};

/// Hours a member must have learned to be established in its family: a day.
const ESTABLISHED_HOURS: u32 = 24;

/// One family: the sum of its members' sends, and whether it holds its newcomers.
#[derive(Debug)]
pub(crate) struct Family {
    name: Arc<str>,
    /// Until when the family holds its newcomers (0: it does not), read without the lock.
    open_until: AtomicU64,
    inner: Mutex<Sum>,
}

#[derive(Debug)]
struct Sum {
    settings: Arc<KindSettings>,
    detector: Detector,
    /// Sends counted in the bucket in progress.
    current: u64,
    /// The bucket in progress saw the family closed.
    clean: bool,
    /// What the last trip was judged on.
    tripped_on: Option<Reading>,
}

/// News of a family, for the member whose roll-over made it to report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum News {
    /// The sum went over its limit: the family holds its newcomers.
    Tripped(Reading),
    /// The sum is calm again: the newcomers are judged on their own.
    Calm(Reading),
}

impl Family {
    fn new(name: Arc<str>, settings: Arc<KindSettings>, learned: Learned, now_ms: u64) -> Self {
        Self {
            name,
            open_until: AtomicU64::new(0),
            inner: Mutex::new(Sum {
                detector: Detector::new(&settings.policy, learned, now_ms),
                settings,
                current: 0,
                clean: true,
                tripped_on: None,
            }),
        }
    }

    /// The family's key, `prefix.*`.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether the family holds its newcomers at `now_ms`.
    pub(crate) fn holds(&self, now_ms: u64) -> bool {
        now_ms < self.open_until.load(Ordering::Relaxed)
    }

    /// Whether the family would hold a member that has learned `hours` and is `warm`.
    pub(crate) fn holds_member(&self, now_ms: u64, warm: bool, hours: u32) -> bool {
        (!warm || hours < ESTABLISHED_HOURS) && self.holds(now_ms)
    }

    /// What the last trip was judged on.
    pub(crate) fn tripped_on(&self) -> Option<Reading> {
        self.inner.lock().tripped_on
    }

    /// A member closed a bucket that began at `t_ms` with `count` sends to count in the sum;
    /// judges the sum at `now_ms`.
    pub(crate) fn add(&self, t_ms: u64, count: u64, now_ms: u64) -> Option<News> {
        let mut sum = self.inner.lock();
        let sum = &mut *sum;
        let policy = &sum.settings.policy;
        if !sum.detector.ring().holds(t_ms) {
            let clean = sum.clean;
            sum.detector.roll(policy, sum.current, t_ms, clean);
            sum.current = 0;
            sum.clean = !self.holds(t_ms);
        }
        sum.current = sum.current.saturating_add(count);
        let judged = sum.detector.is_warm(policy) && sum.detector.learned().hours >= ESTABLISHED_HOURS;
        if self.holds(now_ms) {
            return None;
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            // The hold has run its course: it ends once the sum is calm.
            if sum.detector.is_calm(sum.current) {
                self.open_until.store(0, Ordering::Relaxed);
                sum.detector.rebase_long();
                return Some(News::Calm(sum.detector.nearest(sum.current)));
            }
            self.hold(now_ms.saturating_add(policy.bucket_ms));
            return None;
        }
        let over = sum.detector.over(sum.current).filter(|_| judged)?;
        sum.tripped_on = Some(over);
        sum.clean = false;
        sum.detector.on_trip();
        let until = now_ms.saturating_add(sum.settings.cooldown_ms.max(policy.bucket_ms));
        self.hold(until);
        Some(News::Tripped(over))
    }

    fn hold(&self, until: u64) {
        self.open_until.store(until.max(1), Ordering::Relaxed);
    }

    /// What the sum has learned (snapshots).
    pub(crate) fn learned(&self) -> Learned {
        self.inner.lock().detector.learned().clone()
    }

    /// Replaces what the sum learned (a restored snapshot).
    fn restore(&self, learned: Learned, now_ms: u64) {
        let mut sum = self.inner.lock();
        let sum = &mut *sum;
        sum.detector.restore(&sum.settings.policy, learned, now_ms);
    }

    /// Runs on the family's new settings (a reload).
    fn apply(&self, settings: Arc<KindSettings>, now_ms: u64) {
        let mut sum = self.inner.lock();
        let sum = &mut *sum;
        sum.detector.apply(&sum.settings.policy, &settings.policy, now_ms);
        sum.settings = settings;
    }
}

/// A breaker's families, made as their first member rolls over (or a snapshot restores one).
#[derive(Debug, Default)]
pub(crate) struct Families {
    all: RwLock<Vec<Arc<Family>>>,
}

impl Families {
    /// The family `settings` make their kinds members of, if any, made if new.
    pub(crate) fn of(&self, settings: &Arc<KindSettings>, now_ms: u64) -> Option<Arc<Family>> {
        let key = settings.family.as_ref()?;
        if let Some(found) = self.find(key) {
            return Some(found);
        }
        let mut all = self.all.write();
        if let Some(found) = all.iter().find(|family| family.name == *key) {
            return Some(Arc::clone(found));
        }
        let family = Arc::new(Family::new(
            Arc::clone(key),
            Arc::clone(settings),
            Learned::default(),
            now_ms,
        ));
        all.push(Arc::clone(&family));
        Some(family)
    }

    fn find(&self, key: &str) -> Option<Arc<Family>> {
        self.all
            .read()
            .iter()
            .find(|family| &*family.name == key)
            .cloned()
    }

    /// Every family's key and what its sum learned (snapshots).
    pub(crate) fn learned(&self) -> Vec<(Arc<str>, Learned)> {
        let all = self.all.read().clone();
        all.iter()
            .map(|family| (Arc::clone(&family.name), family.learned()))
            .collect()
    }

    /// Restores what the family `settings` configure learned, making it if new.
    pub(crate) fn restore(&self, settings: &Arc<KindSettings>, learned: Learned, now_ms: u64) {
        if let Some(family) = self.of(settings, now_ms) {
            family.restore(learned, now_ms);
        }
    }

    /// A reload: each family takes its new settings, if the configuration still has it.
    pub(crate) fn apply(&self, settings: impl Fn(&str) -> Option<Arc<KindSettings>>, now_ms: u64) {
        for family in self.all.read().iter() {
            if let Some(settings) = settings(&family.name) {
                family.apply(settings, now_ms);
            }
        }
    }
}

/// What a kind does with its family, under its own lock.
impl<C: Clock> Kind<C> {
    /// The kind's family, if its settings make it a member of one.
    pub(super) fn family(&self, cold: &Cold, now: u64) -> Option<Arc<Family>> {
        cold.settings.family.as_ref()?;
        self.shared().families.of(&cold.settings, now)
    }

    /// The kind's family, if it holds the kind (one of its newcomers) at `now`.
    pub(super) fn held_by(&self, cold: &Cold, now: u64) -> Option<Arc<Family>> {
        let warm = cold.detector.is_warm(&cold.settings.policy);
        let hours = cold.detector.learned().hours;
        self.family(cold, now)
            .filter(|family| family.holds_member(now, warm, hours))
    }

    /// Adds a bucket the kind closed (begun at `t_ms`, `count` sends to count) to its family's
    /// sum, and reports the family's news.
    pub(super) fn feed_family(&self, cold: &Cold, t_ms: u64, count: u64, now: u64, events: &mut Vec<Event>) {
        let Some(family) = self.family(cold, now) else {
            return;
        };
        let (from, to, reason, reading) = match family.add(t_ms, count, now) {
            Some(News::Tripped(reading)) => (State::Closed, State::Open, Reason::Spike, reading),
            Some(News::Calm(reading)) => (State::Open, State::Closed, Reason::Recovered, reading),
            None => return,
        };
        let window = Window::of(&reading);
        events.push(Event::new(
            Arc::clone(family.name()),
            now,
            from,
            to,
            reason,
            window,
            false,
        ));
    }
}
