//! [`SqliteStore`]: the embedded quarantine, one SQLite file (feature `quarantine`).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde_json::value::RawValue;

use super::item::{Delivery, Filter, Item, ItemId, ItemState, NewItem, Query, ReleaseOrder};
use super::store::{Claim, Claimed, Outcome, Store, StoreError};
use super::{FINISHED_KEPT, new_store_id};
use crate::clock::unix_ms;
use crate::state::Reason;

/// What marks a SQLite file as a quarantine store, and the layout it has.
const FORMAT: &str = "spikebreaker-quarantine";
const VERSION: i64 = 1;
/// Holds one transaction takes at most.
const BATCH: usize = 1_024;
/// Finished items past [`FINISHED_KEPT`] that make a store forget the oldest.
const TRIM_EVERY: i64 = 1_000;

/// The bounds and waits of a [`SqliteStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Live items (held, approved, sending) the store may hold; a hold beyond is refused.
    pub max_items: u64,
    /// Bytes the file may grow to; a write beyond is refused.
    pub max_bytes: u64,
    /// How long a write waits for another process's write (the operator's tools) to finish.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    /// A million live items, 1 GiB, 5 s.
    fn default() -> Self {
        Self {
            max_items: 1_000_000,
            max_bytes: 1 << 30,
            busy_timeout: Duration::from_secs(5),
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
/// - **Damage is reported, not hidden.** A file that is not a database, fails `quick_check` or is
///   another program's database is refused on open with [`StoreError::Corrupt`], unchanged.
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
/// **When full** (`max_items` live items, or `max_bytes`): a hold is refused with
/// [`StoreError::Full`] and the guarded send hands the notification back; nothing already held
/// is dropped to make room. Releasing or discarding makes room.
///
/// **A damaged file** is refused on open with [`StoreError::Corrupt`] and left as it is: call
/// [`SqliteStore::set_aside`] to move it (and its `-wal` and `-shm` files) out of the way, keep
/// it for recovery with the `sqlite3` tool, and open a fresh store. Damage found later fails
/// that call with the same error (a hold's notification goes back to its caller), never a panic.
pub struct SqliteStore {
    id: String,
    path: PathBuf,
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
        let id = prepare(&mut writer, &path, max_items)?;
        let reader = connect(&path, options)?;
        let (jobs, queue) = mpsc::channel();
        let thread_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("spikebreaker-quarantine".into())
            .spawn(move || write_loop(writer, &thread_path, &queue))
            .map_err(|error| StoreError::Unavailable(format!("cannot start the writer thread: {error}")))?;
        Ok(Self {
            id,
            path,
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

fn stopped() -> StoreError {
    StoreError::Unavailable("the quarantine's writer thread stopped".to_owned())
}

fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let error = |e| sql_error(path, e);
    let connection = Connection::open(path).map_err(error)?;
    connection.busy_timeout(options.busy_timeout).map_err(error)?;
    // The first statement reads the header: a file that is not a database fails here.
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{}: cannot use write-ahead logging (journal mode {mode})",
            path.display()
        )));
    }
    connection
        .execute_batch("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864;")
        .map_err(error)?;
    let page_size: i64 = connection
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(error)?;
    let pages = (options.max_bytes / page_size.max(1) as u64).max(1);
    connection
        .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        .map_err(error)?;
    Ok(connection)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    trip INTEGER NOT NULL,
    reason TEXT NOT NULL,
    held_at INTEGER NOT NULL,
    recipient TEXT,
    state TEXT NOT NULL,
    in_doubt INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    per_minute REAL,
    delivery TEXT,
    owner TEXT,
    lease_until INTEGER,
    finished_at INTEGER,
    notification TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS items_by_kind ON items (kind, state, id);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id);
CREATE TABLE IF NOT EXISTS releasing (kind TEXT PRIMARY KEY) STRICT;
CREATE TRIGGER IF NOT EXISTS live_insert AFTER INSERT ON items
    WHEN NEW.state IN ('held', 'approved', 'sending')
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'live'; END;
CREATE TRIGGER IF NOT EXISTS live_update AFTER UPDATE OF state ON items
    WHEN (OLD.state IN ('held', 'approved', 'sending')) != (NEW.state IN ('held', 'approved', 'sending'))
    BEGIN UPDATE meta SET value = value + IIF(NEW.state IN ('held', 'approved', 'sending'), 1, -1)
        WHERE key = 'live'; END;
