//! Opening the file: the connection's settings, the schema, and the checks that refuse a file
//! that is damaged or is not a quarantine store; how SQLite's errors map to [`StoreError`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::SqliteOptions;
use crate::quarantine::store::{StoreError, new_store_id};

/// What marks a SQLite file as a quarantine store, and the layout it has.
const FORMAT: &str = "spikebreaker-quarantine";
/// Version 2: the items carry the slice that refused them (`slice`).
const VERSION: i64 = 2;

thread_local! {
    /// How long a write made on this thread waits for another connection's: set by the thread
    /// that writes (a store's writer thread; the thread opening a store, while it opens it).
    static BUSY_TIMEOUT: Cell<Duration> = const { Cell::new(Duration::from_secs(5)) };
}

/// Sets how long the writes made on this thread wait for another connection's.
pub(super) fn set_busy_timeout(timeout: Duration) {
    BUSY_TIMEOUT.with(|busy| busy.set(timeout));
}

/// Runs `f` with this thread's busy timeout set to `timeout`, then puts the old one back.
pub(super) fn with_busy_timeout<T>(timeout: Duration, f: impl FnOnce() -> T) -> T {
    let before = BUSY_TIMEOUT.with(|busy| busy.replace(timeout));
    let value = f();
    set_busy_timeout(before);
    value
}

/// What a connection does while another holds the lock it needs: tries again after 1, 2, 3, 4,
/// then every 5 ms, until the thread's busy timeout. SQLite's own handler sleeps up to 100 ms
/// between tries, so a writer waiting for another process's run of short transactions (a bulk
/// discard by the command line) kept missing the gaps between them.
fn busy(tries: i32) -> bool {
    let tries = u64::try_from(tries).unwrap_or(0);
    let slept_ms = if tries <= 5 {
        tries * (tries + 1) / 2
    } else {
        15 + 5 * (tries - 5)
    };
    if Duration::from_millis(slept_ms) >= BUSY_TIMEOUT.with(Cell::get) {
        return false;
    }
    std::thread::sleep(Duration::from_millis((tries + 1).min(5)));
    true
}

pub(super) fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let error = |e| sql_error(path, e);
    let connection = Connection::open(path).map_err(error)?;
    connection.busy_handler(Some(busy)).map_err(error)?;
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
    notification TEXT,
    slice TEXT
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

/// `max_items` as the file keeps it: SQLite's integers stop at `i64::MAX`, and a bound above it
/// (`u64::MAX`, "no bound") must not wrap to a negative one that refuses every hold.
fn stored_bound(max_items: u64) -> i64 {
    i64::try_from(max_items).unwrap_or(i64::MAX)
}

/// Checks the file, lays out a new one, and sets its bound to `max_items` if given (a new one
/// without it gets the default's); the store's id.
pub(super) fn prepare(
    connection: &mut Connection,
    path: &Path,
    max_items: Option<u64>,
) -> Result<String, StoreError> {
    let error = |e| sql_error(path, e);
    let check: String = connection
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(error)?;
    if check != "ok" {
        return Err(corrupt(path, format!("integrity check failed: {check}")));
    }
    refuse_read_only_v1(connection, path)?;
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
                stored_bound(max_items.unwrap_or(SqliteOptions::default().max_items))
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
    let mut version = meta("version")?;
    if version.as_deref() == Some("1") {
        let differences = schema_differences(&tx, SCHEMA_V1).map_err(error)?;
        if !differences.is_empty() {
            return Err(corrupt(
                path,
                format!(
                    "layout version 1, but its schema is not that version's: {}",
                    differences.join("; ")
                ),
            ));
        }
        migrate_v1(&tx, path)?;
        version = meta("version")?;
    }
    if version.as_deref() != Some(&VERSION.to_string()) {
        return Err(corrupt(
            path,
            format!("layout version {version:?}: this build reads version {VERSION}"),
        ));
    }
    let id = meta("id")?.ok_or_else(|| corrupt(path, "no store id".to_owned()))?;
    let differences = schema_differences(&tx, SCHEMA).map_err(error)?;
    if !differences.is_empty() {
        return Err(corrupt(
            path,
            format!(
                "its schema is not a quarantine store's: {}",
                differences.join("; ")
            ),
        ));
    }
    if let Some(max_items) = max_items {
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'max_items'",
            [stored_bound(max_items)],
        )
        .map_err(error)?;
    }
    tx.commit().map_err(error)?;
    Ok(id)
}

/// The schema layout version 1 laid out (the release before slices: no `slice` on the items),
/// as that release wrote it (frozen: never edit it); a file of version 1 with exactly this schema
/// is migrated on open.
const SCHEMA_V1: &str = include_str!("schema_v1.sql");

