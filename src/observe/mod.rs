//! What a breaker shows: transition [`Event`]s and their subscribers (a [`Subscription`] each), the [`Window`] figure every
//! trip is judged on, the [`KindStatus`] a kind's
//! figures are read into and the [`BreakerStatus`] around them, and the [`metrics`] exported from
//! them.

mod event;
pub mod metrics;
mod problem;
#[cfg(feature = "prometheus")]
mod prometheus;
mod status;
mod subscription;
mod window;

pub(crate) use event::Account;
pub use event::Event;
pub use problem::Problem;
pub(crate) use problem::Problems;
pub use status::{BreakerStatus, KindStatus, Surge};
#[cfg(feature = "tokio")]
pub use subscription::Events;
pub(crate) use subscription::Subscribers;
pub use subscription::Subscription;
pub use window::Window;
