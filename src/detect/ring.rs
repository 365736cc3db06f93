//! The sliding window's cold side: a ring of per-bucket counts behind the current bucket.
//!
//! The current bucket's count lives in a hot atomic on the kind; when time leaves the bucket, one
//! thread swaps that count out and [`Ring::roll`]s it in. The window count is then the sum of the
//! ring (the previous `BUCKETS - 1` buckets) plus the current count, so a send is judged on the
//! very send that crosses the threshold. Windows for learning are aligned to whole windows of
//! buckets since the clock's origin.

/// Buckets per window.
pub(crate) const BUCKETS: usize = 12;
const N: u64 = BUCKETS as u64;

/// Counts of the buckets before the current one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ring {
    bucket_ms: u64,
    /// Absolute index (`time / bucket_ms`) of the current bucket.
    current: u64,
    /// `slots[b % N]` holds bucket `b` for `current - N < b < current`; the current bucket's slot
    /// is zero until the bucket is rolled in. A bucket holds at most `u32::MAX` sends (saturating):
    /// some 860 million a second for the default 5-second bucket.
    slots: [u32; BUCKETS],
}

/// What a roll-over completed, for learning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completed {
    /// Sends in the aligned window the old bucket belonged to.
    pub(crate) count: u64,
    /// Further whole windows that passed without a send.
    pub(crate) quiet: u64,
}

impl Ring {
    pub(crate) fn new(bucket_ms: u64, now_ms: u64) -> Self {
        Self {
            bucket_ms,
            current: now_ms / bucket_ms,
            slots: [0; BUCKETS],
        }
    }

    /// Start of the current bucket, in clock milliseconds.
    /// The window's length: twelve buckets.
    pub(crate) fn window_ms(&self) -> u64 {
        self.bucket_ms.saturating_mul(N)
    }

    pub(crate) fn bucket_start(&self) -> u64 {
        self.current.saturating_mul(self.bucket_ms)
    }

    /// Sends in the buckets before the current one that are still in the window.
    pub(crate) fn previous(&self) -> u64 {
        self.slots.iter().map(|&count| u64::from(count)).sum()
    }

    /// The times the current bucket takes, as `(from, span)`: `from <= t < from + span`. That is
    /// the bucket itself and the window before it: a clock that stepped back a little, or sends
    /// replayed slightly out of order, count in the newest bucket rather than reshuffling the
    /// window. The send path tests a time against this with one subtraction and one compare.
    pub(crate) fn accepts(&self) -> (u64, u64) {
        let start = self.bucket_start();
        let from = start.saturating_sub(self.bucket_ms.saturating_mul(N));
        (from, start - from + self.bucket_ms)
    }

    /// Whether the current bucket takes a send at `now_ms` (see [`Ring::accepts`]).
    pub(crate) fn holds(&self, now_ms: u64) -> bool {
        let (from, span) = self.accepts();
        now_ms.wrapping_sub(from) < span
    }

    /// Closes the current bucket, which held `count` sends, and moves to the bucket holding
    /// `now_ms`. A time a whole window or more before the current bucket moves the ring back
    /// whole, keeping its counts, so that a clock set back by hours neither piles sends into one
    /// bucket until it catches up nor forgets the window.
    pub(crate) fn roll(&mut self, count: u64, now_ms: u64) -> Option<Completed> {
        let target = now_ms / self.bucket_ms;
        if target < self.current {
            self.move_to(target, count);
            return None;
        }
        let from = self.current;
        self.slots[(from % N) as usize] = saturating_u32(count);
        if target == from {
            return None;
        }
        let completed = (target / N > from / N).then(|| {
            let window_start = from / N * N;
            let count = (window_start..=from)
                .map(|b| u64::from(self.slots[(b % N) as usize]))
                .sum();
            Completed {
                count,
                quiet: target / N - from / N - 1,
            }
        });
        for b in (from + 1)..=target.min(from + N) {
            self.slots[(b % N) as usize] = 0;
        }
        self.current = target;
        completed
    }

    /// Forgets every count (an operator reset).
    pub(crate) fn clear(&mut self) {
        self.slots = [0; BUCKETS];
    }

