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

use parking_lot::Mutex;

use super::Snapshot;
use crate::error::Error;

/// One snapshot file and its writes, one at a time.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    path: PathBuf,
    writing: Mutex<()>,
}

impl SnapshotFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            writing: Mutex::new(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Where a write goes before it is renamed over the file: a leftover one is a write a crash
    /// interrupted.
    fn temporary(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }

    /// The snapshot in the file, if there is a readable one. A leftover temporary file (a write
    /// interrupted by a crash) is removed; a file that is not a snapshot this version reads
    /// (truncated, corrupt, another program's, a newer version's) is warned about and set aside
    /// ([`set_aside`](Self::set_aside)), and the breaker starts afresh.
    pub(crate) fn load(&self) -> Option<Snapshot> {
        let temporary = self.temporary();
        if temporary.exists() {
            tracing::warn!(
                path = %temporary.display(),
                "removing an unfinished snapshot write (the process stopped while saving); the last complete snapshot is used"
            );
            if let Err(error) = fs::remove_file(&temporary) {
                tracing::warn!(path = %temporary.display(), %error, "cannot remove it");
            }
        }
        let text = match fs::read(&self.path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
            Err(error) => Err(error.to_string()),
        };
        match text.and_then(|text| Snapshot::from_json(&text).map_err(|error| error.to_string())) {
            Ok(snapshot) => Some(snapshot),
            Err(why) => {
                self.set_aside(&why);
                None
            }
        }
    }

    /// Moves an unreadable file out of the way, beside it as `<name>.corrupt` (`.corrupt.1`, ...
    /// if taken), so that nothing is lost and the next save starts a good one; warns with `why`.
    pub(crate) fn set_aside(&self, why: &str) {
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
        match fs::rename(&self.path, &aside) {
            Ok(()) => tracing::warn!(
                path = %self.path.display(),
                set_aside = %aside.display(),
                why,
                "the snapshot file cannot be read: set aside, starting with nothing learned"
            ),
            Err(error) => tracing::warn!(
                path = %self.path.display(),
                why,
                %error,
                "the snapshot file cannot be read, nor set aside: starting with nothing learned"
            ),
        }
    }

    /// Writes `snapshot` atomically: to the temporary file, flushed to disk, renamed over the
    /// file, and the directory flushed so that the rename itself survives a power loss.
    pub(crate) fn save(&self, snapshot: &Snapshot) -> Result<(), Error> {
        let _one_at_a_time = self.writing.lock();
        let temporary = self.temporary();
        fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
            let path = path.to_owned();
            move |error| Error::File {
                action,
                path,
                message: error.to_string(),
            }
        }
        let mut file = File::create(&temporary).map_err(failed("create", &temporary))?;
        file.write_all(snapshot.to_json().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(failed("write", &temporary))?;
        drop(file);
        fs::rename(&temporary, &self.path).map_err(failed("replace", &self.path))?;
        sync_directory(&self.path).map_err(failed("flush the directory of", &self.path))
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
        assert_eq!(file.load(), None, "no file yet");
        let snapshot = Snapshot {
            version: Snapshot::VERSION,
            kinds: Default::default(),
        };
        file.save(&snapshot).unwrap();
        assert_eq!(file.load(), Some(snapshot));
        assert!(!file.temporary().exists());
    }

    #[test]
    fn a_file_set_aside_keeps_every_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path().join("learned.json"));
        for junk in ["first", "second"] {
            fs::write(file.path(), junk).unwrap();
            assert_eq!(file.load(), None);
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
            .save(&Snapshot {
                version: Snapshot::VERSION,
                kinds: Default::default(),
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/nonexistent-spikebreaker-dir/learned.json.tmp"),
            "{error}"
        );
    }
}
