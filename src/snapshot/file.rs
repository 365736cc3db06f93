//! A breaker's snapshot file (see [`BreakerBuilder::snapshot_file`]): read when the breaker is
//! built, written atomically (a temporary file beside it, flushed to disk, renamed over it, the
//! directory flushed) so that a crash at any point leaves the last complete snapshot or the new
//! one, never a mix. A file that cannot be read as a snapshot is set aside, not deleted and
//! never a crash.
//!
//! [`BreakerBuilder::snapshot_file`]: crate::BreakerBuilder::snapshot_file

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::Snapshot;
use crate::error::Error;
use crate::observe::Problem;

/// One snapshot file and its writes, one at a time.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    path: PathBuf,
    /// Held while writing; `true` once the breaker closed the file with its last save, after
    /// which nothing more is written (a save the saving thread was about to make would put an
    /// older breaker's state over a newer one's, on a breaker rebuilt in the same process).
    writing: Mutex<bool>,
}

impl SnapshotFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            writing: Mutex::new(false),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new temporary file beside the snapshot file, for one write to be renamed over it:
    /// `<name>.tmp.<16 hex digits>`, created exclusively (`O_EXCL`), so that no two writes ever
    /// share one: not two breakers of one process on one path, not a breaker rebuilt while the
    /// old one's last save runs, not two containers that both run as process 1 on a shared
    /// volume. The digits are unpredictable (a hash of the process and a count under the
    /// process's random hash keys), so that whoever else can write the directory
    /// cannot take every name a save would try and so stop the breaker from being built.
    fn create_temporary(&self) -> Result<(File, PathBuf), Error> {
        let mut last = None;
        for _ in 0..TEMPORARY_ATTEMPTS {
            let mut name = self.temporary_prefix();
            name.push(format!("{:016x}", unpredictable()));
            let path = self.path.with_file_name(name);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((file, path)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = Some(path),
                Err(error) => return Err(failed("create", &path)(error)),
            }
        }
        let path = last.unwrap_or_else(|| self.path.clone());
        Err(failed("create", &path)(io::Error::from(
            io::ErrorKind::AlreadyExists,
        )))
    }

    /// `<name>.tmp.`, which every temporary file of the snapshot file's name starts with.
    fn temporary_prefix(&self) -> std::ffi::OsString {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp.");
        name
    }

    /// Checks that a save can be written beside the file (the directory exists and takes a new
    /// file), so that a snapshot path that can never be saved is an error when the breaker is
    /// built rather than a warning at each save.
    pub(crate) fn probe(&self) -> Result<(), Error> {
        let (file, temporary) = self.create_temporary()?;
        drop(file);
        fs::remove_file(&temporary).map_err(failed("remove", &temporary))
    }

    /// Removes temporary files of this snapshot file's name left by a write a crash interrupted:
    /// those last written over a minute ago (a save takes milliseconds), so that a process
    /// saving now is left alone.
    fn remove_unfinished(&self) {
        let prefix = self.temporary_prefix();
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let Ok(entries) = fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.as_encoded_bytes().starts_with(prefix.as_encoded_bytes()) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= UNFINISHED_AFTER));
            if !stale {
                continue;
            }
            let path = entry.path();
            tracing::warn!(
                path = %path.display(),
                "removing an unfinished snapshot write (the process stopped while saving); the last complete snapshot is used"
            );
            if let Err(error) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot remove it");
            }
        }
    }

    /// The snapshot in the file, if there is one (`None`: no file, a first start). Unfinished
    /// writes a crash left are removed. A file that is not a snapshot this version reads
    /// (truncated, corrupt, another program's, a newer version's) is warned about and, with
    /// `set_aside`, moved aside ([`set_aside`](Self::set_aside)); without, left in place. A file
    /// that cannot be read at all (no permission, not a regular file) is warned about and left
    /// in place. Either is the problem returned, and the breaker starts afresh (or, strict, is
    /// not built).
    pub(crate) fn load(&self, set_aside: bool) -> Result<Option<Snapshot>, Problem> {
        self.remove_unfinished();
        let text = match read_regular(&self.path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                tracing::warn!(
                    path = %self.path.display(),
                    %error,
                    "the snapshot file cannot be read: left in place, starting with nothing learned"
                );
                return Err(Problem::SnapshotUnreadable {
                    path: self.shown(),
                    why: error.to_string(),
                });
            }
        };
        match text.and_then(|text| Snapshot::from_json(&text).map_err(|error| error.to_string())) {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(why) if set_aside => Err(self.set_aside(&why)),
            Err(why) => Err(Problem::SnapshotUnreadable {
                path: self.shown(),
                why,
            }),
        }
    }

    /// The file's path, as a problem shows it.
    pub(crate) fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Moves an unreadable file out of the way, beside it as `<name>.corrupt` (`.corrupt.1`, ...
    /// if taken), so that nothing is lost and the next save starts a good one; warns with `why`,
    /// and returns the problem.
    pub(crate) fn set_aside(&self, why: &str) -> Problem {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".corrupt");
        let mut aside = self.path.with_file_name(&name);
        let mut n = 0;
        while aside.exists() {
            n += 1;
            aside = self
                .path
                .with_file_name(format!("{}.{n}", name.to_string_lossy()));
        }
        let set_aside_as = match fs::rename(&self.path, &aside) {
            Ok(()) => {
                tracing::warn!(
                    path = %self.path.display(),
                    set_aside = %aside.display(),
                    why,
                    "the snapshot file cannot be read: set aside, starting with nothing learned"
                );
                Some(aside.display().to_string())
            }
            Err(error) => {
                tracing::warn!(
                    path = %self.path.display(),
                    why,
                    %error,
                    "the snapshot file cannot be read, nor set aside: starting with nothing learned"
                );
                None
            }
        };
        Problem::SnapshotSetAside {
            path: self.shown(),
            set_aside_as,
            why: why.to_owned(),
        }
    }

    /// Writes nothing more: a breaker that is not built leaves the file as it found it.
    pub(crate) fn abandon(&self) {
        *self.writing.lock() = true;
    }

    /// Writes the snapshot `take` returns, atomically: to the temporary file, flushed to disk,
    /// renamed over the file, and the directory flushed so that the rename itself survives a
    /// power loss. `take` runs once the previous save is done, so a snapshot taken earlier
    /// never overwrites a later one; a failed write removes its temporary file.
    pub(crate) fn save(&self, take: impl FnOnce() -> Snapshot) -> Result<(), Error> {
        let closed = self.writing.lock();
        if *closed {
            return Ok(());
        }
        self.write(take())
    }

    /// The last save: writes the snapshot `take` returns, once any save in progress is done,
    /// and closes the file to every later one.
    pub(crate) fn close(&self, take: impl FnOnce() -> Snapshot) -> Result<(), Error> {
        let mut closed = self.writing.lock();
        if std::mem::replace(&mut *closed, true) {
            return Ok(());
        }
        self.write(take())
    }

    /// Writes `snapshot` (see [`save`](Self::save)); the caller holds the writing lock. Never
    /// over what is not a regular file (a FIFO, a socket, a device, a directory): that is left
    /// in place, and the save fails naming it.
    fn write(&self, snapshot: Snapshot) -> Result<(), Error> {
        if let Ok(found) = fs::metadata(&self.path) {
            if !found.is_file() {
                return Err(failed("replace", &self.path)(not_regular()));
            }
        }
        let (mut file, temporary) = self.create_temporary()?;
        let written = file
            .write_all(snapshot.to_json().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(failed("write", &temporary))
            .and_then(|()| fs::rename(&temporary, &self.path).map_err(failed("replace", &self.path)));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written?;
        sync_directory(&self.path).map_err(failed("flush the directory of", &self.path))
    }
}

