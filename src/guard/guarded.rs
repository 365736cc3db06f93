//! [`Guarded`]: a sender behind a breaker, which classifies each notification by its kind,
//! checks the breaker and hands a blocked notification back to the caller, or to its quarantine.

use std::fmt;
use std::future::Future;

use super::blocked::{Blocked, GuardError};
use super::park::{Attach, NoQuarantine, Park, Refusal};
use super::sender::{AsyncSender, Notification, Sender};
use crate::breaker::{Breaker, Refused};
use crate::clock::{Clock, SystemClock};
use crate::slice::{SliceId, Slices};

/// How a [`Guarded`] sender (or a `tower::GuardLayer`) finds a notification's kind (and, for a
/// quarantine, its recipient): by the notification's own [`Notification::kind`] and
/// [`Notification::recipient`] ([`ByNotification`], the default), or with a closure
/// `|n: &N| -> &str` (see [`Guarded::with_classifier`], and [`Guarded::with_recipient`] for the
/// recipient). Implement it for a classifier of your own.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot tell the kind of a `{N}`",
    label = "not a classifier of `{N}`",
    note = "a classifier is a closure from `&{N}` to the kind's `&str`, its argument's type written out (`|n: &{N}| n.kind.as_str()`), given to `with_classifier`; or `ByNotification` (from `new`), for a type that implements `Notification`"
)]
pub trait Classify<N> {
    /// The kind `notification` is counted under.
    fn kind<'n>(&self, notification: &'n N) -> &'n str;

    /// Whom `notification` is for, if known.
    fn recipient<'n>(&self, notification: &'n N) -> Option<&'n str> {
        let _ = notification;
        None
    }

    /// What `notification` names below its kind ([`Slices::none`] unless known).
    fn slices<'n>(&self, notification: &'n N) -> Slices<'n> {
        let _ = notification;
        Slices::none()
    }
}

/// The default classifier of a [`Guarded`] sender (and of a `tower::GuardLayer`): a notification
/// is counted under its own [`Notification::kind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ByNotification;

impl<N: Notification> Classify<N> for ByNotification {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        notification.kind()
    }

    fn recipient<'n>(&self, notification: &'n N) -> Option<&'n str> {
        notification.recipient()
    }

    fn slices<'n>(&self, notification: &'n N) -> Slices<'n> {
        notification.slices()
    }
}

impl<N, F: Fn(&N) -> &str> Classify<N> for F {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        self(notification)
    }
}

/// A classifier with a function naming the recipient (see [`Guarded::with_recipient`]).
#[derive(Clone, Copy, Debug)]
pub struct WithRecipient<K, R> {
    classify: K,
    recipient_of: R,
}

impl<N, K: Classify<N>, R: Fn(&N) -> Option<&str>> Classify<N> for WithRecipient<K, R> {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        self.classify.kind(notification)
    }

    fn recipient<'n>(&self, notification: &'n N) -> Option<&'n str> {
        (self.recipient_of)(notification)
    }

    fn slices<'n>(&self, notification: &'n N) -> Slices<'n> {
        self.classify.slices(notification)
    }
}

/// A classifier with a function naming the slices (see [`Guarded::with_slices`]).
#[derive(Clone, Copy, Debug)]
pub struct WithSlices<K, F> {
    classify: K,
    slices_of: F,
}

impl<K, F> WithSlices<K, F> {
    #[cfg(feature = "tower")]
    pub(crate) fn new(classify: K, slices_of: F) -> Self {
        Self { classify, slices_of }
    }
}

impl<N, K: Classify<N>, F: Fn(&N) -> Slices<'_>> Classify<N> for WithSlices<K, F> {
    fn kind<'n>(&self, notification: &'n N) -> &'n str {
        self.classify.kind(notification)
    }

    fn recipient<'n>(&self, notification: &'n N) -> Option<&'n str> {
        self.classify.recipient(notification)
    }

    fn slices<'n>(&self, notification: &'n N) -> Slices<'n> {
        (self.slices_of)(notification)
    }
}

/// A sender behind a breaker. It implements the trait of the sender it wraps ([`Sender`],
/// [`AsyncSender`], and with the `tower` feature `tower::Service`), so callers swap it in.
///
/// ```
/// use spikebreaker::{Breaker, Config, GuardError, Guarded, Notification, Sender};
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
///     Err(GuardError::Quarantined(_)) => {} // only with a quarantine: it holds the email
///     Err(GuardError::Sender(io)) => return Err(io.into()),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `K` is how it finds a notification's kind: [`ByNotification`] from [`Guarded::new`], or the
/// function given to [`Guarded::with_classifier`]. `Q` is where a blocked notification goes:
/// back to the caller ([`NoQuarantine`]), or into the quarantine given to
/// [`Guarded::with_quarantine`].
#[derive(Clone)]
pub struct Guarded<S, K = ByNotification, C: Clock = SystemClock, Q = NoQuarantine> {
    inner: S,
    breaker: Breaker<C>,
    classify: K,
    quarantine: Q,
}

