//! [`SqliteStore`]: the embedded quarantine, one SQLite file (feature `quarantine`).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Claim, Claimed, DEFAULT_MAX_ITEM_BYTES, Outcome, Store, StoreError, check_size};
use crate::clock::unix_ms;
use crate::quarantine::item::{Filter, Item, ItemId, NewItem, Query, ReleaseOrder};
use crate::quarantine::summary::Summary;

mod bulk;
mod file;
mod read;
mod rows;
mod writer;

use bulk::trim;
use file::{connect, prepare, set_busy_timeout, sql_error, with_busy_timeout};
use rows::{COLUMNS, item};
use writer::write_loop;

/// The bounds and waits of a [`SqliteStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Live items (held, approved, sending) the store may hold; a hold beyond is refused.
    pub max_items: u64,
    /// Bytes the file may grow to; a write beyond is refused.
    pub max_bytes: u64,
    /// How long a write waits for another process's write (the operator's tools) to finish.
    pub busy_timeout: Duration,
    /// The largest item a hold takes (notification JSON, kind and recipient, in bytes); a larger
    /// one is refused with [`StoreError::TooLarge`] and handed back.
    pub max_item_bytes: u64,
}

impl Default for SqliteOptions {
    /// A million live items, 1 GiB, 5 s, items of 1 MiB.
    fn default() -> Self {
        Self {
            max_items: 1_000_000,
            max_bytes: 1 << 30,
            busy_timeout: Duration::from_secs(5),
            max_item_bytes: DEFAULT_MAX_ITEM_BYTES,
        }
    }
}