CREATE TRIGGER IF NOT EXISTS live_delete AFTER DELETE ON items
    WHEN OLD.state IN ('held', 'approved', 'sending')
    BEGIN UPDATE meta SET value = value - 1 WHERE key = 'live'; END;
CREATE TRIGGER IF NOT EXISTS finished_update AFTER UPDATE OF state ON items
    WHEN (OLD.state IN ('released', 'discarded')) != (NEW.state IN ('released', 'discarded'))
    BEGIN UPDATE meta SET value = value + IIF(NEW.state IN ('released', 'discarded'), 1, -1)
        WHERE key = 'finished'; END;
CREATE TRIGGER IF NOT EXISTS finished_delete AFTER DELETE ON items
    WHEN OLD.state IN ('released', 'discarded')
    BEGIN UPDATE meta SET value = value - 1 WHERE key = 'finished'; END;
";

/// Checks the file, lays out a new one, and sets its bound to `max_items` if given (a new one
/// without it gets the default's); the store's id.
fn prepare(connection: &mut Connection, path: &Path, max_items: Option<u64>) -> Result<String, StoreError> {
    let error = |e| sql_error(path, e);
    let check: String = connection
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(error)?;
    if check != "ok" {
        return Err(corrupt(path, format!("integrity check failed: {check}")));
    }
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(error)?;
    let tables: i64 = tx
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .map_err(error)?;
    let has_meta: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_err(error)?
        > 0;
    if tables > 0 && !has_meta {
        return Err(corrupt(
            path,
            "another program's database, not a quarantine store".to_owned(),
        ));
    }
    if tables == 0 {
        tx.execute_batch(SCHEMA).map_err(error)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('format', ?1), ('version', ?2), ('id', ?3), ('live', 0), ('finished', 0), ('max_items', ?4)",
            params![
                FORMAT,
                VERSION,
                new_store_id(),
                max_items.unwrap_or(SqliteOptions::default().max_items) as i64
            ],
        )
        .map_err(error)?;
    }
    let meta = |key: &str| -> Result<Option<String>, StoreError> {
        tx.query_row(
            "SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()
        .map_err(error)
    };
    if meta("format")?.as_deref() != Some(FORMAT) {
        return Err(corrupt(
            path,
            "not a quarantine store (no format mark)".to_owned(),
        ));
    }
    let version = meta("version")?;
    if version.as_deref() != Some(&VERSION.to_string()) {
        return Err(corrupt(
            path,
            format!("layout version {version:?}: this build reads version {VERSION}"),
        ));
    }
    let id = meta("id")?.ok_or_else(|| corrupt(path, "no store id".to_owned()))?;
    if let Some(max_items) = max_items {
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'max_items'",
            [max_items as i64],
        )
        .map_err(error)?;
    }
    tx.commit().map_err(error)?;
    Ok(id)
}

fn corrupt(path: &Path, message: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        message,
    }
}

fn sql_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => corrupt(path, error.to_string()),
        Some(ErrorCode::DiskFull) => StoreError::Full(format!(
            "{} reached its size bound (or the disk is full)",
            path.display()
        )),
        _ => match error {
            rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
                corrupt(path, error.to_string())
            }
            _ => StoreError::Unavailable(format!("{}: {error}", path.display())),
        },
    }
}

/// The writer thread: holds that wait together share one commit; other writes run alone.
fn write_loop(mut connection: Connection, path: &Path, queue: &mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        let mut holds = Vec::new();
        let mut other = None;
        match job {
            Job::Hold(item, reply) => holds.push((item, reply)),
            Job::Run(run) => other = Some(run),
        }
        while other.is_none() && holds.len() < BATCH {
            match queue.try_recv() {
                Ok(Job::Hold(item, reply)) => holds.push((item, reply)),
                Ok(Job::Run(run)) => other = Some(run),
                Err(_) => break,
            }
        }
        if !holds.is_empty() {
            commit_holds(&mut connection, path, holds);
        }
        if let Some(run) = other {
            run(&mut connection);
        }
    }
}

