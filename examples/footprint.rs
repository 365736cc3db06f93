//! What a kind costs in memory: registers N kinds (default 100,000; the first argument overrides)
//! with a learned week restored from a snapshot, and counts what the allocator holds for them,
//! the registry's own growth included.
//!
//! Run with `cargo run --release --example footprint [N]`. The last line is
//! `bytes_per_kind=<integer>`.

use std::alloc::System;
use std::fmt::Write;

use spikebreaker::{Breaker, Config, ManualClock, Snapshot};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn name(i: usize) -> String {
    format!("tenant{:05}.email.receipt", i)
}

/// A week of learned traffic for each kind, each at its own rate, written as a snapshot file
/// holds it (a snapshot's contents are read from its JSON only).
fn snapshot(kinds: usize) -> Result<Snapshot, spikebreaker::Error> {
    let mut json = format!(r#"{{"version":{},"kinds":{{"#, Snapshot::VERSION);
    for i in 0..kinds {
        let per_minute = 1.0 + (i % 500) as f64;
        let busiest = 3.0 * per_minute;
        // Every hour of the week learned, with a daily swing.
        let week: Vec<String> = (0..168)
            .map(|hour| (per_minute * 60.0 * (1.0 + (hour % 24) as f64 / 12.0)).to_string())
            .collect();
        if i > 0 {
            json.push(',');
        }
        write!(
            json,
            r#""{}":{{"week":[{}],"average_per_minute":{per_minute},"recent_per_minute":{per_minute},"lift":1.0,"longrun_per_hour":{},"spread_moments":[[{},{per_minute}],[0.05,1.0]],"spread_hours":[168,168],"burst":[0.1,0.04],"burst_hours":168,"busiest_minute":[{busiest},{busiest}],"minutes":{},"hours":{}}}"#,
            name(i),
            week.join(","),
            per_minute * 60.0,
            0.2 * per_minute,
            7 * 24 * 60,
            7 * 24,
        )
        .expect("writing to a string");
    }
    json.push_str("}}");
    Snapshot::from_json(&json)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kinds: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    if kinds == 0 {
        return Err("the number of kinds must be at least 1".into());
    }
    let snapshot = snapshot(kinds)?;
    let config = Config {
        max_kinds: kinds,
        ..Config::default()
    };
    let breaker = Breaker::with_clock(config, ManualClock::starting_at(1_000_000_000))?;

    let region = Region::new(ALLOCATOR);
    breaker.restore(&snapshot)?;
    let change = region.change();
    let held =
        change.bytes_allocated as i128 - change.bytes_deallocated as i128 + change.bytes_reallocated as i128;

    // What was registered is what was measured: every kind, each with its learned baseline.
    assert_eq!(breaker.status().overflowed, 0);
    for i in [0, kinds / 2, kinds - 1] {
        let status = breaker
            .kind_status(&name(i))
            .ok_or("a restored kind is missing")?;
        assert!(status.warmed_up && status.minute().expected > 0.0, "{status:?}");
    }

    println!("kinds={kinds}");
    println!("bytes_held={held}");
    println!(
        "allocations_held={}",
        change.allocations as i128 - change.deallocations as i128
    );
    println!("bytes_per_kind={}", held / kinds as i128);
    Ok(())
}
