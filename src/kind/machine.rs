//! The cold side of a kind, under its lock: the detector's roll-over and learning, the state
//! machine's transitions, and the figures a status or a metric export reads. What operators and
//! fleet mode do to a kind is in [`controls`](super::controls).

use std::sync::Arc;

use super::atomics::Ordering;
use super::{Decision, Kind, Packed};
use crate::clock::Clock;
use crate::config::{KindSettings, Recovery};
use crate::detect::{Detector, Learned, Reading};
use crate::observe::metrics::KindMetrics;
use crate::observe::{Event, KindStatus, Surge, Window};
use crate::state::{Reason, State};

/// A time that never comes: no surge, no newcomer.
pub(super) const NEVER: u64 = u64::MAX;

/// A closed, unforced kind as eviction sees it ([`Kind::standing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Standing {
    /// How long since the kind was last sent (to the start of the bucket of its last send).
    pub(crate) idle_ms: u64,
    /// Whether it is warm (its warm-up is over).
    pub(crate) learned: bool,
}

/// The state behind the kind's lock.
#[derive(Debug)]
pub(super) struct Cold {
    /// Shared with every kind on the same settings (most kinds run on the defaults).
    pub(super) settings: Arc<KindSettings>,
    pub(super) detector: Detector,
    pub(super) state: Packed,
    pub(super) since_ms: u64,
    /// An operator forced the state: no automatic transition until reset.
    pub(super) forced: bool,
    /// Open: when the cool-down ends (`u64::MAX`: held open); half-open: when the probe ends.
    pub(super) until: u64,
    /// The bucket in progress has seen only closed, unforced traffic.
    pub(super) clean: bool,
    /// Attempts in buckets already rolled into the detector.
    pub(super) attempted_rolled: u64,
    pub(super) trips: u64,
    /// Start of the last bucket rolled out with a send in it (creation time before): how long
    /// the kind has been idle, learned at roll-over at no cost to the send path.
    pub(super) last_send_ms: u64,
    /// What the last trip was judged on.
    pub(super) tripped_on: Option<Reading>,
    /// This open spell has been reported as long (`Reason::StillOpen`).
    pub(super) reported_open: bool,
    /// When the planned surge in force ends (`NEVER`: none); the detector counts down its
    /// sends.
    pub(super) surge_until: u64,
    /// The next of the settings' planned surges to begin.
    pub(super) next_planned: u32,
    /// A surge began where no event could be sent (the kind's creation): report it next.
    pub(super) surge_news: bool,
    /// The kind's counters' handles (its gauges are registered as they are exported).
    pub(super) metrics: KindMetrics,
}

impl Cold {
    /// A closed kind, new at `now`, on `settings` with what it has `learned`.
    pub(super) fn new(settings: Arc<KindSettings>, learned: Learned, now: u64, metrics: KindMetrics) -> Self {
        Self {
            detector: Detector::new(&settings.policy, learned, now),
            state: Packed {
                state: State::Closed,
                reason: Reason::New,
            },
            since_ms: now,
            forced: false,
            until: u64::MAX,
            clean: true,
            attempted_rolled: 0,
            trips: 0,
            last_send_ms: now,
            tripped_on: None,
            reported_open: false,
            surge_until: NEVER,
            next_planned: 0,
            surge_news: false,
            settings,
            metrics,
        }
    }
}

/// Under the lock: begins the planned surge whose time has come (skipping any already over).
/// Whether one began.
fn begin_planned(cold: &mut Cold, now: u64) -> bool {
    let mut began = false;
    while let Some(&planned) = cold
        .settings
        .surges
        .get(cold.next_planned as usize)
        .filter(|planned| planned.from_ms <= now)
    {
        cold.next_planned += 1;
        if now < planned.until_ms {
            cold.surge_until = planned.until_ms;
            cold.detector.set_surge(planned.sends);
            began = true;
        }
    }
    began
}

/// The first of `settings`' planned surges still to begin at `now`, for a kind whose surge in
/// force (if any) ends at `surge_until`: one in progress begins now unless it is that one.
pub(super) fn next_planned(settings: &KindSettings, surge_until: u64, now: u64) -> u32 {
    let surges = &settings.surges;
    let mut next = surges
        .iter()
        .position(|p| p.until_ms > now)
        .unwrap_or(surges.len());
    if surges
        .get(next)
        .is_some_and(|p| p.from_ms <= now && p.until_ms == surge_until)
    {
        next += 1;
    }
    u32::try_from(next).unwrap_or(u32::MAX)
}

