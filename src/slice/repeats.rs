//! The repeat check: how many times each recipient (with its content key) was sent the same
//! notification in the window, in a table of fixed most size. The table is split in shards, each
//! behind its own lock, each a set-associative array: a key lives in one set of eight entries, and
//! a new key takes an entry whose window is long over, or else the one repeated least (the oldest
//! of those), so that under a flood of distinct recipients the ones being repeated stay.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::settings::RepeatSettings;

/// Shards, each behind its own lock.
const SHARDS: usize = 16;
/// Entries a set: a key is looked for in one set only.
const WAYS: usize = 8;
/// Sets a shard starts with; it doubles (up to its share of the capacity) when a set is full of
/// live entries.
const FIRST_SETS: usize = 4;

/// One recipient (and content key) of one kind.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// The key's hash; 0: empty.
    key: u64,
    /// When its window began, in seconds on the breaker's clock.
    since_s: u32,
    /// Attempts in the window (saturating).
    count: u16,
    /// Refused for all of this window: the window before ended over the limit.
    carried: bool,
}

#[derive(Debug)]
struct Shard {
    sets: Vec<[Entry; WAYS]>,
    max_sets: usize,
    live: usize,
}

/// What the check decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repeat {
    Allowed,
    /// Refused; `first` for the first refusal of the key's run; `since_ms` when its window
    /// began.
    Refused {
        first: bool,
        since_ms: u64,
    },
}

/// A kind's repeat table.
#[derive(Debug)]
pub(crate) struct Repeats {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    blocked: AtomicU64,
}

impl Repeats {
    /// A table that remembers at most about `capacity` keys (16 bytes each).
    pub(crate) fn new(capacity: usize) -> Self {
        let max_sets = (capacity / (SHARDS * WAYS)).max(1).next_power_of_two();
        let first = FIRST_SETS.min(max_sets);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    sets: vec![[Entry::default(); WAYS]; first],
                    max_sets,
                    live: 0,
                })
            })
            .collect();
        Self {
            shards,
            capacity: max_sets * SHARDS * WAYS,
            blocked: AtomicU64::new(0),
        }
    }

    /// Counts one send of the key hashed `key` at `now_ms` and decides it.
    pub(crate) fn check(&self, key: u64, now_ms: u64, settings: &RepeatSettings, dry_run: bool) -> Repeat {
        let key = key.max(1);
        let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        let window_s = u32::try_from((settings.window_ms / 1000).max(1)).unwrap_or(u32::MAX);
        let max = u16::try_from(settings.max).unwrap_or(u16::MAX);
        let shard = &self.shards[(key >> 60) as usize % SHARDS];
        let verdict = shard.lock().check(key, now_s, window_s, max);
        if matches!(verdict, Repeat::Refused { .. }) && !dry_run {
            self.blocked.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    /// Keys remembered now.
    pub(crate) fn remembered(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().live).sum()
    }

    /// The most keys it remembers.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sends refused.
    pub(crate) fn blocked(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }
}

impl Shard {
    fn set_of(&self, key: u64) -> usize {
        (key as usize) & (self.sets.len() - 1)
    }

    fn check(&mut self, key: u64, now_s: u32, window_s: u32, max: u16) -> Repeat {
        let set = self.set_of(key);
        if let Some(entry) = self.sets[set].iter_mut().find(|entry| entry.key == key) {
            let since = now_s.saturating_sub(entry.since_s);
            if since >= window_s {
                // A new window: refused all through it if the one just before ended over the
                // limit (a window with no attempt between them lets it through).
                entry.carried = entry.count > max && since < window_s.saturating_mul(2);
                entry.since_s = now_s;
                entry.count = 0;
            }
            let was_refusing = entry.carried || entry.count > max;
            entry.count = entry.count.saturating_add(1);
            return if entry.carried || entry.count > max {
                Repeat::Refused {
                    first: !was_refusing,
                    since_ms: u64::from(entry.since_s) * 1000,
                }
            } else {
                Repeat::Allowed
            };
        }
        self.insert(key, now_s, window_s);
        if max == 0 {
            return Repeat::Refused {
                first: true,
                since_ms: u64::from(now_s) * 1000,
            };
        }
        Repeat::Allowed
    }

