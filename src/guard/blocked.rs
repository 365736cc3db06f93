//! What a refused send hands back: [`Blocked`], the notification with its kind, reason and trip,
//! and [`GuardError`], which tells a refusal from the sender's own failure.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::slice::SliceId;
use crate::state::Reason;

/// A notification the breaker refused, handed back with its kind and the reason, like
/// [`std::sync::mpsc::SendError`] hands back the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Blocked<N> {
    notification: N,
    kind: Arc<str>,
    reason: Reason,
    tripped_at_ms: u64,
    open_until_ms: u64,
    /// Boxed: a refusal by the kind, the most common, stays as small as it was.
    slice: Option<Box<SliceId>>,
}

impl<N> Blocked<N> {
    pub(crate) fn new(
        notification: N,
        kind: Arc<str>,
        reason: Reason,
        tripped_at_ms: u64,
        open_until_ms: u64,
    ) -> Self {
        Self {
            notification,
            kind,
            reason,
            tripped_at_ms,
            open_until_ms,
            slice: None,
        }
    }

    /// The same refusal, by `slice` of the kind.
    pub(crate) fn with_slice(mut self, slice: Option<SliceId>) -> Self {
        self.slice = slice.map(Box::new);
        self
    }

    /// The slice of the kind that refused it (`prefix=+447`; `recipient=…` for a repeat), or
    /// `None` when the kind itself did. The kind's other slices flow meanwhile.
    pub fn slice(&self) -> Option<&SliceId> {
        self.slice.as_deref()
    }

    /// The notification, unsent.
    pub fn notification(&self) -> &N {
        &self.notification
    }

    /// Takes the notification back, unsent.
    pub fn into_notification(self) -> N {
        self.notification
    }

    /// The kind it was counted under (the overflow kind's name if the registry was full).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub(crate) fn kind_name(&self) -> &Arc<str> {
        &self.kind
    }

    /// Why the kind is open.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// When the trip that blocked it began, on the breaker's clock: the `at_ms` of that trip's
    /// [`Event`](crate::status::Event), the same for every notification the trip blocked, so it tells
    /// one trip of a kind from the next.
    pub fn tripped_at_ms(&self) -> u64 {
        self.tripped_at_ms
    }

    /// When the kind may let sends through again, on the breaker's clock, if it will on its own:
    /// the end of its cool-down (automatic recovery), when it probes if its rate is back within
    /// its limits (if not, it stays open and looks again at each bucket edge, `window_secs / 12`).
    /// `None` when only an operator can reopen it (manual recovery, forced open) and for a name
    /// that breaks the kind-name rule. A queue consumer can hold the message until then.
    ///
    /// ```
    /// use spikebreaker::{Breaker, Config, GuardError, Guarded, ManualClock, Sender, sender_fn};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
    /// let push = Guarded::with_classifier(
    ///     sender_fn(|_: String| Ok::<_, std::io::Error>(())),
    ///     breaker.clone(),
    ///     |_: &String| "push.promo",
    /// );
    /// let refused = loop {
    ///     clock.advance(Duration::from_millis(10));
    ///     if let Err(GuardError::Blocked(blocked)) = push.send("sale!".to_owned()) {
    ///         break blocked;
    ///     }
    /// };
    /// // Tripped at its warm-up ceiling: it may probe after the 300 s cool-down.
    /// assert_eq!(refused.reopens_at_ms(), Some(refused.tripped_at_ms() + 300_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reopens_at_ms(&self) -> Option<u64> {
        (self.open_until_ms != 0 && self.open_until_ms != u64::MAX).then_some(self.open_until_ms)
    }
}

impl<N> fmt::Debug for Blocked<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocked")
            .field("kind", &self.kind)
            .field("reason", &self.reason)
            .field("tripped_at_ms", &self.tripped_at_ms)
            .field("reopens_at_ms", &self.reopens_at_ms())
            .field("slice", &self.slice)
            .finish_non_exhaustive()
    }
}

impl<N> fmt::Display for Blocked<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "notification of kind `{}` blocked by spikebreaker ({}",
            self.kind,
            self.reason.as_str()
        )?;
        match &self.slice {
            Some(slice) => write!(f, " of {slice})"),
            None => f.write_str(")"),
        }
    }
}

impl<N> StdError for Blocked<N> {}

/// Why a guarded send did not go out: the breaker blocked it (and a quarantine, if the sender has
/// one, now holds it), or the sender failed.
#[derive(Clone, PartialEq, Eq)]
pub enum GuardError<N, E> {
    /// The breaker refused the send; the notification comes back inside. With a quarantine, this
    /// is a notification the store refused (full, unreachable): nothing is dropped.
    Blocked(Blocked<N>),
    /// The breaker refused the send and the sender's quarantine holds the notification; the
    /// receipt names the item.
    Quarantined(Quarantined),
    /// The wrapped sender failed; its error, untouched.
    Sender(E),
}

impl<N, E> GuardError<N, E> {
    /// The blocked notification, if the breaker refused it.
    pub fn into_blocked(self) -> Option<Blocked<N>> {
        match self {
            Self::Blocked(blocked) => Some(blocked),
            Self::Quarantined(_) | Self::Sender(_) => None,
        }
    }

    /// Whether the breaker refused the send (and the notification came back).
    pub fn is_blocked(&self) -> bool {
        matches!(self, Self::Blocked(_))
    }

    /// Whether the breaker refused the send and the quarantine holds the notification.
    pub fn is_quarantined(&self) -> bool {
        matches!(self, Self::Quarantined(_))
    }
}

impl<N, E> From<Blocked<N>> for GuardError<N, E> {
    fn from(blocked: Blocked<N>) -> Self {
        Self::Blocked(blocked)
    }
}

impl<N, E: fmt::Debug> fmt::Debug for GuardError<N, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked(blocked) => f.debug_tuple("Blocked").field(blocked).finish(),
            Self::Quarantined(held) => f.debug_tuple("Quarantined").field(held).finish(),
            Self::Sender(error) => f.debug_tuple("Sender").field(error).finish(),
        }
    }
}

impl<N, E: fmt::Display> fmt::Display for GuardError<N, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked(blocked) => blocked.fmt(f),
            Self::Quarantined(held) => held.fmt(f),
            Self::Sender(error) => write!(f, "sender failed: {error}"),
        }
    }
}

impl<N, E: StdError + 'static> StdError for GuardError<N, E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Blocked(_) | Self::Quarantined(_) => None,
            Self::Sender(error) => Some(error),
        }
    }
}

/// A refused notification a quarantine now holds: the receipt a guarded send answers with in
/// [`GuardError::Quarantined`]. The notification itself is in the store, under [`id`](Self::id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    id: u64,
    kind: Arc<str>,
    reason: Reason,
    trip: u64,
}

impl Quarantined {
    pub(crate) fn new(id: u64, kind: Arc<str>, reason: Reason, trip: u64) -> Self {
        Self {
            id,
            kind,
            reason,
            trip,
        }
    }

    /// Its number in the store.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The kind it was counted under.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Why the kind was open.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The trip that blocked it, as the store names trips: the wall-clock time (Unix
    /// milliseconds) the trip began.
    pub fn trip(&self) -> u64 {
        self.trip
    }
}

impl fmt::Display for Quarantined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "notification of kind `{}` blocked by spikebreaker ({}) and held in quarantine as item {} (trip {})",
            self.kind,
            self.reason.as_str(),
            self.id,
            self.trip
        )
    }
}

impl StdError for Quarantined {}
