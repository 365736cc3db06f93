//! The detector's arithmetic: the sliding window's ring of bucket counts, the learned baseline
//! and the threshold policy. Pure functions of their inputs: no clock, no atomics, no locks, and
//! nothing imported from the rest of the crate, so each part is unit-tested with small tables of
//! cases and property tests against naive oracles. A kind (`crate::kind`) runs it under its lock.

mod baseline;
mod policy;
mod window;

pub(crate) use baseline::{Baseline, Learning};
pub(crate) use policy::{Limit, Policy};
pub(crate) use window::{BUCKETS, Ring};