impl<C: Clock> Kind<C> {
    /// Publishes a new kind's state to the send path and its figures to the metrics.
    pub(super) fn start(&self) {
        let mut cold = self.cold.lock();
        let now = self.shared().clock.now_ms();
        if !cold.detector.is_warm(&cold.settings.policy) {
            let halvings = self.shared().newcomers.arrive(self.name(), now);
            if halvings > 0 {
                let cold = &mut *cold;
                cold.detector
                    .set_warmup_halvings(&cold.settings.policy, halvings, now);
            }
        }
        cold.surge_news = begin_planned(&mut cold, now);
        self.limits
            .0
            .dry_run
            .store(cold.settings.dry_run, Ordering::Relaxed);
        self.limits.0.status.store(cold.state.pack(), Ordering::Release);
        self.publish(&cold);
        self.export(&mut cold, true);
    }

    /// Under the lock: every window against its limit, tripping if one is crossed.
    pub(super) fn judge(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) -> Decision {
        if cold.state.state == State::Open {
            return self.refuse(cold.state.reason);
        }
        if cold.forced {
            return Decision::Allowed;
        }
        if let Some(family) = self.held_by(cold, now) {
            let held = family.tripped_on();
            let reading = held.unwrap_or_else(|| cold.detector.nearest(self.current(cold)));
            self.transition(cold, now, State::Open, Reason::Family, Some(&reading), events);
            return self.refuse(Reason::Family);
        }
        let Some(over) = cold.detector.over(self.current(cold)) else {
            self.publish(cold);
            return Decision::Allowed;
        };
        let reason = if cold.state.state == State::HalfOpen {
            Reason::ProbeFailed
        } else {
            Reason::from(over.limit.bound)
        };
        cold.tripped_on = Some(over);
        if over.limit.bound == crate::detect::Bound::Warmup {
            self.shared().newcomers.tripped(self.name(), now);
        }
        cold.detector.on_trip();
        self.transition(cold, now, State::Open, reason, Some(&over), events);
        self.refuse(reason)
    }

    /// Under the lock: rolls the windows to `now` and makes the transitions that are due.
    pub(super) fn advance(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) {
        if !cold.detector.ring().holds(now) {
            let bucket_start = cold.detector.ring().bucket_start();
            let count = self.take_count(cold);
            // The family counts what the kind sent clean, and what it attempts while held.
            let counted = cold.clean || cold.state.reason == Reason::Family;
            cold.detector.roll(&cold.settings.policy, count, now, cold.clean);
            self.feed_family(cold, bucket_start, if counted { count } else { 0 }, now, events);
            cold.clean = cold.state.state == State::Closed && !cold.forced;
        }
        if now >= cold.surge_until {
            self.end_surge(cold, now, events);
        }
        if begin_planned(cold, now) || cold.surge_news {
            cold.surge_news = false;
            self.report(cold, now, Reason::Surge, events);
        }
        if !cold.forced {
            match cold.state.state {
                State::Open if cold.settings.recovery == Recovery::Auto && now >= cold.until => {
                    self.try_recover(cold, now, events);
                }
                State::HalfOpen if now >= cold.until => {
                    self.transition(cold, now, State::Closed, Reason::Recovered, None, events);
                }
                _ => {}
            }
            let open_for = now.saturating_sub(cold.since_ms);
            if cold.state.state == State::Open
                && !cold.reported_open
                && open_for >= cold.settings.open_alert_ms
            {
                cold.reported_open = true;
                self.report(cold, now, Reason::StillOpen, events);
            }
        }
        self.publish(cold);
    }

    /// Under the lock, an open kind whose cool-down has passed: probe if its rate is back within
    /// every limit, otherwise look again next bucket. A kind with nothing learned is judged by
    /// its warm-up ceilings: one that keeps sending above them stays open, however long and
    /// steady, until its rate falls back, an operator relearns it, or the configuration declares
    /// its rate (a runaway that lasts must not become its own normal).
    fn try_recover(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) {
        let policy = &cold.settings.policy;
        // The overflow kind (the one kind that never learns) takes the names a full registry
        // turns away: while a bug is making up names, it stays open.
        let made_up = !policy.learns && self.shared().newcomers.pressed(now);
        let held = self.held_by(cold, now).is_some();
        if made_up || held || !cold.detector.is_calm(self.current(cold)) {
            cold.until = now.saturating_add(policy.bucket_ms);
            return;
        }
        // The trip acted on what the long windows hold: the probe judges what comes next.
        cold.detector.rebase_long();
        cold.until = now.saturating_add(cold.settings.probe_ms);
        self.transition(cold, now, State::HalfOpen, Reason::Cooldown, None, events);
    }

