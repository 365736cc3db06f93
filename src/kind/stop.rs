//! What a restart keeps of a kind besides what it learned: its stops. A kind open (on a trip,
//! or forced by an operator), forced closed, put in dry-run by an operator against its
//! configuration, or given a planned surge, is read as [`Stops`] for a snapshot and put back
//! from one, so that a crash loop or a deploy does not re-arm a runaway an operator stopped.
//!
//! What is not kept, on purpose: a half-open probe (the kind comes back closed and is judged by
//! what it learned: a runaway that goes on trips it again at once); an automatic trip whose
//! cool-down ended while the process was down (it would probe now, and a restart is no reason to
//! hold it longer); the windows' counts, the counters (`attempted`, `blocked`, `trips` count from
//! the restart) and the events (a restored stop is not a new transition and sends none).

use super::atomics::Ordering;
use super::machine::{Cold, NEVER, next_planned};
use super::{Kind, Packed};
use crate::clock::Clock;
use crate::config::{MAX_SURGE_MS, Recovery};
use crate::detect::{Limit, Reading};
use crate::observe::{Surge, Window};
use crate::state::{Reason, State};

/// A kind's stops, as a snapshot keeps them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Stops {
    /// Open, or forced closed; none when closed by detection or half-open.
    pub(crate) held: Option<Held>,
    /// Dry-run as an operator set it, where it differs from what the configuration says.
    pub(crate) dry_run: Option<bool>,
    /// A planned surge in force: the sends left, and when it ends.
    pub(crate) surge: Option<Surge>,
}

/// An open or forced state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Held {
    /// `Open`, or `Closed` when forced closed.
    pub(crate) state: State,
    /// Why: a trip's reason, `ForcedOpen` or `ForcedClosed` (forced ones stay until reset).
    pub(crate) reason: Reason,
    /// Since when, on the breaker's clock: the trip's identity, which quarantined items carry.
    pub(crate) since_ms: u64,
    /// An open kind that recovers on its own: when its cool-down ends. `None`: held until an
    /// operator acts (manual recovery, or forced).
    pub(crate) until_ms: Option<u64>,
    /// What the trip was judged on.
    pub(crate) tripped_on: Option<Window>,
}

impl Stops {
    /// Whether there is nothing to keep.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Held {
    /// Whether an operator forced the state (it stays until reset).
    pub(crate) fn forced(&self) -> bool {
        matches!(self.reason, Reason::ForcedOpen | Reason::ForcedClosed)
    }
}

impl<C: Clock> Kind<C> {
    /// The kind's stops, if it has any.
    pub(crate) fn stops(&self) -> Option<Stops> {
        let cold = self.cold.lock();
        let held = match cold.state.state {
            State::Open => Some(Held {
                state: State::Open,
                reason: cold.state.reason,
                since_ms: cold.since_ms,
                until_ms: (cold.until != u64::MAX).then_some(cold.until),
                tripped_on: cold.tripped_on.as_ref().map(Window::of),
            }),
            State::Closed if cold.forced => Some(Held {
                state: State::Closed,
                reason: Reason::ForcedClosed,
                since_ms: cold.since_ms,
                until_ms: None,
                tripped_on: cold.tripped_on.as_ref().map(Window::of),
            }),
            _ => None,
        };
        let dry_run = self.limits.0.dry_run.load(Ordering::Relaxed);
        let stops = Stops {
            held,
            dry_run: (dry_run != cold.settings.dry_run).then_some(dry_run),
            // Less what the bucket in progress has sent, which the surge has not counted yet; a
            // surge whose sends are spent has nothing left to keep.
            surge: (cold.surge_until != NEVER)
                .then(|| Surge {
                    sends: cold
                        .detector
                        .surge_left()
                        .saturating_sub(self.counters.0.count.load(Ordering::Relaxed)),
                    until_ms: cold.surge_until,
                })
                .filter(|surge| surge.sends > 0),
        };
        (!stops.is_empty()).then_some(stops)
    }

    /// Puts a snapshot's stops back (see the module's account of what is kept), on the kind's
    /// settings now: an open kind that recovers on its own keeps its cool-down's end (from its
    /// trip and the configured cool-down, if it was held for an operator when saved), and no
    /// more than a cool-down from now (a clock that went back does not hold it longer); one
    /// whose configuration now says `recovery = "manual"` is held for an operator. Makes no
    /// transition and sends no event.
    pub(crate) fn restore_stops(&self, stops: &Stops) {
        self.locked(|kind, cold, now| {
            if let Some(held) = &stops.held {
                kind.hold(cold, now, held);
            }
            if let Some(on) = stops.dry_run {
                kind.limits.0.dry_run.store(on, Ordering::Relaxed);
            }
            if let Some(surge) = stops.surge.filter(|s| s.sends > 0 && s.until_ms > now) {
                cold.surge_until = surge.until_ms.min(now.saturating_add(MAX_SURGE_MS));
                cold.detector.set_surge(surge.sends);
                cold.next_planned = next_planned(&cold.settings, cold.surge_until, now);
            }
            kind.publish(cold);
        });
    }

    /// Under the lock: the kind in the state `held` keeps, unless it is an automatic trip whose
    /// cool-down is over at `now` (or a half-open probe, never kept).
    fn hold(&self, cold: &mut Cold, now: u64, held: &Held) {
        let forced = held.forced();
        let until = match held.state {
            State::Open if forced || cold.settings.recovery == Recovery::Manual => u64::MAX,
            // At most a cool-down from now, whatever the clock said before the restart.
            State::Open => held
                .until_ms
                .unwrap_or_else(|| held.since_ms.saturating_add(cold.settings.cooldown_ms))
                .min(now.saturating_add(cold.settings.cooldown_ms)),
            State::Closed if forced => u64::MAX,
            _ => return,
        };
        if until <= now {
            return;
        }
        cold.state = Packed {
            state: held.state,
            reason: held.reason,
        };
        cold.forced = forced;
        cold.since_ms = held.since_ms;
        cold.until = until;
        cold.tripped_on = held.tripped_on.as_ref().map(reading);
        cold.clean = false;
        // Reported before the restart, if it was open that long: not again.
        cold.reported_open = now.saturating_sub(held.since_ms) >= cold.settings.open_alert_ms;
        if held.state == State::Open {
            self.limits.0.tripped_at.store(held.since_ms, Ordering::Relaxed);
        }
        self.limits.0.status.store(cold.state.pack(), Ordering::Release);
    }
}

/// A restored trip's window as the kind keeps it: the form its trip was judged in, a limit of
/// `u32` sends and an `f32` expectation (a window a trip wrote reads back exactly).
fn reading(window: &Window) -> Reading {
    Reading {
        timescale: window.timescale,
        count: window.window_count,
        limit: Limit {
            count: match window.threshold {
                u64::MAX => u32::MAX,
                threshold => u32::try_from(threshold).unwrap_or(u32::MAX - 1).min(u32::MAX - 1),
            },
            // Beyond an f32, the largest one: a snapshot's next write must read back.
            expected: (window.expected as f32).clamp(f32::MIN, f32::MAX),
            bound: window.bound,
        },
    }
}
