//! Transition events: what a subscriber receives ([`subscription`](super::subscription)).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::window::Window;
use crate::slice::SliceId;
use crate::state::{Reason, State};

/// A kind changed state (tripped, probed, recovered, was forced or reset), or has news an
/// operator must hear while its state stays (still open after a long time, a planned surge begun
/// or ended: `from == to` then).
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
    /// What it was judged on: for a trip, the window that went over its limit (its timescale,
    /// count, threshold, what was expected and the rule that set the threshold); otherwise the
    /// window nearest its limit. In JSON its fields stand beside the others
    /// (`"window_count"`, `"threshold"`, ...).
    #[serde(flatten)]
    pub window: Window,
    /// The kind runs in dry-run: an open state here blocked nothing.
    pub dry_run: bool,
    /// The slice that moved (`prefix=+447`), for an event of one slice of the kind rather than
    /// the kind itself: its trip (reason `slice`) or recovery, or a repeat refusal (reason
    /// `repeat`, slice `recipient=…`). `None` for the kind's own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<SliceId>,
    /// For a slice's event, the share of its dimension it was judged by (0.011 for 1.1%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_share: Option<f64>,
}

impl Event {
    /// An event of the kind itself (no slice).
    pub(crate) fn new(
        kind: Arc<str>,
        at_ms: u64,
        from: State,
        to: State,
        reason: Reason,
        window: Window,
        dry_run: bool,
    ) -> Self {
        Self {
            kind,
            at_ms,
            from,
            to,
            reason,
            window,
            dry_run,
            slice: None,
            expected_share: None,
        }
    }

    /// Whether this event is of one slice of the kind (or a repeat refusal), not the kind itself.
    pub fn is_slice(&self) -> bool {
        self.slice.is_some()
    }

    /// Whether this event is a trip (a move into open, by detection or by an operator). In
    /// dry-run it blocked nothing: see [`is_would_trip`](Self::is_would_trip).
    ///
    /// ```
    /// use spikebreaker::{Breaker, Config};
    /// use spikebreaker::status::Event;
    /// let breaker = Breaker::new(Config::default())?;
    /// breaker.subscribe(|event: &Event| {
    ///     if event.is_trip() && !event.dry_run {
    ///         eprintln!("page: {event}"); // "security.2fa_changed tripped (spike) Tue 03:00: minute window 51 > 50 (...)"
    ///     }
    /// }).detach();
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

    /// Whether the kind has been open for `open_alert_secs`: a runaway that goes on, or a
    /// lasting change in legitimate traffic, that an operator must look at.
    pub fn is_still_open(&self) -> bool {
        self.reason == Reason::StillOpen
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.is_would_trip() {
            "would trip (dry run)"
        } else if self.is_trip() {
            "tripped"
        } else if self.from == self.to {
            "is"
        } else {
            match self.to {
                State::Closed => "closed",
                State::Open => "opened",
                State::HalfOpen => "half-opened",
            }
        };
        if let Some(slice) = &self.slice {
            write!(f, "{slice} of ")?;
        }
        write!(
            f,
            "{} {what} ({}) {}: {}",
            self.kind,
            self.reason,
            WeekTime(self.at_ms),
            Account(self)
        )
    }
}

/// What an event was judged on: its window, or for a slice the share it was judged by.
pub(crate) struct Account<'e>(pub(crate) &'e Event);

impl fmt::Display for Account<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = self.0;
        match (&event.slice, event.expected_share) {
            (Some(_), _) if event.reason == Reason::Repeat => write!(
                f,
                "more than {} identical notifications to one recipient in the window",
                event.window.threshold
            ),
            (Some(_), Some(share)) if event.window.bound != crate::detect::Bound::None => {
                event.window.fmt_count(f)?;
                write!(f, " (expected share {})", Percent(share))
            }
            _ => event.window.fmt(f),
        }
    }
}