impl<S, C: Clock> Guarded<S, ByNotification, C> {
    /// Guards `inner`, classifying by [`Notification::kind`].
    pub fn new(inner: S, breaker: Breaker<C>) -> Self {
        Self {
            inner,
            breaker,
            classify: ByNotification,
            quarantine: NoQuarantine,
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
            quarantine: NoQuarantine,
        }
    }
}

impl<S, K, C: Clock> Guarded<S, K, C, NoQuarantine> {
    /// Holds every notification the breaker refuses in `quarantine` (a
    /// [`Quarantine`](crate::quarantine::Quarantine)) before the send returns, answering
    /// [`GuardError::Quarantined`]; one the store refuses (full, unreachable) comes back as
    /// [`GuardError::Blocked`], as without a quarantine. An allowed send does exactly what it
    /// did before: the quarantine is reached from the refusal path only.
    ///
    /// ```
    /// use spikebreaker::quarantine::{MemoryStore, Quarantine};
    /// use spikebreaker::{Breaker, Config, GuardError, Guarded, ManualClock, Notification, Sender};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Sms { kind: String, to: String }
    /// impl Notification for Sms {
    ///     fn kind(&self) -> &str { &self.kind }
    ///     fn recipient(&self) -> Option<&str> { Some(&self.to) }
    /// }
    /// struct Gateway;
    /// impl Sender<Sms> for Gateway {
    ///     type Output = ();
    ///     type Error = String;
    ///     fn send(&self, _sms: Sms) -> Result<(), String> { Ok(()) }
    /// }
    ///
    /// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
    /// let quarantine = Quarantine::new(MemoryStore::new(10_000));
    /// let sms = Guarded::new(Gateway, breaker.clone()).with_quarantine(quarantine.clone());
    /// let _ = breaker.kind("sms.otp"); // controls act on kinds the breaker knows
    /// breaker.force_open("sms.otp")?;
    /// let held = sms.send(Sms { kind: "sms.otp".into(), to: "+15550100".into() });
    /// assert!(matches!(held, Err(GuardError::Quarantined(_))));
    /// assert_eq!(quarantine.summary(&Default::default())?.live(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_quarantine<Q: Attach>(self, quarantine: Q) -> Guarded<S, K, C, Q> {
        quarantine.attach(self.breaker.name());
        Guarded {
            inner: self.inner,
            breaker: self.breaker,
            classify: self.classify,
            quarantine,
        }
    }
}

impl<S, K, C: Clock, Q> Guarded<S, K, C, Q> {
    /// Names each notification's recipient with `recipient_of`, for a quarantine (the
    /// notification's own [`Notification::recipient`] otherwise, or none with a classifier).
    pub fn with_recipient<N, R>(self, recipient_of: R) -> Guarded<S, WithRecipient<K, R>, C, Q>
    where
        R: Fn(&N) -> Option<&str>,
    {
        Guarded {
            inner: self.inner,
            breaker: self.breaker,
            classify: WithRecipient {
                classify: self.classify,
                recipient_of,
            },
            quarantine: self.quarantine,
        }
    }
}

impl<S, K, C: Clock, Q> Guarded<S, K, C, Q> {
    /// Names each notification's slices with `slices_of` (for a type that does not name its own
    /// with [`Notification::slices`], or a classifier): each is tracked below its kind, and the
    /// recipient (from [`with_recipient`](Self::with_recipient) or the notification) is checked
    /// for repeats. A slice's refusal comes back as any [`GuardError::Blocked`], naming the
    /// slice ([`Blocked::slice`]).
    ///
    /// ```
    /// use spikebreaker::guard::Slices;
    /// use spikebreaker::{Breaker, Config, Guarded, Sender, sender_fn};
    ///
    /// struct Sms { to: String, country: String }
    /// let gateway = sender_fn(|_: Sms| Ok::<_, std::io::Error>(()));
    /// let sms = Guarded::with_classifier(gateway, Breaker::new(Config::default())?, |_: &Sms| "sms.login_code")
    ///     .with_recipient(|sms: &Sms| Some(sms.to.as_str()))
    ///     .with_slices(|sms: &Sms| Slices::new().with("country", &sms.country));
    /// assert!(sms.send(Sms { to: "+447700900123".into(), country: "GB".into() }).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_slices<N, F>(self, slices_of: F) -> Guarded<S, WithSlices<K, F>, C, Q>
    where
        F: Fn(&N) -> Slices<'_>,
    {
        Guarded {
            inner: self.inner,
            breaker: self.breaker,
            classify: WithSlices {
                classify: self.classify,
                slices_of,
            },
            quarantine: self.quarantine,
        }
    }
}

