//! Opening the file: the connection's settings, the schema, and the checks that refuse a file
//! that is damaged or is not a quarantine store; how SQLite's errors map to [`StoreError`].

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::SqliteOptions;
use crate::quarantine::store::{StoreError, new_store_id};

/// What marks a SQLite file as a quarantine store, and the layout it has.
const FORMAT: &str = "spikebreaker-quarantine";
const VERSION: i64 = 1;

pub(super) fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
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
    // A store laid out before items carried the slice that refused them gains the column.
    let has_slice: bool = tx
        .query_row(
            "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'slice'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_err(error)?
        > 0;
    if !has_slice {
        tx.execute_batch("ALTER TABLE items ADD COLUMN slice TEXT")
            .map_err(error)?;
    }
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
