//! The cold side of a kind, under its lock: the window's roll-over and learning, the state
//! machine's transitions, the operator's controls, and the figures a status, a metric export or a
//! fleet sync reads.

use std::sync::Arc;

use super::atomics::Ordering;
use super::{Decision, Kind, Packed, Reason, State};
use crate::clock::Clock;
use crate::config::{KindSettings, Recovery};
use crate::detect::{Baseline, Limit, Ring};
use crate::observe::{Event, KindStatus};

/// The state behind the kind's lock.
#[derive(Debug)]
pub(super) struct Cold {
    /// Shared with every kind on the same settings (most kinds run on the defaults).
    settings: Arc<KindSettings>,
    ring: Ring,
    baseline: Baseline,
    threshold: u64,
    /// The limit that sets `threshold`, and so the reason of a trip.
    limit: Limit,
    state: Packed,
    since_ms: u64,
    /// An operator forced the state: no automatic transition until reset.
    forced: bool,
    open_until: u64,
    half_open_until: u64,
    /// The learning window in progress has seen only closed, unforced traffic.
    clean: bool,
    /// Attempts in buckets already rolled into the ring.
    attempted_rolled: u64,
    trips: u64,
    /// Start of the last bucket rolled out with a send in it (creation time before): how long
    /// the kind has been idle, learned at roll-over at no cost to the send path.
    last_send_ms: u64,
}

impl Cold {
    /// A closed kind, new at `now`, on `settings` with `baseline` learned.
    pub(super) fn new(settings: Arc<KindSettings>, baseline: Baseline, now: u64) -> Self {
        let (threshold, limit) = settings.policy.threshold(&baseline);
        Self {
            ring: Ring::new(settings.policy.bucket_ms, now),
            baseline,
            threshold,
            limit,
            state: Packed {
                state: State::Closed,
                reason: Reason::New,
            },
            since_ms: now,
            forced: false,
            open_until: u64::MAX,
            half_open_until: u64::MAX,
            clean: true,
            attempted_rolled: 0,
            trips: 0,
            last_send_ms: now,
            settings,
        }
    }
}

impl<C: Clock> Kind<C> {
    /// Publishes a new kind's state to the send path and its figures to the metrics.
    pub(super) fn start(&self) {
        let cold = self.cold.lock();
        self.limits
            .0
            .dry_run
            .store(cold.settings.dry_run, Ordering::Relaxed);
        self.limits.0.status.store(cold.state.pack(), Ordering::Release);
        self.publish(&cold);
        self.export(&cold);
    }

    /// Under the lock: the window's count against the threshold, tripping if it is crossed.
    pub(super) fn judge(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) -> Decision {
        if cold.state.state == State::Open {
            return self.refuse(cold.state.reason);
        }
        if cold.forced {
            return Decision::Allowed;
        }
        let count = self.window_count(cold);
        if count <= cold.threshold {
            self.publish(cold);
            return Decision::Allowed;
        }
        let reason = if cold.state.state == State::HalfOpen {
            Reason::ProbeFailed
        } else {
            Reason::from(cold.limit)
        };
        self.transition(cold, now, State::Open, reason, events);
        self.refuse(reason)
    }

    /// Under the lock: rolls the window to `now` and makes the transitions that are due.
    pub(super) fn advance(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) {
        if !cold.ring.holds(now) {
            let count = self.take_count(cold);
            if let Some(done) = cold.ring.roll(count, now) {
                let learning = &cold.settings.policy.learning;
                if cold.clean {
                    cold.baseline.learn(done.count, learning);
                    if cold.state.state == State::Closed && !cold.forced {
                        cold.baseline.learn_quiet(done.quiet, learning);
                    }
                }
                cold.clean = cold.state.state == State::Closed && !cold.forced;
                (cold.threshold, cold.limit) = cold.settings.policy.threshold(&cold.baseline);
            }
        }
        if !cold.forced {
            match cold.state.state {
                State::Open if cold.settings.recovery == Recovery::Auto && now >= cold.open_until => {
                    if self.window_count(cold) <= cold.threshold {
                        cold.half_open_until = now.saturating_add(cold.settings.probe_ms);
                        self.transition(cold, now, State::HalfOpen, Reason::Cooldown, events);
                    } else {
                        // Still too busy: look again next bucket.
                        cold.open_until = now.saturating_add(cold.settings.policy.bucket_ms);
                    }
                }
                State::HalfOpen if now >= cold.half_open_until => {
                    self.transition(cold, now, State::Closed, Reason::Recovered, events);
                }
                _ => {}
            }
        }
        self.publish(cold);
    }

