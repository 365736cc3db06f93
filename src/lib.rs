//! # spikebreaker
//!
//! Stops runaway notification senders. spikebreaker wraps any sender and, **per notification
//! kind**, counts sends in a sliding window, learns the kind's normal rate, and **trips** when
//! the kind spikes far above it: the buggy job that starts sending a false "your two-step
//! verification settings changed" notice to every customer is halted after its first hundred or
//! so sends, while every other kind keeps flowing.
//!
//! ```
//! use spikebreaker::{Breaker, Config, Decision, ManualClock};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
//! let twofa = breaker.kind("security.2fa_changed");
//!
//! // A runaway job: thousands of sends in a few seconds, on a kind nobody configured.
//! let mut sent = 0;
//! for _ in 0..10_000 {
//!     clock.advance(Duration::from_millis(2));
//!     if twofa.check() == Decision::Allowed {
//!         sent += 1;
//!     }
//! }
//! assert_eq!(sent, 500); // the warm-up ceiling: nothing is learned yet
//! assert!(breaker.check("email.welcome").is_allowed()); // other kinds flow
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Breaker`] holds every kind ([`Breaker::builder`] sets its configuration, name and
//!   snapshot file); [`KindHandle`] is a resolved kind whose [`check`](KindHandle::check) is the
//!   lock-free send path.
//! - [`Guarded`] wraps a [`Sender`] or [`AsyncSender`] (a closure, with [`sender_fn`]; or, with
//!   the `tower` feature, a tower service via `tower::GuardLayer`) and hands a blocked
//!   notification back in [`Blocked`].
//! - [`Config`] is serde data (TOML, JSON, [`Config::from_file`]) with defaults that work for
//!   kinds nobody configured, and overrides by kind name or pattern (`"security.*"`).
//! - [`Event`]s report every transition ([`Breaker::subscribe`], and with the `tokio` feature
//!   `Breaker::events`); [`KindStatus`] shows a kind to an operator and [`BreakerStatus`] the
//!   whole breaker ([`Breaker::status`]); [`Snapshot`] keeps what was learned across restarts
//!   ([`BreakerBuilder::snapshot_file`] keeps it in a file).
//! - [`backtest`] replays a send log through the same engine on a [`ManualClock`], to see what a
//!   configuration would have done to past traffic.
//! - [`metrics`] names every metric exported through the `metrics` facade, from cold work only;
//!   with the `admin` feature, `admin::router` serves the breaker's status and the operator's
//!   controls over HTTP.
//! - [`quarantine`] is where blocked notifications wait for an operator: give a guarded sender a
//!   [`quarantine::Quarantine`] and every refusal is written to its store before the send
//!   returns; operators list, discard and release (the embedded SQLite store with the
//!   `quarantine` feature, a fleet's Redis Streams with `redis`, and `spikebreaker quarantine` on
//!   the command line).
//! - With the `redis` feature, `fleet::Fleet` syncs a breaker's counts through Redis so that a
//!   fleet of sender instances detects and stops a spike together (see the README's *Fleet
//!   mode*).
//! - Time comes from a [`Clock`]: [`SystemClock`] in production, [`ManualClock`] in tests and
//!   replays.
//!
//! The README's *Architecture* section maps the source tree.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
pub mod backtest;
mod breaker;
mod clock;
mod config;
mod detect;
mod error;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod fleet;
mod guard;
pub mod guide;
mod kind;
mod name;
mod observe;
pub mod quarantine;
mod registry;
mod snapshot;
mod surge;

pub use breaker::{Breaker, BreakerBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, KindConfig, KindOverride, Recovery, TimescaleConfig, TimescaleOverride};
pub use detect::{Bound, Timescale};
pub use error::Error;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use guard::tower;
pub use guard::{
    AsyncSender, Blocked, ByNotification, Classify, GuardError, Guarded, Notification, Quarantined, Sender,
    SenderFn, WithRecipient, sender_fn,
};
pub use kind::{Decision, KindHandle, Reason, State};
pub use name::{MAX_KIND_NAME_BYTES, validate_kind_name};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use observe::Events;
pub use observe::{BreakerStatus, Event, KindStatus, Subscription, Surge, Window, metrics};
pub use snapshot::{KindSnapshot, Snapshot};
pub use surge::SurgeConfig;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
