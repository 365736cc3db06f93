//! An operator's action on many items (a discard, a release) as a run of short transactions:
//! the service's holds, from this process or another, get the file between them.

use std::time::{Duration, Instant};

use rusqlite::types::Value;

use super::SqliteStore;
use super::rows::conditions;
use crate::clock::unix_ms;
use crate::quarantine::item::{Filter, ReleaseOrder};
use crate::quarantine::store::{FINISHED_KEPT, StoreError};

/// How long one transaction of a bulk action should hold the file's write lock: short next to
/// the busy timeout a hold waits (5 s by default).
const TARGET: Duration = Duration::from_millis(25);
/// Rows the first transaction moves; later ones are sized to take about [`TARGET`].
const FIRST_BATCH: u64 = 1_000;
const MIN_BATCH: u64 = 100;
const MAX_BATCH: u64 = 50_000;
/// The longest pause between two transactions: longer than a waiting writer's sleep between
/// tries (5 ms, see `file::busy`).
const MAX_PAUSE: Duration = Duration::from_millis(20);
/// Finished items past [`FINISHED_KEPT`] that make a store forget the oldest.
pub(super) const TRIM_EVERY: i64 = 1_000;

/// The size of the next batch after `rows` took `took`: about [`TARGET`]'s worth.
fn next_batch(rows: u64, took: Duration) -> u64 {
    let per_ms = rows as f64 / took.as_secs_f64().max(1e-4) / 1_000.0;
    ((per_ms * TARGET.as_millis() as f64) as u64).clamp(MIN_BATCH, MAX_BATCH)
}

/// What one batch did: the rows it changed, and the last id it covered (`None`: nothing left).
type Batch = (u64, Option<i64>);

impl SqliteStore {
    /// Runs `batch(after, upto, limit)` in one transaction after another, each covering the next
    /// ids above `after` up to the last id when the action began (items held since are not the
    /// action's), until it covers nothing; the rows changed in all.
    ///
    /// Between two transactions it pauses as long as the last one took, at most 20 ms: a
    /// writer of another process (the service, when this is the command line) waiting for the
    /// lock tries again every 5 ms and must find it free. Holds of this process queue on the
    /// writer thread and go between the batches anyway.
    fn in_batches(
        &self,
        batch: impl Fn(&rusqlite::Transaction<'_>, i64, i64, u64) -> rusqlite::Result<Batch>
        + Clone
        + Send
        + 'static,
    ) -> Result<u64, StoreError> {
        let upto: i64 =
            self.write(|tx| tx.query_row("SELECT coalesce(max(id), 0) FROM items", [], |row| row.get(0)))?;
        let (mut after, mut limit, mut total) = (0, FIRST_BATCH, 0);
        loop {
            let started = Instant::now();
            let run = batch.clone();
            let (changed, last) = self.write(move |tx| run(tx, after, upto, limit))?;
            total += changed;
            let Some(last) = last else { return Ok(total) };
            after = last;
            let took = started.elapsed();
            limit = next_batch(limit, took);
            std::thread::sleep(took.min(MAX_PAUSE));
        }
    }

    /// [`Store::discard`](crate::quarantine::Store::discard), in batches; then forgets the oldest
    /// finished items past what is kept, in batches too.
    pub(super) fn discard_in_batches(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError> {
        let (filter, reason) = (filter.clone(), reason.to_owned());
        let discarded = self.in_batches(move |tx, after, upto, limit| {
            let Some((first, last)) = held_range(tx, &filter, after, upto, limit)? else {
                return Ok((0, None));
            };
            let (sql, mut values) = conditions(&filter, 5);
            values.splice(
                0..0,
                [
                    Value::from(reason.clone()),
                    Value::from(unix_ms() as i64),
                    Value::from(first),
                    Value::from(last),
                ],
            );
            let discarded = tx.execute(
                &format!(
                    "UPDATE items SET state = 'discarded', note = ?1, finished_at = ?2, notification = NULL
                     WHERE state = 'held' AND id >= ?3 AND id <= ?4{sql}"
                ),
                rusqlite::params_from_iter(values),
            )?;
            Ok((discarded as u64, Some(last)))
        })?;
        self.in_batches(|tx, _, _, limit| {
            let forgotten = trim(tx, limit)?;
            Ok((forgotten, (forgotten > 0).then_some(0)))
        })?;
        Ok(discarded)
    }

    /// [`Store::approve`](crate::quarantine::Store::approve), in batches: the releasers may start
    /// on the first batch while the next are approved.
    pub(super) fn approve_in_batches(
        &self,
        filter: &Filter,
        order: &ReleaseOrder,
    ) -> Result<u64, StoreError> {
        let (filter, order) = (filter.clone(), *order);
        self.in_batches(move |tx, after, upto, limit| {
            let Some((first, last)) = held_range(tx, &filter, after, upto, limit)? else {
                return Ok((0, None));
            };
            let (sql, mut values) = conditions(&filter, 5);
            values.splice(
                0..0,
                [
                    Value::from(order.per_minute),
                    Value::from(order.delivery.as_str().to_owned()),
                    Value::from(first),
                    Value::from(last),
                ],
            );
            let approved = tx.execute(
                &format!(
                    "UPDATE items SET state = 'approved', per_minute = ?1, delivery = ?2, in_doubt = 0
                     WHERE state = 'held' AND id >= ?3 AND id <= ?4{sql}"
                ),
                rusqlite::params_from_iter(values),
            )?;
            let (sql, mut values) = conditions(&filter, 3);
            values.splice(0..0, [Value::from(first), Value::from(last)]);
            tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO releasing (kind)
                     SELECT DISTINCT kind FROM items WHERE state = 'approved' AND id >= ?1 AND id <= ?2{sql}"
                ),
                rusqlite::params_from_iter(values),
            )?;
            Ok((approved as u64, Some(last)))
        })
    }
}