    /// Under the lock: moves the current bucket's count into the rolled total.
    fn take_count(&self, cold: &mut Cold) -> u64 {
        let count = self.counters.0.count.swap(0, Ordering::AcqRel);
        cold.attempted_rolled += count;
        if count > 0 {
            cold.last_send_ms = cold.ring.bucket_start();
        }
        count
    }

    /// Whether the kind may be forgotten: closed, not forced, and not sent since `idle_ms`
    /// before `now`. A kind busy with cold work is not idle (the lock is only tried).
    pub(crate) fn is_idle(&self, now: u64, idle_ms: u64) -> bool {
        let Some(cold) = self.cold.try_lock() else {
            return false;
        };
        let last_send = if self.counters.0.count.load(Ordering::Acquire) > 0 {
            cold.ring.bucket_start()
        } else {
            cold.last_send_ms
        };
        cold.state.state == State::Closed && !cold.forced && now.saturating_sub(last_send) >= idle_ms
    }

    /// Attempts since the kind was created: rolled buckets and the current one.
    fn attempted(&self, cold: &Cold) -> u64 {
        cold.attempted_rolled + self.counters.0.count.load(Ordering::Relaxed)
    }

    fn window_count(&self, cold: &Cold) -> u64 {
        cold.ring.previous() + self.counters.0.count.load(Ordering::Relaxed)
    }

    fn transition(&self, cold: &mut Cold, now: u64, to: State, reason: Reason, events: &mut Vec<Event>) {
        let from = cold.state.state;
        cold.state = Packed { state: to, reason };
        cold.since_ms = now;
        if to != State::Closed || cold.forced {
            cold.clean = false;
        }
        if to == State::Open {
            if from != State::Open {
                cold.trips += 1;
                self.limits.0.tripped_at.store(now, Ordering::Relaxed);
            }
            cold.open_until = if cold.forced || cold.settings.recovery == Recovery::Manual {
                u64::MAX
            } else {
                now.saturating_add(cold.settings.cooldown_ms)
            };
        }
        self.limits.0.status.store(cold.state.pack(), Ordering::Release);
        self.publish(cold);
        events.push(Event {
            kind: Arc::clone(&self.name),
            at_ms: now,
            from,
            to,
            reason,
            window_count: self.window_count(cold),
            threshold: cold.threshold,
            baseline: cold.baseline.normal(),
            dry_run: self.limits.0.dry_run.load(Ordering::Relaxed),
        });
    }

    /// Stores what the send path reads.
    fn publish(&self, cold: &Cold) {
        let limits = &self.limits.0;
        let headroom = match cold.state.state {
            State::Open => 0,
            _ if cold.forced => u64::MAX,
            _ => cold.threshold.saturating_sub(cold.ring.previous()),
        };
        limits.headroom.store(headroom, Ordering::Relaxed);
        limits.open_until.store(cold.open_until, Ordering::Relaxed);
        let (from, span) = cold.ring.accepts();
        limits.accept_span.store(span, Ordering::Relaxed);
        limits.accept_from.store(from, Ordering::Relaxed);
    }

    /// The kind's figures as they stand under the lock, without bringing the window up to now.
    fn figures(&self, cold: &Cold) -> KindStatus {
        let attempted = self.attempted(cold);
        let blocked = self.counters.0.blocked.load(Ordering::Relaxed);
        KindStatus {
            kind: Arc::clone(&self.name),
            state: cold.state.state,
            reason: cold.state.reason,
            since_ms: cold.since_ms,
            window_count: self.window_count(cold),
            threshold: cold.threshold,
            baseline: cold.baseline.normal(),
            warmed_up: cold.baseline.is_warm(&cold.settings.policy.learning),
            attempted,
            allowed: attempted.saturating_sub(blocked),
            blocked,
            trips: cold.trips,
            dry_run: self.limits.0.dry_run.load(Ordering::Relaxed),
            forced: cold.forced,
        }
    }

    /// Sets the kind's metrics from its own counters: cold work's part, so that the send path
    /// pays nothing for metrics. `allowed` is exported as attempted less blocked, so a send that
    /// another thread is refusing at this instant counts as allowed until it is refused; the
    /// counter cannot go back, and the excess (one such send per thread at most) is absorbed by
    /// the next sends allowed.
    pub(super) fn export(&self, cold: &Cold) {
        self.metrics.export(&self.figures(cold));
    }

    /// Runs `f` under the lock after bringing the kind up to now, then emits what happened.
    fn cold_op<R>(&self, f: impl FnOnce(&Self, &mut Cold, u64, &mut Vec<Event>) -> R) -> R {
        let now = self.shared.clock.now_ms();
        let mut events = Vec::new();
        let result = {
            let mut cold = self.cold.lock();
            self.advance(&mut cold, now, &mut events);
            let result = f(self, &mut cold, now, &mut events);
            self.export(&cold);
            result
        };
        self.shared.subscribers.emit(&events);
        result
    }

