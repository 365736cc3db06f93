//! The long windows: the sends of the last `SLOTS` slots of a fixed length, the newest slot still
//! filling. The hour window is twelve 5-minute slots and the day window twelve 2-hour slots, both
//! filled from the buckets the minute ring rolls out, so that the send path counts once.

/// Slots per long window.
pub(crate) const SLOTS: usize = 12;
const N: u64 = SLOTS as u64;

/// Sends per slot over the last `SLOTS` slots of `SLOT_MS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tally<const SLOT_MS: u64> {
    /// Absolute index (`time / slot_ms`) of the slot filling now.
    current: u64,
    /// `slots[s % N]` holds slot `s` for `current - N < s <= current`.
    slots: [u32; SLOTS],
    /// The window counts nothing before slot `from`, nor the first `from_count` sends of slot
    /// `from`: what a rebase set aside. The slots keep their counts for learning. (An index,
    /// saturating: 40,000 years of 5-minute slots.)
    from: u32,
    from_count: u32,
}

/// A slot the tally moved past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closed {
    /// The slot's absolute index.
    pub(crate) index: u64,
    /// Sends in it.
    pub(crate) count: u64,
    /// Empty slots after it, before the one filling now.
    pub(crate) skipped: u64,
}

impl<const SLOT_MS: u64> Tally<SLOT_MS> {
    pub(crate) fn new(now_ms: u64) -> Self {
        Self {
            current: now_ms / SLOT_MS,
            slots: [0; SLOTS],
            from: 0,
            from_count: 0,
        }
    }

    /// Start of the slot filling now.
    pub(crate) fn current_start(&self) -> u64 {
        self.current.saturating_mul(SLOT_MS)
    }