/// A share as a percentage: `1.1%`, `0.05%`, `40%`.
pub(crate) struct Percent(pub(crate) f64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = self.0 * 100.0;
        if percent >= 10.0 || percent == 0.0 {
            write!(f, "{percent:.0}%")
        } else if percent >= 0.1 {
            write!(f, "{percent:.1}%")
        } else {
            write!(f, "{percent:.2}%")
        }
    }
}

/// A time as the day of the week and the time of day it falls on, UTC: `Tue 03:00`.
pub(crate) struct WeekTime(pub(crate) u64);

impl fmt::Display for WeekTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // from the epoch
        let minutes = self.0 / 60_000;
        let day = DAYS[((minutes / 1440) % 7) as usize];
        write!(f, "{day} {:02}:{:02}", minutes / 60 % 24, minutes % 60)
    }
}

/// Hands `event` to `tracing`: `warn` for trips, would-trips and still-open reports, `info` for
/// the rest.
pub(super) fn trace(event: &Event) {
    let (kind, from, to, reason) = (
        &*event.kind,
        event.from.as_str(),
        event.to.as_str(),
        event.reason.as_str(),
    );
    let window = &event.window;
    let (timescale, count, threshold, expected, dry_run) = (
        window.timescale.as_str(),
        window.window_count,
        window.threshold,
        window.expected,
        event.dry_run,
    );
    if let Some(slice) = &event.slice {
        let (dimension, value) = (&*slice.dimension, &*slice.value);
        if event.is_trip() {
            tracing::warn!(
                kind, dimension, value, reason, count, threshold, dry_run, "{event}"
            );
        } else {
            tracing::info!(
                kind, dimension, value, reason, count, threshold, dry_run, "{event}"
            );
        }
        return;
    }
    if event.is_trip() || event.is_still_open() {
        tracing::warn!(
            kind, from, to, reason, timescale, count, threshold, expected, dry_run, "{event}"
        );
    } else {
        tracing::info!(
            kind, from, to, reason, timescale, count, threshold, expected, dry_run, "{event}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Bound, Timescale};

    #[test]
    fn an_event_says_when_and_what_it_was_judged_on() {
        let event = Event {
            kind: "security.2fa_changed".into(),
            at_ms: (5 * 1440 + 3 * 60) * 60_000, // Tuesday 1970-01-06 03:00 UTC
            from: State::Closed,
            to: State::Open,
            reason: Reason::Spike,
            window: Window {
                timescale: Timescale::Hour,
                window_count: 412,
                threshold: 360,
                expected: 120.0,
                bound: Bound::Factor,
            },
            dry_run: false,
            slice: None,
            expected_share: None,
        };
        assert_eq!(
            event.to_string(),
            "security.2fa_changed tripped (spike) Tue 03:00: hour window 412 > 360 (3.0 x expected 120.0)"
        );
    }

    #[test]
    fn a_slice_event_names_the_slice_and_the_share_it_was_judged_by() {
        let mut event = Event::new(
            "sms.login_code".into(),
            (5 * 1440 + 3 * 60) * 60_000,
            State::Closed,
            State::Open,
            Reason::Slice,
            Window {
                timescale: Timescale::Hour,
                window_count: 812,
                threshold: 140,
                expected: 46.0,
                bound: Bound::Factor,
            },
            false,
        );
        event.slice = Some(SliceId {
            dimension: "prefix".into(),
            value: "+447".into(),
        });
        event.expected_share = Some(0.011);
        assert!(event.is_trip() && event.is_slice());
        assert_eq!(
            event.to_string(),
            "prefix=+447 of sms.login_code tripped (slice) Tue 03:00: hour window 812 > 140 (expected share 1.1%)"
        );
        let shares = [(0.4, "40%"), (0.011, "1.1%"), (0.0005, "0.05%"), (0.0, "0%")];
        for (share, shown) in shares {
            assert_eq!(Percent(share).to_string(), shown);
        }
    }
}
