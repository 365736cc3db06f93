//! Who may take a full registry's slot: a doorkeeper that counts, in a small count-min sketch,
//! the names that knocked while the registry was full, and the kinds a name that has proven
//! itself may displace.
//!
//! A name proves itself by knocking [`PROVEN`] times within the sketch's memory: one-off names
//! (a user id put into the kind by a bug) never do, however many of them arrive, while a real
//! new kind does within its first few dozen sends. A proven name may take the slot of a kind
//! that is warm and has been idle for `evict_idle_secs` (the longest idle
//! first), which a sweep keeps, unlike an idle kind that has learned nothing. A kind in use is
//! never displaced.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::kind::Standing;

/// Knocks a name needs, within the sketch's memory, before it may displace a kind.
pub(super) const PROVEN: u8 = 16;
/// Candidates a sweep keeps for proven newcomers.
const CANDIDATES: usize = 64;
/// Candidates a proven newcomer tries before it settles for the overflow kind this time.
const TRIES: usize = 4;

/// The doorkeeper: made when the registry first turns a name away.
#[derive(Debug, Default)]
pub(super) struct Admission {
    inner: Mutex<Option<Doorkeeper>>,
}

#[derive(Debug)]
struct Doorkeeper {
    sketch: Sketch,
    /// The best victims last, so that a newcomer pops the best.
    candidates: Vec<Candidate>,
}

/// A kind a proven newcomer may displace, as the last sweep saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) name: Arc<str>,
    /// Lower ranks are displaced first: the longest idle.
    rank: Reverse<u64>,
}

impl Candidate {
    /// `name` as a candidate, if a proven newcomer may displace it: idle for `evict_idle_ms`.
    pub(super) fn of(name: &Arc<str>, standing: Standing, evict_idle_ms: u64) -> Option<Self> {
        Self::displaceable(standing, evict_idle_ms).then(|| Self {
            name: Arc::clone(name),
            rank: Reverse(standing.idle_ms),
        })
    }

    /// Whether a proven newcomer may displace a kind that stands so now.
    pub(super) fn displaceable(standing: Standing, evict_idle_ms: u64) -> bool {
        standing.idle_ms >= evict_idle_ms
    }
}

impl Admission {
    /// Counts a knock of `name` on a full registry of `max_kinds`. For a name that has proven
    /// itself, the candidates to try (taken: a candidate is tried once).
    pub(super) fn knock(&self, name: &str, max_kinds: usize) -> Option<Vec<Candidate>> {
        let mut inner = self.inner.lock();
        let doorkeeper = inner.get_or_insert_with(|| Doorkeeper {
            sketch: Sketch::new(max_kinds),
            candidates: Vec::new(),
        });
        let knocks = doorkeeper.sketch.add(name);
        if knocks < PROVEN {
            return None;
        }
        let keep = doorkeeper.candidates.len().saturating_sub(TRIES);
        Some(doorkeeper.candidates.split_off(keep))
    }

    /// Replaces the candidates with a sweep's.
    pub(super) fn set_candidates(&self, candidates: Candidates) {
        if let Some(doorkeeper) = self.inner.lock().as_mut() {
            doorkeeper.candidates = candidates.into_best_last();
        }
    }
}

/// The lowest-ranked candidates a sweep has seen, at most [`CANDIDATES`].
#[derive(Debug, Default)]
pub(super) struct Candidates(BinaryHeap<(Reverse<u64>, Arc<str>)>);

impl Candidates {
    pub(super) fn offer(&mut self, candidate: Candidate) {
        self.0.push((candidate.rank, candidate.name));
        if self.0.len() > CANDIDATES {
            self.0.pop();
        }
    }

    fn into_best_last(self) -> Vec<Candidate> {
        let mut all: Vec<Candidate> = self
            .0
            .into_iter()
            .map(|(rank, name)| Candidate { name, rank })
            .collect();
        all.sort_by_key(|candidate| Reverse(candidate.rank));
        all
    }
}

