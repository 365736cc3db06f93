//! [`BreakerBuilder`]: a breaker's configuration, clock, name and snapshot file, set in one
//! chain.

use std::path::PathBuf;
use std::time::Duration;

use super::{Breaker, Keeping};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::Error;

/// How often a breaker with a snapshot file saves it, unless told otherwise.
const SAVE_EVERY: Duration = Duration::from_secs(300);

/// Builds a [`Breaker`]: `Breaker::builder()`, the settings that differ from the defaults, then
/// [`build`](Self::build).
///
/// ```
/// use spikebreaker::{Breaker, Config};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("spikebreaker.json");
/// let breaker = Breaker::builder()
///     .config(Config::from_toml("[kinds.\"security.*\"]\nrecovery = \"manual\"\n")?)
///     .name("mailer") // the `breaker` label of its metrics
///     .snapshot_file(path) // what it learns survives restarts
///     .build()?;
/// assert!(breaker.check("security.2fa_changed").is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct BreakerBuilder<C: Clock = SystemClock> {
    config: Config,
    clock: C,
    name: String,
    snapshot_file: Option<PathBuf>,
    save_every: Duration,
    strict_snapshot: bool,
}

impl Breaker<SystemClock> {
    /// A [`BreakerBuilder`]: the default configuration on the system clock, named `"default"`,
    /// keeping no snapshot file, until told otherwise.
    pub fn builder() -> BreakerBuilder<SystemClock> {
        BreakerBuilder {
            config: Config::default(),
            clock: SystemClock::new(),
            name: Breaker::DEFAULT_NAME.to_owned(),
            snapshot_file: None,
            save_every: SAVE_EVERY,
            strict_snapshot: false,
        }
    }
}

impl<C: Clock> BreakerBuilder<C> {
    /// Runs on `config` ([`Config::default`] otherwise).
    pub fn config(self, config: Config) -> Self {
        Self { config, ..self }
    }

    /// Runs on `clock` ([`SystemClock`] otherwise; a [`ManualClock`](crate::ManualClock) for
    /// tests and replays).
    pub fn clock<D: Clock>(self, clock: D) -> BreakerBuilder<D> {
        BreakerBuilder {
            config: self.config,
            clock,
            name: self.name,
            snapshot_file: self.snapshot_file,
            save_every: self.save_every,
            strict_snapshot: self.strict_snapshot,
        }
    }

    /// Names the breaker (`"default"` otherwise): every metric series it exports carries the name
    /// as the label `breaker`, so that two breakers in one process keep series of their own. A
    /// second live breaker of a name already in use logs a warning (once per name).
    pub fn name(self, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// Keeps what the breaker learns, and what was stopped (kinds open, forced, in dry-run,
    /// planned surges), in the file at `path`, across restarts: [`build`] restores the snapshot
    /// in it (a missing file is a first start), the breaker saves it every [`save_every`] (5
    /// minutes by default) on a thread of its own, soon after a stop changes (a trip, a
    /// recovery, an operator's control), and once more when the last clone of the breaker is
    /// dropped (before that drop returns), or at once with [`Breaker::save_snapshot`]. Each save
    /// is atomic: written beside the file, flushed to disk and renamed over it, so a crash leaves
    /// the last complete snapshot. A file that is not a readable snapshot (truncated, corrupt,
    /// another program's, a newer version's) is logged as a warning and set aside as
    /// `<file>.corrupt`, and the breaker starts with nothing learned: never an error; one that
    /// cannot be read at all (no permission) is logged and left in place. A directory that takes
    /// no new file is an error from [`build`]; a save that fails later is logged, and tried
    /// again at the next. Call [`Breaker::save_snapshot`] at a graceful shutdown to see the
    /// error of the last save, if there is one.
    ///
    /// [`build`]: Self::build
    /// [`save_every`]: Self::save_every
    pub fn snapshot_file(self, path: impl Into<PathBuf>) -> Self {
        Self {
            snapshot_file: Some(path.into()),
            ..self
        }
    }

    /// How often the snapshot file is saved (5 minutes by default; at least a millisecond).
    /// Without [`snapshot_file`](Self::snapshot_file), nothing is saved.
    pub fn save_every(self, every: Duration) -> Self {
        Self {
            save_every: every.max(Duration::from_millis(1)),
            ..self
        }
    }

    /// With `true`, a snapshot file that exists but cannot be read as a snapshot (truncated,
    /// corrupt, another program's, a newer version's, not a regular file, no permission) fails
    /// [`build`](Self::build) with an [`Error::File`] naming the path and why, and is left as it
    /// is, for an operator to look at before the service runs with nothing learned and nothing
    /// stopped. By default (`false`) such a file is set aside (or, unreadable, left in place) and
    /// the breaker starts afresh, the problem shown in [`Breaker::status`]'s `problems` and the
    /// `spikebreaker_problem` gauge. A missing file is a first start either way.
    ///
    /// [`Error::File`]: crate::Error::File
    pub fn strict_snapshot(self, strict: bool) -> Self {
        Self {
            strict_snapshot: strict,
            ..self
        }
    }

    /// The breaker. Fails on an invalid configuration, naming the field and value; on a snapshot
    /// file that cannot be saved (its directory is missing or takes no new file), naming the
    /// path; and, with [`strict_snapshot`](Self::strict_snapshot), on one that cannot be read.
    pub fn build(self) -> Result<Breaker<C>, Error> {
        let keeping = self.snapshot_file.map(|path| Keeping {
            path,
            save_every: self.save_every,
            strict: self.strict_snapshot,
        });
        Breaker::assemble(self.config, self.clock, self.name, keeping, true)
    }
}
