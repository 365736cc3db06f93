//! One kind's replay over time, for a report to draw: per slot of log time, the sends attempted
//! and blocked, and each timescale's window against its limit as the engine judged it.

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::kind::{Decision, KindHandle};
use crate::observe::Window;

/// The slot a timeline starts with, and how often its windows are read however long its slots
/// grow: a minute of log time, the minute window's length by default, so that a burst shows
/// in the minute window at its fullest.
const READ_EVERY_MS: u64 = 60_000;
/// A timeline holds at most this many points: once full, neighbours merge in pairs and the slot
/// doubles, so memory stays flat however long the log.
const MOST_POINTS: usize = 1024;

/// A kind's replay over time: the sends of each slot of log time, and its windows.
///
/// The windows are read from the engine, cold-side: after the kind's last send in each minute
/// of log time, without rolling anything, so that recording a timeline changes no decision; a
/// slot keeps the fullest of each timescale. A slot without a send of the kind has no point (the
/// engine judged nothing then). Slots start at a minute and double as the log grows, up to 1,024
/// points; [`coarsened`](Self::coarsened) merges further for drawing. Merged points keep the
/// sends, and each timescale's fullest window, so that a spike survives any merge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    slot_ms: u64,
    points: Vec<Point>,
    /// The slot in progress: its counts so far, the fullest windows read in it.
    #[serde(skip)]
    open: Option<Point>,
    /// The start of the minute of the last send counted: the windows are read again after the
    /// last send of each minute.
    #[serde(skip)]
    minute_ms: u64,
}

/// One slot of a [`Timeline`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Point {
    /// The slot's start, on the log's clock (milliseconds).
    pub at_ms: u64,
    /// Sends of the kind in the slot.
    pub attempted: u64,
    /// Of those, sends blocked.
    pub blocked: u64,
    /// The minute, hour and day windows: for each, the fullest the slot saw (read after the
    /// kind's last send of each minute in it). `None` where the engine gave none (sends that
    /// went to the overflow kind).
    pub windows: [Option<Window>; 3],
}

impl Point {
    fn new(at_ms: u64) -> Self {
        Self {
            at_ms,
            attempted: 0,
            blocked: 0,
            windows: [None; 3],
        }
    }

    /// Both points' sends, and each timescale's fuller window (the later on a tie).
    fn merged(self, later: Self) -> Self {
        let fuller = |a: Option<Window>, b: Option<Window>| match (a, b) {
            (Some(a), Some(b)) if a.window_count > b.window_count => Some(a),
            (a, None) => a,
            (_, b) => b,
        };
        Self {
            at_ms: self.at_ms,
            attempted: self.attempted + later.attempted,
            blocked: self.blocked + later.blocked,
            windows: [0, 1, 2].map(|i| fuller(self.windows[i], later.windows[i])),
        }
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            slot_ms: READ_EVERY_MS,
            points: Vec::new(),
            open: None,
            minute_ms: 0,
        }
    }
}

impl Timeline {
    /// The length of a slot (milliseconds of log time).
    pub fn slot_ms(&self) -> u64 {
        self.slot_ms
    }

    /// The slots with sends, in time order.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// The same timeline in at most `most` points (at least one): neighbours merged as slots
    /// double.
    pub fn coarsened(&self, most: usize) -> Self {
        let mut timeline = self.clone();
        while timeline.points.len() > most.max(1) {
            timeline.double_slots();
        }
        timeline
    }

    /// Before a send of the kind at `t_ms` is checked through `handle`: reads the windows its
    /// last send left if this send starts a new minute, and closes the slot in progress if it
    /// falls past it.
    pub(crate) fn before_send<C: Clock>(&mut self, t_ms: u64, handle: &KindHandle<C>) {
        let minute_ms = t_ms - t_ms % READ_EVERY_MS;
        if let Some(open) = &self.open {
            if minute_ms == self.minute_ms {
                return;
            }
            if t_ms.saturating_sub(open.at_ms) < self.slot_ms {
                self.read(handle);
                self.minute_ms = minute_ms;
                return;
            }
            self.close(handle);
        }
        self.minute_ms = minute_ms;
        self.open = Some(Point::new(t_ms - t_ms % self.slot_ms));
    }

    /// Reads the windows into the slot in progress, keeping the fullest.
    fn read<C: Clock>(&mut self, handle: &KindHandle<C>) {
        if let (Some(open), Some(status)) = (&mut self.open, handle.figures_as_they_stand()) {
            let read = Point {
                windows: status.windows.map(Some),
                ..Point::new(open.at_ms)
            };
            *open = open.merged(read);
        }
    }

    /// Counts the send just decided into the slot in progress.
    pub(crate) fn count(&mut self, decision: Decision) {
        if let Some(open) = &mut self.open {
            open.attempted += 1;
            open.blocked += u64::from(!decision.is_allowed());
        }
    }

    /// Closes the slot in progress, reading its windows from `handle` a last time.
    pub(crate) fn close<C: Clock>(&mut self, handle: &KindHandle<C>) {
        self.read(handle);
        let Some(point) = self.open.take() else {
            return;
        };
        self.points.push(point);
        if self.points.len() >= MOST_POINTS {
            self.double_slots();
        }
    }

    /// Merges neighbours into slots twice as long.
    fn double_slots(&mut self) {
        self.slot_ms *= 2;
        let slot_ms = self.slot_ms;
        let mut merged: Vec<Point> = Vec::with_capacity(self.points.len() / 2 + 1);
        for point in self.points.drain(..) {
            let at_ms = point.at_ms - point.at_ms % slot_ms;
            match merged.last_mut() {
                Some(last) if last.at_ms == at_ms => *last = last.merged(point),
                _ => merged.push(Point { at_ms, ..point }),
            }
        }
        self.points = merged;
        if let Some(open) = &mut self.open {
            open.at_ms -= open.at_ms % slot_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Bound, Timescale};

    fn window(count: u64) -> Option<Window> {
        Some(Window {
            timescale: Timescale::Minute,
            window_count: count,
            threshold: 50,
            expected: 1.0,
            bound: Bound::Floor,
        })
    }

    fn point(at_ms: u64, attempted: u64, count: u64) -> Point {
        Point {
            at_ms,
            attempted,
            blocked: 0,
            windows: [window(count), None, None],
        }
    }

    #[test]
    fn merged_slots_keep_every_send_and_the_fullest_window() {
        let mut timeline = Timeline {
            slot_ms: 60_000,
            points: vec![
                point(0, 1, 5),
                point(60_000, 2, 90),
                point(120_000, 3, 7),
                point(300_000, 4, 1),
            ],
            open: None,
            minute_ms: 0,
        };
        timeline.double_slots();
        assert_eq!(timeline.slot_ms(), 120_000);
        let points: Vec<(u64, u64, u64)> = timeline
            .points()
            .iter()
            .map(|p| (p.at_ms, p.attempted, p.windows[0].unwrap().window_count))
            .collect();
        assert_eq!(points, [(0, 3, 90), (120_000, 3, 7), (240_000, 4, 1)]);
        let coarse = timeline.coarsened(1);
        assert_eq!(coarse.points().len(), 1);
        assert_eq!(coarse.points()[0].attempted, 10);
        assert_eq!(coarse.points()[0].windows[0].unwrap().window_count, 90);
    }
}
