//! Transition events and the subscribers that receive them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::kind::state::{Reason, State};

/// A kind changed state: tripped, probed, recovered, or was forced or reset by an operator.
///
/// Subscribers receive every event synchronously, after the kind's lock is released, on the
/// thread whose send (or operator call) caused it. The same events go to `tracing`, and a
/// backtest reports them per kind ([`KindReport::transitions`](crate::backtest::KindReport::transitions)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// The kind that moved.
    pub kind: Arc<str>,
    /// When, on the breaker's clock (milliseconds).
    pub at_ms: u64,
    /// The state it left.
    pub from: State,
    /// The state it entered.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// Sends in the sliding window at the time.
    pub window_count: u64,
    /// The threshold in force at the time.
    pub threshold: u64,
    /// The learned normal sends per window at the time.
    pub baseline: f64,
    /// The kind runs in dry-run: an open state here blocked nothing.
    pub dry_run: bool,
}

impl Event {
    /// Whether this event is a trip (a move into open, by detection or by an operator). In
    /// dry-run it blocked nothing: see [`is_would_trip`](Self::is_would_trip).
    ///
    /// ```
    /// use spikebreaker::{Breaker, Config, Event};
    /// let breaker = Breaker::new(Config::default())?;
    /// breaker.subscribe(|event: &Event| {
    ///     if event.is_trip() && !event.dry_run {
    ///         eprintln!("page: {} tripped ({}): {} sends in the window, threshold {}",
    ///             event.kind, event.reason.as_str(), event.window_count, event.threshold);
    ///     }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_trip(&self) -> bool {
        self.to == State::Open && self.from != State::Open
    }

    /// Whether this is a trip of a kind in dry-run: it would have blocked, and blocked nothing.
    pub fn is_would_trip(&self) -> bool {
        self.is_trip() && self.dry_run
    }

    /// Whether the kind closed again on its own, after a probe passed.
    pub fn is_recovery(&self) -> bool {
        self.to == State::Closed && self.reason == Reason::Recovered
    }

    /// Whether an operator forced the state.
    pub fn is_forced(&self) -> bool {
        matches!(self.reason, Reason::ForcedOpen | Reason::ForcedClosed)
    }
}

type Subscriber = Arc<dyn Fn(&Event) + Send + Sync>;

/// The breaker's subscribers.
#[derive(Default)]
pub(crate) struct Subscribers {
    list: RwLock<Vec<Subscriber>>,
}

impl std::fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribers")
            .field("count", &self.list.read().len())
            .finish()
    }
}

impl Subscribers {
    pub(crate) fn add(&self, subscriber: Subscriber) {
        self.list.write().push(subscriber);
    }

    /// Hands each event to `tracing` and to every subscriber. A subscriber that panics is
    /// reported and skipped: it cannot take the breaker, or the send, down with it.
    pub(crate) fn emit(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let list = self.list.read().clone();
        for event in events {
            trace(event);
            for subscriber in &list {
                if catch_unwind(AssertUnwindSafe(|| subscriber(event))).is_err() {
                    tracing::error!(kind = %event.kind, "a spikebreaker event subscriber panicked");
                }
            }
        }
    }
}

fn trace(event: &Event) {
    let (kind, from, to, reason) = (
        &*event.kind,
        event.from.as_str(),
        event.to.as_str(),
        event.reason.as_str(),
    );
    let (count, threshold, baseline, dry_run) =
        (event.window_count, event.threshold, event.baseline, event.dry_run);
    if event.is_trip() {
        let message = if event.dry_run {
            "spikebreaker would trip (dry run: nothing blocked)"
        } else {
            "spikebreaker tripped"
        };
        tracing::warn!(
            kind,
            from,
            to,
            reason,
            count,
            threshold,
            baseline,
            dry_run,
            "{message}"
        );
    } else {
        tracing::info!(
            kind,
            from,
            to,
            reason,
            count,
            threshold,
            baseline,
            dry_run,
            "spikebreaker transition"
        );
    }
}