/// Writes `holds` in one transaction, refusing those beyond the bound, and answers each.
fn commit_holds(connection: &mut Connection, path: &Path, holds: Vec<(NewItem, Reply<ItemId>)>) {
    let written = (|| {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut live, max): (i64, i64) = tx.query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'live'), (SELECT value FROM meta WHERE key = 'max_items')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let mut ids = Vec::with_capacity(holds.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO items (kind, trip, reason, held_at, recipient, state, notification)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'held', ?6)",
            )?;
            for (item, _) in &holds {
                if live >= max {
                    ids.push(Err(StoreError::Full(format!(
                        "{live} live items, the bound is {max}"
                    ))));
                    continue;
                }
                insert.execute(params![
                    item.kind,
                    item.trip as i64,
                    item.reason.as_str(),
                    item.held_at_ms as i64,
                    item.recipient,
                    item.notification.get(),
                ])?;
                live += 1;
                ids.push(Ok(tx.last_insert_rowid() as ItemId));
            }
        }
        tx.commit()?;
        Ok::<_, rusqlite::Error>(ids)
    })();
    match written {
        Ok(ids) => {
            for ((_, reply), id) in holds.into_iter().zip(ids) {
                let _ = reply.send(id);
            }
        }
        Err(error) => {
            let error = sql_error(path, error);
            for (_, reply) in holds {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// Forgets the oldest finished items once there are [`TRIM_EVERY`] more than [`FINISHED_KEPT`]:
/// a look at the count (kept by triggers) each time, a delete now and then.
fn trim(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let finished: i64 = tx.query_row("SELECT value FROM meta WHERE key = 'finished'", [], |row| {
        row.get(0)
    })?;
    let excess = finished - FINISHED_KEPT as i64;
    if excess >= TRIM_EVERY {
        tx.execute(
            "DELETE FROM items WHERE id IN (
                SELECT id FROM items WHERE state IN ('released', 'discarded') ORDER BY id LIMIT ?1)",
            [excess],
        )?;
    }
    Ok(())
}

const COLUMNS: &str = "id, kind, trip, reason, held_at, recipient, state, in_doubt, attempts, note, per_minute, delivery, finished_at";

/// An item from a row of [`COLUMNS`] (and `notification`, if `with_notification`).
fn item(row: &Row<'_>, with_notification: bool) -> rusqlite::Result<Item> {
    let text = |index: usize| -> rusqlite::Result<String> { row.get(index) };
    let bad = |index: usize, message: String| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, message.into())
    };
    let reason = text(3)?;
    let reason = Reason::deserialize(reason.as_str().into_deserializer())
        .map_err(|e: serde::de::value::Error| bad(3, e.to_string()))?;
    let state: ItemState = text(6)?.parse().map_err(|e| bad(6, e))?;
    let delivery: Option<String> = row.get(11)?;
    let order = match delivery {
        Some(delivery) => Some(ReleaseOrder {
            per_minute: row.get(10)?,
            delivery: delivery.parse::<Delivery>().map_err(|e| bad(11, e))?,
        }),
        None => None,
    };
    let notification = if with_notification {
        match row.get::<_, Option<String>>(13)? {
            Some(json) => Some(RawValue::from_string(json).map_err(|e| bad(13, e.to_string()))?),
            None => None,
        }
    } else {
        None
    };
    Ok(Item {
        id: row.get::<_, i64>(0)? as ItemId,
        kind: text(1)?,
        trip: row.get::<_, i64>(2)? as u64,
        reason,
        held_at_ms: row.get::<_, i64>(4)? as u64,
        recipient: row.get(5)?,
        state,
        in_doubt: row.get(7)?,
        attempts: row.get(8)?,
        note: row.get(9)?,
        order,
        finished_at_ms: row.get::<_, Option<i64>>(12)?.map(|t| t as u64),
        notification,
    })
}

/// `WHERE` conditions for `filter`, numbered from `?first`, and their values.
fn conditions(filter: &Filter, first: usize) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(kind) = &filter.kind {
        values.push(kind.clone().into());
        sql.push_str(&format!(" AND kind = ?{}", first + values.len() - 1));
    }
    if let Some(trip) = filter.trip {
        values.push((trip as i64).into());
        sql.push_str(&format!(" AND trip = ?{}", first + values.len() - 1));
    }
    if !filter.ids.is_empty() {
        let ids: Vec<String> = filter.ids.iter().map(u64::to_string).collect();
        values.push(format!("[{}]", ids.join(",")).into());
        sql.push_str(&format!(
            " AND id IN (SELECT value FROM json_each(?{}))",
            first + values.len() - 1
        ));
    }
    (sql, values)
}

impl Store for SqliteStore {
    fn id(&self) -> &str {
        &self.id
    }

