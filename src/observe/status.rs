//! What an operator sees of a kind and of the whole breaker.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::kind::state::{Reason, State};

/// A kind's state and figures at one moment, for an admin endpoint or a dashboard: the one type
/// a kind's figures are read into, for its status, its metrics and fleet mode alike.
///
/// Counts are per window (`window_count`, `threshold`, `baseline`) or since the kind was first
/// seen (`attempted`, `allowed`, `blocked`, `trips`).
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
    /// Sends attempted in the sliding window now.
    pub window_count: u64,
    /// The count the window may reach; one more trips the kind.
    pub threshold: u64,
    /// The learned normal sends per window.
    pub baseline: f64,
    /// Whether the baseline has been learned (otherwise the warm-up ceiling applies).
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
}
