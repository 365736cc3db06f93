//! What an operator sees of a kind and of the whole breaker.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::problem::Problem;
use super::window::Window;
use crate::slice::{DimensionStatus, RepeatStatus};
use crate::state::{Reason, State};

/// A kind's state and figures at one moment, for an admin endpoint or a dashboard: the one type
/// a kind's figures are read into, for its status, its metrics and fleet mode alike.
///
/// Counts are per window (`windows`, and the one nearest its limit beside the other fields) or
/// since the kind was first seen (`attempted`, `allowed`, `blocked`, `trips`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KindStatus {
    /// The kind's name.
    pub kind: Arc<str>,
    /// Where it stands.
    pub state: State,
    /// Why.
    pub reason: Reason,
    /// Since when, on the breaker's clock (milliseconds).
    pub since_ms: u64,
    /// How long the kind has been open (0 unless open), in milliseconds.
    pub open_for_ms: u64,
    /// The window with the least room left now: its timescale, count, threshold, what it was
    /// expected to hold and the rule that set the threshold. In JSON its fields stand beside the
    /// others (`"window_count"`, `"threshold"`, ...).
    #[serde(flatten)]
    pub nearest: Window,
    /// Every timescale's window now: minute, hour, day.
    pub windows: [Window; 3],
    /// What the kind's last trip was judged on, if it has tripped.
    pub tripped_on: Option<Window>,
    /// Whether the kind has learned enough to be judged by what it learned (otherwise the
    /// warm-up ceiling applies).
    pub warmed_up: bool,
    /// Sends attempted (allowed or blocked).
    pub attempted: u64,
    /// Sends allowed: `attempted - blocked`, derived rather than counted, so that an allowed send
    /// costs no second counter.
    pub allowed: u64,
    /// Sends blocked.
    pub blocked: u64,
    /// Times the kind went open.
    pub trips: u64,
    /// Detecting and reporting only, never blocking.
    pub dry_run: bool,
    /// An operator holds the state until reset.
    pub forced: bool,
    /// A planned surge in force.
    pub surge: Option<Surge>,
    /// Each dimension of slices the kind tracks, with its values (see
    /// [guide::slices](crate::guide::slices)); empty when its notifications name none. Filled
    /// by an operator's status ([`Breaker::status`](crate::Breaker::status),
    /// [`Breaker::kind_status`](crate::Breaker::kind_status)), not in fleet views or metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<DimensionStatus>,
    /// The repeat check, once a notification naming a recipient opted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<RepeatStatus>,
}

impl KindStatus {
    /// The minute window (`window_secs` long).
    pub fn minute(&self) -> &Window {
        &self.windows[0]
    }

    /// The hour window.
    pub fn hour(&self) -> &Window {
        &self.windows[1]
    }

    /// The day window.
    pub fn day(&self) -> &Window {
        &self.windows[2]
    }
}

impl KindStatus {
    /// A kind with nothing counted, in `state` for `reason`, its windows as given.
    pub(crate) fn nothing_counted(
        kind: Arc<str>,
        state: State,
        reason: Reason,
        windows: [Window; 3],
    ) -> Self {
        Self {
            kind,
            state,
            reason,
            since_ms: 0,
            open_for_ms: 0,
            nearest: windows[0],
            windows,
            tripped_on: None,
            warmed_up: false,
            attempted: 0,
            allowed: 0,
            blocked: 0,
            trips: 0,
            dry_run: false,
            forced: false,
            surge: None,
            slices: Vec::new(),
            repeats: None,
        }
    }

    /// A closed kind, new, with nothing sent: a base for tests to build on.
    #[cfg(test)]
    pub(crate) fn for_tests(kind: &str) -> Self {
        use crate::detect::{Bound, Timescale};
        let windows = Timescale::ALL.map(|timescale| Window {
            timescale,
            window_count: 0,
            threshold: u64::MAX,
            expected: 0.0,
            bound: Bound::None,
        });
        Self::nothing_counted(kind.into(), State::Closed, Reason::New, windows)
    }
}

/// A planned surge: sends announced in advance, allowed whatever the kind's limits say, until a time
/// ([`Breaker::plan_surge`](crate::Breaker::plan_surge)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surge {
    /// What is left of the surge's sends: sends the kind may still make whatever its limits say.
    pub sends: u64,
    /// When the surge ends, on the breaker's clock (milliseconds).
    pub until_ms: u64,
}

/// The whole breaker at one moment: every kind, and the registry's bound, overflow and
/// evictions ([`Breaker::status`](crate::Breaker::status)).
///
/// ```
/// use spikebreaker::{Breaker, Config};
/// let breaker = Breaker::new(Config { max_kinds: 1, ..Config::default() })?;
/// let _ = breaker.check("email.welcome");
/// let _ = breaker.check("user-4711"); // a bug put a user id into the kind
/// let status = breaker.status();
/// assert_eq!((status.registered, status.overflowed), (1, 1));
/// assert_eq!(&*status.kinds[0].kind, Breaker::OVERFLOW_KIND);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BreakerStatus {
    /// When, on the breaker's clock (milliseconds).
    pub at_ms: u64,
    /// Every kind, sorted by name; the overflow kind is `_overflow`.
    pub kinds: Vec<KindStatus>,
    /// Kinds registered, the overflow kind not counted.
    pub registered: usize,
    /// The most kinds the registry holds besides those named in the configuration
    /// ([`Config::max_kinds`](crate::Config::max_kinds)).
    pub max_kinds: usize,
    /// Look-ups of new kinds sent to the overflow kind because the registry was full, since the
    /// breaker was made.
    pub overflowed: u64,
    /// Kinds forgotten for being idle, since the breaker was made
    /// ([`Breaker::evict_idle`](crate::Breaker::evict_idle)).
    #[serde(default)]
    pub evicted: u64,
    /// What is wrong with the breaker itself, for an operator to act on (empty when nothing
    /// is): a snapshot file set aside or not saved, two live breakers sharing a name, a metrics
    /// recorder installed late. Also in the `spikebreaker_problem` gauge.
    #[serde(default)]
    pub problems: Vec<Problem>,
}
