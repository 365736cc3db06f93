//! [`Guarded`]: a sender behind a breaker, which classifies each notification by its kind,
//! checks the breaker and hands a blocked notification back to the caller.

use std::fmt;
use std::future::Future;

use super::blocked::{Blocked, GuardError};
use super::sender::{AsyncSender, Notification, Sender};
use crate::breaker::Breaker;
use crate::clock::{Clock, SystemClock};

/// How a [`Guarded`] sender finds a notification's kind: by the notification's own
/// [`Notification::kind`] ([`ByNotification`], the default), or with a function
/// `Fn(&N) -> &str` (see [`Guarded::with_classifier`]). Sealed: there are no other classifiers.
pub trait Classify<N> {
    /// The kind `notification` is counted under.
    fn kind<'n>(&self, notification: &'n N) -> &'n str;
}

/// The default classifier of a [`Guarded`] sender (and of a `tower::GuardLayer`): a notification
/// is counted under its own [`Notification::kind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ByNotification;

impl<N: Notification> Classify<N> for ByNotification {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        notification.kind()
    }
}

impl<N, F: Fn(&N) -> &str> Classify<N> for F {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        self(notification)
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
///
/// `K` is how it finds a notification's kind: [`ByNotification`] from [`Guarded::new`], or the
/// function given to [`Guarded::with_classifier`].
#[derive(Clone)]
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

impl<S, F, C: Clock> Guarded<S, F, C> {
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
            classify: kind_of,
        }
    }
}

impl<S: fmt::Debug, K, C: Clock> fmt::Debug for Guarded<S, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, K, C: Clock> Guarded<S, K, C> {
    /// Guards `inner` with `breaker`, classifying with `classify` (a tower layer's service).
    #[cfg(feature = "tower")]
    pub(crate) fn from_parts(inner: S, breaker: Breaker<C>, classify: K) -> Self {
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
            Err((reason, kind)) => Err(Blocked::new(notification, kind, reason)),
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
