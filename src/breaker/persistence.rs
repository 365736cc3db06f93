//! What a breaker keeps across a restart: the snapshot of what every kind learned and what was
//! stopped ([`Breaker::snapshot`], [`Breaker::restore`]), and the snapshot file that keeps it,
//! saved every `save_every`, at once when a stop changes, and when the breaker goes.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::{Breaker, Inner};
use crate::clock::Clock;
use crate::error::Error;
use crate::kind::Resolve;
use crate::name::OVERFLOW_KIND;
use crate::observe::Problem;
use crate::observe::metrics::NameInUse;
use crate::snapshot::file::SnapshotFile;
use crate::snapshot::{KindSnapshot, Snapshot, StopSnapshot};
use crate::state::Reason;

impl<C: Clock> Breaker<C> {
    /// The snapshot in `file`, if any, or the problem that stopped it being read; `strict`, an
    /// unreadable file is left as it is and is the error `build()` returns.
    pub(super) fn load(
        file: &SnapshotFile,
        strict: bool,
    ) -> Result<Result<Option<Snapshot>, Problem>, Error> {
        match file.load(!strict) {
            Err(problem) if strict => Err(refused(file, &problem)),
            loaded => Ok(loaded),
        }
    }

    /// Restores what [`load`](Self::load) read, and notes the problem if it could not; a
    /// snapshot refused by the breaker (never one the reader took, as it validates alike) is set
    /// aside or, `strict`, the error.
    pub(super) fn restore_loaded(
        &self,
        loaded: Result<Option<Snapshot>, Problem>,
        strict: bool,
    ) -> Result<(), Error> {
        let Some(file) = &self.inner.snapshot_file else {
            return Ok(());
        };
        let problem = match loaded {
            Ok(None) => return Ok(()),
            Ok(Some(snapshot)) => match self.restore(&snapshot) {
                Ok(()) => return Ok(()),
                Err(error) if strict => {
                    file.abandon();
                    return Err(refused(
                        file,
                        &Problem::SnapshotUnreadable {
                            path: file.shown(),
                            why: error.to_string(),
                        },
                    ));
                }
                Err(error) => file.set_aside(&error.to_string()),
            },
            Err(problem) => problem,
        };
        self.inner.problems.lock().loaded = Some(problem);
        Ok(())
    }

