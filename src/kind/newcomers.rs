//! A burst of never-seen names is itself a signal: the breaker's memory of how many new kinds
//! arrived lately, and how many of them tripped their warm-up ceilings, per **stem** of name.
//!
//! A bug that puts an id into the kind name sends as one new kind after another: each arrives
//! with nothing learned, and each may send up to its warm-up ceiling before it trips, so a bug
//! that moves on to the next name when one is blocked multiplies the ceiling by the names it
//! tries. Such names differ only in their ids, so they share a stem: the name with every run of
//! letters and digits that holds a digit read as one `#` (`security.notice.12345` and
//! `security.notice.9f3c2` are both `security.notice.#`). Each stem keeps a pressure that
//! decays by half every hour: an arrival adds one, a warm-up trip adds four. A new kind's warm-up
//! ceilings are halved for each unit of its stem's pressure above [`FREE`], so the first few
//! newcomers of a stem in an hour are judged as any new kind, and the hundredth may send
//! nothing before it trips.
//!
//! The overflow kind, where new names land once the registry is full, does not recover while any
//! stem is under such pressure. Nothing counts in the breaker's first hour, when every kind arrives at once (a start, or a
//! restart without the snapshot), nor in the kinds a snapshot restores. Memory is a fixed table
//! of stems: a stem that finds its place taken by a busier one goes uncounted.

use parking_lot::Mutex;

/// Stems remembered.
const STEMS: usize = 256;
/// Pressure a stem may hold before its newcomers' ceilings are halved.
const FREE: f64 = 8.0;
/// What a new kind adds to its stem's pressure.
const ARRIVAL: f64 = 1.0;
/// What a warm-up trip adds.
const TRIP: f64 = 4.0;
/// The pressure halves in this long.
const HALF_LIFE_MS: f64 = 3_600_000.0;
/// The breaker's first hour: everything is new.
const SETTLING_MS: u64 = 3_600_000;

/// The breaker's newcomers, by stem.
#[derive(Debug)]
pub(crate) struct Newcomers {
    inner: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    /// When the first kind arrived (`None`: none yet).
    first_ms: Option<u64>,
    stems: Vec<Stem>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Stem {
    /// The stem's hash (0: an empty place).
    hash: u64,
    pressure: f64,
    /// When the pressure was last brought up to date.
    at_ms: u64,
}

impl Stem {
    fn pressure_at(&self, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        self.pressure * 0.5f64.powf(elapsed / HALF_LIFE_MS)
    }
}

impl Default for Newcomers {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Table {
                first_ms: None,
                stems: vec![Stem::default(); STEMS],
            }),
        }
    }
}

impl Newcomers {
    /// A kind called `name` arrives with nothing learned at `now_ms`: counts it, and returns by
    /// how many halvings its warm-up ceilings are lowered.
    pub(crate) fn arrive(&self, name: &str, now_ms: u64) -> u8 {
        let mut table = self.inner.lock();
        let first = *table.first_ms.get_or_insert(now_ms);
        if now_ms < first.saturating_add(SETTLING_MS) {
            return 0;
        }
        let Some(stem) = table.stem(name, now_ms) else {
            return 0;
        };
        let halvings = (stem.pressure - FREE).clamp(0.0, 63.0) as u8;
        stem.pressure += ARRIVAL;
        halvings
    }

    /// A kind called `name` tripped its warm-up ceiling at `now_ms`.
    pub(crate) fn tripped(&self, name: &str, now_ms: u64) {
        let mut table = self.inner.lock();
        let settled = table
            .first_ms
            .is_some_and(|first| now_ms >= first.saturating_add(SETTLING_MS));
        if let Some(stem) = table.stem(name, now_ms).filter(|_| settled) {
            stem.pressure += TRIP;
        }
    }
}

impl Newcomers {
    /// Whether some stem's newcomers are being held to lowered ceilings at `now_ms`: a bug is
    /// making up names. The overflow kind, where such names land once the registry is full,
    /// stays open meanwhile.
    pub(crate) fn pressed(&self, now_ms: u64) -> bool {
        let table = self.inner.lock();
        table
            .stems
            .iter()
            .any(|stem| stem.hash != 0 && stem.pressure_at(now_ms) > FREE + 1.0)
    }
}

impl Table {
    /// The place of `name`'s stem, its pressure brought up to `now_ms`: its own, or an empty one,
    /// or one whose pressure has fallen under a newcomer's.
    fn stem(&mut self, name: &str, now_ms: u64) -> Option<&mut Stem> {
        let hash = stem_hash(name);
        let stem = &mut self.stems[(hash % STEMS as u64) as usize];
        let pressure = stem.pressure_at(now_ms);
        if stem.hash != hash {
            if pressure >= ARRIVAL {
                return None;
            }
            *stem = Stem {
                hash,
                ..Stem::default()
            };
        }
        stem.pressure = stem.pressure_at(now_ms);
        stem.at_ms = now_ms;
        Some(stem)
    }
}

/// A hash of `name` with every run of letters and digits that holds a digit read as `#`; never
/// 0.
fn stem_hash(name: &str) -> u64 {
    // FNV-1a: stable, and enough for a table of a few hundred places.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |byte: u8| {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphanumeric() {
            let end = bytes[i..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .map_or(bytes.len(), |n| i + n);
            let run = &bytes[i..end];
            if run.iter().any(u8::is_ascii_digit) {
                add(b'#');
            } else {
                run.iter().for_each(|&b| add(b));
            }
            i = end;
        } else {
            add(bytes[i]);
            i += 1;
        }
    }
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_only_in_their_ids_share_a_stem() {
        assert_eq!(
            stem_hash("security.notice.12345"),
            stem_hash("security.notice.9f3c2")
        );
        assert_eq!(stem_hash("user.17.welcome"), stem_hash("user.4711.welcome"));
        assert_ne!(stem_hash("security.notice.1"), stem_hash("security.alert.1"));
        assert_ne!(stem_hash("email.welcome"), stem_hash("sms.welcome"));
    }

    #[test]
    fn newcomers_of_one_stem_are_free_until_their_pressure_builds_and_then_halved() {
        let newcomers = Newcomers::default();
        let start = 1_000;
        // The breaker's first hour counts nothing.
        assert_eq!(newcomers.arrive("a.0", start), 0);
        newcomers.tripped("a.0", start);
        let later = start + SETTLING_MS;
        let mut halvings = Vec::new();
        for i in 1..=12 {
            let name = format!("a.{i}");
            halvings.push(newcomers.arrive(&name, later + i));
            newcomers.tripped(&name, later + i);
        }
        assert_eq!(halvings[..2], [0, 0], "{halvings:?}");
        assert!(
            halvings[2] > 0 && halvings.windows(2).all(|w| w[1] >= w[0]),
            "{halvings:?}"
        );
        assert!(halvings[11] >= 40, "{halvings:?}");
        // Another stem is untouched, and the pressure fades within hours.
        assert_eq!(newcomers.arrive("b.1", later + 20), 0);
        assert!(newcomers.pressed(later + 20));
        assert_eq!(newcomers.arrive("a.99", later + 10 * 3_600_000), 0);
        assert!(!newcomers.pressed(later + 10 * 3_600_000));
    }
}
