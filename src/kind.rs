//! One kind's breaker: the lock-free send path, and the cold work (roll-over, learning,
//! transitions, operator controls) done under the kind's own lock.
//!
//! The send path is a clock read, a check that the current bucket still holds that time, one
//! `fetch_add` on the bucket's count and a compare against the `headroom` that cold work left:
//! how many more sends the bucket may take before the window reaches the threshold. Everything
//! else happens only when a send finds its bucket over or the headroom spent; an open kind has
//! no headroom, so its sends take the (still lock-free) refusal path.

use std::sync::Arc;

use crate::baseline::Baseline;
use crate::clock::Clock;
use crate::config::Recovery;
use crate::event::{Event, Subscribers};
use crate::metrics::{Figures, KindMetrics};
use crate::policy::Policy;
use crate::primitive::{AtomicBool, AtomicU32, AtomicU64, Mutex, Ordering};
use crate::state::{Decision, Packed, Reason, State};
use crate::status::KindStatus;
use crate::window::Ring;

/// What every kind of one breaker shares.
#[derive(Debug)]
pub(crate) struct Shared<C> {
    pub(crate) clock: C,
    pub(crate) subscribers: Subscribers,
}

/// Keeps what it holds on a cache line of its own, so that the line every send writes does not
/// evict the line every send only reads.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line<T>(T);

/// Read by every send; written only by cold work.
#[derive(Debug)]
struct Limits<C> {
    /// The breaker's clock, copied here so that a send reads it from the line it reads anyway
    /// instead of chasing `shared` ([`SystemClock`](crate::SystemClock) takes no room at all:
    /// it reads a static counter).
    clock: C,
    /// The times the current bucket takes: `accept_from <= t < accept_from + accept_span`
    /// ([`Ring::accepts`]).
    accept_from: AtomicU64,
    accept_span: AtomicU64,
    /// Sends the current bucket may count before the window reaches the threshold; 0 when open.
    headroom: AtomicU64,
    /// An open kind refuses without the lock until this time.
    open_until: AtomicU64,
    /// [`Packed`] state and reason.
    status: AtomicU32,
    dry_run: AtomicBool,
}

impl<C> Limits<C> {
    fn new(clock: C) -> Self {
        Self {
            clock,
            accept_from: AtomicU64::new(0),
            accept_span: AtomicU64::new(0),
            headroom: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            status: AtomicU32::new(0),
            dry_run: AtomicBool::new(false),
        }
    }
}

/// Written by sends.
#[derive(Debug, Default)]
struct Counters {
    /// Attempts in the current bucket.
    count: AtomicU64,
    /// Attempts refused since the kind was created.
    blocked: AtomicU64,
}

/// The state behind the kind's lock.
#[derive(Debug)]
struct Cold {
    /// Shared with every kind on the same settings (most kinds run on the defaults).
    policy: Arc<Policy>,
    ring: Ring,
    baseline: Baseline,
    threshold: u64,
    /// The limit that sets `threshold`, and so the reason of a trip.
    limit: Reason,
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

/// Where a send left the lock-free path, for [`Kind::check_cold`] to finish it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColdStep {
    /// Time (the reading carried) left the kind's bucket; the send is not counted yet.
    BucketEdge(u64),
    /// The send is counted and found no headroom.
    OverHeadroom(u64),
}

/// A kind as fleet sync sees it.
#[cfg(feature = "redis")]
#[derive(Clone, Debug)]
pub(crate) struct FleetView {
    /// Attempts since the kind was created: only grows.
    pub(crate) attempted: u64,
    pub(crate) state: State,
    pub(crate) reason: Reason,
    pub(crate) trips: u64,
    pub(crate) forced: bool,
    pub(crate) dry_run: bool,
    pub(crate) policy: Policy,
}

