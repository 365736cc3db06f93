//! Guarding a sender: the [`Sender`] and [`AsyncSender`] traits a sender is written against,
//! [`Guarded`], which checks the breaker before every send, the [`Blocked`] notification it hands
//! back (or the [`Quarantined`] receipt, with a quarantine: [`park`]), and with the `tower`
//! feature the [`tower`] layer.

mod blocked;
mod guarded;
pub(crate) mod park;
mod sender;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use blocked::{Blocked, GuardError, Quarantined};
pub use guarded::{ByNotification, Classify, Guarded, WithRecipient};
pub use park::NoQuarantine;
pub use sender::{AsyncSender, Notification, Sender, SenderFn, sender_fn};
