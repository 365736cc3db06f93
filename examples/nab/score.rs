//! The Numenta Anomaly Benchmark's scoring rules (NAB v1.1, standard profile), written from the
//! rules' description. Checked against NAB's published per-file scores (see the tests).
//!
//! Everything works on *row indices* of one data file (row 0 = first data row
//! of the CSV). A detection is "the detector fired at row i". Windows are
//! inclusive row ranges. See NOTES.md for the rules in words.
//!
//! Typical use:
//! ```ignore
//! use score::{score_file, probation_rows, Profile, Window};
//! let n = 4032;
//! let windows = [Window { first: 683, last: 883 }, Window { first: 3582, last: 3782 }];
//! let s = score_file(n, &windows, probation_rows(n), &[700, 2000], &Profile::STANDARD);
//! assert_eq!((s.windows_detected, s.windows_missed), (1, 1));
//! ```

/// Weights of one NAB application profile (NAB `config/profiles.json`).
/// All four are stored as positive magnitudes, as NAB stores them: a true
/// positive earns up to `+tp_weight`, a false positive costs up to
/// `fp_weight`, a missed window costs `fn_weight`. `tn_weight` is listed by
/// NAB but never used by its scorer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub tp_weight: f64,
    pub fp_weight: f64,
    pub fn_weight: f64,
    pub tn_weight: f64,
}

impl Profile {
    /// NAB "standard": A_TP = 1.0, A_FP = -0.11, A_FN = -1.0 (A_TN = 1.0, unused).
    pub const STANDARD: Profile = Profile {
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 1.0,
        tn_weight: 1.0,
    };
}

/// An anomaly window: rows `first..=last` (both ends inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub first: usize,
    pub last: usize,
}

impl Window {
    pub fn len(&self) -> usize {
        self.last - self.first + 1
    }
    pub fn contains(&self, row: usize) -> bool {
        self.first <= row && row <= self.last
    }
}

/// Fraction of each file NAB does not score.
const PROBATION_PERCENT: f64 = 0.15;

/// Number of leading rows NAB does not score: `min(floor(0.15 * n), 0.15 * 5000)`,
/// i.e. `min(floor(0.15 n), 750)`. Computed in f64 exactly as NAB does.
pub fn probation_rows(n_rows: usize) -> usize {
    let by_len = (PROBATION_PERCENT * n_rows as f64).floor();
    let cap = PROBATION_PERCENT * 5000.0;
    // Rows i with (i as f64) < min(by_len, cap) are on probation.
    let limit = by_len.min(cap);
    limit.ceil() as usize
}

/// Map windows given as (start, end) row timestamps to row-index windows.
/// Like NAB, both ends must equal a row timestamp exactly; windows must be in
/// time order and must not overlap.
pub fn windows_from_timestamps<T: PartialEq + std::fmt::Debug>(
    row_timestamps: &[T],
    windows: &[(T, T)],
) -> Result<Vec<Window>, String> {
    let find = |t: &T| {
        row_timestamps
            .iter()
            .position(|r| r == t)
            .ok_or_else(|| format!("window edge {t:?} is not a row timestamp"))
    };
    let mut out: Vec<Window> = Vec::with_capacity(windows.len());
    for (a, b) in windows {
        let w = Window {
            first: find(a)?,
            last: find(b)?,
        };
        if w.last < w.first {
            return Err(format!("window {a:?}..{b:?} ends before it starts"));
        }
        if out.last().is_some_and(|prev| w.first <= prev.last) {
            return Err(format!(
                "window {a:?}..{b:?} overlaps or precedes the previous one"
            ));
        }
        out.push(w);
    }
    Ok(out)
}

/// Row whose interval holds time `t`, taking row i to cover
/// `[ts[i], ts[i+1])` (the last row: `[ts[n-1], +inf)`); None before the
/// first row. `row_timestamps` must be increasing (e.g. unix seconds).
/// Use it to turn the time of a detector trip into the row NAB scores.
pub fn row_at_time(row_timestamps: &[i64], t: i64) -> Option<usize> {
    row_timestamps.partition_point(|&r| r <= t).checked_sub(1)
}

