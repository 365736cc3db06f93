//! The traits a guarded sender is written against: [`Sender`], [`AsyncSender`], and
//! [`Notification`] for a notification that names its own kind; [`sender_fn`] makes either
//! sender of a closure, and a shared sender (`Arc<S>`, `&S`) is one too.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::slice::Slices;

/// Something that sends notifications, synchronously.
pub trait Sender<N> {
    /// What a successful send returns (a message id, say).
    type Output;
    /// What a failed send returns.
    type Error;
    /// Sends one notification.
    fn send(&self, notification: N) -> Result<Self::Output, Self::Error>;

    /// Sends a notification an operator released from quarantine. `key` is stable for the item
    /// (the same on every attempt, unique across stores): give it to a provider that accepts an
    /// idempotency key, so that an item sent twice after a crash reaches its recipient once.
    /// By default, sends it like any other.
    fn send_released(&self, notification: N, key: &str) -> Result<Self::Output, Self::Error> {
        let _ = key;
        self.send(notification)
    }

    /// Whether [`send_released`](Self::send_released) hands `key` on. A
    /// [`Releaser`](crate::quarantine::Releaser) refuses a sender that says it does not (a
    /// [`sender_fn`] closure given no [`released`](SenderFn::released) one), rather than drop the
    /// key unseen. True by default: a sender type that implements only `send` chose to.
    fn carries_release_key(&self) -> bool {
        true
    }
}

/// Something that sends notifications, asynchronously. Implement it with `async fn send`.
pub trait AsyncSender<N> {
    /// What a successful send returns.
    type Output;
    /// What a failed send returns.
    type Error;
    /// Sends one notification.
    fn send(&self, notification: N) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Sends a notification an operator released from quarantine, with its stable idempotency
    /// `key` (see [`Sender::send_released`]). By default, sends it like any other.
    fn send_released(
        &self,
        notification: N,
        key: &str,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send {
        let _ = key;
        self.send(notification)
    }

    /// Whether [`send_released`](Self::send_released) hands `key` on (see
    /// [`Sender::carries_release_key`]).
    fn carries_release_key(&self) -> bool {
        true
    }
}

/// A notification that knows its kind (`"security.2fa_changed"`, `"email.welcome"`).
pub trait Notification {
    /// The kind this notification is counted under.
    fn kind(&self) -> &str;

    /// Whom it is for (an address, a user id), if it names one: a quarantine records it, so that
    /// an operator sees how many distinct recipients a trip held and who got the most. None by
    /// default.
    fn recipient(&self) -> Option<&str> {
        None
    }

    /// What it names below its kind: slices (`country=GB`, `tenant=acme`) tracked per kind,
    /// and optionally a content key for the repeat check (with [`recipient`](Self::recipient)).
    /// [`Slices::none`] by default: nothing is tracked below the kind and the send costs what a
    /// send of the kind alone costs. See [guide::slices](crate::guide::slices).
    ///
    /// ```
    /// use spikebreaker::Notification;
    /// use spikebreaker::guard::Slices;
    ///
    /// struct Sms { to: String, prefix: String, tenant: String }
    /// impl Notification for Sms {
    ///     fn kind(&self) -> &str { "sms.login_code" }
    ///     fn recipient(&self) -> Option<&str> { Some(&self.to) }
    ///     fn slices(&self) -> Slices<'_> {
    ///         Slices::new().with("prefix", &self.prefix).with("tenant", &self.tenant)
    ///     }
    /// }
    /// ```
    fn slices(&self) -> Slices<'_> {
        Slices::none()
    }
}

/// A shared sender is a sender: `Arc<S>` and `&S` send through `S`.
macro_rules! shared_sender {
    ($($shared:ty),*) => {$(
        impl<N, S: Sender<N> + ?Sized> Sender<N> for $shared {
            type Output = S::Output;
            type Error = S::Error;

            fn send(&self, notification: N) -> Result<Self::Output, Self::Error> {
                (**self).send(notification)
            }

            fn send_released(&self, notification: N, key: &str) -> Result<Self::Output, Self::Error> {
                (**self).send_released(notification, key)
            }

            fn carries_release_key(&self) -> bool {
                (**self).carries_release_key()
            }
        }

        impl<N, S: AsyncSender<N> + ?Sized> AsyncSender<N> for $shared {
            type Output = S::Output;
            type Error = S::Error;

            fn send(&self, notification: N) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send {
                (**self).send(notification)
            }

            fn send_released(
                &self,
                notification: N,
                key: &str,
            ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send {
                (**self).send_released(notification, key)
            }

            fn carries_release_key(&self) -> bool {
                (**self).carries_release_key()
            }
        }
    )*};
}

shared_sender!(Arc<S>, &S);

/// A closure as a sender: `Fn(N) -> Result<T, E>` is a [`Sender`], `Fn(N) -> impl Future<Output =
/// Result<T, E>>` an [`AsyncSender`]. Made by [`sender_fn`]; `R` is the closure that sends
/// released items with their idempotency key, given with [`released`](Self::released) (`()`
/// until then).
#[derive(Clone, Copy)]
pub struct SenderFn<F, R = ()> {
    send: F,
    released: R,
}

impl<F, R> fmt::Debug for SenderFn<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderFn").finish_non_exhaustive()
    }
}

