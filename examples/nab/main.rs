//! Detection on real traffic: the Numenta Anomaly Benchmark's event-count series (tweets a
//! ticker gets, taxi passengers, load-balancer requests) replayed through the backtest engine
//! with the default configuration, and scored by NAB's own rules (standard profile) against its
//! labelled anomaly windows.
//!
//! Each row's `value` becomes that many sends of one kind, spread at random (fixed seed) over
//! the row's interval, in time order. A detection is a trip, a move from closed to open, scored at
//! the row whose interval it falls in. NAB credits the first detection in each labelled window
//! (the earlier the better), charges every detection outside the windows, and charges each window
//! without one; it does not score the first 15% of a series (its probation).
//!
//! Each series is replayed under eight placements of its sends within their rows (seeds), and
//! its figures averaged: whether one row's spike trips the minute window can hang on how its
//! sends fall across the minutes.
//!
//! Run with `cargo run --release --example nab [DATA_DIR]`; the data lives outside the
//! repository, in `../shared/data/nab` by default. Prints a Markdown table beside the scores NAB
//! publishes for ARTime, the best of its published detectors on these series.

mod score;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spikebreaker::Config;
use spikebreaker::backtest::Backtest;
use spikebreaker::status::State;
use support::Rng;

/// NAB's published standard-profile scores of ARTime (results/ARTime/ARTime_standard_scores.csv
/// at NAB commit ea702d75).
const ARTIME: [(&str, f64); 12] = [
    ("Twitter_volume_AAPL.csv", 2.92),
    ("Twitter_volume_AMZN.csv", 2.74),
    ("Twitter_volume_CRM.csv", 2.10),
    ("Twitter_volume_CVS.csv", 1.84),
    ("Twitter_volume_FB.csv", 1.21),
    ("Twitter_volume_GOOG.csv", 1.41),
    ("Twitter_volume_IBM.csv", 0.78),
    ("Twitter_volume_KO.csv", 2.23),
    ("Twitter_volume_PFE.csv", 2.59),
    ("Twitter_volume_UPS.csv", 3.21),
    ("elb_request_count_8c0756.csv", 1.36),
    ("nyc_taxi.csv", 3.78),
];

/// Seeds of the placements of each row's sends within its interval: whether a spike of one row
/// trips the minute window can hang on how its sends fall across the minutes, so every series is
/// replayed under each and its scores averaged.
const SEEDS: [u64; 8] = [2015, 1, 2, 3, 4, 5, 6, 7];

