//! Guarding a sender: the [`Sender`] and [`AsyncSender`] traits a sender is written against,
//! [`Guarded`], which checks the breaker before every send, the [`Blocked`] notification it hands
//! back, and with the `tower` feature the [`tower`] layer.

mod blocked;
mod guarded;
mod sender;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use blocked::{Blocked, GuardError};
pub use guarded::{ByNotification, Guarded};
pub use sender::{AsyncSender, Notification, Sender};