/// One kind's breaker.
#[derive(Debug)]
pub(crate) struct Kind<C> {
    limits: Line<Limits<C>>,
    counters: Line<Counters>,
    name: Arc<str>,
    shared: Arc<Shared<C>>,
    cold: Mutex<Cold>,
    /// Exported by cold work only, never by the send path.
    metrics: KindMetrics,
}

impl<C: Clock> Kind<C> {
    pub(crate) fn new(
        name: Arc<str>,
        policy: Arc<Policy>,
        baseline: Baseline,
        shared: Arc<Shared<C>>,
    ) -> Self {
        let now = shared.clock.now_ms();
        let (threshold, limit) = policy.threshold(&baseline);
        let cold = Cold {
            ring: Ring::new(policy.bucket_ms, now),
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
            policy,
        };
        let kind = Self {
            limits: Line(Limits::new(shared.clock.clone())),
            counters: Line::default(),
            metrics: KindMetrics::register(&name),
            name,
            shared,
            cold: Mutex::new(cold),
        };
        {
            let cold = kind.cold.lock();
            kind.limits
                .0
                .dry_run
                .store(cold.policy.dry_run, Ordering::Relaxed);
            kind.limits.0.status.store(cold.state.pack(), Ordering::Release);
            kind.publish(&cold);
            kind.export(&cold);
        }
        kind
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Counts one attempted send and decides it.
    #[inline]
    pub(crate) fn check(&self) -> Decision {
        match self.check_lock_free() {
            Ok(()) => Decision::Allowed,
            Err(step) => self.check_cold(step),
        }
    }

    /// The send path up to where cold work is needed: a clock read, the bucket test, the count
    /// and the headroom compare. `Ok` is an allowed send; a refusal is always cold work's. It
    /// never blocks and never runs user code, so a caller may hold a short lock around it (the
    /// registry's, for a send by name).
    #[inline]
    pub(crate) fn check_lock_free(&self) -> Result<(), ColdStep> {
        let limits = &self.limits.0;
        let now = limits.clock.now_ms();
        let into_bucket = now.wrapping_sub(limits.accept_from.load(Ordering::Relaxed));
        if into_bucket >= limits.accept_span.load(Ordering::Relaxed) {
            return Err(ColdStep::BucketEdge(now));
        }
        self.count(now)
    }

    #[inline]
    fn count(&self, now: u64) -> Result<(), ColdStep> {
        let count = self.counters.0.count.fetch_add(1, Ordering::Relaxed) + 1;
        if count <= self.limits.0.headroom.load(Ordering::Relaxed) {
            return Ok(());
        }
        Err(ColdStep::OverHeadroom(now))
    }

    /// Finishes a send that left the lock-free path. May call subscribers: hold no lock.
    #[cold]
    #[inline(never)]
    pub(crate) fn check_cold(&self, step: ColdStep) -> Decision {
        let now = match step {
            ColdStep::BucketEdge(now) => {
                self.on_bucket_edge(now);
                match self.count(now) {
                    Ok(()) => return Decision::Allowed,
                    Err(_) => now,
                }
            }
            ColdStep::OverHeadroom(now) => now,
        };
        self.over_headroom(now)
    }

    /// The current state, from the word the send path reads.
    pub(crate) fn state(&self) -> State {
        Packed::unpack(self.limits.0.status.load(Ordering::Acquire)).state
    }

    /// Time left the current bucket: roll the window over, unless another thread is already
    /// doing cold work on this kind (then this send counts in the bucket it finds).
    #[cold]
    #[inline(never)]
    fn on_bucket_edge(&self, now: u64) {
        let Some(mut cold) = self.cold.try_lock() else {
            return;
        };
        let mut events = Vec::new();
        self.advance(&mut cold, now, &mut events);
        // This thread's send is not counted yet: it cannot show as allowed before it is decided.
        self.export(&cold);
        drop(cold);
        self.shared.subscribers.emit(&events);
    }

    /// The send found no headroom: the kind is open, or this send may cross the threshold.
    #[cold]
    #[inline(never)]
    fn over_headroom(&self, now: u64) -> Decision {
        let limits = &self.limits.0;
        let status = Packed::unpack(limits.status.load(Ordering::Acquire));
        if status.state == State::Open && now < limits.open_until.load(Ordering::Relaxed) {
            return self.refuse(status.reason);
        }
        let mut events = Vec::new();
        let decision = {
            let mut cold = self.cold.lock();
            self.advance(&mut cold, now, &mut events);
            let decision = self.judge(&mut cold, now, &mut events);
            if !events.is_empty() {
                // After the decision, so that this send counts as what it became.
                self.export(&cold);
            }
            decision
        };
        self.shared.subscribers.emit(&events);
        decision
    }

    fn refuse(&self, reason: Reason) -> Decision {
        if self.limits.0.dry_run.load(Ordering::Relaxed) {
            return Decision::Allowed;
        }
        self.counters.0.blocked.fetch_add(1, Ordering::Relaxed);
        Decision::Blocked(reason)
    }

    /// Under the lock: the window's count against the threshold, tripping if it is crossed.
    fn judge(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) -> Decision {
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
            cold.limit
        };
        self.transition(cold, now, State::Open, reason, events);
        self.refuse(reason)
    }

