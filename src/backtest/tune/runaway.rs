//! The runaways the tuner injects into copies of a kind's history: what they are ([`Runaway`]),
//! where they go (a slot a day, outside the excluded spans) and how big they are (from the
//! kind's own rate), and what got through ([`Leak`]).

use std::ops::Range;

use serde::{Deserialize, Serialize};

const MINUTE_MS: u64 = 60_000;
pub(super) const HOUR_MS: u64 = 60 * MINUTE_MS;
pub(super) const DAY_MS: u64 = 24 * HOUR_MS;
/// The shortest slot a runaway is injected in: room for the runaway and the kind's recovery.
const LEAST_SLOT_MS: u64 = 12 * HOUR_MS;

/// The runaways injected into copies of each kind's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runaway {
    /// An incident: ten minutes at 25 a second plus ten times the kind's peak rate, at its
    /// busiest hour of the day.
    Burst,
    /// A slow leak under the minute window's limit: for up to 12 hours, 0.6 times the larger of
    /// the minute `floor` and twice the kind's peak rate a minute.
    Leak,
    /// A runaway at the kind's quietest hour of the day: 30 minutes at three times its peak
    /// rate (at least 100 a minute).
    Quiet,
}

impl Runaway {
    pub(super) const ALL: [Self; 3] = [Self::Burst, Self::Leak, Self::Quiet];
}

/// One injected runaway and what got through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Leak {
    /// What was injected.
    pub runaway: Runaway,
    /// When it began (the log's clock, milliseconds).
    pub at_ms: u64,
    /// Its sends.
    pub sends: u64,
    /// Its sends let through before the kind first refused one of them: all of them if it
    /// never did.
    pub let_through: u64,
}

impl Leak {
    /// Whether the kind refused the runaway at some point.
    pub fn caught(&self) -> bool {
        self.let_through < self.sends
    }
}

/// One runaway injected into a kind's history: its sends, evenly spaced.
#[derive(Clone, Debug)]
pub(super) struct Injection {
    pub(super) runaway: Runaway,
    pub(super) times: Vec<u64>,
}

/// The slots of `from_ms..to_ms` a runaway is injected in: a day each, three to nine of them,
/// each cut to its longest piece outside the excluded spans; `None` if fewer than three have
/// room (half a day) left.
pub(super) fn slots(from_ms: u64, to_ms: u64, excluded: &[Range<u64>]) -> Option<Vec<Range<u64>>> {
    let span = to_ms.saturating_sub(from_ms);
    let count = (span / DAY_MS).clamp(3, 9);
    let length = span / count;
    let slots: Vec<Range<u64>> = (0..count)
        .filter_map(|i| {
            let slot = from_ms + i * length..from_ms + (i + 1) * length;
            let mut pieces = vec![slot];
            for cut in excluded {
                pieces = pieces
                    .into_iter()
                    .flat_map(|p| [p.start..p.end.min(cut.start), p.start.max(cut.end)..p.end])
                    .filter(|p| p.start < p.end)
                    .collect();
            }
            pieces.into_iter().max_by_key(|p| p.end - p.start)
        })
        .filter(|slot| slot.end - slot.start >= LEAST_SLOT_MS)
        .collect();
    (slots.len() >= 3).then_some(slots)
}

