//! # spikebreaker
//!
//! Stops runaway notification senders. spikebreaker wraps any sender and, **per notification
//! kind**, counts sends in three windows (the last minute, hour and day), learns what the kind
//! normally sends at each hour of the week, and **trips** when the kind goes far above what is
//! expected *now*. The buggy job that starts sending a false "your two-step verification settings
//! changed" notice to every customer is halted after its first fifty sends (a kind with a learned
//! week; a kind with nothing learned yet stops at its warm-up ceiling, 500 by default), every other
//! kind keeps flowing, and every refused notification goes back to the caller.
//!
//! # Quick start
//!
//! Wrap the sender in a [`Guarded`]; a refused send hands the notification back:
//!
//! ```
//! use spikebreaker::{Breaker, GuardError, Guarded, Notification, Sender};
//!
//! struct Email {
//!     kind: String,
//!     to: String,
//! }
//!
//! impl Notification for Email {
//!     fn kind(&self) -> &str {
//!         &self.kind
//!     }
//! }
//!
//! struct Smtp;
//!
//! impl Sender<Email> for Smtp {
//!     type Output = ();
//!     type Error = std::io::Error;
//!
//!     fn send(&self, _email: Email) -> std::io::Result<()> {
//!         Ok(()) // hand it to the provider
//!     }
//! }
//!
//! let breaker = Breaker::builder().name("mailer").build()?;
//! let smtp = Guarded::new(Smtp, breaker);
//!
//! // A job runs away on a kind nothing was learned of yet: the warm-up ceiling stops it at 500.
//! let mut handed_back = Vec::new();
//! for i in 0..2_000 {
//!     let email = Email { kind: "security.2fa_changed".into(), to: format!("user{i}@example.com") };
//!     match smtp.send(email) {
//!         Ok(()) => {}
//!         Err(GuardError::Blocked(blocked)) => handed_back.push(blocked.into_notification()),
//!         Err(error) => return Err(error.into()),
//!     }
//! }
//! assert_eq!(handed_back.len(), 1_500);
//! // Every other kind keeps flowing.
//! assert!(smtp.send(Email { kind: "email.receipt".into(), to: "a@example.com".into() }).is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a service, give [`Breaker::builder`] the configuration file and a snapshot file, and add
//! what the service needs: metrics, the admin router, a quarantine and its releaser. The README's
//! *One whole service* (`examples/service.rs`) wires them all.
//!
//! # What is where
//!
//! - [`Breaker`] holds every kind; [`KindHandle`] is a resolved kind whose
//!   [`check`](KindHandle::check) is the lock-free send path (a clock read, a few atomics, a
//!   compare).
//! - [`Guarded`] wraps a [`Sender`] or [`AsyncSender`] (a closure, with [`sender_fn`]) and hands a
//!   refused notification back in [`Blocked`]; [`guard`] holds its parts.
//! - [`Config`] is serde data (TOML, JSON, [`Config::from_file`]) with defaults that work for
//!   kinds nobody configured; [`config`] holds the overrides by kind name or pattern
//!   (`"security.*"`) and the kind-name rule.
//! - [`status`] is what a breaker shows: each kind's [`status::KindStatus`], the
//!   [`status::Event`]s of its transitions, and the names of the metrics it exports
//!   through the `metrics` facade.
//! - [`Snapshot`] keeps what was learned across restarts ([`BreakerBuilder::snapshot_file`]
//!   keeps it in a file).
//! - [`quarantine`] is where refused notifications wait for an operator, who lists, discards and
//!   releases them; a [`Releaser`](quarantine::Releaser) sends what was released.
//! - [`backtest`] replays a send log through the same engine on a [`ManualClock`], to see what a
//!   configuration would have done to past traffic.
//! - Time comes from a [`Clock`]: [`SystemClock`] in production, [`ManualClock`] in tests and
//!   replays.
//! - [`guide`] is the manual: how detection and recovery work, every configuration field, the
//!   snapshot file, metrics, fleet mode, the quarantine, the backtest, performance, the evidence
//!   for every guarantee, and the known limits.
//!
//! # Features
//!
//! None is on by default.
//!
//! | Feature | Adds | Pulls in |
//! |---|---|---|
//! | `tower` | `guard::tower::GuardLayer`: guards any tower `Service` | `tower`, `pin-project-lite` |
//! | `tokio` | `Breaker::events`: a breaker's events on a tokio channel | `tokio` |
//! | `admin` | `admin::router`: status and operator controls as JSON over HTTP; `quarantine::admin`, the quarantine's routes; `admin::serve`, which serves them with a header-read timeout, a request timeout and a connection bound | `axum`, `tokio`, `subtle`, `hyper`, `hyper-util` (both already axum's) |
//! | `quarantine` | `quarantine::SqliteStore`: the embedded, durable quarantine store | `rusqlite` (SQLite compiled in) |
//! | `prometheus` | `status::metrics::prometheus()`: the Prometheus exporter set up to drop the series of kinds the breaker forgot | `metrics-exporter-prometheus` |
//! | `redis` | `fleet`: one breaker across many instances, synced through Redis; `quarantine::RedisStore` | `redis`, `tokio`, `getrandom` |
//! | `parallel` | a backtest's log parsed, and its kinds replayed, on every core | `rayon` |
//! | `cli` | the `spikebreaker` tool: `backtest`, `tune`, and `quarantine` (with `quarantine` or `redis`) | `clap`, `indicatif`; turns on `parallel` |

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
pub mod config;
mod detect;
mod error;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod fleet;
pub mod guard;
pub mod guide;
mod json;
mod kind;
mod name;
mod observe;
pub mod quarantine;
mod registry;
mod slice;
mod snapshot;
mod state;
pub mod status;

// The root is what a user writes in the first hour; the rest is in the modules above, by concept.
// `tests::the_root_stays_small` counts these names.
pub use breaker::{Breaker, BreakerBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use error::Error;
pub use guard::{AsyncSender, Blocked, GuardError, Guarded, Notification, Sender, sender_fn};
pub use kind::{Decision, KindHandle};
pub use snapshot::Snapshot;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;

#[cfg(test)]
mod tests;
