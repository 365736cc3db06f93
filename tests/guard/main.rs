//! The send path under load and attack: a guarded sender and what comes back (`guard`), many
//! threads sending at once with exact counts (`concurrency`), and the bounded registry against a
//! flood of junk kind names (`registry`).

#[path = "../support/snapshots.rs"]
mod snapshots;
#[path = "../support/mod.rs"]
mod support;

mod concurrency;
mod guard;
mod registry;