/// Brings a version-1 file to version 2 inside the opening transaction `tx` (so a crash leaves
/// it at version 1, whole): the items gain their `slice`, none set.
fn migrate_v1(tx: &Connection, path: &Path) -> Result<(), StoreError> {
    tx.execute_batch(
        "ALTER TABLE items ADD COLUMN slice TEXT; UPDATE meta SET value = 2 WHERE key = 'version';",
    )
    .map_err(|e| sql_error(path, e))?;
    tracing::info!(
        path = %path.display(),
        "migrated the quarantine store from layout version 1 to 2: its items can name the slice that refused them"
    );
    Ok(())
}

/// A file of version 1 opened without write access cannot be migrated: refused, saying so,
/// rather than failing on the first write.
fn refuse_read_only_v1(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let error = |e| sql_error(path, e);
    if !connection.is_readonly("main").map_err(error)? {
        return Ok(());
    }
    let version: Option<String> = connection
        .query_row(
            "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .or_else(|e| match e {
            rusqlite::Error::SqliteFailure(..) => Ok(None), // no meta table: checked later
            e => Err(e),
        })
        .map_err(error)?;
    if version.as_deref() == Some("1") {
        return Err(StoreError::Unavailable(format!(
            "{}: layout version 1 (the release before slices) is migrated to version {VERSION} on open, \
             which needs write access: open it once with write access (as the \
             file's owner), then read-only opens work",
            path.display()
        )));
    }
    Ok(())
}

/// A database's tables, indexes, triggers and views: per (type, name), its table and its SQL
/// with the whitespace folded ([`fold`]).
type Schema = BTreeMap<(String, String), (String, Option<String>)>;

fn schema(connection: &Connection) -> rusqlite::Result<Schema> {
    let mut statement = connection.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema")?;
    let rows = statement.query_map([], |row| {
        let sql: Option<String> = row.get(3)?;
        let folded = sql.as_deref().map(fold);
        Ok(((row.get(0)?, row.get(1)?), (row.get(2)?, folded)))
    })?;
    rows.collect()
}

/// `sql` with its whitespace folded: runs to one space, none next to `(`, `)` or `,` (SQLite
/// writes a column added by `ALTER TABLE` as `… notification TEXT\n, slice TEXT)`).
fn fold(sql: &str) -> String {
    let spaced = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut folded = String::with_capacity(spaced.len());
    let mut chars = spaced.chars().peekable();
    while let Some(c) = chars.next() {
        let by_punctuation = |c: Option<&char>| matches!(c, Some('(' | ')' | ','));
        if c == ' ' && (by_punctuation(folded.chars().last().as_ref()) || by_punctuation(chars.peek())) {
            continue;
        }
        folded.push(c);
    }
    folded
}

/// How the schema of the file differs from `expected` (this version's: [`SCHEMA`]), one phrase a
/// difference: a trigger, index, table or view of another's (a trigger that deletes every new
/// row would make holds vanish), or one of ours missing or changed. Empty when it is ours.
fn schema_differences(file: &Connection, expected: &str) -> rusqlite::Result<Vec<String>> {
    let ours = Connection::open_in_memory()?;
    ours.execute_batch(expected)?;
    let (ours, theirs) = (schema(&ours)?, schema(file)?);
    let mut differences = Vec::new();
    for ((kind, name), (table, sql)) in &theirs {
        match ours.get(&(kind.clone(), name.clone())) {
            None => differences.push(format!(
                "a {kind} `{name}` on `{table}` that is not ours ({})",
                sql.as_deref().unwrap_or("")
            )),
            Some(expected) if expected != &(table.clone(), sql.clone()) => differences.push(format!(
                "its {kind} `{name}` differs from ours ({})",
                sql.as_deref().unwrap_or("")
            )),
            Some(_) => {}
        }
    }
    for (kind, name) in ours.keys() {
        if !theirs.contains_key(&(kind.clone(), name.clone())) {
            differences.push(format!("our {kind} `{name}` is missing"));
        }
    }
    Ok(differences)
}

pub(super) fn corrupt(path: &Path, message: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        message,
    }
}

pub(super) fn sql_error(path: &Path, error: rusqlite::Error) -> StoreError {
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

#[cfg(test)]
mod tests {
    use rusqlite::OpenFlags;

    use super::*;

    /// Opened read-only by its flags rather than its file's mode, so the check runs for any
    /// user (root writes a file whose mode says read-only).
    #[test]
    fn a_version_one_file_opened_read_only_is_refused_saying_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarantine.db");
        let db = Connection::open(&path).unwrap();
        db.execute_batch(SCHEMA_V1).unwrap();
        db.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('format', 'spikebreaker-quarantine'), ('version', 1)",
        )
        .unwrap();
        drop(db);
        let read_only = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let message = refuse_read_only_v1(&read_only, &path).unwrap_err().to_string();
        assert!(
            message.contains("version 1") && message.contains("write access"),
            "{message}"
        );
        let writable = Connection::open(&path).unwrap();
        assert!(
            refuse_read_only_v1(&writable, &path).is_ok(),
            "a writable file is migrated, not refused"
        );
    }
}
