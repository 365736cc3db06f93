//! Wrapping a sender: the [`Sender`] and [`AsyncSender`] traits, how a notification names its
//! kind, and [`Guarded`], which checks the breaker before every send and hands a blocked
//! notification back to the caller.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::breaker::Breaker;
use crate::clock::{Clock, SystemClock};
use crate::state::Reason;

/// Something that sends notifications, synchronously.
pub trait Sender<N> {
    /// What a successful send returns (a message id, say).
    type Output;
    /// What a failed send returns.
    type Error;
    /// Sends one notification.
    fn send(&self, notification: N) -> Result<Self::Output, Self::Error>;
}

/// Something that sends notifications, asynchronously. Implement it with `async fn send`.
pub trait AsyncSender<N> {
    /// What a successful send returns.
    type Output;
    /// What a failed send returns.
    type Error;
    /// Sends one notification.
    fn send(&self, notification: N) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// A notification that knows its kind (`"security.2fa_changed"`, `"email.welcome"`).
pub trait Notification {
    /// The kind this notification is counted under.
    fn kind(&self) -> &str;
}

/// How a [`Guarded`] sender finds a notification's kind.
pub trait Classify<N> {
    /// The kind `notification` is counted under.
    fn kind<'n>(&self, notification: &'n N) -> &'n str;
}

/// Classifies notifications by their own [`Notification::kind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ByNotification;

impl<N: Notification> Classify<N> for ByNotification {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        notification.kind()
    }
}

/// Classifies notifications with a function (see [`Guarded::with_classifier`]).
#[derive(Clone, Copy)]
pub struct ClassifyFn<F>(F);

impl<F> fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClassifyFn")
    }
}

impl<N, F: Fn(&N) -> &str> Classify<N> for ClassifyFn<F> {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        (self.0)(notification)
    }
}

/// A sender behind a breaker. It implements the trait of the sender it wraps ([`Sender`],
/// [`AsyncSender`], and with the `tower` feature `tower::Service`), so callers swap it in.
///
/// ```
/// use spikebreaker::{Breaker, Config, Guarded, GuardError, Notification, Sender};
///
/// struct Email { kind: &'static str, to: String }
/// impl Notification for Email {
///     fn kind(&self) -> &str { self.kind }
/// }
///
/// struct Smtp;
/// impl Sender<Email> for Smtp {
///     type Output = ();
///     type Error = std::io::Error;
///     fn send(&self, _email: Email) -> Result<(), std::io::Error> { Ok(()) }
/// }
///
/// let guarded = Guarded::new(Smtp, Breaker::new(Config::default())?);
/// match guarded.send(Email { kind: "email.welcome", to: "a@example.com".into() }) {
///     Ok(()) => {}
///     Err(GuardError::Blocked(blocked)) => {
///         let email = blocked.into_notification(); // nothing lost: park it, nack it
///         # drop(email);
///     }
///     Err(GuardError::Sender(io)) => return Err(io.into()),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Guarded<S, K = ByNotification, C: Clock = SystemClock> {
    inner: S,
    breaker: Breaker<C>,
    classify: K,
}

impl<S, C: Clock> Guarded<S, ByNotification, C> {
    /// Guards `inner`, classifying by [`Notification::kind`].
    pub fn new(inner: S, breaker: Breaker<C>) -> Self {
        Self {
            inner,
            breaker,
            classify: ByNotification,
        }
    }
}

impl<S, F, C: Clock> Guarded<S, ClassifyFn<F>, C> {
    /// Guards `inner`, classifying with `kind_of` (for notification types you do not own).
    ///
    /// ```
    /// # use spikebreaker::{Breaker, Config, Guarded, Sender};
    /// struct Push { topic: String }
    /// struct Apns;
    /// impl Sender<Push> for Apns {
    ///     type Output = ();
    ///     type Error = String;
    ///     fn send(&self, _push: Push) -> Result<(), String> { Ok(()) }
    /// }
    /// let guarded = Guarded::with_classifier(Apns, Breaker::new(Config::default())?, |p: &Push| p.topic.as_str());
    /// assert!(guarded.send(Push { topic: "push.promo".into() }).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_classifier<N>(inner: S, breaker: Breaker<C>, kind_of: F) -> Self
    where
        F: Fn(&N) -> &str,
    {
        Self {
            inner,
            breaker,
            classify: ClassifyFn(kind_of),
        }
    }
}

impl<S, K, C: Clock> Guarded<S, K, C> {
    /// Guards `inner` with `breaker`, classifying with `classify`.
    pub fn from_parts(inner: S, breaker: Breaker<C>, classify: K) -> Self {
        Self {
            inner,
            breaker,
            classify,
        }
    }

    /// The wrapped sender.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped sender, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped sender, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The breaker in front of the sender.
    pub fn breaker(&self) -> &Breaker<C> {
        &self.breaker
    }

    /// Checks `notification` against the breaker, handing it back if blocked.
    pub(crate) fn admit<N>(&self, notification: N) -> Result<N, Blocked<N>>
    where
        K: Classify<N>,
    {
        // By name, the send path that touches no reference count; a refusal names the kind that
        // refused (the overflow kind's, if the registry is full).
        match self.breaker.check_named(self.classify.kind(&notification)) {
            Ok(()) => Ok(notification),
            Err((reason, kind)) => Err(Blocked {
                notification,
                kind,
                reason,
            }),
        }
    }
}

impl<N, S, K, C> Sender<N> for Guarded<S, K, C>
where
    S: Sender<N>,
    K: Classify<N>,
    C: Clock,
{
    type Output = S::Output;
    type Error = GuardError<N, S::Error>;

    fn send(&self, notification: N) -> Result<S::Output, Self::Error> {
        let notification = self.admit(notification)?;
        self.inner.send(notification).map_err(GuardError::Sender)
    }
}

impl<N, S, K, C> AsyncSender<N> for Guarded<S, K, C>
where
    N: Send,
    S: AsyncSender<N> + Sync,
    K: Classify<N> + Sync,
    C: Clock,
{
    type Output = S::Output;
    type Error = GuardError<N, S::Error>;

    fn send(&self, notification: N) -> impl Future<Output = Result<S::Output, Self::Error>> + Send {
        let admitted = self.admit(notification);
        async move {
            match admitted {
                Ok(notification) => self.inner.send(notification).await.map_err(GuardError::Sender),
                Err(blocked) => Err(GuardError::Blocked(blocked)),
            }
        }
    }
}

/// A notification the breaker refused, handed back with its kind and the reason, like
/// [`std::sync::mpsc::SendError`] hands back the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Blocked<N> {
    notification: N,
    kind: Arc<str>,
    reason: Reason,
}

impl<N> Blocked<N> {
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