impl<S: fmt::Debug, K, C: Clock, Q> fmt::Debug for Guarded<S, K, C, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, K, C: Clock, Q> Guarded<S, K, C, Q> {
    /// Guards `inner` with `breaker`, classifying with `classify` (a tower layer's service).
    #[cfg(feature = "tower")]
    pub(crate) fn from_parts(inner: S, breaker: Breaker<C>, classify: K, quarantine: Q) -> Self {
        Self {
            inner,
            breaker,
            classify,
            quarantine,
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

    /// The quarantine refused notifications go to ([`NoQuarantine`] without one).
    pub fn quarantine(&self) -> &Q {
        &self.quarantine
    }

    /// Checks `notification` against the breaker; a refusal is held or handed back.
    #[inline]
    pub(crate) fn admit<N>(&self, notification: N) -> Result<N, Refusal<N>>
    where
        K: Classify<N>,
        Q: Park<N>,
    {
        let sliced = self.classify.slices(&notification);
        if !sliced.is_none() {
            return self.admit_sliced(notification);
        }
        // By name, the send path that touches no reference count; a refusal names the kind that
        // refused (the overflow kind's, if the registry is full).
        match self.breaker.check_named(self.classify.kind(&notification)) {
            Ok(()) => Ok(notification),
            Err(refused) => Err(self.refuse(notification, refused, None)),
        }
    }

    /// A notification that names slices: its kind, slices and recipient checked together. Kept
    /// out of line so that a notification that names none costs what it did.
    #[inline(never)]
    fn admit_sliced<N>(&self, notification: N) -> Result<N, Refusal<N>>
    where
        K: Classify<N>,
        Q: Park<N>,
    {
        let checked = {
            let slices = self
                .classify
                .slices(&notification)
                .or_recipient(self.classify.recipient(&notification));
            self.breaker
                .check_named_sliced(self.classify.kind(&notification), &slices)
        };
        match checked {
            Ok(()) => Ok(notification),
            Err((refused, slice)) => Err(self.refuse(notification, refused, slice)),
        }
    }

    /// A refused send: its trip read (one relaxed load), then parked or handed back. Kept out of
    /// line so that an allowed send's code is the same with a quarantine as without.
    #[cold]
    #[inline(never)]
    fn refuse<N>(&self, notification: N, refused: Refused, slice: Option<SliceId>) -> Refusal<N>
    where
        K: Classify<N>,
        Q: Park<N>,
    {
        let blocked: Blocked<N> = crate::breaker::blocked(notification, refused, slice);
        let now_ms = self.breaker.now_ms();
        match self.quarantine.park(
            blocked,
            |notification| self.classify.recipient(notification),
            now_ms,
        ) {
            Ok(held) => Refusal::Held(held),
            Err(blocked) => Refusal::Blocked(blocked),
        }
    }
}

impl<N, S, K, C, Q> Sender<N> for Guarded<S, K, C, Q>
where
    S: Sender<N>,
    K: Classify<N>,
    C: Clock,
    Q: Park<N>,
{
    type Output = S::Output;
    type Error = GuardError<N, S::Error>;

    fn send(&self, notification: N) -> Result<S::Output, Self::Error> {
        let notification = self.admit(notification)?;
        self.inner.send(notification).map_err(GuardError::Sender)
    }
}

impl<N, S, K, C, Q> AsyncSender<N> for Guarded<S, K, C, Q>
where
    N: Send,
    S: AsyncSender<N> + Sync,
    K: Classify<N> + Sync,
    C: Clock,
    Q: Park<N> + Sync,
{
    type Output = S::Output;
    type Error = GuardError<N, S::Error>;

    fn send(&self, notification: N) -> impl Future<Output = Result<S::Output, Self::Error>> + Send {
        let admitted = self.admit(notification);
        async move {
            match admitted {
                Ok(notification) => self.inner.send(notification).await.map_err(GuardError::Sender),
                Err(refusal) => Err(refusal.into()),
            }
        }
    }
}
