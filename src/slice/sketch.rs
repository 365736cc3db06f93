//! A count-min sketch of the values a dimension does not track, decayed by half every minute: how
//! busy an untracked value has been lately, never less than it was (collisions only add), in a
//! fixed 4 KiB whatever the number of values.

/// Rows, each hashed apart.
const DEPTH: usize = 4;
/// Counters a row.
const WIDTH: usize = 256;

#[derive(Clone, Debug)]
pub(super) struct Sketch {
    rows: Box<[[u32; WIDTH]; DEPTH]>,
}

impl Default for Sketch {
    fn default() -> Self {
        Self {
            rows: Box::new([[0; WIDTH]; DEPTH]),
        }
    }
}

/// Row `row`'s counter for the value hashed `hash`: a byte of the hash a row, mixed.
fn cell(hash: u64, row: usize) -> usize {
    let mixed = hash
        .rotate_left(16 * row as u32)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 56) as usize
}

impl Sketch {
    /// Counts one send of the value hashed `hash`; returns how busy it has been lately (an upper
    /// bound).
    pub(super) fn add(&mut self, hash: u64) -> u32 {
        let mut least = u32::MAX;
        for (row, counters) in self.rows.iter_mut().enumerate() {
            let counter = &mut counters[cell(hash, row)];
            *counter = counter.saturating_add(1);
            least = least.min(*counter);
        }
        least
    }

    /// Halves every counter `times` times (a minute passed for each).
    pub(super) fn decay(&mut self, times: u64) {
        let shift = times.min(31) as u32;
        for counters in self.rows.iter_mut() {
            for counter in counters.iter_mut() {
                *counter >>= shift;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slice::slices::hash_of;

    #[test]
    fn a_busy_value_stands_out_of_many_quiet_ones_and_fades() {
        let mut sketch = Sketch::default();
        for i in 0..5_000u32 {
            sketch.add(hash_of(&i));
        }
        let mut busy = 0;
        for _ in 0..200 {
            busy = sketch.add(hash_of("busy"));
        }
        assert!((200..260).contains(&busy), "{busy}");
        // Never under the truth, and a quiet value is estimated near what it sent.
        let quiet = sketch.add(hash_of(&7u32));
        assert!((2..40).contains(&quiet), "{quiet}");
        sketch.decay(1);
        assert!(sketch.add(hash_of("busy")) <= busy / 2 + 1);
    }
}
