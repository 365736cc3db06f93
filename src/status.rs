//! What a breaker shows of its kinds: where each stands ([`State`], [`Reason`]), its figures
//! ([`KindStatus`], and [`BreakerStatus`] around them, with the breaker's own [`Problem`]s), the
//! [`Window`] every trip is judged on,
//! the transitions it reports ([`Event`], to a [`Subscription`], or with the `tokio` feature on an
//! [`Events`] channel), and the [`metrics`] it exports.
//!
//! ```
//! use spikebreaker::status::{Reason, State};
//! use spikebreaker::{Breaker, Config, ManualClock};
//!
//! let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
//! let _ = breaker.kind("email.receipt");
//! breaker.force_open("email.receipt")?;
//! let status = breaker.kind_status("email.receipt").expect("registered");
//! assert_eq!((status.state, status.reason), (State::Open, Reason::ForcedOpen));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::detect::{Bound, Timescale};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use crate::observe::Events;
pub use crate::observe::metrics;
pub use crate::observe::{BreakerStatus, Event, KindStatus, Problem, Subscription, Surge, Window};
pub use crate::slice::{DimensionStatus, RepeatStatus, SliceId, SliceStatus};
pub use crate::state::{Reason, State};