    /// Under the lock: rolls the window to `now` and makes the transitions that are due.
    fn advance(&self, cold: &mut Cold, now: u64, events: &mut Vec<Event>) {
        if !cold.ring.holds(now) {
            let count = self.take_count(cold);
            if let Some(done) = cold.ring.roll(count, now) {
                if cold.clean {
                    cold.baseline.learn(done.count, &cold.policy);
                    if cold.state.state == State::Closed && !cold.forced {
                        cold.baseline.learn_quiet(done.quiet, &cold.policy);
                    }
                }
                cold.clean = cold.state.state == State::Closed && !cold.forced;
                (cold.threshold, cold.limit) = cold.policy.threshold(&cold.baseline);
            }
        }
        if !cold.forced {
            match cold.state.state {
                State::Open if cold.policy.recovery == Recovery::Auto && now >= cold.open_until => {
                    if self.window_count(cold) <= cold.threshold {
                        cold.half_open_until = now.saturating_add(cold.policy.probe_ms);
                        self.transition(cold, now, State::HalfOpen, Reason::Cooldown, events);
                    } else {
                        // Still too busy: look again next bucket.
                        cold.open_until = now.saturating_add(cold.policy.bucket_ms);
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
            }
            cold.open_until = if cold.forced || cold.policy.recovery == Recovery::Manual {
                u64::MAX
            } else {
                now.saturating_add(cold.policy.cooldown_ms)
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

    /// Sets the kind's metrics from its own counters: cold work's part, so that the send path
    /// pays nothing for metrics. `allowed` is exported as attempted less blocked, so a send that
    /// another thread is refusing at this instant counts as allowed until it is refused; the
    /// counter cannot go back, and the excess (one such send per thread at most) is absorbed by
    /// the next sends allowed.
    fn export(&self, cold: &Cold) {
        self.metrics.export(&Figures {
            attempted: self.attempted(cold),
            blocked: self.counters.0.blocked.load(Ordering::Relaxed),
            trips: cold.trips,
            state: cold.state.state,
            window_count: self.window_count(cold),
            baseline: cold.baseline.normal(),
            threshold: cold.threshold,
        });
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
    pub(crate) fn apply(&self, policy: Arc<Policy>) {
        self.locked(|kind, cold, now| {
            let old_window = cold.policy.window_ms();
            if policy.bucket_ms != cold.policy.bucket_ms {
                kind.take_count(cold);
                cold.ring = Ring::new(policy.bucket_ms, now);
                cold.baseline = cold
                    .baseline
                    .rescaled(policy.window_ms() as f64 / old_window as f64);
            }
            if cold.state.state == State::Open && !cold.forced {
                cold.open_until = match policy.recovery {
                    Recovery::Auto => cold.since_ms.saturating_add(policy.cooldown_ms),
                    Recovery::Manual => u64::MAX,
                };
            }
            kind.limits.0.dry_run.store(policy.dry_run, Ordering::Relaxed);
            (cold.threshold, cold.limit) = policy.threshold(&cold.baseline);
            cold.policy = policy;
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
            (cold.threshold, cold.limit) = cold.policy.threshold(&cold.baseline);
            kind.publish(cold);
        });
    }

    /// Fleet mode: what the sync task reads each interval. Cold: takes the kind's lock, counts
    /// nothing, rolls nothing.
    #[cfg(feature = "redis")]
    pub(crate) fn fleet_view(&self) -> FleetView {
        let cold = self.cold.lock();
        FleetView {
            attempted: self.attempted(&cold),
            state: cold.state.state,
            reason: cold.state.reason,
            trips: cold.trips,
            forced: cold.forced,
            dry_run: self.limits.0.dry_run.load(Ordering::Relaxed),
            policy: Policy::clone(&cold.policy),
        }
    }

    /// Fleet mode: opens the kind for `reason` unless an operator forced its state, and keeps it
    /// open for at least `hold_ms` from now (a kind that was closed opens for exactly that long).
    #[cfg(feature = "redis")]
    pub(crate) fn hold_open(&self, reason: Reason, hold_ms: u64) {
        self.cold_op(|kind, cold, now, events| {
            if cold.forced {
                return;
            }
            let until = now.saturating_add(hold_ms);
            if cold.state.state != State::Open {
                kind.transition(cold, now, State::Open, reason, events);
                if cold.policy.recovery == Recovery::Auto {
                    cold.open_until = until;
                }
            } else if cold.open_until < until {
                cold.open_until = until;
            }
            kind.publish(cold);
        });
    }

    /// Everything an operator wants to see, brought up to now.
    pub(crate) fn status(&self) -> KindStatus {
        self.cold_op(|kind, cold, _, _| {
            let attempted = kind.attempted(cold);
            let blocked = kind.counters.0.blocked.load(Ordering::Relaxed);
            KindStatus {
                kind: kind.name.to_string(),
                state: cold.state.state,
                reason: cold.state.reason,
                since_ms: cold.since_ms,
                window_count: kind.window_count(cold),
                threshold: cold.threshold,
                baseline: cold.baseline.normal(),
                warmed_up: cold.baseline.is_warm(&cold.policy),
                attempted,
                allowed: attempted.saturating_sub(blocked),
                blocked,
                trips: cold.trips,
                dry_run: kind.limits.0.dry_run.load(Ordering::Relaxed),
                forced: cold.forced,
            }
        })
    }
}

#[cfg(all(test, spikebreaker_loom))]
mod loom_models;

#[cfg(all(test, not(spikebreaker_loom)))]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::KindConfig;

    fn kind(clock: &ManualClock) -> Kind<ManualClock> {
        let policy = Policy::compile(&KindConfig::default(), "defaults").unwrap();
        let shared = Arc::new(Shared {
            clock: clock.clone(),
            subscribers: Subscribers::default(),
        });
        Kind::new(
            "email.welcome".into(),
            Arc::new(policy),
            Baseline::default(),
            shared,
        )
    }

    #[test]
    fn a_send_a_little_behind_the_bucket_stays_on_the_lock_free_path() {
        let clock = ManualClock::starting_at(100_000);
        let kind = kind(&clock);
        assert_eq!(kind.check_lock_free(), Ok(()));
        clock.set(100_000 - 59_000); // behind by less than a window
        assert_eq!(kind.check_lock_free(), Ok(()));
        clock.set(100_000 - 61_000); // a window or more back: cold work moves the ring
        assert_eq!(kind.check_lock_free(), Err(ColdStep::BucketEdge(39_000)));
        clock.set(105_000); // the next bucket: cold work rolls over
        assert_eq!(kind.check_lock_free(), Err(ColdStep::BucketEdge(105_000)));
    }
}
