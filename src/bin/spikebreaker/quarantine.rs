//! `spikebreaker quarantine`: looks at, releases and discards what a quarantine holds, on the
//! embedded store's file (`--store`, feature `quarantine`) or a fleet's Redis (`--redis`, feature
//! `redis`), while the services that fill it run. Answers are JSON on standard output.
//!
//! `release` approves: the items go out from the service's releaser, through its sender, at the
//! kind's pace.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;
use spikebreaker::quarantine::{Delivery, Filter, ItemState, Quarantine, Query, ReleaseOrder, StoreError};

/// Bad arguments: exit code 2, like a usage error.
const BAD_INPUT: u8 = 2;

#[derive(Debug, Args)]
pub(crate) struct QuarantineArgs {
    /// The embedded store's file.
    #[arg(long, value_name = "FILE", global = true)]
    store: Option<PathBuf>,
    /// The Redis a fleet's store lives in (`redis://host:port`, `redis+unix:///path`).
    #[arg(long, value_name = "URL", global = true, conflicts_with = "store")]
    redis: Option<String>,
    /// The Redis store's key prefix (the fleet's `key_prefix`).
    #[arg(long, value_name = "PREFIX", global = true, default_value = "spikebreaker")]
    prefix: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Per kind and trip: how many items stand where, distinct recipients, who got the most, and
    /// a sample.
    List {
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only this trip.
        #[arg(long, requires = "kind")]
        trip: Option<u64>,
    },
    /// Items with their notifications, oldest first.
    Show {
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only this trip.
        #[arg(long, requires = "kind")]
        trip: Option<u64>,
        /// Only items in this state: held, approved, sending, released or discarded.
        #[arg(long)]
        state: Option<String>,
        /// Only items numbered above this one (the last id of the page before).
        #[arg(long)]
        after: Option<u64>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Approves a kind's held items (or one trip's, or those named) for release.
    Release {
        #[command(flatten)]
        selection: Selection,
        /// At most this many sends a minute (default: the kind's learned normal rate).
        #[arg(long)]
        per_minute: Option<f64>,
        /// If a releaser dies mid-send, hold that item in doubt rather than send it again.
        #[arg(long)]
        at_most_once: bool,
    },
    /// Discards a kind's held items (or one trip's, or those named), keeping the reason for
    /// audit; approved items are left to the releaser.
    Discard {
        #[command(flatten)]
        selection: Selection,
        /// Why (kept with each item).
        #[arg(long)]
        reason: String,
    },
    /// Moves a damaged store file (with its `-wal` and `-shm` files, which may hold its last
    /// commits) aside to `FILE.corrupt-<unix ms>`, so that the service can start a fresh one;
    /// the embedded store only. Stop the service first.
    SetAside,
}

/// What a release or discard acts on.
#[derive(Debug, Args)]
struct Selection {
    /// The kind.
    #[arg(long)]
    kind: String,
    /// Only this trip.
    #[arg(long)]
    trip: Option<u64>,
    /// Only these items (`--ids 17,42`).
    #[arg(long, value_delimiter = ',')]
    ids: Vec<u64>,
}

impl Selection {
    fn filter(&self) -> Filter {
        Filter {
            trip: self.trip,
            ids: self.ids.clone(),
            ..Filter::kind(&self.kind)
        }
    }
}

enum Failure {
    BadInput(String),
    Store(String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Invalid(_) => Self::BadInput(error.to_string()),
            StoreError::Corrupt { .. } => Self::Store(format!(
                "{error}\n(to start afresh, keeping it for recovery, stop the service and move it aside with its \
                 -wal and -shm files: `spikebreaker quarantine --store FILE set-aside`)"
            )),
            _ => Self::Store(error.to_string()),
        }
    }
}

