//! The traits a guarded sender is written against: [`Sender`], [`AsyncSender`], and
//! [`Notification`] for a notification that names its own kind.

use std::future::Future;

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
}
