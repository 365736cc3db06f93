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
