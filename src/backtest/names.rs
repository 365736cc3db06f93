//! The kind names a replay has seen, in one growing buffer rather than an allocation each.
//!
//! A replay of millions of kinds registers each in the breaker for a while (about a kilobyte,
//! freed when the registry forgets the kind) and keeps its name for the report. Kept as an
//! allocation of its own, each name took a piece of the hole a forgotten kind had left, so the
//! holes could not be used again: 1 KB of memory a kind, 5.8 GB for 5 million kinds sent once
//! each where the data took 1.5 GB. Here names take no allocation of their own.

use std::collections::HashMap;
use std::hash::BuildHasher;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Names numbered from 0 in the order first seen, hashed with `S`.
#[derive(Debug, Default)]
pub(super) struct Names<S = foldhash::fast::RandomState> {
    text: String,
    /// Where each name ends in `text`.
    ends: Vec<usize>,
    /// A name's hash to its number.
    index: FastMap<u64, u32>,
    /// The numbers of names whose hash another name had first (as good as never).
    collided: FastMap<u64, Vec<u32>>,
    hasher: S,
}

impl<S: BuildHasher> Names<S> {
    /// The number of `name`, if seen.
    pub(super) fn get(&self, name: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        let first = *self.index.get(&hash)? as usize;
        if self.name(first) == name {
            return Some(first);
        }
        let others = self.collided.get(&hash)?;
        others
            .iter()
            .map(|&id| id as usize)
            .find(|&id| self.name(id) == name)
    }

    /// The number of `name`, numbered next if new.
    pub(super) fn get_or_insert(&mut self, name: &str) -> usize {
        if let Some(id) = self.get(name) {
            return id;
        }
        let id = self.ends.len();
        self.text.push_str(name);
        self.ends.push(self.text.len());
        let hash = self.hasher.hash_one(name);
        match self.index.entry(hash) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(id as u32);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.entry(hash).or_default().push(id as u32);
            }
        }
        id
    }

    /// Name number `id`.
    pub(super) fn name(&self, id: usize) -> &str {
        let start = id.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.text[start..self.ends[id]]
    }

    /// Every name, by number.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        (0..self.ends.len()).map(|id| self.name(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_in_the_order_first_seen_and_found_again() {
        let mut names: Names = Names::default();
        assert_eq!(names.get("a"), None);
        assert_eq!(names.get_or_insert("a"), 0);
        assert_eq!(names.get_or_insert("bc"), 1);
        assert_eq!(names.get_or_insert("a"), 0);
        assert_eq!(names.get_or_insert(""), 2);
        assert_eq!(
            (names.get("bc"), names.name(1), names.name(2)),
            (Some(1), "bc", "")
        );
        assert!(names.iter().eq(["a", "bc", ""]));
    }

    /// Hashes every name alike.
    #[derive(Default)]
    struct Alike;

    impl BuildHasher for Alike {
        type Hasher = Alike;
        fn build_hasher(&self) -> Alike {
            Alike
        }
    }

    impl std::hash::Hasher for Alike {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn names_whose_hashes_collide_are_told_apart() {
        let mut names = Names::<Alike>::default();
        for (id, name) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(names.get_or_insert(name), id);
        }
        assert_eq!(names.get_or_insert("b"), 1);
        let found = ["a", "b", "c", "d"].map(|name| names.get(name));
        assert_eq!(found, [Some(0), Some(1), Some(2), None]);
        assert_eq!(names.collided.len(), 1);
    }
}