    /// Saves the snapshot file every `every`, and at once when woken (a stop changed), until
    /// `woken` hears the breaker go; holds the breaker only while saving, so that dropping the
    /// last clone stops it.
    pub(super) fn save_periodically(&self, every: Duration, woken: mpsc::Receiver<()>) {
        let inner = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("spikebreaker-snapshot".into())
            .spawn(move || {
                while let Ok(()) | Err(RecvTimeoutError::Timeout) = woken.recv_timeout(every) {
                    // Stops changed in a burst (a runaway tripping many kinds) save once.
                    while woken.try_recv().is_ok() {}
                    match inner.upgrade() {
                        Some(inner) => inner.save_logged(),
                        None => break,
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the thread that saves the snapshot file: it is saved at shutdown only");
            return;
        }
        // A transition or an operator's control changes what a restart must keep: save it now
        // rather than at the next periodic save, so that a crash soon after does not lose it.
        let inner = Arc::downgrade(&self.inner);
        self.subscribe(move |event| {
            if event.reason != Reason::StillOpen {
                if let Some(inner) = inner.upgrade() {
                    inner.save_soon();
                }
            }
        })
        .detach();
    }

    /// Saves the snapshot file now ([`BreakerBuilder::snapshot_file`](super::BreakerBuilder::snapshot_file)),
    /// atomically; does nothing for a breaker without one. A breaker saves it on its own every
    /// [`save_every`](super::BreakerBuilder::save_every), soon after a stop changes (a trip, a
    /// recovery, an operator's control), and when its last clone is dropped; call this at a
    /// graceful shutdown to see the error if there is one.
    pub fn save_snapshot(&self) -> Result<(), Error> {
        match &self.inner.snapshot_file {
            Some(file) => {
                let saved = file.save(|| self.snapshot());
                self.inner.saved(file, saved.as_ref().err());
                saved
            }
            None => Ok(()),
        }
    }

    /// What every kind has learned, and what was stopped, to restore after a restart
    /// ([`restore`](Self::restore)): not the overflow kind's learning (it learns nothing), but its
    /// stops too. A family's sum (the kinds of a `prefix.*` override) is kept under its key.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// Replaces what kinds have learned with a snapshot's, registering its kinds, and puts back
    /// what was stopped: a kind open on a trip (held for an operator under
    /// `recovery = "manual"`, until the end of its cool-down otherwise), forced open or closed, in
    /// dry-run by an operator's hand, or given a planned surge stays so. Not kept: a half-open
    /// probe, and a trip whose cool-down ended meanwhile (see [persistence](crate::guide::persistence)).
    ///
    /// A snapshot that fails [`Snapshot::validate`] is refused whole and the breaker keeps what
    /// it had. Kinds with stops take their slots first; a kind that finds no room of its own is
    /// not restored (nothing is restored into the overflow kind but its own stops).
    pub fn restore(&self, snapshot: &Snapshot) -> Result<(), Error> {
        snapshot.validate()?;
        let own = |name: &str| match self.inner.resolve(name) {
            Ok(kind) if (kind.name().as_ref() != OVERFLOW_KIND) == (name != OVERFLOW_KIND) => Some(kind),
            _ => None,
        };
        for (name, stop) in &snapshot.stops {
            if let Some(kind) = own(name) {
                if let Some(learned) = snapshot.kinds.get(name).filter(|_| name != OVERFLOW_KIND) {
                    kind.restore(learned.to_learned());
                    kind.restore_slices(learned.to_slices());
                }
                kind.restore_stops(&stop.to_stops());
            }
        }
        let now = self.inner.shared.clock.now_ms();
        for (name, learned) in &snapshot.kinds {
            if snapshot.stops.contains_key(name) || name == OVERFLOW_KIND {
                continue;
            }
            // A family's sum (the kinds of a `prefix.*` override) is kept under its key.
            let family = self.inner.config.read().1.family(name).cloned();
            if let Some(settings) = family {
                let families = &self.inner.shared.families;
                families.restore(&settings, learned.to_learned(), now);
                continue;
            }
            if let Some(kind) = own(name) {
                kind.restore(learned.to_learned());
                kind.restore_slices(learned.to_slices());
            }
        }
        Ok(())
    }
}

impl<C: Clock> Inner<C> {
    fn snapshot(&self) -> Snapshot {
        let mut kinds = std::collections::BTreeMap::new();
        let mut stops = std::collections::BTreeMap::new();
        for kind in self.registry.all() {
            let name = kind.name();
            if name.as_ref() != OVERFLOW_KIND {
                let learned = KindSnapshot::capture(&kind.learned()).with_slices(kind.learned_slices());
                kinds.insert(name.to_string(), learned);
            }
            if let Some(stopped) = kind.stops() {
                stops.insert(name.to_string(), StopSnapshot::capture(&stopped));
            }
        }
        for (key, learned) in self.shared.families.learned() {
            kinds.insert(key.to_string(), KindSnapshot::capture(&learned));
        }
        Snapshot {
            version: Snapshot::VERSION,
            kinds,
            stops,
        }
    }

    /// Saves the snapshot file, if any, logging a failure (the next save tries again).
    fn save_logged(&self) {
        if let Some(file) = &self.snapshot_file {
            let saved = file.save(|| self.snapshot());
            if let Err(error) = &saved {
                tracing::warn!(%error, "cannot save the snapshot file");
            }
            self.saved(file, saved.as_ref().err());
        }
    }

    /// Notes how a save of the snapshot file went: a failure is a problem until a save succeeds.
    fn saved(&self, file: &SnapshotFile, error: Option<&Error>) {
        let problem = error.map(|error| Problem::SnapshotNotSaved {
            path: file.shown(),
            why: error.to_string(),
        });
        let changed = {
            let mut problems = self.problems.lock();
            std::mem::replace(&mut problems.saved, problem) != problems.saved
        };
        if changed {
            self.export_problems();
        }
    }

    /// What is wrong with the breaker now (see [`Problem`]).
    pub(super) fn problems(&self) -> Vec<Problem> {
        let breakers = if self._name.is_some() {
            NameInUse::live(&self.shared.name)
        } else {
            1
        };
        self.problems.lock().list(breakers)
    }

    /// Sets the problem gauge of a breaker that claims its name (not a replay's).
    pub(super) fn export_problems(&self) {
        if self._name.is_some() {
            let problems = self.problems();
            self.metrics.lock().export_problems(&problems);
        }
    }

    /// Wakes the thread that saves the snapshot file, if there is one, to save now.
    pub(super) fn save_soon(&self) {
        if let Some(saver) = &self.saver {
            let _ = saver.send(());
        }
    }

    /// The last clone of the breaker is going: saves the snapshot file one last time, once a
    /// save in progress is done, and writes it no more (the saving thread stops when the
    /// breaker is gone).
    pub(super) fn close(&self) {
        if let Some(file) = &self.snapshot_file {
            if let Err(error) = file.close(|| self.snapshot()) {
                tracing::warn!(%error, "cannot save the snapshot file");
            }
        }
    }
}

/// The error of a strict breaker whose snapshot file cannot be read (see `strict_snapshot`).
fn refused(file: &SnapshotFile, problem: &Problem) -> Error {
    let why = match problem {
        Problem::SnapshotSetAside { why, .. } | Problem::SnapshotUnreadable { why, .. } => why.clone(),
        other => other.to_string(),
    };
    Error::File {
        action: "read the snapshot file",
        path: file.path().to_owned(),
        message: why,
    }
}
