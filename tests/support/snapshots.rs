//! Snapshots as their JSON shows them: what a snapshot holds is private to the library, its JSON
//! is what a test reads and writes.
#![allow(dead_code)]

use serde_json::{Map, Value, json};
use spikebreaker::Snapshot;

/// The kinds a snapshot holds, by name.
pub fn kinds(snapshot: &Snapshot) -> Map<String, Value> {
    let json: Value = serde_json::from_str(&snapshot.to_json()).unwrap();
    json["kinds"].as_object().unwrap().clone()
}

/// A snapshot of `kind` having learned a whole week at `per_minute` every hour, its counts
/// spread as Poisson's, and `burst` as the mean and variance of its bursts' logarithm.
pub fn a_learned_week(kind: &str, per_minute: f64, burst: [f64; 2]) -> Snapshot {
    let learned = json!({
        "week": vec![Some(per_minute * 60.0); 168],
        "average_per_minute": per_minute,
        "recent_per_minute": per_minute,
        "longrun_per_hour": per_minute * 60.0,
        "spread_moments": [[0.0, 1.0], [0.0, 1.0]],
        "spread_hours": [168, 168],
        "burst": burst,
        "burst_hours": 168,
        "minutes": 7 * 24 * 60,
        "hours": 168,
    });
    let snapshot = json!({"version": Snapshot::VERSION, "kinds": {kind: learned}});
    Snapshot::from_json(&snapshot.to_string()).unwrap()
}