/// The first and last id of the next (up to) `limit` held items `filter` names, numbered above
/// `after` and up to `upto`.
fn held_range(
    tx: &rusqlite::Transaction<'_>,
    filter: &Filter,
    after: i64,
    upto: i64,
    limit: u64,
) -> rusqlite::Result<Option<(i64, i64)>> {
    let (sql, mut values) = conditions(filter, 4);
    values.splice(
        0..0,
        [
            Value::from(after),
            Value::from(upto),
            Value::from(limit.min(i64::MAX as u64) as i64),
        ],
    );
    tx.query_row(
        &format!(
            "SELECT min(id), max(id) FROM (SELECT id FROM items
                 WHERE state = 'held' AND id > ?1 AND id <= ?2{sql} ORDER BY id LIMIT ?3)"
        ),
        rusqlite::params_from_iter(values),
        |row| Ok(row.get::<_, Option<i64>>(0)?.zip(row.get::<_, Option<i64>>(1)?)),
    )
}

/// Forgets at most `limit` of the oldest finished items once there are [`TRIM_EVERY`] more than
/// [`FINISHED_KEPT`] (a look at the count, kept by triggers, each time; a delete now and then);
/// how many.
pub(super) fn trim(tx: &rusqlite::Transaction<'_>, limit: u64) -> rusqlite::Result<u64> {
    let finished: i64 = tx.query_row("SELECT value FROM meta WHERE key = 'finished'", [], |row| {
        row.get(0)
    })?;
    let excess = finished - FINISHED_KEPT as i64;
    if excess < TRIM_EVERY {
        return Ok(0);
    }
    let forgotten = tx.execute(
        "DELETE FROM items WHERE id IN (
            SELECT id FROM items WHERE state IN ('released', 'discarded') ORDER BY id LIMIT ?1)",
        [excess.min(limit.min(i64::MAX as u64) as i64)],
    )?;
    Ok(forgotten as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sized_to_the_target_and_bounded() {
        assert_eq!(next_batch(1_000, Duration::from_millis(25)), 1_000);
        assert_eq!(next_batch(1_000, Duration::from_millis(250)), 100);
        assert_eq!(next_batch(1_000, Duration::from_millis(50)), 500);
        assert_eq!(next_batch(1_000, Duration::ZERO), MAX_BATCH);
    }
}
