//! What a breaker is given and keeps: the configuration through parsing, validation and reload
//! (`config`), and the snapshot of what was learned across a restart (`snapshot`).

#[path = "../support/snapshots.rs"]
mod snapshots;

mod config;
mod restart;
mod roundtrip;
mod settings;
mod snapshot;