    fn insert(&mut self, key: u64, now_s: u32, window_s: u32) {
        let dead = |entry: &Entry| {
            entry.key == 0
                || now_s.saturating_sub(entry.since_s) >= window_s.saturating_mul(2)
                || (now_s.saturating_sub(entry.since_s) >= window_s && !entry.carried)
        };
        let set = self.set_of(key);
        if !self.sets[set].iter().any(dead) && self.sets.len() < self.max_sets {
            self.grow();
            return self.insert(key, now_s, window_s);
        }
        let entries = &mut self.sets[set];
        let at = match entries.iter().position(|entry| entry.key == 0) {
            Some(empty) => {
                self.live += 1;
                empty
            }
            None => match entries.iter().position(dead) {
                Some(over) => over,
                // The least repeated, the oldest of those.
                None => (0..WAYS)
                    .min_by_key(|&i| (entries[i].count, entries[i].since_s))
                    .unwrap_or(0),
            },
        };
        entries[at] = Entry {
            key,
            since_s: now_s,
            count: 1,
            carried: false,
        };
    }

    /// Doubles the sets, moving each live entry to its set in the new table.
    fn grow(&mut self) {
        let mut sets = vec![[Entry::default(); WAYS]; self.sets.len() * 2];
        let mask = sets.len() - 1;
        for entry in self.sets.iter().flatten().filter(|entry| entry.key != 0) {
            let set = &mut sets[(entry.key as usize) & mask];
            if let Some(free) = set.iter_mut().find(|slot| slot.key == 0) {
                *free = *entry;
            }
        }
        self.sets = sets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slice::slices::hash_of;

    const HOUR: RepeatSettings = RepeatSettings {
        max: 10,
        window_ms: 3_600_000,
        capacity: 1 << 16,
    };

    #[test]
    fn the_eleventh_in_the_window_is_refused_and_a_loop_that_goes_on_stays_refused() {
        let repeats = Repeats::new(HOUR.capacity);
        let key = hash_of("alice@example.com");
        let mut through = 0;
        let mut firsts = 0;
        // 148 sends, one a minute for two and a half hours: a cron bug.
        for minute in 0..148u64 {
            match repeats.check(key, minute * 60_000, &HOUR, false) {
                Repeat::Allowed => through += 1,
                Repeat::Refused { first, .. } => firsts += u32::from(first),
            }
        }
        assert_eq!((through, firsts), (10, 1));
        assert_eq!(repeats.blocked(), 138);
        // A quiet window after it, then it may send again.
        let later = 148 * 60_000 + 2 * HOUR.window_ms;
        assert_eq!(repeats.check(key, later, &HOUR, false), Repeat::Allowed);
    }

    #[test]
    fn a_window_with_few_sends_after_a_refused_one_lets_the_recipient_through_again() {
        let repeats = Repeats::new(HOUR.capacity);
        let key = hash_of("bob");
        for i in 0..11 {
            let _ = repeats.check(key, i * 1_000, &HOUR, false);
        }
        // The next window holds one attempt, refused (carried); the one after is clean.
        let next = HOUR.window_ms + 20_000;
        assert!(matches!(
            repeats.check(key, next, &HOUR, false),
            Repeat::Refused { .. }
        ));
        assert_eq!(
            repeats.check(key, next + HOUR.window_ms, &HOUR, false),
            Repeat::Allowed
        );
    }

    #[test]
    fn a_flood_of_distinct_recipients_stays_within_the_capacity_and_keeps_the_repeated() {
        let settings = RepeatSettings {
            capacity: 4_096,
            ..HOUR
        };
        let repeats = Repeats::new(settings.capacity);
        let looping = hash_of("looping");
        let mut through = 0;
        for i in 0..1_000_000u64 {
            let t = i * 3; // a million recipients in 50 minutes
            let _ = repeats.check(hash_of(&i), t, &settings, false);
            if i % 500 == 0 {
                through += u32::from(repeats.check(looping, t, &settings, false) == Repeat::Allowed);
            }
        }
        assert_eq!(
            through, 10,
            "the looping recipient is remembered among a million others"
        );
        assert!(repeats.remembered() <= repeats.capacity());
        let entries: usize = repeats
            .shards
            .iter()
            .map(|shard| shard.lock().sets.len() * WAYS)
            .sum();
        assert_eq!(entries, 4_096, "grown to its capacity, no further");
    }
}