    /// How far into the slot filling now `now_ms` is (0 if it is before it).
    pub(crate) fn elapsed_in_current(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.current_start()).min(SLOT_MS)
    }

    /// Adds `count` sends made at `t_ms`, moving on to the slot that holds it first. A time in
    /// the slot before the current one counts in the current slot; one further back (a clock
    /// stepped back) moves the window back whole, its counts with it. Returns the slot moved
    /// past, if any.
    pub(crate) fn add(&mut self, t_ms: u64, count: u64) -> Option<Closed> {
        let target = t_ms / SLOT_MS;
        if target.saturating_add(1) < self.current {
            self.move_back(target);
        }
        let closed = (target > self.current).then(|| {
            let closed = Closed {
                index: self.current,
                count: u64::from(self.slots[(self.current % N) as usize]),
                skipped: target - self.current - 1,
            };
            for s in (self.current + 1)..=target.min(self.current + N) {
                self.slots[(s % N) as usize] = 0;
            }
            self.current = target;
            closed
        });
        let slot = &mut self.slots[(self.current % N) as usize];
        *slot = slot.saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
        closed
    }

    /// Makes `target` the current slot, each slot's count moving back with it, and what a
    /// rebase set aside too.
    fn move_back(&mut self, target: u64) {
        let shift = self.current - target;
        let old = self.slots;
        for back in 0..N {
            let from = (self.current % N + N - back) % N;
            let to = (target % N + N - back) % N;
            self.slots[to as usize] = old[from as usize];
        }
        self.from = u32::try_from(u64::from(self.from).saturating_sub(shift)).unwrap_or(0);
        self.current = target;
    }

    /// Sends in the window: the complete slots and the one filling, less what a rebase set
    /// aside.
    pub(crate) fn sum(&self) -> u64 {
        let oldest = self.current.saturating_sub(N - 1);
        (oldest..=self.current)
            .filter(|&s| s >= u64::from(self.from))
            .map(|s| {
                let count = self.slots[(s % N) as usize];
                let set_aside = if s == u64::from(self.from) {
                    self.from_count
                } else {
                    0
                };
                u64::from(count.saturating_sub(set_aside))
            })
            .sum()
    }

    /// Sends in the last `n` complete slots.
    pub(crate) fn recent_complete(&self, n: u64) -> u64 {
        (1..=n.min(N - 1))
            .filter_map(|back| self.current.checked_sub(back))
            .map(|s| u64::from(self.slots[(s % N) as usize]))
            .sum()
    }

    /// Sets aside every send counted so far: the window counts only what comes next, while the
    /// slots keep their counts for what is learned from them as they close.
    pub(crate) fn rebase(&mut self) {
        self.from = u32::try_from(self.current).unwrap_or(u32::MAX);
        self.from_count = self.slots[(self.current % N) as usize];
    }

    /// The window's length at `now_ms`: the complete slots and the part of the current one.
    pub(crate) fn span_ms(&self, now_ms: u64) -> u64 {
        (N - 1) * SLOT_MS + self.elapsed_in_current(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_sums_its_last_slots_and_reports_what_it_closes() {
        let mut t = Tally::<10>::new(0);
        assert_eq!(t.add(3, 2), None);
        assert_eq!(
            t.add(15, 1),
            Some(Closed {
                index: 0,
                count: 2,
                skipped: 0
            })
        );
        assert_eq!(
            t.add(47, 4),
            Some(Closed {
                index: 1,
                count: 1,
                skipped: 2
            })
        );
        assert_eq!(t.sum(), 7);
        assert_eq!(t.recent_complete(3), 1);
        // Twelve slots on, slot 0 has left the window.
        t.add(125, 1);
        assert_eq!(t.sum(), 1 + 4 + 1);
        // A time in the slot before the current one counts in it.
        t.add(115, 1);
        assert_eq!(t.sum(), 7);
        // A rebase sets the counts so far aside for the window, not for what closes.
        t.rebase();
        assert_eq!(t.sum(), 0);
        t.add(125, 3);
        assert_eq!(t.sum(), 3);
        assert_eq!(
            t.add(131, 1),
            Some(Closed {
                index: 12,
                count: 5,
                skipped: 0
            })
        );
        assert_eq!(t.sum(), 4);
    }

    #[test]
    fn a_jump_back_moves_the_window_back_whole() {
        let mut t = Tally::<10>::new(1_000);
        t.add(1_000, 5); // slot 100
        t.add(1_015, 3); // slot 101
        assert_eq!(t.sum(), 8);
        // Back one slot: counted in the current one.
        assert_eq!(t.add(1_005, 1), None);
        assert_eq!(t.sum(), 9);
        // Back five hours' worth: the window moves back with its counts.
        assert_eq!(t.add(500, 2), None);
        assert_eq!((t.current_start(), t.sum()), (500, 11));
        assert_eq!(t.recent_complete(1), 5);
        // And on from there, as time passes.
        t.add(520, 1);
        assert_eq!(t.sum(), 12);
    }

    mod oracle {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// Sends added in time order, some slots apart and some days apart, with rebases
            /// between: the window is the naive count of the sends in its last twelve slots
            /// that came after the last rebase, and each closed slot reports its own sends.
            #[test]
            fn the_tally_agrees_with_a_naive_window(
                start in 0u64..1_000_000_000,
                steps in prop::collection::vec((0u64..1_000, 0u64..40, any::<bool>()), 1..200),
            ) {
                const SLOT: u64 = 300_000;
                let mut tally = Tally::<SLOT>::new(start);
                let mut now = start;
                let mut current = start / SLOT;
                // (slot, count, counted after the last rebase)
                let mut sends: Vec<(u64, u64, bool)> = Vec::new();
                for (count, gap, rebase) in steps {
                    let gap = if gap >= 36 { gap * 1_000 } else { gap };
                    now += gap * SLOT / 3;
                    let slot = now / SLOT;
                    let closing = (slot > current).then_some(current);
                    current = current.max(slot);
                    let closed = tally.add(now, count);
                    match closing {
                        Some(index) => {
                            let in_slot = sends.iter().filter(|&&(s, _, _)| s == index);
                            prop_assert_eq!(closed, Some(Closed {
                                index,
                                count: in_slot.map(|&(_, c, _)| c).sum(),
                                skipped: slot - index - 1,
                            }));
                        }
                        None => prop_assert_eq!(closed, None),
                    }
                    sends.push((slot, count, true));
                    let oldest = slot.saturating_sub(SLOTS as u64 - 1);
                    let naive: u64 = sends
                        .iter()
                        .filter(|&&(s, _, after)| s >= oldest && after)
                        .map(|&(_, c, _)| c)
                        .sum();
                    prop_assert_eq!(tally.sum(), naive);
                    if rebase {
                        tally.rebase();
                        sends.iter_mut().for_each(|send| send.2 = false);
                        prop_assert_eq!(tally.sum(), 0);
                    }
                }
            }
        }
    }
}
