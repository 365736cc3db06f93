//! The detector: pure arithmetic, no clock, no atomics, no locks, and nothing imported from the
//! rest of the crate. A kind (`crate::kind`) runs it under its lock.
//!
//! - [`ring`], [`tally`]: the windows, a minute of 5-second buckets (the send path's), an hour of
//!   5-minute slots and a day of 2-hour slots filled from the buckets cold work rolls out.
//! - [`profile`]: the kind's week, hour by hour.
//! - [`learned`]: everything a kind learns, and how.
//! - [`limit`]: the limit a window may reach, from what is expected and how counts spread.
//! - [`detector`]: one kind's windows, learning and limits together.
//! - [`policy`]: one kind's detection settings, compiled from the configuration.

mod detector;
mod learned;
mod limit;
mod policy;
mod profile;
mod ring;
mod tally;

pub(crate) use detector::{Detector, Limit, Reading};
pub(crate) use learned::Learned;
pub use limit::{Bound, Timescale};
pub(crate) use limit::{Guards, as_count, limit, upper_quantile};
pub(crate) use policy::Policy;
pub(crate) use profile::{HOURS, Profile};
pub(crate) use ring::BUCKETS;