    /// Runs `f` under the lock without advancing the window or making transitions, so that it
    /// calls no subscriber: safe to call while holding the breaker's configuration lock. The
    /// next send or refresh brings the kind up to now.
    fn locked<R>(&self, f: impl FnOnce(&Self, &mut Cold, u64) -> R) -> R {
        let now = self.shared.clock.now_ms();
        let mut cold = self.cold.lock();
        let result = f(self, &mut cold, now);
        self.export(&cold);
        result
    }

    /// Brings the window, any due transition and the metrics up to now, without counting a send.
    pub(crate) fn refresh(&self) {
        self.cold_op(|_, _, _, _| ());
    }

    /// Operator: hold the kind open (`State::Open`) or closed (`State::Closed`) until reset.
    pub(crate) fn force(&self, to: State) {
        let reason = if to == State::Open {
            Reason::ForcedOpen
        } else {
            Reason::ForcedClosed
        };
        self.cold_op(|kind, cold, now, events| {
            cold.forced = true;
            kind.transition(cold, now, to, reason, events);
        });
    }

    /// Operator: back to closed with automatic detection, forgetting the window's counts (not
    /// the learned baseline).
    pub(crate) fn reset(&self) {
        self.cold_op(|kind, cold, now, events| {
            kind.take_count(cold);
            cold.ring.clear();
            cold.forced = false;
            cold.open_until = u64::MAX;
            kind.transition(cold, now, State::Closed, Reason::Reset, events);
            // The learning window in progress saw the trouble that led to the reset.
            cold.clean = false;
        });
    }

    /// Operator: detect and report, but never block (`on`), or enforce again.
    pub(crate) fn set_dry_run(&self, on: bool) {
        self.limits.0.dry_run.store(on, Ordering::Relaxed);
    }

    /// Runs on new settings, keeping counts and the learned baseline. A new window length
    /// restarts the window's counts and rescales the baseline to the new length.
    pub(crate) fn apply(&self, settings: Arc<KindSettings>) {
        self.locked(|kind, cold, now| {
            let old_window = cold.settings.policy.window_ms();
            let policy = &settings.policy;
            if policy.bucket_ms != cold.settings.policy.bucket_ms {
                kind.take_count(cold);
                cold.ring = Ring::new(policy.bucket_ms, now);
                cold.baseline = cold
                    .baseline
                    .rescaled(policy.window_ms() as f64 / old_window as f64);
            }
            if cold.state.state == State::Open && !cold.forced {
                cold.open_until = match settings.recovery {
                    Recovery::Auto => cold.since_ms.saturating_add(settings.cooldown_ms),
                    Recovery::Manual => u64::MAX,
                };
            }
            kind.limits.0.dry_run.store(settings.dry_run, Ordering::Relaxed);
            (cold.threshold, cold.limit) = settings.policy.threshold(&cold.baseline);
            cold.settings = settings;
            kind.publish(cold);
        });
    }

    /// The learned baseline.
    pub(crate) fn baseline(&self) -> Baseline {
        self.cold.lock().baseline
    }

    /// Replaces the learned baseline (a restored snapshot).
    pub(crate) fn restore(&self, baseline: Baseline) {
        self.locked(|kind, cold, _| {
            cold.baseline = baseline;
            (cold.threshold, cold.limit) = cold.settings.policy.threshold(&cold.baseline);
            kind.publish(cold);
        });
    }

    /// Everything an operator wants to see, brought up to now.
    pub(crate) fn status(&self) -> KindStatus {
        self.cold_op(|kind, cold, _, _| kind.figures(cold))
    }
}

/// What fleet mode does with a kind, through the breaker (see `Breaker`'s fleet section).
#[cfg(feature = "redis")]
impl<C: Clock> Kind<C> {
    /// The kind's figures and settings as they stand. Cold: takes the kind's lock, counts
    /// nothing, rolls nothing.
    pub(crate) fn sync_view(&self) -> (KindStatus, Arc<KindSettings>) {
        let cold = self.cold.lock();
        (self.figures(&cold), Arc::clone(&cold.settings))
    }

    /// Opens the kind for the fleet unless an operator forced its state, and keeps it open for
    /// at least `hold_ms` from now (a kind that was closed opens for exactly that long).
    pub(crate) fn hold_open(&self, hold_ms: u64) {
        self.cold_op(|kind, cold, now, events| {
            if cold.forced {
                return;
            }
            let until = now.saturating_add(hold_ms);
            if cold.state.state != State::Open {
                kind.transition(cold, now, State::Open, Reason::Fleet, events);
                if cold.settings.recovery == Recovery::Auto {
                    cold.open_until = until;
                }
            } else if cold.open_until < until {
                cold.open_until = until;
            }
            kind.publish(cold);
        });
    }
}
