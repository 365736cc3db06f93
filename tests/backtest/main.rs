//! Replaying history: the backtest engine and the send-log reader (`backtest`), and, with the `cli`
//! feature, the `spikebreaker backtest` command (`cli`) and the tuner through the library and as
//! `spikebreaker tune` (`tune`).

#[path = "../support/mod.rs"]
mod support;

mod backtest;
#[cfg(feature = "cli")]
#[path = "../support/cli.rs"]
mod binary;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod tune;

// A suite whose feature is off shows as ignored, naming the feature, rather than as nothing.
#[cfg(not(feature = "cli"))]
#[test]
#[ignore = "needs --features cli"]
fn cli() {}

#[cfg(not(feature = "cli"))]
#[test]
#[ignore = "needs --features cli"]
fn tune() {}