    fn hold(&self, item: NewItem) -> Result<ItemId, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Job::Hold(item, reply))?;
        answer.recv().map_err(|_| stopped())?
    }

    fn items(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        let (mut sql, mut values) = conditions(&query.filter, 1);
        if let Some(state) = query.state {
            values.push(state.as_str().to_owned().into());
            sql.push_str(&format!(" AND state = ?{}", values.len()));
        }
        values.push((query.after.unwrap_or(0) as i64).into());
        let after = values.len();
        values.push((query.limit.min(i64::MAX as usize) as i64).into());
        let limit = values.len();
        let notification = if query.notifications {
            ", notification"
        } else {
            ", NULL"
        };
        let sql = format!(
            "SELECT {COLUMNS}{notification} FROM items WHERE id > ?{after}{sql} ORDER BY id LIMIT ?{limit}"
        );
        let reader = self.reader.lock();
        let mut statement = reader.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(values), |row| {
                item(row, query.notifications)
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        let (filter, reason) = (filter.clone(), reason.to_owned());
        self.write(move |tx| {
            let (sql, mut values) = conditions(&filter, 3);
            values.insert(0, reason.into());
            values.insert(1, (unix_ms() as i64).into());
            let discarded = tx.execute(
                &format!(
                    "UPDATE items SET state = 'discarded', note = ?1, finished_at = ?2, notification = NULL
                         WHERE state = 'held'{sql}"
                ),
                rusqlite::params_from_iter(values),
            )?;
            trim(tx)?;
            Ok(discarded as u64)
        })
    }

    fn approve(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError> {
        let (filter, order) = (filter.clone(), *order);
        self.write(move |tx| {
            let (sql, mut values) = conditions(&filter, 3);
            values.insert(0, order.per_minute.into());
            values.insert(1, order.delivery.as_str().to_owned().into());
            let approved = tx
                .execute(
                    &format!(
                        "UPDATE items SET state = 'approved', per_minute = ?1, delivery = ?2, in_doubt = 0
                         WHERE state = 'held'{sql}"
                    ),
                    rusqlite::params_from_iter(values),
                )?;
            let (sql, values) = conditions(&filter, 1);
            tx.execute(
                &format!("INSERT OR IGNORE INTO releasing (kind) SELECT DISTINCT kind FROM items WHERE state = 'approved'{sql}"),
                rusqlite::params_from_iter(values),
            )?;
            Ok(approved as u64)
        })
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
        let (kind, owner) = (kind.to_owned(), owner.to_owned());
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
            let next: Option<i64> = tx
                .query_row(
                    "SELECT id FROM items WHERE kind = ?1 AND state = 'approved' ORDER BY id LIMIT 1",
                    [&kind],
                    |row| row.get(0),
                )
                .optional()?;
            let claim = match next {
                Some(id) => {
                    let until = now.saturating_add(lease.as_millis().min(i64::MAX as u128) as i64);
                    tx.execute(
                        "UPDATE items SET state = 'sending', owner = ?2, lease_until = ?3, attempts = attempts + 1
                         WHERE id = ?1",
                        params![id, owner, until],
                    )?;
                    let item = tx
                        .query_row(
                            &format!("SELECT {COLUMNS}, notification FROM items WHERE id = ?1"),
                            [id],
                            |row| item(row, true),
                        )?;
                    Claim::Item(Claimed {
                        item,
                        // The claim's owner: a settle by a releaser whose lease ran out
                        // must not undo another's claim.
                        receipt: owner.clone(),
                    })
                }
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
                    trim(tx)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_finished_items_are_forgotten_in_bulk_past_the_kept_number() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
        let over = FINISHED_KEPT as i64 + TRIM_EVERY + 500;
        let count = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<(i64, i64, i64)> {
            tx.query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'finished'), count(*), min(id) FROM items",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
        };
        let before = store
            .write(move |tx| {
                let mut insert = tx.prepare(
                    "INSERT INTO items (kind, trip, reason, held_at, state) VALUES ('k', 1, 'spike', 0, 'held')",
                )?;
                for _ in 0..over {
                    insert.execute([])?;
                }
                tx.execute("UPDATE items SET state = 'discarded'", [])?;
                count(tx)
            })
            .unwrap();
        assert_eq!(before, (over, over, 1));
        let after = store
            .write(move |tx| {
                trim(tx)?;
                count(tx)
            })
            .unwrap();
        assert_eq!(
            after,
            (
                FINISHED_KEPT as i64,
                FINISHED_KEPT as i64,
                over - FINISHED_KEPT as i64 + 1
            )
        );
    }
}