    /// Under the lock: moves the current bucket's count into the rolled total.
    pub(super) fn take_count(&self, cold: &mut Cold) -> u64 {
        let count = self.counters.0.count.swap(0, Ordering::AcqRel);
        cold.attempted_rolled += count;
        if count > 0 {
            cold.last_send_ms = cold.detector.ring().bucket_start();
        }
        count
    }

    /// How the kind stands as a candidate for eviction, if it may be one at all: not forced,
    /// not busy with cold work (the lock is only tried), and closed, or never warm (a name that
    /// tripped its warm-up ceiling and went quiet, as the names a bug makes up do: it has
    /// nothing learned to keep, and a full registry must not fill with them). Its idle time is
    /// what eviction after `evict_idle_secs` reads.
    pub(crate) fn standing(&self, now: u64) -> Option<Standing> {
        let cold = self.cold.try_lock()?;
        let warm = cold.detector.is_warm(&cold.settings.policy);
        if cold.forced || (cold.state.state != State::Closed && warm) {
            return None;
        }
        let last_send = if self.counters.0.count.load(Ordering::Acquire) > 0 {
            cold.detector.ring().bucket_start()
        } else {
            cold.last_send_ms
        };
        Some(Standing {
            idle_ms: now.saturating_sub(last_send),
            learned: warm,
        })
    }

    /// Attempts since the kind was created: rolled buckets and the current one.
    pub(super) fn attempted(&self, cold: &Cold) -> u64 {
        cold.attempted_rolled + self.counters.0.count.load(Ordering::Relaxed)
    }

    /// Attempts in the bucket in progress.
    pub(super) fn current(&self, cold: &Cold) -> u64 {
        let _ = cold; // read under the lock, so that no roll-over moves it meanwhile
        self.counters.0.count.load(Ordering::Relaxed)
    }

    /// Moves the kind to `to` for `reason`; `reading` is what a trip was judged on (otherwise the
    /// event carries the window nearest its limit).
    pub(super) fn transition(
        &self,
        cold: &mut Cold,
        now: u64,
        to: State,
        reason: Reason,
        reading: Option<&Reading>,
        events: &mut Vec<Event>,
    ) {
        let from = cold.state.state;
        cold.state = Packed { state: to, reason };
        if to != State::Closed || cold.forced {
            cold.clean = false;
        }
        if to == State::Open && from != State::Open {
            cold.trips += 1;
            cold.reported_open = false;
            self.limits.0.tripped_at.store(now, Ordering::Relaxed);
        }
        if !(from == State::Open && to == State::Open) {
            cold.since_ms = now;
        }
        if to == State::Open {
            cold.until = if cold.forced || cold.settings.recovery == Recovery::Manual {
                u64::MAX
            } else {
                now.saturating_add(cold.settings.cooldown_ms)
            };
        }
        self.limits.0.status.store(cold.state.pack(), Ordering::Release);
        self.publish(cold);
        let reading = reading
            .copied()
            .unwrap_or_else(|| cold.detector.nearest(self.current(cold)));
        events.push(self.event(from, to, reason, now, Window::of(&reading)));
    }

    /// News that leaves the state as it is: still open, a surge begun or ended.
    pub(super) fn report(&self, cold: &Cold, now: u64, reason: Reason, events: &mut Vec<Event>) {
        let state = cold.state.state;
        let reading = cold.detector.nearest(self.current(cold));
        events.push(self.event(state, state, reason, now, Window::of(&reading)));
    }

    pub(super) fn event(&self, from: State, to: State, reason: Reason, now: u64, window: Window) -> Event {
        let dry_run = self.limits.0.dry_run.load(Ordering::Relaxed);
        Event::new(Arc::clone(self.name()), now, from, to, reason, window, dry_run)
    }

