//! Slices below the kind: a runaway to one prefix, one tenant, a first-ever country or one
//! recipient, caught inside a kind that looks normal (`scenarios`, through the backtest engine
//! with the default configuration); the API a sender sees (`api`: `Notification::slices`, the
//! guarded sender and the tower layer, the refusal, status, events, metrics, snapshots, the
//! quarantine and the admin routes); and the send log's fourth column and the HTML report
//! (`log`).
//!
//! `cargo test --release --test slices scenarios -- --nocapture` prints the figures the slices
//! guide quotes.

#[path = "../support/snapshots.rs"]
mod snapshots;
#[path = "../support/mod.rs"]
mod support;

mod api;
mod log;
mod memory;
mod scenarios;
mod traffic;