/// The file at `path`, read whole if it is a regular file: a FIFO is opened without waiting
/// for a writer (and refused, as a socket, a device or a directory is), so that nothing at the
/// path can hold the breaker's start.
fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut options = File::options();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

fn not_regular() -> io::Error {
    io::Error::other("it is not a regular file (a FIFO, a socket, a device or a directory)")
}

/// 64 bits no other process can guess: the process and a count, hashed under the process's
/// random hash keys (`RandomState`, seeded from the system's randomness).
fn unpredictable() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    std::process::id().hash(&mut hasher);
    NEXT.fetch_add(1, Ordering::Relaxed).hash(&mut hasher);
    hasher.finish()
}

/// How old a temporary file must be for [`SnapshotFile::load`] to take it for a crash's leftover.
const UNFINISHED_AFTER: Duration = Duration::from_secs(60);

/// Names tried for a new temporary file before giving up (each taken by another write).
const TEMPORARY_ATTEMPTS: usize = 64;

/// An [`Error::File`] for `action` on `path`.
fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_owned();
    move |error| Error::File {
        action,
        path,
        message: error.to_string(),
    }
}

/// Flushes the directory holding `path`, so that a rename into it is on disk.
#[cfg(unix)]
fn sync_directory(path: &Path) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

/// Elsewhere a directory cannot be opened to flush it; the rename is what the system gives.
#[cfg(not(unix))]
fn sync_directory(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_snapshot_reads_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path().join("learned.json"));
        assert_eq!(file.load(true), Ok(None), "no file yet");
        let snapshot = Snapshot {
            version: Snapshot::VERSION,
            kinds: Default::default(),
            stops: Default::default(),
        };
        file.save(|| snapshot.clone()).unwrap();
        assert_eq!(file.load(true), Ok(Some(snapshot)));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["learned.json"]);
    }

    #[test]
    fn every_write_gets_a_temporary_file_of_its_own_and_only_stale_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path().join("learned.json"));
        let (_a, first) = file.create_temporary().unwrap();
        let (_b, second) = file.create_temporary().unwrap();
        assert_ne!(first, second);
        // Another breaker of this process on the same path never shares one either.
        let other = SnapshotFile::new(dir.path().join("learned.json"));
        let (_c, third) = other.create_temporary().unwrap();
        assert!(![&first, &second].contains(&&third));
        // Neither a young temporary nor a file that merely starts alike is removed.
        let alike = dir.path().join("learned.json.tmpl");
        fs::write(&alike, "a template").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3_600);
        File::options()
            .write(true)
            .open(&alike)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        file.remove_unfinished();
        assert!(first.exists() && second.exists() && alike.exists());
    }

    #[test]
    fn a_file_set_aside_keeps_every_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path().join("learned.json"));
        for junk in ["first", "second"] {
            fs::write(file.path(), junk).unwrap();
            let problem = file.load(true).unwrap_err();
            assert_eq!(problem.as_str(), "snapshot_set_aside", "{problem}");
        }
        assert!(!file.path().exists());
        assert_eq!(
            fs::read_to_string(dir.path().join("learned.json.corrupt")).unwrap(),
            "first"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("learned.json.corrupt.1")).unwrap(),
            "second"
        );
    }

    #[test]
    fn a_save_into_a_missing_directory_names_the_path() {
        let file = SnapshotFile::new(PathBuf::from("/nonexistent-spikebreaker-dir/learned.json"));
        let error = file
            .save(|| Snapshot {
                version: Snapshot::VERSION,
                kinds: Default::default(),
                stops: Default::default(),
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/nonexistent-spikebreaker-dir/learned.json.tmp."),
            "{error}"
        );
        assert!(
            file.probe()
                .unwrap_err()
                .to_string()
                .contains("/nonexistent-spikebreaker-dir/")
        );
    }
}
