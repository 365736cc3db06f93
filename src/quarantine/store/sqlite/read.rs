//! Reading items: pages of rows, a row that does not parse skipped and counted rather than
//! failing the page, and the summary gathered from them.

use rusqlite::types::Value;

use super::SqliteStore;
use super::rows::{COLUMNS, conditions, item};
use crate::quarantine::item::{Filter, Item, ItemId, Query};
use crate::quarantine::store::{PAGE, StoreError, sample};
use crate::quarantine::summary::{Gather, Summary};

/// One page of rows: the items read, and the rows that would not parse.
struct Page {
    items: Vec<Item>,
    /// Rows skipped: (id, why).
    unreadable: Vec<(ItemId, String)>,
    /// The last row's id, read or not: where the next page starts.
    last: Option<ItemId>,
}

/// Whether a row failed to read because of what it holds (a value of ours it does not parse),
/// rather than because the file could not be read.
pub(super) fn unreadable(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
    )
}

impl SqliteStore {
    /// Up to `query.limit` rows matching `query`, those that do not parse set apart.
    fn page(&self, query: &Query) -> Result<Page, StoreError> {
        let (mut sql, mut values) = conditions(&query.filter, 1);
        if let Some(state) = query.state {
            values.push(Value::from(state.as_str().to_owned()));
            sql.push_str(&format!(" AND state = ?{}", values.len()));
        }
        values.push(Value::from(query.after.unwrap_or(0).min(i64::MAX as u64) as i64));
        let after = values.len();
        values.push(Value::from(query.limit.min(i64::MAX as usize) as i64));
        let limit = values.len();
        // Without the notifications, still whether each is JSON: a row is readable or not
        // whether or not its notification is asked for.
        let notification = if query.notifications {
            ", notification"
        } else {
            ", IIF(notification IS NULL OR json_valid(notification), NULL, notification)"
        };
        let sql = format!(
            "SELECT {COLUMNS}{notification} FROM items WHERE id > ?{after}{sql} ORDER BY id LIMIT ?{limit}"
        );
        let reader = self.reader.lock();
        let mut statement = reader.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(values), |row| {
                let id = row.get::<_, i64>(0)? as ItemId;
                match item(row, true) {
                    Ok(mut item) => {
                        if !query.notifications {
                            item.notification = None;
                        }
                        Ok((id, Ok(item)))
                    }
                    Err(error) if unreadable(&error) => Ok((id, Err(error.to_string()))),
                    Err(error) => Err(error),
                }
            })
            .map_err(|e| self.error(e))?;
        let mut page = Page {
            items: Vec::new(),
            unreadable: Vec::new(),
            last: None,
        };
        for row in rows {
            let (id, read) = row.map_err(|e| self.error(e))?;
            page.last = Some(id);
            match read {
                Ok(item) => page.items.push(item),
                Err(why) => page.unreadable.push((id, why)),
            }
        }
        Ok(page)
    }

    /// Says which rows could not be read: the first, and how many.
    fn warn_unreadable(&self, first: Option<&(ItemId, String)>, rows: u64) {
        if let Some((id, why)) = first {
            tracing::warn!(
                path = %self.path.display(),
                id,
                rows,
                "the quarantine skipped rows it cannot read: {why}"
            );
        }
    }

    /// [`Store::items`](crate::quarantine::Store::items): a full page of readable items, rows
    /// that do not parse skipped (and logged).
    pub(super) fn read_items(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let (mut first_unreadable, mut unreadable) = (None, 0);
        let mut rest = query.clone();
        while rest.limit > 0 {
            let page = self.page(&rest)?;
            let full = page.items.len() + page.unreadable.len() == rest.limit;
            rest.limit -= page.items.len();
            items.extend(page.items);
            unreadable += page.unreadable.len() as u64;
            if first_unreadable.is_none() {
                first_unreadable = page.unreadable.into_iter().next();
            }
            match page.last {
                Some(last) if full => rest.after = Some(last),
                _ => break,
            }
        }
        self.warn_unreadable(first_unreadable.as_ref(), unreadable);
        Ok(items)
    }

    /// [`Store::summary`](crate::quarantine::Store::summary): every row read a page at a time
    /// (without notifications), those that do not parse counted as unreadable.
    pub(super) fn read_summary(&self, filter: &Filter) -> Result<Summary, StoreError> {
        let mut gather = Gather::default();
        let mut query = Query {
            notifications: false,
            ..Query::new(filter.clone(), PAGE)
        };
        let (mut first_unreadable, mut unreadable) = (None, 0);
        loop {
            let page = self.page(&query)?;
            page.items.iter().for_each(|item| gather.add(item));
            unreadable += page.unreadable.len() as u64;
            if first_unreadable.is_none() {
                first_unreadable = page.unreadable.into_iter().next();
            }
            match page.last {
                Some(last) => query.after = Some(last),
                None => break,
            }
        }
        gather.unreadable(unreadable);
        self.warn_unreadable(first_unreadable.as_ref(), unreadable);
        gather.finish(|kind, trip| sample(self, kind, trip))
    }
}
