//! The slices' metrics, exported by cold work (a refresh): per dimension its sends, refusals
//! and trips, the open gauge of each tracked value that has tripped, and the repeat refusals. The
//! names and labels are [`status::metrics`](crate::status::metrics)'s.

use std::sync::Arc;

use metrics::{SharedString, counter, gauge};

use crate::observe::metrics::{
    BREAKER_LABEL, DIMENSION_LABEL, KIND_LABEL, REPEAT_BLOCKED, SLICE_ATTEMPTED, SLICE_BLOCKED, SLICE_OPEN,
    SLICE_TRIPS, VALUE_LABEL,
};

/// Per dimension of a kind's slices, its figures as `(sends, refused, trips, [(value, open)])`.
pub(crate) type SliceCounts = (u64, u64, u64, Vec<(Arc<str>, bool)>);

/// Sets the slice series of `breaker`'s `kind`: per dimension its sends, refusals and trips, the
/// open gauge of each value that has tripped, and the repeat refusals. Cold work (a refresh, a
/// status), looked up at each call.
pub(crate) fn export_slices(
    breaker: &Arc<str>,
    kind: &Arc<str>,
    dimensions: &[(Arc<str>, SliceCounts)],
    repeat_blocked: u64,
) {
    let breaker = || SharedString::from(Arc::clone(breaker));
    let kind_label = || SharedString::from(Arc::clone(kind));
    for (dimension, (attempted, blocked, trips, tripped)) in dimensions {
        let dimension = || SharedString::from(Arc::clone(dimension));
        for (name, value) in [
            (SLICE_ATTEMPTED, *attempted),
            (SLICE_BLOCKED, *blocked),
            (SLICE_TRIPS, *trips),
        ] {
            counter!(name, BREAKER_LABEL => breaker(), KIND_LABEL => kind_label(), DIMENSION_LABEL => dimension())
                .absolute(value);
        }
        for (value, open) in tripped {
            gauge!(SLICE_OPEN, BREAKER_LABEL => breaker(), KIND_LABEL => kind_label(),
                DIMENSION_LABEL => dimension(), VALUE_LABEL => SharedString::from(Arc::clone(value)))
            .set(if *open { 1.0 } else { 0.0 });
        }
    }
    if repeat_blocked > 0 {
        counter!(REPEAT_BLOCKED, BREAKER_LABEL => breaker(), KIND_LABEL => kind_label())
            .absolute(repeat_blocked);
    }
}