pub(crate) fn run(args: &QuarantineArgs) -> ExitCode {
    match act(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(message)) => {
            eprintln!("spikebreaker quarantine: {message}");
            ExitCode::from(BAD_INPUT)
        }
        Err(Failure::Store(message)) => {
            eprintln!("spikebreaker quarantine: {message}");
            ExitCode::FAILURE
        }
    }
}

fn act(args: &QuarantineArgs) -> Result<(), Failure> {
    if let Action::SetAside = args.action {
        return set_aside(args);
    }
    let quarantine = open(args)?;
    match &args.action {
        Action::List { kind, trip } => {
            let filter = Filter {
                kind: kind.clone(),
                trip: *trip,
                ..Filter::default()
            };
            print(&quarantine.summary(&filter)?)
        }
        Action::Show {
            kind,
            trip,
            state,
            after,
            limit,
        } => {
            let state = match state {
                Some(state) => Some(state.parse::<ItemState>().map_err(Failure::BadInput)?),
                None => None,
            };
            let query = Query {
                state,
                after: *after,
                ..Query::new(
                    Filter {
                        kind: kind.clone(),
                        trip: *trip,
                        ..Filter::default()
                    },
                    *limit,
                )
            };
            print(&quarantine.items(&query)?)
        }
        Action::Release {
            selection,
            per_minute,
            at_most_once,
        } => {
            let order = ReleaseOrder {
                per_minute: *per_minute,
                delivery: if *at_most_once {
                    Delivery::AtMostOnce
                } else {
                    Delivery::AtLeastOnce
                },
            };
            print(&json!({ "approved": quarantine.release(&selection.filter(), &order)? }))
        }
        Action::Discard { selection, reason } => {
            let filter = selection.filter();
            print(&json!({ "discarded": quarantine.discard(&filter, reason)? }))
        }
        Action::SetAside => unreachable!("handled before the store is opened"),
    }
}

/// `set-aside`: the embedded store's file moved out of the way, whole.
fn set_aside(args: &QuarantineArgs) -> Result<(), Failure> {
    let Some(path) = &args.store else {
        return Err(Failure::BadInput(
            "set-aside moves an embedded store's file: name it with --store FILE".to_owned(),
        ));
    };
    #[cfg(feature = "quarantine")]
    {
        let aside = spikebreaker::quarantine::SqliteStore::set_aside(path)?;
        print(&json!({ "set_aside": aside }))
    }
    #[cfg(not(feature = "quarantine"))]
    Err(Failure::BadInput(format!(
        "--store {}: this build has no embedded store (build with --features quarantine)",
        path.display()
    )))
}

/// The store the arguments name.
fn open(args: &QuarantineArgs) -> Result<Quarantine, Failure> {
    if let Some(path) = &args.store {
        #[cfg(feature = "quarantine")]
        return Ok(Quarantine::new(
            spikebreaker::quarantine::SqliteStore::open_existing(path)?,
        ));
        #[cfg(not(feature = "quarantine"))]
        return Err(Failure::BadInput(format!(
            "--store {}: this build has no embedded store (build with --features quarantine)",
            path.display()
        )));
    }
    if let Some(url) = &args.redis {
        #[cfg(feature = "redis")]
        {
            let options = spikebreaker::quarantine::RedisOptions {
                key_prefix: args.prefix.clone(),
                ..Default::default()
            };
            return Ok(Quarantine::new(spikebreaker::quarantine::RedisStore::open(
                url, options,
            )?));
        }
        #[cfg(not(feature = "redis"))]
        return Err(Failure::BadInput(format!(
            "--redis {url}: this build has no Redis store (build with --features redis)"
        )));
    }
    Err(Failure::BadInput(
        "name the store: --store FILE or --redis URL".to_owned(),
    ))
}

fn print(value: &impl Serialize) -> Result<(), Failure> {
    super::to_stdout(|stdout| {
        serde_json::to_writer_pretty(&mut *stdout, value)?;
        writeln!(stdout)
    })
    .map_err(|e| Failure::Store(format!("cannot write the answer: {e}")))
}