/// Each slot's runaway for a kind sent at `times`: a burst, a leak, a quiet-hour runaway, in
/// turn, sized from the kind's rate by hour of the day.
pub(super) fn inject(times: &[u64], slots: &[Range<u64>], minute_floor: u64) -> Vec<Injection> {
    let mut by_hour = [0u64; 24];
    for &t in times {
        by_hour[(t % DAY_MS / HOUR_MS) as usize] += 1;
    }
    let days = times
        .last()
        .zip(times.first())
        .map_or(1, |(l, f)| (l - f).div_ceil(DAY_MS).max(1));
    let per_minute = |hour: usize| by_hour[hour] as f64 / days as f64 / 60.0;
    // The first of the busiest hours (`max_by` gives the last of a tie).
    let busiest = (0..24)
        .rev()
        .max_by(|&a, &b| per_minute(a).total_cmp(&per_minute(b)))
        .unwrap_or(0);
    let quietest = (0..24)
        .min_by(|&a, &b| per_minute(a).total_cmp(&per_minute(b)))
        .unwrap_or(0);
    let peak = per_minute(busiest);
    slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let runaway = Runaway::ALL[i % 3];
            // The first start at `hour` in the slot that leaves room for `duration`.
            let at_hour = |hour: usize, duration: u64| {
                let day = slot.start - slot.start % DAY_MS;
                (0..3)
                    .map(|d| day + d * DAY_MS + hour as u64 * HOUR_MS)
                    .find(|&t| t >= slot.start && t + duration <= slot.end)
                    .unwrap_or(slot.start)
            };
            let (start, duration, per_second) = match runaway {
                Runaway::Burst => (
                    at_hour(busiest, 10 * MINUTE_MS),
                    10 * MINUTE_MS,
                    25.0 + 10.0 * peak / 60.0,
                ),
                Runaway::Leak => {
                    let duration = (12 * HOUR_MS).min((slot.end - slot.start) / 2);
                    let rate = 0.6 * (minute_floor as f64).max(2.0 * peak);
                    (
                        slot.start + (slot.end - slot.start - duration) / 2,
                        duration,
                        rate / 60.0,
                    )
                }
                Runaway::Quiet => (
                    at_hour(quietest, 30 * MINUTE_MS),
                    30 * MINUTE_MS,
                    (3.0 * peak).max(100.0) / 60.0,
                ),
            };
            let sends = ((duration as f64 / 1000.0) * per_second).max(1.0) as u64;
            let every = duration as f64 / sends as f64;
            Injection {
                runaway,
                times: (0..sends).map(|k| start + (k as f64 * every) as u64).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_leave_the_excluded_spans_out_and_need_room_for_three() {
        let all = slots(0, 9 * DAY_MS, &[]).unwrap();
        assert_eq!(all.len(), 9);
        let some = slots(
            0,
            9 * DAY_MS,
            &[DAY_MS / 4..DAY_MS / 2, DAY_MS + HOUR_MS..3 * DAY_MS],
        )
        .unwrap();
        assert_eq!(some.len(), 7);
        assert_eq!(some[0], DAY_MS / 2..DAY_MS, "the longer piece of the first day");
        assert_eq!(some[1], 3 * DAY_MS..4 * DAY_MS);
        assert!(slots(0, 30 * HOUR_MS, &[]).is_none());
    }

    #[test]
    fn runaways_are_sized_from_the_kind_and_placed_at_its_hours() {
        // A kind sending every ten seconds from 08:00 to 20:00, nothing at night.
        let times: Vec<u64> = (0..10 * DAY_MS)
            .step_by(10_000)
            .filter(|t| (8..20).contains(&(t % DAY_MS / HOUR_MS)))
            .collect();
        let injected = inject(&times, &slots(3 * DAY_MS, 10 * DAY_MS, &[]).unwrap(), 50);
        assert_eq!(injected.len(), 7);
        let hour = |i: usize| injected[i].times[0] % DAY_MS / HOUR_MS;
        assert_eq!(injected[0].runaway, Runaway::Burst);
        assert_eq!(hour(0), 8, "the busiest hour, the first of a tie");
        // 25 a second and ten times the peak of 6 a minute, for ten minutes.
        assert!((15_599..=15_600).contains(&injected[0].times.len()));
        assert_eq!(injected[1].runaway, Runaway::Leak);
        assert_eq!(
            injected[1].times.len(),
            12 * 60 * 30,
            "0.6 x the floor of 50, for 12 hours"
        );
        assert_eq!(
            (injected[2].runaway, hour(2)),
            (Runaway::Quiet, 0),
            "the quietest hour"
        );
        assert!(injected.iter().all(|i| i.times.windows(2).all(|w| w[0] <= w[1])));
    }
}
