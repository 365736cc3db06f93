//! Items as rows: the columns read, an item from a row, and a filter as SQL conditions.

use rusqlite::Row;
use rusqlite::types::Type;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde_json::value::RawValue;

use crate::quarantine::item::{Delivery, Filter, Item, ItemId, ItemState, ReleaseOrder};
use crate::state::Reason;

pub(super) const COLUMNS: &str = "id, kind, trip, reason, held_at, recipient, state, in_doubt, attempts, note, per_minute, delivery, finished_at, slice";

/// An item from a row of [`COLUMNS`] (and `notification`, if `with_notification`).
pub(super) fn item(row: &Row<'_>, with_notification: bool) -> rusqlite::Result<Item> {
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
        match row.get::<_, Option<String>>(14)? {
            Some(json) => Some(RawValue::from_string(json).map_err(|e| bad(14, e.to_string()))?),
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
        slice: row.get::<_, Option<String>>(13)?.map(String::into_boxed_str),
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
pub(super) fn conditions(filter: &Filter, first: usize) -> (String, Vec<rusqlite::types::Value>) {
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