/// NAB's scaled sigmoid: `2 / (1 + e^(5x)) - 1` for x <= 3, and -1 beyond.
/// x = -1 (left window edge) gives 0.98661, x = 0 (right edge) gives 0.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 * (1.0 / (1.0 + (5.0 * x).exp())) - 1.0
    }
}

/// The value a detection at each row would be worth on its own (NAB's
/// per-row `S(t)` column): inside a window, the TP credit; outside, the
/// (negative) FP cost. Probation is not applied here.
///
/// * row i in window [f, l] (width w = l-f+1):
///   `tp_weight * sigmoid(-(l - i + 1)/w) / sigmoid(-1)` (so the first row earns exactly `tp_weight`);
/// * row i after the last window [f', l'] that ended before it:
///   `fp_weight * sigmoid((i - l') / (w' - 1))` (note: w'-1, not w'), which is
///   about 0 right after the window and -fp_weight from 3 widths on;
/// * row i with no window ended before it: `-fp_weight`.
pub fn row_weights(n_rows: usize, windows: &[Window], profile: &Profile) -> Vec<f64> {
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(n_rows);
    let mut next = 0usize; // index of next window not yet passed
    let mut prev: Option<Window> = None;
    for i in 0..n_rows {
        while next < windows.len() && windows[next].last < i {
            prev = Some(windows[next]);
            next += 1;
        }
        let w = if next < windows.len() && windows[next].contains(i) {
            let win = windows[next];
            let pos = -((win.last - i + 1) as f64) / win.len() as f64;
            scaled_sigmoid(pos) * profile.tp_weight / max_tp
        } else {
            match prev {
                None => -profile.fp_weight,
                Some(p) => {
                    // Width-1 windows give 0 here; NAB would divide by zero. We use +inf -> -1.
                    let pos = (i - p.last) as f64 / (p.len() as f64 - 1.0);
                    scaled_sigmoid(pos) * profile.fp_weight
                }
            }
        };
        out.push(w);
    }
    out
}

/// What happened to one window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowOutcome {
    pub window: Window,
    /// False when every row of the window lies in probation: NAB then ignores
    /// the window entirely (no TP credit, no FN cost).
    pub scored: bool,
    /// First scored detection inside the window, if any.
    pub first_detection: Option<usize>,
    /// This window's term of the score: TP credit, or -fn_weight, or 0 if not scored.
    pub contribution: f64,
}

/// Score of one file under one profile. `score`, `tp`, `tn`, `fp`, `fn_`
/// and `total` are the columns of NAB's per-file `<detector>_<profile>_scores.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct FileScore {
    /// Raw NAB score (NAB's per-file "Score" column; not normalized).
    pub score: f64,
    /// NAB's counts are ROW counts over scored rows: detected rows inside
    /// windows (tp), undetected rows inside windows (fn_), detected rows
    /// outside windows (fp), undetected rows outside (tn).
    pub tp: usize,
    pub tn: usize,
    pub fp: usize,
    pub fn_: usize,
    /// Scored rows (n - probation), NAB's "Total_Count" in current NAB.
    pub total: usize,
    /// Sum of the FP terms (<= 0).
    pub fp_cost: f64,
    /// Window-level view.
    pub windows_scored: usize,
    pub windows_detected: usize,
    pub windows_missed: usize,
    pub per_window: Vec<WindowOutcome>,
}

