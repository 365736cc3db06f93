//! A kind's week: the sends it usually makes in each hour of the week, learned one hour at a time.
//!
//! Each of the 168 hours of the week keeps its own figure, so a weekly job at its usual time is
//! normal, and a quiet hour is judged as the quiet hour it is. Until an hour of the week has been
//! seen, the same hour's average over the other days that have it stands in for it (a new kind's
//! first week is judged by its days). What an hour expects is the most of it and its two neighbours, so a
//! pattern that moves by an hour (daylight saving, a job that starts late) is still normal.
//!
//! Learning is robust: a new figure moves an hour's by at most half the way to three times (or a
//! third of) what it was, so a one-off spike or a holiday shifts next week's figure by a bounded
//! step and a lasting change is followed within a few weeks.

use std::sync::LazyLock;

/// Hours in a week.
pub(crate) const HOURS: usize = 168;
const HOURS_PER_DAY: usize = 24;

/// What an hour expects at least, as a share of the busiest of it and its neighbours.
const NEIGHBOUR_SHARE: f64 = 0.75;
/// ... and as a share of the busier of the hours two away: a learned burst (a daily batch, a
/// weekly job) that moves by two hours is still expected, at a little over half its size.
const SECOND_NEIGHBOUR_SHARE: f64 = 0.6;
/// ... and as a share of the median of its hour of the day over the days of the week: one day's
/// hour that a holiday or a quiet week taught low is still expected at half of what the other
/// days make of that hour.
const MEDIAN_DAY_SHARE: f64 = 0.5;
/// Weight of a new week's figure.
const ALPHA: f64 = 0.5;
/// ... when it is lower: a holiday, or two, teaches a week less than a busy day does, so that the
/// ordinary day after them is not judged against the holiday.
const ALPHA_DOWN: f64 = 0.25;
/// A new figure counts as at most this many times (or at least this share of) the old one.
const STEP: f64 = 3.0;

/// Figures are kept as `1 + ln(1 + sends) / ln(1.08)` in 8 bits: an 8% step, up to 3 x 10^8
/// sends an hour. Learning rounds up or down by a fixed pseudo-random sequence, so that small
/// steps add up over the weeks as they would in full precision.
const LN_STEP: f64 = 0.076_961_041_136_128_33; // ln(1.08)

/// Sends per hour, for each hour of the week.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    /// 0: not seen yet.
    codes: [u8; HOURS],
}

impl Default for Profile {
    fn default() -> Self {
        Self { codes: [0; HOURS] }
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("seen", &self.codes.iter().filter(|&&c| c != 0).count())
            .finish()
    }
}

/// The code for `sends`, rounded up when the fraction of a step is above `dither` (0.5: to the
/// nearest).
fn encode(sends: f64, dither: f64) -> u8 {
    let steps = sends.max(0.0).ln_1p() / LN_STEP;
    let code = 1.0 + steps.floor() + f64::from(u8::from(steps.fract() > dither));
    code.min(f64::from(u8::MAX)) as u8
}

fn decode(code: u8) -> f64 {
    /// Every code's figure, computed once: cold work reads dozens of them at each roll-over.
    static FIGURES: LazyLock<[f64; 256]> =
        LazyLock::new(|| std::array::from_fn(|code| (code.saturating_sub(1) as f64 * LN_STEP).exp_m1()));
    FIGURES[usize::from(code)]
}

