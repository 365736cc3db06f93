//! The configuration users write: serde data with defaults, per-kind overrides by name or pattern,
//! and planned surges, by job (one file each):
//!
//! - `types`: [`Config`], [`KindConfig`], [`TimescaleConfig`], the overrides and [`Recovery`];
//! - `load`: reading TOML, JSON or a file of either ([`Config::from_toml`], [`Config::from_json`],
//!   [`Config::from_file`]);
//! - `keys`: which `[kinds."…"]` key applies to a kind ([`Config::override_for`]);
//! - `compile`: the checks, each error naming the field and the bad value
//!   ([`Config::validate`]), and the compiled settings the engine runs on, so nothing is
//!   re-checked on the send path;
//! - `surge`: legitimate bursts announced in advance ([`SurgeConfig`]);
//! - `slices`: slices below the kind and the repeat check ([`SliceConfig`], [`RepeatConfig`]).

mod compile;
mod keys;
mod load;
mod slices;
mod surge;
mod types;

pub use crate::name::{MAX_KIND_NAME_BYTES, validate_kind_name};
pub(crate) use compile::{Compiled, KindSettings, MAX_COUNT};
pub use slices::{RepeatConfig, RepeatOverride, SliceConfig, SliceOverride};
pub use surge::SurgeConfig;
pub(crate) use surge::{
    MAX_SURGE_MS, MAX_SURGE_SENDS, OVERFLOW_REASON as OVERFLOW_SURGE_REASON,
    SENDS_REASON as SURGE_SENDS_REASON,
};
pub use types::{Config, KindConfig, KindOverride, Recovery, TimescaleConfig, TimescaleOverride};
