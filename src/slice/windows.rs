//! A slice's windows: the last minute in 5-second buckets, the last hour in 5-minute slots and the
//! last day in 2-hour slots, each a ring of twelve counts, rolled on when touched; and the sends of
//! the clock hour in progress, for learning.

use crate::detect::Timescale;

/// Slots per ring.
const N: usize = 12;
/// Each ring's slot, shortest first: 5 s, 5 min, 2 h.
pub(super) const SLOT_MS: [u64; 3] = [5_000, 300_000, 7_200_000];
pub(super) const HOUR_MS: u64 = 3_600_000;

/// Where time stands in each ring: the absolute index (`t / SLOT_MS`) of the slot in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Position([u64; 3]);

impl Position {
    pub(super) fn at(t_ms: u64) -> Self {
        Self(SLOT_MS.map(|slot| t_ms / slot))
    }

    /// The 5-second bucket in progress.
    pub(super) fn bucket(self) -> u64 {
        self.0[0]
    }
}

/// One slice's (or one dimension's) counts on the three timescales.
#[derive(Clone, Debug, Default)]
pub(super) struct Windows {
    rings: [[u32; N]; 3],
    at: Position,
    /// Sends in the clock hour in progress.
    pub(super) this_hour: u32,
}

impl Windows {
    pub(super) fn new(at: Position) -> Self {
        Self {
            at,
            ..Self::default()
        }
    }

    /// Counts one send at `at` (rolled to first).
    pub(super) fn add(&mut self, at: Position) {
        self.roll_to(at);
        for (ring, index) in self.rings.iter_mut().zip(at.0) {
            let slot = &mut ring[(index % N as u64) as usize];
            *slot = slot.saturating_add(1);
        }
        self.this_hour = self.this_hour.saturating_add(1);
    }

    /// Moves on to `at`, emptying the slots passed. A position behind the one held counts in the
    /// newest slot: the caller moves a dimension back whole ([`Windows::restart`]) when its clock
    /// jumps back further.
    pub(super) fn roll_to(&mut self, at: Position) {
        for (w, ring) in self.rings.iter_mut().enumerate() {
            let (from, to) = (self.at.0[w], at.0[w]);
            if to <= from {
                continue;
            }
            for index in from + 1..=to.min(from + N as u64) {
                ring[(index % N as u64) as usize] = 0;
            }
            self.at.0[w] = to;
        }
    }

    /// Forgets every count and stands at `at` (a clock that jumped back).
    pub(super) fn restart(&mut self, at: Position) {
        *self = Self::new(at);
    }

    /// Sends in the window of `timescale`, as of the position held.
    pub(super) fn sum(&self, timescale: Timescale) -> u64 {
        self.rings[timescale.index()]
            .iter()
            .map(|&count| u64::from(count))
            .sum()
    }

    /// Sends in the last `slots` complete 5-minute slots.
    pub(super) fn recent_complete(&self, slots: u64) -> u64 {
        let now = self.at.0[1];
        (1..=slots.min(N as u64 - 1))
            .filter_map(|back| now.checked_sub(back))
            .map(|index| u64::from(self.rings[1][(index % N as u64) as usize]))
            .sum()
    }

    /// Forgets the hour and day windows' counts (a slice reset by an operator).
    pub(super) fn clear(&mut self) {
        self.rings = [[0; N]; 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_slide_and_forget_what_they_pass() {
        let mut w = Windows::new(Position::at(0));
        for t in (0..60_000).step_by(1_000) {
            w.add(Position::at(t));
        }
        assert_eq!(w.sum(Timescale::Minute), 60);
        w.roll_to(Position::at(60_000));
        assert_eq!(
            w.sum(Timescale::Minute),
            55,
            "the first bucket (5 sends) has left the minute"
        );
        assert_eq!(w.sum(Timescale::Hour), 60);
        w.roll_to(Position::at(HOUR_MS + 300_000));
        assert_eq!(w.sum(Timescale::Hour), 0);
        assert_eq!(w.sum(Timescale::Day), 60);
        w.roll_to(Position::at(30 * HOUR_MS));
        assert_eq!(w.sum(Timescale::Day), 0);
        // Behind the position held: counted in the newest slot.
        w.add(Position::at(0));
        assert_eq!(w.sum(Timescale::Minute), 1);
    }

    #[test]
    fn the_recent_slots_are_the_complete_ones() {
        let mut w = Windows::new(Position::at(0));
        for minute in 0..20 {
            w.add(Position::at(minute * 60_000));
        }
        // At 20 minutes: slots 0-4 minutes ... 15-19 complete; 2 complete slots hold 10 sends.
        w.roll_to(Position::at(20 * 60_000));
        assert_eq!(w.recent_complete(2), 10);
    }
}
