//! The incident spikebreaker exists for, replayed on a manual clock: a week of ordinary traffic
//! on several notification kinds, then, at a quiet hour, a buggy job that sends 125,000
//! identical "your two-step verification settings changed" notices in a few minutes.
//!
//! Run with `cargo run --release --example incident`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use spikebreaker::status::{Event, KindStatus};
use spikebreaker::{Breaker, Config, Decision, ManualClock};
use support::{DAY_MS, HOUR_MS, INCIDENT_RUNAWAY, MONDAY_MS, Traffic, burst, incident_profiles, merge};

const RUNAWAY: &str = INCIDENT_RUNAWAY;
const RUNAWAY_SENDS: u64 = 125_000;
const RUNAWAY_PER_SECOND: f64 = 400.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let profiles = incident_profiles();
    let names: Vec<&str> = profiles.iter().map(|p| p.kind).collect();

    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
    let handles: Vec<_> = names.iter().map(|name| breaker.kind(name)).collect();
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let sink = Arc::clone(&events);
    breaker
        .subscribe(move |event| sink.lock().unwrap().push(event.clone()))
        .detach();

    // A week of ordinary traffic, Monday to Sunday.
    let week = 7 * DAY_MS;
    let (mut sent, mut blocked) = (0u64, 0u64);
    for (t, kind) in Traffic::new(profiles.clone(), 7, MONDAY_MS, MONDAY_MS + week) {
        clock.set(t);
        match handles[kind].check() {
            Decision::Allowed => sent += 1,
            Decision::Blocked(_) => blocked += 1,
        }
    }
    println!("spikebreaker incident replay (default config, manual clock)");
    println!();
    println!("A week of ordinary traffic on {} kinds:", names.len());
    println!(
        "  {sent} sends allowed, {blocked} blocked, {} transitions",
        events.lock().unwrap().len()
    );
    print_status(&breaker.status().kinds, "  ");

    // Monday 03:00, a quiet hour: the buggy job starts, while ordinary traffic goes on.
    let start = MONDAY_MS + week + 3 * HOUR_MS;
    let end = start + HOUR_MS;
    let runaway_index = names.iter().position(|n| *n == RUNAWAY).unwrap();
    let ordinary = Traffic::new(profiles, 8, start, end);
    let runaway = burst(start, RUNAWAY_SENDS, RUNAWAY_PER_SECOND).map(|t| (t, usize::MAX));
    let mut let_through = 0u64;
    let mut handed_back = Vec::new();
    let (mut others_sent, mut others_blocked) = (0u64, 0u64);
    let mut refreshed = start;
    for (t, kind) in merge(ordinary, runaway) {
        clock.set(t);
        // A service refreshes every few seconds (for its metrics), which also brings quiet kinds'
        // recoveries on time.
        if t >= refreshed + 5_000 {
            breaker.refresh();
            refreshed = t;
        }
        let from_job = kind == usize::MAX;
        let index = if from_job { runaway_index } else { kind };
        let decision = handles[index].check();
        match (from_job, decision) {
            (true, Decision::Allowed) => let_through += 1,
            (true, Decision::Blocked(reason)) => handed_back.push((t, reason)),
            // Genuine notices of the tripped kind are held back too, and handed back likewise.
            (false, _) if index == runaway_index => {}
            (false, Decision::Allowed) => others_sent += 1,
            (false, Decision::Blocked(_)) => others_blocked += 1,
        }
    }
    let burst_secs = RUNAWAY_SENDS as f64 / RUNAWAY_PER_SECOND;
    println!();
    println!(
        "Monday 03:00: a buggy job sends {RUNAWAY_SENDS} `{RUNAWAY}` notices at {RUNAWAY_PER_SECOND}/s ({:.0} s).",
        burst_secs
    );
    let trip = events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.is_trip() && &*e.kind == RUNAWAY)
        .cloned();
    if let Some(trip) = &trip {
        println!(
            "  tripped {:.2} s in: {}",
            (trip.at_ms - start) as f64 / 1000.0,
            trip.window,
        );
    }
    println!("  let through before the trip: {let_through} of {RUNAWAY_SENDS}");
    println!("  blocked and handed back to the caller: {}", handed_back.len());
    println!("  other kinds meanwhile: {others_sent} sent, {others_blocked} blocked");
    println!();
    println!("What the operator saw (events):");
    for event in events.lock().unwrap().iter() {
        println!(
            "  {:>8.1} s  {event}",
            (event.at_ms as f64 - start as f64) / 1000.0
        );
    }
    println!();
    println!("Status an hour after the job started:");
    print_status(&breaker.status().kinds, "  ");
    println!();
    println!(
        "(simulated 7 days and 1 hour in {:.2} s)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(others_blocked, 0, "other kinds must keep flowing");
    Ok(())
}

fn print_status(status: &[KindStatus], indent: &str) {
    println!(
        "{indent}{:<24} {:>9} {:>22} {:>22} {:>10} {:>9}",
        "kind", "state", "minute: count/limit", "hour: count/limit", "attempted", "blocked"
    );
    let figures = |w: &spikebreaker::status::Window| {
        let limit = if w.threshold == u64::MAX {
            "-".to_owned()
        } else {
            w.threshold.to_string()
        };
        format!("{}/{} ({:.0})", w.window_count, limit, w.expected)
    };
    for kind in status {
        println!(
            "{indent}{:<24} {:>9} {:>22} {:>22} {:>10} {:>9}",
            kind.kind,
            kind.state.as_str(),
            figures(kind.minute()),
            figures(kind.hour()),
            kind.attempted,
            kind.blocked
        );
    }
}
