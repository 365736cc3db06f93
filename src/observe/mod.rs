//! What a breaker shows: transition [`Event`]s and their subscribers, the [`KindStatus`] a kind's
//! figures are read into and the [`BreakerStatus`] around them, and the [`metrics`] exported from
//! them.

mod event;
pub mod metrics;
mod status;

pub use event::Event;
pub(crate) use event::Subscribers;
pub use status::{BreakerStatus, KindStatus};
