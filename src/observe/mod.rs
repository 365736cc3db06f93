//! What a breaker shows: transition [`Event`]s and their subscribers, the [`Window`] figure every
//! trip is judged on, the [`KindStatus`] a kind's
//! figures are read into and the [`BreakerStatus`] around them, and the [`metrics`] exported from
//! them.

mod event;
pub mod metrics;
mod status;
mod window;

pub use event::Event;
pub(crate) use event::Subscribers;
pub use status::{BreakerStatus, KindStatus, Surge};
pub use window::Window;