/// Score one file.
///
/// * `n_rows`: rows in the data file;
/// * `windows`: anomaly windows, in order, non-overlapping, inclusive, `< n_rows`;
/// * `probation`: leading rows not scored (use [`probation_rows`] for NAB);
/// * `detections`: rows where the detector fired (any order; duplicates and
///   rows inside probation are ignored).
///
/// Panics if a window or detection lies beyond `n_rows`, or windows overlap.
pub fn score_file(
    n_rows: usize,
    windows: &[Window],
    probation: usize,
    detections: &[usize],
    profile: &Profile,
) -> FileScore {
    for (k, w) in windows.iter().enumerate() {
        assert!(
            w.first <= w.last && w.last < n_rows,
            "window {w:?} outside 0..{n_rows}"
        );
        if k > 0 {
            assert!(
                windows[k - 1].last < w.first,
                "windows overlap or are out of order"
            );
        }
    }
    let probation = probation.min(n_rows);
    let weights = row_weights(n_rows, windows, profile);

    let mut fired = vec![false; n_rows];
    for &d in detections {
        assert!(d < n_rows, "detection at row {d} beyond {n_rows} rows");
        if d >= probation {
            fired[d] = true;
        }
    }

    let mut in_window = vec![false; n_rows];
    for w in windows {
        in_window[w.first..=w.last].fill(true);
    }

    let (mut tp, mut tn, mut fp, mut fn_) = (0, 0, 0, 0);
    let mut fp_cost = 0.0;
    for r in probation..n_rows {
        match (in_window[r], fired[r]) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, true) => {
                fp += 1;
                fp_cost += weights[r];
            }
            (false, false) => tn += 1,
        }
    }

    let mut per_window = Vec::with_capacity(windows.len());
    for w in windows {
        let scored = w.last >= probation;
        let first = if scored {
            (w.first.max(probation)..=w.last).find(|&r| fired[r])
        } else {
            None
        };
        let contribution = match (scored, first) {
            (false, _) => 0.0,
            (true, Some(r)) => weights[r],
            (true, None) => -profile.fn_weight,
        };
        per_window.push(WindowOutcome {
            window: *w,
            scored,
            first_detection: first,
            contribution,
        });
    }
    let windows_scored = per_window.iter().filter(|o| o.scored).count();
    let windows_detected = per_window.iter().filter(|o| o.first_detection.is_some()).count();
    let score = fp_cost + per_window.iter().map(|o| o.contribution).sum::<f64>();

    FileScore {
        score,
        tp,
        tn,
        fp,
        fn_,
        total: n_rows - probation,
        fp_cost,
        windows_scored,
        windows_detected,
        windows_missed: windows_scored - windows_detected,
        per_window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Profile = Profile::STANDARD;

    #[test]
    fn probation_lengths() {
        assert_eq!(probation_rows(15831), 750);
        assert_eq!(probation_rows(10320), 750);
        assert_eq!(probation_rows(4032), 604);
        assert_eq!(probation_rows(1243), 186);
        assert_eq!(probation_rows(0), 0);
    }

    #[test]
    fn sigmoid_anchors() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < 1e-15);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(-0.5) - 0.848_283_639_957_512_9).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(3.0001), -1.0);
        assert!(scaled_sigmoid(3.0) > -1.0);
    }

    #[test]
    fn first_detection_counts_and_later_ones_are_ignored() {
        let w = [Window {
            first: 100,
            last: 199,
        }];
        let early = score_file(400, &w, 0, &[100], &P);
        assert!((early.score - 1.0).abs() < 1e-15); // left edge earns exactly A_TP
        let both = score_file(400, &w, 0, &[100, 150, 199], &P);
        assert_eq!(both.score, early.score);
        assert_eq!(both.tp, 3); // but NAB's TP *row* count sees all three
        let late = score_file(400, &w, 0, &[199], &P);
        assert!(late.score > 0.0 && late.score < 0.06);
        // the first detection is also the best one: weights fall monotonically in a window
        let rw = row_weights(400, &w, &P);
        assert!(rw[100..=199].windows(2).all(|p| p[0] > p[1]));
    }

    #[test]
    fn misses_and_false_positives() {
        let w = [Window {
            first: 100,
            last: 199,
        }];
        let none = score_file(400, &w, 0, &[], &P);
        assert_eq!(none.score, -1.0);
        assert_eq!((none.fn_, none.tn), (100, 300));
        // FP before any window: full -0.11
        let s = score_file(400, &w, 0, &[10], &P);
        assert!((s.score - (-1.0 - 0.11)).abs() < 1e-15);
        // FP right after the window: almost free; 3+ widths after: full cost
        let rw = row_weights(1000, &w, &P);
        assert!(rw[200] < 0.0 && rw[200] > -0.01);
        let pos = (200.0 - 199.0) / 99.0; // (i - last) / (width - 1)
        assert_eq!(rw[200], scaled_sigmoid(pos) * 0.11);
        assert_eq!(rw[199 + 3 * 99 + 1], -0.11);
    }

    #[test]
    fn fp_uses_nearest_preceding_window() {
        let w = [
            Window { first: 10, last: 19 },
            Window {
                first: 100,
                last: 199,
            },
        ];
        let rw = row_weights(400, &w, &P);
        // row 50: only window 0 precedes; row 210: window 1 is the nearest preceding
        assert_eq!(rw[50], scaled_sigmoid(31.0 / 9.0) * 0.11);
        assert_eq!(rw[210], scaled_sigmoid(11.0 / 99.0) * 0.11);
    }

    #[test]
    fn probation_is_ignored() {
        let w = [
            Window { first: 5, last: 14 },
            Window {
                first: 100,
                last: 199,
            },
        ];
        // window 0 entirely in probation (20 rows): neither credit nor cost
        let s = score_file(400, &w, 20, &[7, 3], &P);
        assert!(!s.per_window[0].scored);
        assert_eq!(s.score, -1.0);
        assert_eq!(s.total, 380);
        // window straddling probation: detections in probation rows are ignored,
        // the first scored one keeps its position relative to the whole window
        let w2 = [Window { first: 10, last: 29 }];
        let s2 = score_file(100, &w2, 20, &[12, 25], &P);
        let rw = row_weights(100, &w2, &P);
        assert_eq!(s2.score, rw[25]);
    }

    /// NAB's published standard-profile scores of ARTime on three series (NAB's
    /// results/ARTime/ARTime_standard_scores.csv), from the rows where ARTime fired (its
    /// anomaly score at or above its published threshold, 0.317486), at NAB commit ea702d75.
    #[test]
    fn artime_scores_as_nab_published_them() {
        // (rows, windows, rows where ARTime fired, published score)
        type Case = (usize, &'static [(usize, usize)], &'static [usize], f64);
        let cases: [Case; 3] = [
            (
                15831, // Twitter_volume_AMZN
                &[(1796, 2190), (3538, 3932), (9598, 9992), (11409, 11803)],
                &[
                    1070, 1392, 1994, 3737, 6369, 7160, 8028, 9757, 9799, 11073, 11598, 15497,
                ],
                2.7366282533101085,
            ),
            (
                15833, // Twitter_volume_FB
                &[(4614, 5404), (9926, 10716)],
                &[4948, 5011, 7734, 10324, 13229, 15630, 15819, 15826],
                1.2142436334445932,
            ),
            (
                4032, // elb_request_count_8c0756
                &[(683, 883), (3582, 3782)],
                &[789, 1974, 2344, 2969, 3684],
                1.3635913854419892,
            ),
        ];
        for (rows, windows, detections, published) in cases {
            let windows: Vec<Window> = windows
                .iter()
                .map(|&(first, last)| Window { first, last })
                .collect();
            let score = score_file(rows, &windows, probation_rows(rows), detections, &P).score;
            assert!((score - published).abs() < 1e-12, "{score} vs {published}");
        }
    }

    #[test]
    fn timestamps_to_windows() {
        let ts: Vec<i64> = (0..10).map(|i| 1000 + 300 * i).collect();
        let w = windows_from_timestamps(&ts, &[(1600, 2200)]).unwrap();
        assert_eq!(w, vec![Window { first: 2, last: 4 }]);
        assert!(windows_from_timestamps(&ts, &[(1601, 2200)]).is_err());
        assert_eq!(row_at_time(&ts, 999), None);
        assert_eq!(row_at_time(&ts, 1000), Some(0));
        assert_eq!(row_at_time(&ts, 1299), Some(0));
        assert_eq!(row_at_time(&ts, 1300), Some(1));
        assert_eq!(row_at_time(&ts, 99_999), Some(9));
    }
}