/// The rounding threshold for learning hour `how` after `learned` hours: evenly spread over
/// [0, 1) and fixed, so that a replay learns exactly what it learned before.
fn dither(how: usize, learned: u32) -> f64 {
    let mixed = (how as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(learned).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

/// The hour of the week at `t_ms` (ms since the Unix epoch, a Thursday), Monday 00:00 being 0.
pub(crate) fn hour_of_week(t_ms: u64) -> usize {
    let hours_since_monday = t_ms / 3_600_000 + 3 * HOURS_PER_DAY as u64;
    (hours_since_monday % HOURS as u64) as usize
}

impl Profile {
    /// What hour `how` of the week has learned, if it has been seen.
    pub(crate) fn get(&self, how: usize) -> Option<f64> {
        let code = self.codes[how % HOURS];
        (code != 0).then(|| decode(code))
    }

    /// Hour `how`'s figure, or if it has not been seen, what the same hour holds on average on the
    /// other days of the week that have it (a new kind's first week is judged by its days).
    pub(crate) fn filled(&self, how: usize) -> Option<f64> {
        self.get(how).or_else(|| {
            let (sum, n) = (1..7)
                .filter_map(|days| self.get(how + days * HOURS_PER_DAY))
                .fold((0.0, 0u32), |(sum, n), x| (sum + x, n + 1));
            (n > 0).then(|| sum / f64::from(n))
        })
    }

    /// Sends expected in hour `how` of the week: the most of it and its neighbours.
    pub(crate) fn expected(&self, how: usize) -> Option<f64> {
        [how + HOURS - 1, how, how + 1]
            .into_iter()
            .filter_map(|h| self.filled(h))
            .reduce(f64::max)
    }

    /// Sends an hour expected at `t_ms`, if the week knows the time (its hour or the hours beside
    /// it): interpolated between the centres of the hours around it, at least `NEIGHBOUR_SHARE`
    /// of the busiest of its hour and the two beside it, so that a pattern moved by an hour
    /// (daylight saving, a late job) is still normal, at least `SECOND_NEIGHBOUR_SHARE` of the
    /// busier of the hours two away, so that a batch moved by two is still expected, and at least
    /// `MEDIAN_DAY_SHARE` of the median of its hour of the day over the week, so that a day a
    /// holiday taught low does not make next week's ordinary day a spike.
    pub(crate) fn expected_at(&self, t_ms: u64) -> Option<f64> {
        let how = hour_of_week(t_ms);
        let into_hour = (t_ms % 3_600_000) as f64 / 3_600_000.0;
        let (a, b, w) = if into_hour < 0.5 {
            (how + HOURS - 1, how, into_hour + 0.5)
        } else {
            (how, how + 1, into_hour - 0.5)
        };
        let interpolated = match (self.filled(a), self.filled(b)) {
            (Some(x), Some(y)) => Some(x + w * (y - x)),
            (x, y) => x.or(y),
        };
        let nearby = self.expected(how).map(|v| v * NEIGHBOUR_SHARE);
        let known = match (interpolated, nearby) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        }?;
        let second = [how + HOURS - 2, how + 2]
            .into_iter()
            .filter_map(|h| self.filled(h))
            .fold(0.0, f64::max);
        let known = known.max(second * SECOND_NEIGHBOUR_SHARE);
        Some(match self.median_day(how) {
            Some(median) => known.max(median * MEDIAN_DAY_SHARE),
            None => known,
        })
    }

    /// The median over the days of the week of the hour of the day `how` falls at, once at
    /// least three days have it.
    fn median_day(&self, how: usize) -> Option<f64> {
        let hour_of_day = how % HOURS_PER_DAY;
        let mut days = [0.0; 7];
        let mut n = 0;
        for day in 0..7 {
            if let Some(sends) = self.get(hour_of_day + day * HOURS_PER_DAY) {
                days[n] = sends;
                n += 1;
            }
        }
        let days = &mut days[..n];
        days.sort_unstable_by(f64::total_cmp);
        (n >= 3).then(|| days[n / 2])
    }

    /// Learns that hour `how` held `sends`, at `weight` (1 for an ordinary hour), as the
    /// `learned`-th hour the kind learns.
    pub(crate) fn learn(&mut self, how: usize, sends: f64, weight: f64, learned: u32) {
        let how = how % HOURS;
        let value = match self.get(how) {
            None => sends,
            Some(old) => {
                let x = sends.clamp(old / STEP, old * STEP + STEP);
                let alpha = if x < old { ALPHA_DOWN } else { ALPHA };
                old + alpha * weight * (x - old)
            }
        };
        self.codes[how] = encode(value, dither(how, learned));
    }

    /// Every hour's figure, `None` where not seen (snapshots).
    pub(crate) fn hours(&self) -> [Option<f64>; HOURS] {
        std::array::from_fn(|how| self.get(how))
    }

    /// A profile with these figures (snapshots); each is kept to within 4% (half a step).
    pub(crate) fn from_hours(hours: &[Option<f64>; HOURS]) -> Self {
        Self {
            codes: hours.map(|sends| sends.map_or(0, |sends| encode(sends, 0.5))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_within_half_a_step() {
        for sends in [0.0, 0.5, 1.0, 12.0, 3_600.0, 1e6, 1e8] {
            let back = decode(encode(sends, 0.5));
            assert!((back - sends).abs() <= 0.04 * sends + 0.05, "{sends} -> {back}");
        }
        assert_eq!(
            decode(encode(1e12, 0.5)),
            decode(u8::MAX),
            "the largest saturates"
        );
    }

    #[test]
    fn rounding_by_the_sequence_adds_up_small_steps() {
        // An hour growing 1% a week for a year: rounding to the nearest 8% step would never move.
        let mut p = Profile::default();
        let mut sends = 1_000.0;
        p.learn(0, sends, 1.0, 0);
        for week in 1..=52 {
            sends *= 1.01;
            p.learn(0, sends, 1.0, week);
        }
        let learned = p.get(0).unwrap();
        assert!((learned / sends - 1.0).abs() < 0.12, "{learned} vs {sends}");
        assert!(learned > 1_300.0, "{learned}");
    }

    #[test]
    fn figures_read_back_encode_to_the_same_code() {
        for code in 1..=u8::MAX {
            assert_eq!(encode(decode(code), 0.5), code);
        }
    }

    #[test]
    fn the_epoch_is_a_thursday() {
        assert_eq!(hour_of_week(0), 72);
        assert_eq!(hour_of_week(4 * 86_400_000), 0); // Monday 1970-01-05
    }

    #[test]
    fn an_unseen_hour_borrows_the_day_before_and_neighbours_widen() {
        let mut p = Profile::default();
        p.learn(10, 100.0, 1.0, 0); // Monday 10:00
        let near = |x: Option<f64>, y: f64| x.is_some_and(|x| (x - y).abs() <= 0.04 * y);
        assert!(near(p.filled(10 + 24), 100.0)); // Tuesday 10:00
        p.learn(10 + 48, 200.0, 1.0, 1); // Wednesday 10:00
        assert!(near(p.filled(10 + 24), 150.0)); // the days' average stands in
        assert!(near(p.expected(11), 100.0)); // the hour after borrows from its neighbour
        assert_eq!(p.expected(13), None);
    }

    #[test]
    fn a_one_off_moves_an_hour_by_a_bounded_step() {
        let mut p = Profile::default();
        p.learn(5, 100.0, 1.0, 0);
        let first = p.get(5).unwrap();
        p.learn(5, 100_000.0, 1.0, 1); // a spike: counts as three times the figure
        let spiked = p.get(5).unwrap();
        assert!(
            (spiked / (2.0 * first + 1.5) - 1.0).abs() < 0.08,
            "{first} {spiked}"
        );
        p.learn(5, 0.0, 1.0, 2); // a holiday: counts as a third, learned at half the weight
        let after = p.get(5).unwrap();
        assert!(
            (after / (spiked * 5.0 / 6.0) - 1.0).abs() < 0.08,
            "{spiked} {after}"
        );
    }

    #[test]
    fn a_holiday_teaches_its_day_less_and_the_day_keeps_half_of_the_weeks_median() {
        let mut p = Profile::default();
        // Ten o'clock at 100 on every day of the week, then a holiday on Friday at 30.
        for day in 0..7 {
            p.learn(10 + day * 24, 100.0, 1.0, 0);
        }
        let friday = 10 + 4 * 24;
        p.learn(friday, 30.0, 1.0, 1);
        let after = p.get(friday).unwrap();
        assert!((after / 83.0 - 1.0).abs() < 0.08, "{after}"); // a quarter of the way to a third
        // A Friday that the week only knows from a holiday is still expected at half the median.
        let mut first = Profile::default();
        for day in [0, 1, 2, 3, 5, 6] {
            first.learn(10 + day * 24, 100.0, 1.0, 0);
        }
        first.learn(friday, 10.0, 1.0, 0);
        let friday_ms = (friday as u64 + 4 * 24) * 3_600_000 + 1_800_000; // from the epoch's Thursday
        assert_eq!(hour_of_week(friday_ms), friday);
        let expected = first.expected_at(friday_ms).unwrap();
        assert!((expected / 50.0 - 1.0).abs() < 0.08, "{expected}");
    }

    mod codec {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// Any figure up to the largest reads back within half a step, and a larger figure
            /// never reads back smaller.
            #[test]
            fn figures_read_back_within_half_a_step_and_in_order(
                a in 0.0f64..3e8,
                b in 0.0f64..3e8,
                dither in 0.0f64..1.0,
            ) {
                let back = decode(encode(a, 0.5));
                prop_assert!((back - a).abs() <= 0.04 * a + 0.05, "{} -> {}", a, back);
                // Dithered, a figure rounds to one of the two codes around it.
                let dithered = decode(encode(a, dither));
                prop_assert!((dithered - a).abs() <= 0.081 * a + 0.09, "{} -> {}", a, dithered);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                prop_assert!(encode(lo, 0.5) <= encode(hi, 0.5));
            }
        }
    }
}