/// A count-min sketch of 4 rows of saturating byte counters, with conservative update (a knock
/// raises only the counters at the name's current minimum) and ageing: after ten knocks per
/// counter of a row, every counter is halved, so old knocks fade and random names' collisions
/// stay far below [`PROVEN`].
#[derive(Debug)]
struct Sketch {
    counters: Vec<u8>,
    /// Counters per row, a power of two.
    width: usize,
    knocks: usize,
    hasher: foldhash::fast::RandomState,
}

const ROWS: usize = 4;

impl Sketch {
    /// A sketch for a registry of `max_kinds`: four counters a kind, between 1,024 and 2^20 a
    /// row (4 KiB to 4 MiB).
    fn new(max_kinds: usize) -> Self {
        let width = max_kinds
            .saturating_mul(4)
            .clamp(1 << 10, 1 << 20)
            .next_power_of_two();
        Self {
            counters: vec![0; ROWS * width],
            width,
            knocks: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Counts one knock of `name`; returns its estimated knocks, this one included.
    fn add(&mut self, name: &str) -> u8 {
        let hash = self.hasher.hash_one(name);
        let (h1, h2) = (hash as usize, (hash >> 32) as usize | 1);
        let slots: [usize; ROWS] = std::array::from_fn(|row| {
            row * self.width + (h1.wrapping_add(row.wrapping_mul(h2)) & (self.width - 1))
        });
        let least = slots.iter().map(|&slot| self.counters[slot]).min().unwrap_or(0);
        for &slot in &slots {
            if self.counters[slot] == least {
                self.counters[slot] = least.saturating_add(1);
            }
        }
        self.knocks += 1;
        if self.knocks >= 10 * self.width {
            self.knocks = 0;
            for counter in &mut self.counters {
                *counter /= 2;
            }
        }
        least.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_one_off_names_never_proves_itself_and_a_repeated_name_does() {
        for max_kinds in [1, 100] {
            let mut sketch = Sketch::new(max_kinds);
            let proven = (0..1_000_000u64)
                .filter(|i| sketch.add(&format!("user.{i}")) >= PROVEN)
                .count();
            assert_eq!(
                proven, 0,
                "one-off names passed for proven, max_kinds {max_kinds}"
            );
        }
        let mut sketch = Sketch::new(4096);
        let proven = (0..1_000_000u64)
            .filter(|i| sketch.add(&format!("user.{i}")) >= PROVEN)
            .count();
        assert_eq!(proven, 0, "one-off names passed for proven");
        // A real kind among the flood: one send in a thousand.
        let mut first_proven = None;
        for i in 0..200_000u64 {
            let _ = sketch.add(&format!("more.{i}"));
            if i % 1_000 == 0 && sketch.add("email.new") >= PROVEN && first_proven.is_none() {
                first_proven = Some(i / 1_000 + 1);
            }
        }
        let sends = first_proven.expect("a steady kind proves itself");
        assert!(sends <= 20, "proven after {sends} sends");
    }

    #[test]
    fn candidates_are_the_longest_idle_kinds() {
        let idle = |idle_ms| Standing {
            idle_ms,
            learned: true,
        };
        let mut candidates = Candidates::default();
        for i in 0..100u64 {
            let name: Arc<str> = format!("idle.{i}").into();
            candidates.offer(Candidate::of(&name, idle(3_600_000 + i * 1_000), 3_600_000).unwrap());
        }
        let busy: Arc<str> = "busy".into();
        assert!(Candidate::of(&busy, idle(60_000), 3_600_000).is_none());
        let best_last = candidates.into_best_last();
        assert_eq!(best_last.len(), CANDIDATES);
        assert_eq!(&*best_last[CANDIDATES - 1].name, "idle.99", "the longest idle");
        assert_eq!(&*best_last[0].name, "idle.36");
    }
}