/// What `nab_windows.json` says of one series (fields this example reads).
#[derive(Debug, Deserialize)]
struct Labels {
    windows: Vec<(String, String)>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nab"));
    let index = dir.join("nab_windows.json");
    if !index.exists() {
        println!(
            "NAB data not found at {} (expected nab_windows.json and the series' CSV files); \
             pass the folder as the first argument.",
            dir.display()
        );
        return Ok(());
    }
    let labels: BTreeMap<String, serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(index)?)?;
    println!(
        "| series | rows | sends | windows caught | trips outside | blocked | NAB score (range) | ARTime |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (mut ours, mut theirs) = (0.0, 0.0);
    for (file, artime) in ARTIME {
        let path = dir.join(file);
        let Some(entry) = labels.get(file).filter(|_| path.exists()) else {
            println!("| {file} | not found |");
            continue;
        };
        let labels: Labels = serde_json::from_value(entry.clone())?;
        let rows = read_series(&path)?;
        let stamps: Vec<i64> = rows.iter().map(|&(t, _)| (t / 1000) as i64).collect();
        let windows = labels
            .windows
            .iter()
            .map(|(from, to)| {
                Ok((
                    (timestamp_ms(from)? / 1000) as i64,
                    (timestamp_ms(to)? / 1000) as i64,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let windows = score::windows_from_timestamps(&stamps, &windows)?;
        let probation = score::probation_rows(rows.len());
        // The same series under each placement of its sends within their rows.
        let mut runs = Vec::new();
        for seed in SEEDS {
            let (trips, blocked, sends) = replay(file, &rows, seed)?;
            let detections: Vec<usize> = trips
                .iter()
                .filter_map(|&t| score::row_at_time(&stamps, (t / 1000) as i64))
                .collect();
            let scored = score::score_file(
                rows.len(),
                &windows,
                probation,
                &detections,
                &score::Profile::STANDARD,
            );
            runs.push((scored, blocked, sends));
        }
        let n = runs.len() as f64;
        let mean = |f: &dyn Fn(&(score::FileScore, u64, u64)) -> f64| runs.iter().map(f).sum::<f64>() / n;
        let score = mean(&|(s, _, _)| s.score);
        let (low, high) = runs
            .iter()
            .map(|(s, _, _)| s.score)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
        let sends = runs[0].2;
        ours += score;
        theirs += artime;
        println!(
            "| {} | {} | {} | {:.1} of {} | {:.1} | {:.2}% | **{:.2}** ({:.2} to {:.2}) | {:.2} |",
            file.trim_end_matches(".csv"),
            rows.len(),
            sends,
            mean(&|(s, _, _)| s.windows_detected as f64),
            runs[0].0.windows_scored,
            mean(&|(s, _, _)| s.fp as f64),
            100.0 * mean(&|(_, blocked, _)| *blocked as f64) / sends.max(1) as f64,
            score,
            low,
            high,
            artime,
        );
    }
    println!("| total | | | | | | **{ours:.2}** | {theirs:.2} |");
    println!(
        "\n(mean of {} placements of each row's sends within the row, seeds {SEEDS:?})",
        SEEDS.len()
    );
    Ok(())
}

/// Replays a series as sends of one kind; returns the trips' times, the sends blocked and sent.
fn replay(kind: &str, rows: &[(u64, u64)], seed: u64) -> Result<(Vec<u64>, u64, u64), Box<dyn Error>> {
    let interval = rows.get(1).map_or(300_000, |r| r.0 - rows[0].0);
    let mut backtest = Backtest::new(Config::default())?;
    let mut rng = Rng::new(seed);
    let mut times = Vec::new();
    for &(start, value) in rows {
        times.clear();
        times.extend((0..value).map(|_| start + rng.below(interval)));
        times.sort_unstable();
        for &t in &times {
            let _ = backtest.check(t, kind);
        }
    }
    let report = backtest.report();
    let Some(kind) = report.kinds.get(kind) else {
        return Ok((Vec::new(), 0, 0));
    };
    let trips = kind
        .transitions
        .iter()
        .filter(|t| t.from == State::Closed && t.to == State::Open)
        .map(|t| t.at_ms)
        .collect();
    Ok((trips, kind.blocked, kind.attempted))
}

/// `timestamp,value` rows as (epoch milliseconds, count).
fn read_series(path: &Path) -> Result<Vec<(u64, u64)>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let bad = || {
            format!(
                "{}: line {}: expected `timestamp,value`",
                path.display(),
                number + 1
            )
        };
        let (timestamp, value) = line.split_once(',').ok_or_else(bad)?;
        let value: f64 = value.trim().parse().map_err(|_| bad())?;
        rows.push((timestamp_ms(timestamp)?, value.max(0.0).round() as u64));
    }
    Ok(rows)
}

/// `2015-02-26 21:42:53` (anything after the seconds ignored), read as UTC, in milliseconds
/// since 1970.
fn timestamp_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("bad timestamp `{text}`");
    let field = |from: usize, to: usize| -> Result<i64, String> {
        text.get(from..to).and_then(|s| s.parse().ok()).ok_or_else(bad)
    };
    let days = days_from_civil(field(0, 4)?, field(5, 7)?, field(8, 10)?);
    let secs = days * 86_400 + field(11, 13)? * 3_600 + field(14, 16)? * 60 + field(17, 19)?;
    u64::try_from(secs * 1000).map_err(|_| bad())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[test]
fn civil_dates_count_days_from_1970() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(timestamp_ms("2015-02-26 21:42:53"), Ok(1_424_986_973_000));
    assert_eq!(timestamp_ms("2015-03-03 04:37:53.000000"), Ok(1_425_357_473_000));
    assert!(timestamp_ms("yesterday").is_err());
}
