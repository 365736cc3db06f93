//! The writer thread: every write goes through it, holds that wait together batched into one
//! commit.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior, params};

use super::file::sql_error;
use super::{Job, Reply};
use crate::quarantine::item::{ItemId, NewItem};
use crate::quarantine::store::StoreError;

/// Holds one transaction takes at most.
const BATCH: usize = 1_024;

/// The writer thread: holds that wait together share one commit; other writes run alone.
pub(super) fn write_loop(mut connection: Connection, path: &Path, queue: &mpsc::Receiver<Job>) {
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
pub(super) fn commit_holds(connection: &mut Connection, path: &Path, holds: Vec<(NewItem, Reply<ItemId>)>) {
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
                "INSERT INTO items (kind, trip, reason, held_at, recipient, state, notification, slice)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'held', ?6, ?7)",
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
                    item.slice.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::super::bulk::{TRIM_EVERY, trim};
    use crate::quarantine::SqliteStore;
    use crate::quarantine::store::FINISHED_KEPT;

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
                trim(tx, u64::MAX)?;
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
