//! What a kind's slices learned, in a snapshot: per dimension, the hours it learned and each
//! tracked value's share of it, overall and by the hour of the day.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::slice::{Share, check_pair};

/// Hours of the day a share is learned for: 24 weekday hours, then 24 weekend hours.
const HOUR_SLOTS: usize = 48;

/// One dimension of a kind's slices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DimensionSnapshot {
    /// The dimension (`country`).
    pub(crate) dimension: String,
    /// Hours the dimension learned shares from.
    pub(crate) hours: u32,
    /// Each tracked value with a learned share.
    pub(crate) values: BTreeMap<String, ShareSnapshot>,
}

/// One value's share of its dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShareSnapshot {
    /// Its share over about the last two days (0 to 1).
    pub(crate) share: f64,
    /// Its share at each hour of the day, UTC, weekdays (0-23) then weekends (24-47); `null` for
    /// an hour not learned.
    pub(crate) by_hour: Vec<Option<f64>>,
    /// Hours learned.
    pub(crate) hours: u32,
}

pub(crate) use crate::slice::Learned;

pub(crate) fn capture(learned: Learned) -> Vec<DimensionSnapshot> {
    learned
        .into_iter()
        .map(|(dimension, hours, shares)| DimensionSnapshot {
            dimension: dimension.to_string(),
            hours,
            values: shares
                .into_iter()
                .map(|(value, share)| {
                    let by_hour = share
                        .by_hour
                        .iter()
                        .map(|&s| (s >= 0.0).then_some(f64::from(s)))
                        .collect();
                    let snapshot = ShareSnapshot {
                        share: f64::from(share.longrun),
                        by_hour,
                        hours: share.hours,
                    };
                    (value.to_string(), snapshot)
                })
                .collect(),
        })
        .collect()
}

pub(crate) fn restore(snapshots: &[DimensionSnapshot]) -> Learned {
    snapshots
        .iter()
        .map(|dimension| {
            let shares = dimension
                .values
                .iter()
                .map(|(value, snapshot)| {
                    let mut share = Share {
                        longrun: snapshot.share as f32,
                        hours: snapshot.hours,
                        ..Share::default()
                    };
                    for (slot, learned) in share.by_hour.iter_mut().zip(&snapshot.by_hour) {
                        *slot = learned.map_or(-1.0, |s| s as f32);
                    }
                    (Arc::from(value.as_str()), share)
                })
                .collect();
            (Arc::from(dimension.dimension.as_str()), dimension.hours, shares)
        })
        .collect()
}

/// Refuses a dimension or value that breaks the slice rule, or a share that is not from 0 to 1.
pub(crate) fn validate(snapshots: &[DimensionSnapshot]) -> Result<(), String> {
    if snapshots.len() > crate::slice::MAX_SLICES {
        return Err(format!("slices: {} dimensions, at most 8", snapshots.len()));
    }
    for dimension in snapshots {
        let name = &dimension.dimension;
        for (value, share) in &dimension.values {
            check_pair(name, value).map_err(|problem| format!("slices: {problem}"))?;
            let in_range = |s: f64| s.is_finite() && (0.0..=1.0).contains(&s);
            if !in_range(share.share) {
                return Err(format!(
                    "slices.{name}.{value:?}: share = {} is not from 0 to 1",
                    share.share
                ));
            }
            if share.by_hour.len() != HOUR_SLOTS {
                return Err(format!(
                    "slices.{name}.{value:?}: by_hour has {} hours, not {HOUR_SLOTS}",
                    share.by_hour.len()
                ));
            }
            if let Some(bad) = share.by_hour.iter().flatten().find(|s| !in_range(**s)) {
                return Err(format!(
                    "slices.{name}.{value:?}: by_hour holds {bad}, not from 0 to 1"
                ));
            }
        }
    }
    Ok(())
}