/// A sender of a closure, to guard a function without writing a type for it: a closure that
/// returns a `Result` is a [`Sender`], one that returns a future of a `Result` (an `async`
/// block) an [`AsyncSender`].
///
/// ```
/// use spikebreaker::{Breaker, Config, Guarded, Notification, Sender, sender_fn};
///
/// struct Sms { kind: &'static str, to: String }
/// impl Notification for Sms {
///     fn kind(&self) -> &str { self.kind }
/// }
///
/// let gateway = sender_fn(|sms: Sms| -> Result<(), std::io::Error> {
///     println!("to {}", sms.to);
///     Ok(())
/// });
/// let guarded = Guarded::new(gateway, Breaker::new(Config::default())?);
/// assert!(guarded.send(Sms { kind: "sms.login_code", to: "+15550100".into() }).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Asynchronously:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use spikebreaker::{AsyncSender, Breaker, Config, Guarded, Notification, sender_fn};
/// # struct Sms { kind: &'static str }
/// # impl Notification for Sms { fn kind(&self) -> &str { self.kind } }
/// let gateway = sender_fn(|_sms: Sms| async { Ok::<_, std::io::Error>("queued") });
/// let guarded = Guarded::new(gateway, Breaker::new(Config::default())?);
/// assert_eq!(guarded.send(Sms { kind: "sms.login_code" }).await?, "queued");
/// # Ok(())
/// # }
/// ```
///
/// A closure cannot take a release's idempotency key, so a sender made of one alone is refused
/// by a [`Releaser`](crate::quarantine::Releaser); give it a second closure for released items
/// with [`SenderFn::released`].
pub fn sender_fn<F>(send: F) -> SenderFn<F> {
    SenderFn { send, released: () }
}

impl<F> SenderFn<F> {
    /// Sends the items a [`Releaser`](crate::quarantine::Releaser) releases with `released`,
    /// given the notification and its idempotency key (the same on every attempt: hand it to the
    /// provider). For an asynchronous sender, `released` returns a future that owns what it
    /// needs of the key.
    ///
    /// ```
    /// use spikebreaker::sender_fn;
    /// # struct Sms { to: String }
    /// let gateway = sender_fn(|sms: Sms| -> Result<(), std::io::Error> { Ok(()) })
    ///     .released(|sms: Sms, key: &str| -> Result<(), std::io::Error> {
    ///         println!("to {} with Idempotency-Key: {key}", sms.to);
    ///         Ok(())
    ///     });
    /// ```
    pub fn released<R>(self, released: R) -> SenderFn<F, R> {
        SenderFn {
            send: self.send,
            released,
        }
    }
}

impl<N, F, T, E> Sender<N> for SenderFn<F>
where
    F: Fn(N) -> Result<T, E>,
{
    type Output = T;
    type Error = E;

    fn send(&self, notification: N) -> Result<T, E> {
        (self.send)(notification)
    }

    fn carries_release_key(&self) -> bool {
        false
    }
}

impl<N, F, R, T, E> Sender<N> for SenderFn<F, R>
where
    F: Fn(N) -> Result<T, E>,
    R: Fn(N, &str) -> Result<T, E>,
{
    type Output = T;
    type Error = E;

    fn send(&self, notification: N) -> Result<T, E> {
        (self.send)(notification)
    }

    fn send_released(&self, notification: N, key: &str) -> Result<T, E> {
        (self.released)(notification, key)
    }
}

impl<N, F, Fut, T, E> AsyncSender<N> for SenderFn<F>
where
    F: Fn(N) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send,
{
    type Output = T;
    type Error = E;

    fn send(&self, notification: N) -> impl Future<Output = Result<T, E>> + Send {
        (self.send)(notification)
    }

    fn carries_release_key(&self) -> bool {
        false
    }
}

impl<N, F, R, Fut, ReleasedFut, T, E> AsyncSender<N> for SenderFn<F, R>
where
    F: Fn(N) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send,
    R: Fn(N, &str) -> ReleasedFut,
    ReleasedFut: Future<Output = Result<T, E>> + Send,
{
    type Output = T;
    type Error = E;

    fn send(&self, notification: N) -> impl Future<Output = Result<T, E>> + Send {
        (self.send)(notification)
    }

    fn send_released(&self, notification: N, key: &str) -> impl Future<Output = Result<T, E>> + Send {
        (self.released)(notification, key)
    }
}
