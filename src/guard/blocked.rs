//! What a refused send hands back: [`Blocked`], the notification with its kind and reason, and
//! [`GuardError`], which tells a refusal from the sender's own failure.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::kind::Reason;

/// A notification the breaker refused, handed back with its kind and the reason, like
/// [`std::sync::mpsc::SendError`] hands back the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Blocked<N> {
    notification: N,
    kind: Arc<str>,
    reason: Reason,
}

impl<N> Blocked<N> {
    pub(crate) fn new(notification: N, kind: Arc<str>, reason: Reason) -> Self {
        Self {
            notification,
            kind,
            reason,
        }
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

    /// Why the kind is open.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

impl<N> fmt::Debug for Blocked<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocked")
            .field("kind", &self.kind)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<N> fmt::Display for Blocked<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "notification of kind `{}` blocked by spikebreaker ({})",
            self.kind,
            self.reason.as_str()
        )
    }
}

impl<N> StdError for Blocked<N> {}

/// Why a guarded send did not go out: the breaker blocked it, or the sender failed.
#[derive(Clone, PartialEq, Eq)]
pub enum GuardError<N, E> {
    /// The breaker refused the send; the notification comes back inside.
    Blocked(Blocked<N>),
    /// The wrapped sender failed; its error, untouched.
    Sender(E),
}

impl<N, E> GuardError<N, E> {
    /// The blocked notification, if the breaker refused it.
    pub fn into_blocked(self) -> Option<Blocked<N>> {
        match self {
            Self::Blocked(blocked) => Some(blocked),
            Self::Sender(_) => None,
        }
    }

    /// Whether the breaker refused the send.
    pub fn is_blocked(&self) -> bool {
        matches!(self, Self::Blocked(_))
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
            Self::Sender(error) => f.debug_tuple("Sender").field(error).finish(),
        }
    }
}

impl<N, E: fmt::Display> fmt::Display for GuardError<N, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked(blocked) => blocked.fmt(f),
            Self::Sender(error) => write!(f, "sender failed: {error}"),
        }
    }
}

impl<N, E: StdError + 'static> StdError for GuardError<N, E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Blocked(_) => None,
            Self::Sender(error) => Some(error),
        }
    }
}
