//! Detection on real traffic: the Numenta Anomaly Benchmark's event-count series (tweets a
//! ticker gets, taxi passengers, load-balancer requests) replayed through the backtest engine,
//! with NAB's labelled anomaly windows as the answer key.
//!
//! Each row's `value` becomes that many sends of one kind, spread at random (fixed seed) over
//! the row's interval, in time order. A trip is a move from closed to open; it *catches* a
//! labelled window when it falls inside it, and it is *outside* when it falls in no window after
//! NAB's probation period (the start of a series, which NAB does not score).
//!
//! Run with `cargo run --release --example nab [DATA_DIR]`; the data lives outside the
//! repository, in `../shared/data/nab` by default. Prints a Markdown table.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spikebreaker::backtest::Backtest;
use spikebreaker::{Config, KindConfig, State};
use support::Rng;

/// What `nab_windows.json` says of one series (fields this example reads).
#[derive(Debug, Deserialize)]
struct Labels {
    probation_end: String,
    windows: Vec<(String, String)>,
}

/// One configuration's result on one series.
#[derive(Debug, Default)]
struct Outcome {
    caught: usize,
    inside: usize,
    outside: usize,
    probation: usize,
    blocked_share: f64,
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
    let five_minutes = Config {
        defaults: KindConfig {
            window_secs: 300,
            ..KindConfig::default()
        },
        ..Config::default()
    };
    let configs = [("defaults", Config::default()), ("window 300 s", five_minutes)];

    println!(
        "| series | interval | sends | windows | {} |",
        configs
            .iter()
            .map(|(name, _)| format!("{name}: caught / trips in / out / probation / blocked"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|---|---|{}", "---|".repeat(configs.len()));
    for (file, entry) in labels.iter().filter(|(file, _)| file.ends_with(".csv")) {
        let path = dir.join(file);
        if !path.exists() {
            // The index also labels series that are not event counts; only counts are shipped.
            continue;
        }
        let labels: Labels = serde_json::from_value(entry.clone())?;
        let rows = read_series(&path)?;
        let Some(interval) = rows.get(1).map(|r| r.0 - rows[0].0) else {
            continue;
        };
        let windows = labels
            .windows
            .iter()
            .map(|(from, to)| Ok((timestamp_ms(from)?, timestamp_ms(to)? + interval)))
            .collect::<Result<Vec<_>, String>>()?;
        let probation_end = timestamp_ms(&labels.probation_end)?;
        let sends: u64 = rows.iter().map(|r| r.1).sum();
        let outcomes = configs
            .iter()
            .map(|(_, config)| replay(file, &rows, interval, config.clone(), &windows, probation_end))
            .collect::<Result<Vec<_>, _>>()?;
        println!(
            "| {} | {} min | {} | {} | {} |",
            file.trim_end_matches(".csv"),
            interval / 60_000,
            sends,
            windows.len(),
            outcomes
                .iter()
                .map(|o| format!(
                    "{} / {} / {} / {} / {:.2}%",
                    o.caught,
                    o.inside,
                    o.outside,
                    o.probation,
                    o.blocked_share * 100.0
                ))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(())
}

fn replay(
    kind: &str,
    rows: &[(u64, u64)],
    interval: u64,
    config: Config,
    windows: &[(u64, u64)],
    probation_end: u64,
) -> Result<Outcome, Box<dyn Error>> {
    let mut backtest = Backtest::new(config)?;
    let mut rng = Rng::new(2015);
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
        return Ok(Outcome::default());
    };
    let trips: Vec<u64> = kind
        .transitions
        .iter()
        .filter(|t| t.from == State::Closed && t.to == State::Open)
        .map(|t| t.at_ms)
        .collect();
    let inside = |t: u64| windows.iter().any(|&(from, to)| (from..=to).contains(&t));
    Ok(Outcome {
        caught: windows
            .iter()
            .filter(|&&(from, to)| trips.iter().any(|t| (from..=to).contains(t)))
            .count(),
        inside: trips.iter().filter(|&&t| inside(t)).count(),
        outside: trips
            .iter()
            .filter(|&&t| !inside(t) && t >= probation_end)
            .count(),
        probation: trips.iter().filter(|&&t| !inside(t) && t < probation_end).count(),
        blocked_share: kind.blocked as f64 / kind.attempted.max(1) as f64,
    })
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