/// A quarantine in one SQLite file: durable, bounded, readable by the operator's tools while the
/// service runs.
///
/// Why SQLite (bundled, compiled in) rather than a pure-Rust store such as redb:
/// - **Shared with the operator's tools.** Several processes may open one SQLite file at once
///   (readers never wait for the writer in WAL mode; writers take turns under a lock), so
///   `spikebreaker quarantine list` and `release` work on the file of a service that is running.
///   redb takes an exclusive lock on its file: the tools could only read it with the service
///   stopped.
/// - **Durable and crash-safe.** A hold returns once its transaction is committed with
///   `synchronous = FULL` in WAL mode: the write-ahead log is on disk (`fsync`). A crash
///   mid-transaction leaves the last committed state; decades of crash testing stand behind it.
/// - **Bounded, with the bound enforced by the engine.** Live items are counted in the file
///   (kept by triggers, so every process's writes count) and the file's pages are capped with
///   `max_page_count`.
/// - **Damage is reported, not hidden.** A file that is not a database, fails `quick_check`, is
///   another program's database, or whose schema is not the one this version lays out (a
///   trigger, index, table or view added, changed or dropped: a foreign trigger could make every
///   hold vanish) is refused on open with [`StoreError::Corrupt`] naming what differs,
///   unchanged. A row that does not parse (another version's, or edited by hand) is skipped by
///   listings, counted in [`Summary::unreadable`](crate::quarantine::Summary::unreadable) and
///   logged, rather than failing the listing.
/// - **Cost.** One crate pair (`rusqlite`, `libsqlite3-sys`) and a C compiler, which the build
///   machine has anyway; compiling SQLite takes about 10 s of one core in a debug build, next to
///   about 6 s for redb (measured on a 2-core machine), once per clean build, and only with the
///   `quarantine` feature on.
///
/// **Batching.** A disk commit (`fsync`) costs milliseconds, so one writer thread takes every
/// hold waiting at the time into one transaction (group commit): concurrent senders share a
/// commit, and a store fed by many senders takes tens of thousands of holds a second where one
/// commit each would allow a few hundred. A hold still returns only after its own commit.
///
/// ```
/// use spikebreaker::quarantine::{Quarantine, SqliteStore};
/// let dir = tempfile::tempdir()?;
/// let quarantine = Quarantine::new(SqliteStore::open(dir.path().join("quarantine.db"))?);
/// assert_eq!(quarantine.summary(&Default::default())?.live(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// **Bulk actions.** A discard or a release of many items (a runaway's million) runs as short
/// transactions of about 25 ms each, pausing between them as long (at most 20 ms), and covers
/// the items held when it began: the service's holds, from this process or another one sharing
/// the file, get the lock between them instead of waiting out their busy timeout and being
/// handed back. A writer waiting for the lock tries again every 5 ms (SQLite's own wait grows to
/// 100 ms between tries, and would keep missing the gaps).
///
/// **When full** (`max_items` live items, or `max_bytes`): a hold is refused with
/// [`StoreError::Full`] and the guarded send hands the notification back; nothing already held
/// is dropped to make room. An item over `max_item_bytes` (1 MiB by default) is refused the same
/// way, with [`StoreError::TooLarge`], before anything is written. Releasing or discarding makes room.
///
/// **A damaged file** is refused on open with [`StoreError::Corrupt`] and left as it is: call
/// [`SqliteStore::set_aside`] to move it (and its `-wal` and `-shm` files) out of the way, keep
/// it for recovery with the `sqlite3` tool, and open a fresh store. Damage found later fails
/// that call with the same error (a hold's notification goes back to its caller), never a panic.
pub struct SqliteStore {
    id: String,
    path: PathBuf,
    max_item_bytes: u64,
    /// Reads: WAL mode lets them run beside the writer.
    reader: Mutex<Connection>,
    /// Every write goes through the writer thread, holds batched into shared commits.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

type Reply<T> = mpsc::SyncSender<Result<T, StoreError>>;

enum Job {
    Hold(NewItem, Reply<ItemId>),
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default [`SqliteOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the store at `path`, its bound set to `options.max_items` for every
    /// process that shares the file. A file that is damaged, or is not a quarantine store, is
    /// refused with [`StoreError::Corrupt`] and left unchanged.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::open_as(path.as_ref(), &options, Some(options.max_items))
    }

    /// Opens the store a service keeps at `path`, as the operator's tools do: a missing file is
    /// an error (a mistyped path must not look like an empty quarantine), and the bound the
    /// service set is kept.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(StoreError::Invalid(format!(
                "no quarantine store at {}",
                path.display()
            )));
        }
        // No page cap of its own either: the service's file may be larger than the default's.
        let options = SqliteOptions {
            max_bytes: u64::MAX,
            ..SqliteOptions::default()
        };
        Self::open_as(path, &options, None)
    }

    /// Opens the store at `path`, setting its bound to `max_items` if given.
    fn open_as(path: &Path, options: &SqliteOptions, max_items: Option<u64>) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let mut writer = connect(&path, options)?;
        let id = with_busy_timeout(options.busy_timeout, || prepare(&mut writer, &path, max_items))?;
        let reader = connect(&path, options)?;
        let (jobs, queue) = mpsc::channel();
        let thread_path = path.clone();
        let busy_timeout = options.busy_timeout;
        let writer = std::thread::Builder::new()
            .name("spikebreaker-quarantine".into())
            .spawn(move || {
                set_busy_timeout(busy_timeout);
                write_loop(writer, &thread_path, &queue)
            })
            .map_err(|error| StoreError::Unavailable(format!("cannot start the writer thread: {error}")))?;
        Ok(Self {
            id,
            path,
            max_item_bytes: options.max_item_bytes,
            reader: Mutex::new(reader),
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    /// Moves a store's file (and its `-wal` and `-shm` files) aside, to
    /// `<path>.corrupt-<unix ms>`, so that a fresh store can be opened at `path`; returns where
    /// the file went. For a file [`open`](Self::open) refused as damaged.
    pub fn set_aside(path: impl AsRef<Path>) -> Result<PathBuf, StoreError> {
        let path = path.as_ref();
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".corrupt-{}", unix_ms()));
        let aside = PathBuf::from(aside);
        let moved = |from: &Path, to: &Path| {
            std::fs::rename(from, to).map_err(|error| {
                StoreError::Unavailable(format!("cannot move {} aside: {error}", from.display()))
            })
        };
        moved(path, &aside)?;
        for suffix in ["-wal", "-shm"] {
            let mut from = path.as_os_str().to_owned();
            from.push(suffix);
            let from = PathBuf::from(from);
            if from.exists() {
                let mut to = aside.as_os_str().to_owned();
                to.push(suffix);
                moved(&from, Path::new(&to))?;
            }
        }
        Ok(aside)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `write` in one transaction on the writer thread's connection, commits, and waits for
    /// the answer.
    fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let path = self.path.clone();
        self.send(Job::Run(Box::new(move |connection| {
            let written = (|| {
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = write(&tx)?;
                tx.commit()?;
                Ok(value)
            })();
            let _ = reply.send(written.map_err(|error| sql_error(&path, error)));
        })))?;
        answer.recv().map_err(|_| stopped())?
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())
    }

    fn error(&self, error: rusqlite::Error) -> StoreError {
        sql_error(&self.path, error)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer thread once it has answered every job.
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Takes an approved row that does not parse out of the release queue: held again, in doubt, its
/// note saying why, so that the operator sees it counted as unreadable and can discard it.
fn set_aside(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    id: i64,
    error: &rusqlite::Error,
) -> rusqlite::Result<()> {
    tracing::warn!(
        path = %path.display(),
        id,
        "the quarantine held again an approved item it cannot read, and released the next: {error}"
    );
    tx.execute(
        "UPDATE items SET state = 'held', in_doubt = 1, owner = NULL, per_minute = NULL, delivery = NULL,
             note = ?2
         WHERE id = ?1",
        params![id, format!("unreadable, not released: {error}")],
    )?;
    Ok(())
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the quarantine's writer thread stopped".to_owned())
}

impl Store for SqliteStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn hold(&self, item: NewItem) -> Result<ItemId, StoreError> {
        check_size(&item, self.max_item_bytes)?;
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Job::Hold(item, reply))?;
        answer.recv().map_err(|_| stopped())?
    }

    fn items(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        self.read_items(query)
    }

    fn summary(&self, filter: &Filter) -> Result<Summary, StoreError> {
        self.read_summary(filter)
    }

    fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        self.discard_in_batches(filter, reason)
    }

    fn approve(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError> {
        self.approve_in_batches(filter, order)
    }

    fn releasing(&self) -> Result<Vec<String>, StoreError> {
        let reader = self.reader.lock();
        let mut statement = reader
            .prepare_cached("SELECT kind FROM releasing ORDER BY kind")
            .map_err(|e| self.error(e))?;
        let kinds = statement
            .query_map([], |row| row.get(0))
            .map_err(|e| self.error(e))?;
        kinds.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    fn claim(&self, kind: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError> {
        let (kind, owner, path) = (kind.to_owned(), owner.to_owned(), self.path.clone());
        self.write(move |tx| {
            let now = unix_ms() as i64;
            // Leases that ran out: sent again, or held in doubt, as their order says.
            tx.execute(
                "UPDATE items SET state = 'approved', owner = NULL
                 WHERE kind = ?1 AND state = 'sending' AND lease_until <= ?2 AND delivery = 'at_least_once'",
                params![kind, now],
            )?;
            tx.execute(
                "UPDATE items SET state = 'held', in_doubt = 1, owner = NULL, per_minute = NULL, delivery = NULL
                 WHERE kind = ?1 AND state = 'sending' AND lease_until <= ?2 AND delivery = 'at_most_once'",
                params![kind, now],
            )?;
            // An approved row that does not parse is taken out of the queue (held, in doubt,
            // with a note saying why) so that the rest of its kind is still released.
            let claimed = loop {
                let next = tx
                    .query_row(
                        "SELECT id FROM items WHERE kind = ?1 AND state = 'approved' ORDER BY id LIMIT 1",
                        [&kind],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()?;
                let Some(id) = next else { break None };
                let until = now.saturating_add(lease.as_millis().min(i64::MAX as u128) as i64);
                tx.execute(
                    "UPDATE items SET state = 'sending', owner = ?2, lease_until = ?3, attempts = attempts + 1
                     WHERE id = ?1",
                    params![id, owner, until],
                )?;
                match tx.query_row(
                    &format!("SELECT {COLUMNS}, notification FROM items WHERE id = ?1"),
                    [id],
                    |row| item(row, true),
                ) {
                    Ok(item) => break Some(item),
                    Err(error) if read::unreadable(&error) => set_aside(tx, &path, id, &error)?,
                    Err(error) => return Err(error),
                }
            };
            let claim = match claimed {
                Some(item) => Claim::Item(Claimed {
                    item,
                    // The claim's owner: a settle by a releaser whose lease ran out
                    // must not undo another's claim.
                    receipt: owner.clone(),
                }),
                None => {
                    let sending: bool = tx
                        .query_row(
                            "SELECT EXISTS (SELECT 1 FROM items WHERE kind = ?1 AND state = 'sending')",
                            [&kind],
                            |row| row.get(0),
                        )?;
                    if sending {
                        Claim::Busy
                    } else {
                        tx.execute("DELETE FROM releasing WHERE kind = ?1", [&kind])?;
                        Claim::Empty
                    }
                }
            };
            Ok(claim)
        })
    }

    fn settle(&self, claimed: &Claimed, outcome: &Outcome) -> Result<(), StoreError> {
        let (id, outcome, owner) = (claimed.item.id as i64, outcome.clone(), claimed.receipt.clone());
        self.write(move |tx| {
            match outcome {
                Outcome::Sent => {
                    tx.execute(
                        "UPDATE items SET state = 'released', finished_at = ?2, notification = NULL, owner = NULL
                         WHERE id = ?1 AND state NOT IN ('released', 'discarded')",
                        params![id, unix_ms() as i64],
                    )?;
                    trim(tx, u64::MAX)?;
                }
                // Held again only while the claim is still this releaser's: once its lease ran
                // out the item went back (approved, or held in doubt) and may be another's now.
                Outcome::Failed(note) => {
                    tx.execute(
                        "UPDATE items SET state = 'held', in_doubt = 0, note = ?2, owner = NULL,
                             per_minute = NULL, delivery = NULL
                         WHERE id = ?1 AND state = 'sending' AND owner = ?3",
                        params![id, note, owner],
                    )?;
                }
            }
            Ok(())
        })
    }
}
