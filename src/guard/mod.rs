//! Guarding a sender: the [`Sender`] and [`AsyncSender`] traits a sender is written against (a
//! closure through [`sender_fn`]), the [`Notification`] it sends, [`Guarded`], which checks the
//! breaker before every send (by the notification's kind, or as [`Classify`] says), the
//! [`Blocked`] notification it hands back (or the [`Quarantined`] receipt, with a
//! [`quarantine`](crate::quarantine)), and with the `tower` feature the [`tower`] layer.

mod blocked;
mod guarded;
pub(crate) mod park;
mod sender;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use crate::slice::{CONTENT, MAX_DIMENSION_BYTES, MAX_SLICES, MAX_VALUE_BYTES, Slices, check_pair};
pub use blocked::{Blocked, GuardError, Quarantined};
pub use guarded::{ByNotification, Classify, Guarded, WithRecipient, WithSlices};
pub use sender::{AsyncSender, Notification, Sender, SenderFn, sender_fn};
