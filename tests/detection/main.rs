//! Detection: seeded traffic shaped like real notification traffic replayed through the engine
//! (`detection`), a faulty clock (`time_faults`), and property tests of the window against a
//! naive count and of the configuration's and the snapshot's round trips (`properties`).

#[path = "../support/mod.rs"]
mod support;

mod detection;
mod properties;
mod time_faults;