    fn move_to(&mut self, target: u64, count: u64) {
        let mut slots = [0; BUCKETS];
        for back in 1..N {
            let old = self
                .current
                .checked_sub(back)
                .map_or(0, |b| self.slots[(b % N) as usize]);
            let old = if back == 1 {
                old.saturating_add(saturating_u32(count))
            } else {
                old
            };
            if let Some(b) = target.checked_sub(back) {
                slots[(b % N) as usize] = old;
            }
        }
        self.slots = slots;
        self.current = target;
    }
}

fn saturating_u32(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_holds_the_last_buckets_only() {
        let mut ring = Ring::new(10, 0);
        for t in 0..N {
            assert_eq!(ring.roll(1, t * 10), None);
        }
        // Buckets 0..=10 were closed with one send each; the current is bucket 11.
        assert_eq!(ring.previous(), 11);
        ring.roll(1, 12 * 10);
        assert_eq!(ring.previous(), 11, "bucket 0 fell out as bucket 11 came in");
    }

    #[test]
    fn a_completed_window_reports_its_count_and_the_quiet_ones_after_it() {
        let mut ring = Ring::new(10, 0);
        ring.roll(5, 30); // bucket 0: 5 sends
        ring.roll(7, 110); // bucket 3: 7 sends
        let done = ring.roll(1, 10 * 10 * N + 5); // bucket 11 (1 send) -> 10 windows later
        assert_eq!(done, Some(Completed { count: 13, quiet: 9 }));
        assert_eq!(ring.previous(), 0);
    }

    #[test]
    fn a_step_back_within_a_window_stays_and_a_jump_back_keeps_the_counts() {
        let mut ring = Ring::new(10, 1000);
        ring.roll(4, 1010);
        assert!(ring.holds(1015) && ring.holds(1005) && ring.holds(1010 - 10 * N));
        assert!(!ring.holds(1020) && !ring.holds(1009 - 10 * N));
        ring.roll(3, 20); // far back
        assert_eq!(ring.bucket_start(), 20);
        assert_eq!(ring.previous(), 4 + 3);
    }

    mod oracle {
        use super::*;
        use proptest::prelude::*;

        /// The naive window: every closed bucket and its count, kept forever.
        struct Naive {
            closed: Vec<(u64, u64)>,
        }

        impl Naive {
            fn in_window(&self, current: u64) -> u64 {
                let oldest = current.saturating_sub(N - 1);
                self.closed
                    .iter()
                    .filter(|(b, _)| *b >= oldest && *b < current)
                    .map(|(_, c)| c)
                    .sum()
            }

            fn aligned_window(&self, of: u64) -> u64 {
                let start = of / N * N;
                self.closed
                    .iter()
                    .filter(|(b, _)| (start..=of).contains(b))
                    .map(|(_, c)| c)
                    .sum()
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// In-order roll-overs: `previous` is the naive sum of the last buckets, and every
            /// completed aligned window reports the naive count and the quiet windows after it.
            #[test]
            fn the_ring_agrees_with_a_naive_window(
                bucket_ms in 1u64..10_000,
                start in 0u64..1_000_000_000,
                steps in prop::collection::vec((0u64..1_000, 1u64..30, 0u64..10_000), 1..200),
            ) {
                let mut ring = Ring::new(bucket_ms, start);
                let mut current = start / bucket_ms;
                let mut naive = Naive { closed: Vec::new() };
                for (count, gap, offset) in steps {
                    // Mostly the next buckets, sometimes half a window on or several windows on.
                    let gap = match gap {
                        26.. => gap * 7,
                        21..=25 => gap - 8,
                        _ => gap.min(3),
                    };
                    let target = current + gap;
                    let now = target * bucket_ms + offset % bucket_ms;
                    naive.closed.push((current, count));
                    let expected = (target / N > current / N).then(|| Completed {
                        count: naive.aligned_window(current),
                        quiet: target / N - current / N - 1,
                    });
                    prop_assert_eq!(ring.roll(count, now), expected);
                    current = target;
                    prop_assert_eq!(ring.previous(), naive.in_window(current));
                    prop_assert_eq!(ring.bucket_start(), current * bucket_ms);
                    prop_assert!(ring.holds(now));
                }
            }
        }
    }
}