    /// Stores what the send path reads.
    pub(super) fn publish(&self, cold: &Cold) {
        let limits = &self.limits.0;
        let held =
            || cold.settings.family.is_some() && self.held_by(cold, self.shared().clock.now_ms()).is_some();
        let headroom = match cold.state.state {
            State::Open => 0,
            _ if cold.forced => u64::MAX,
            _ if held() => 0,
            _ => cold.detector.headroom(),
        };
        limits.headroom.store(headroom, Ordering::Relaxed);
        limits.open_until.store(cold.until, Ordering::Relaxed);
        let (from, span) = cold.detector.ring().accepts();
        limits.accept_span.store(span, Ordering::Relaxed);
        limits.accept_from.store(from, Ordering::Relaxed);
    }

    /// The kind's figures as they stand under the lock at `now`, without bringing the windows
    /// up to now.
    pub(super) fn figures(&self, cold: &Cold, now: u64) -> KindStatus {
        let attempted = self.attempted(cold);
        let blocked = self.counters.0.blocked.load(Ordering::Relaxed);
        let current = self.current(cold);
        let windows = cold
            .detector
            .readings(current)
            .map(|reading| Window::of(&reading));
        let open = cold.state.state == State::Open;
        KindStatus {
            kind: Arc::clone(self.name()),
            state: cold.state.state,
            reason: cold.state.reason,
            since_ms: cold.since_ms,
            open_for_ms: if open {
                now.saturating_sub(cold.since_ms)
            } else {
                0
            },
            nearest: Window::of(&cold.detector.nearest(current)),
            windows,
            tripped_on: cold.tripped_on.as_ref().map(Window::of),
            warmed_up: cold.detector.is_warm(&cold.settings.policy),
            attempted,
            allowed: attempted.saturating_sub(blocked),
            blocked,
            trips: cold.trips,
            dry_run: self.limits.0.dry_run.load(Ordering::Relaxed),
            forced: cold.forced,
            surge: (cold.surge_until != NEVER).then(|| Surge {
                sends: cold.detector.surge_left(),
                until_ms: cold.surge_until,
            }),
            slices: Vec::new(),
            repeats: None,
        }
    }

    /// Sets the kind's metrics from its own counters: cold work's part, so that the send path
    /// pays nothing for metrics. `allowed` is exported as attempted less blocked, so a send that
    /// another thread is refusing at this instant counts as allowed until it is refused; the
    /// counter cannot go back, and the excess (one such send per thread at most) is absorbed by
    /// the next sends allowed.
    ///
    /// The gauges (state, windows) are registered as they are exported (a kind holds no handles
    /// for them), so they are exported with news (a transition, a surge), on every operator call
    /// and on `refresh`, not at every roll-over.
    pub(super) fn export(&self, cold: &mut Cold, gauges: bool) {
        let blocked = self.counters.0.blocked.load(Ordering::Relaxed);
        let breaker = &self.shared().name;
        cold.metrics
            .export_counts(self.attempted(cold), blocked, cold.trips);
        if gauges {
            let now = self.shared().clock.now_ms();
            KindMetrics::export_gauges(breaker, &self.figures(cold, now));
        }
    }

    /// Runs `f` under the lock after bringing the kind up to now, then emits what happened.
    pub(super) fn cold_op<R>(&self, f: impl FnOnce(&Self, &mut Cold, u64, &mut Vec<Event>) -> R) -> R {
        let now = self.shared().clock.now_ms();
        let mut events = Vec::new();
        let result = {
            let mut cold = self.cold.lock();
            self.advance(&mut cold, now, &mut events);
            let result = f(self, &mut cold, now, &mut events);
            self.export(&mut cold, true);
            result
        };
        self.shared().subscribers.emit(&events);
        result
    }

    /// Runs `f` under the lock without advancing the window or making transitions, so that it
    /// calls no subscriber: safe to call while holding the breaker's configuration lock. The
    /// next send or refresh brings the kind up to now.
    pub(super) fn locked<R>(&self, f: impl FnOnce(&Self, &mut Cold, u64) -> R) -> R {
        let now = self.shared().clock.now_ms();
        let mut cold = self.cold.lock();
        let result = f(self, &mut cold, now);
        self.export(&mut cold, true);
        result
    }

    /// The surge is over: back to the kind's own limits, with the windows' counts forgotten (the
    /// surge's sends were allowed; they must not trip the kind now).
    pub(super) fn end_surge(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) {
        cold.surge_until = NEVER;
        cold.detector.set_surge(0);
        cold.detector.clear();
        self.report(cold, now, Reason::SurgeEnded, events);
    }
}
