//! Whatever `Snapshot::from_json` accepts, the breaker it is restored into writes a snapshot that
//! `from_json` accepts again, however it runs on from there: a snapshot at the validator's edge
//! must not make the breaker's next snapshot unreadable (a service would set its own file aside
//! at the next restart and start with nothing learned).

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use spikebreaker::{Breaker, Config, ManualClock, Snapshot};

/// The most sends a minute and an hour a snapshot may claim (a billion a second).
const PER_MINUTE: f64 = 1e9 * 60.0;
const PER_HOUR: f64 = PER_MINUTE * 60.0;

/// A figure from 0 to `max`, most often at its edges: 0, the least above it, `max`, and `max`
/// with the validator's slack of one part in a million.
fn figure(max: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(max),
        Just(max * (1.0 + 0.999e-6)),
        0.0..max,
        0.0..100.0,
    ]
}

/// A signed figure from `-max` to `max`, most often at its edges.
fn signed(max: f64) -> impl Strategy<Value = f64> {
    prop_oneof![Just(-max), Just(max), Just(0.0), -max..max, -10.0..10.0]
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        any::<u32>(),
        0u32..500
    ]
}

fn learned() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(prop::option::of(figure(PER_HOUR)), 168),
        (figure(PER_MINUTE), figure(PER_MINUTE), figure(PER_HOUR)),
        (
            signed(PER_HOUR * PER_HOUR),
            figure(PER_HOUR * PER_HOUR),
            signed(PER_HOUR * PER_HOUR),
            figure(PER_HOUR * PER_HOUR),
        ),
        (
            count(),
            count(),
            signed(100.0),
            figure(100.0),
            count(),
            count(),
            count(),
        ),
    )
        .prop_map(|(week, (average, recent, longrun), spread, counts)| {
            let (dev0, mu0, dev1, mu1) = spread;
            let (hours0, hours1, burst_mean, burst_var, burst_hours, minutes, hours) = counts;
            json!({
                "week": week,
                "average_per_minute": average,
                "recent_per_minute": recent,
                "longrun_per_hour": longrun,
                "spread_moments": [[dev0, mu0], [dev1, mu1]],
                "spread_hours": [hours0, hours1],
                "burst": [burst_mean, burst_var],
                "burst_hours": burst_hours,
                "minutes": minutes,
                "hours": hours,
            })
        })
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>(),
        1_600_000_000_000u64..1_800_000_000_000
    ]
}

fn stop() -> impl Strategy<Value = Value> {
    let held = (
        prop::sample::select(vec![
            ("open", "spike"),
            ("open", "ceiling"),
            ("open", "warmup"),
            ("open", "probe_failed"),
            ("open", "fleet"),
            ("open", "forced_open"),
            ("closed", "forced_closed"),
        ]),
        time(),
        prop::option::of(time()),
        any::<bool>(),
    )
        .prop_map(|((state, reason), since, until, judged)| {
            let tripped_on = json!({
                "timescale": "minute",
                "window_count": u64::MAX,
                "threshold": if judged { json!(u64::MAX - 1) } else { Value::Null },
                "expected": 1e300,
                "bound": "spread",
            });
            json!({"state": state, "reason": reason, "since_ms": since, "until_ms": until, "tripped_on": tripped_on})
        });
    let surge = (
        prop_oneof![Just(1u64), Just(1_000_000_000), 1u64..=1_000_000_000],
        time(),
    )
        .prop_map(|(sends, until)| json!({"sends": sends, "until_ms": until}));
    (
        prop::option::of(held),
        prop::option::of(any::<bool>()),
        prop::option::of(surge),
    )
        .prop_map(|(held, dry_run, surge)| {
            let mut stop = serde_json::Map::new();
            if let Some(held) = held {
                stop.insert("held".into(), held);
            }
            if let Some(dry_run) = dry_run {
                stop.insert("dry_run".into(), json!(dry_run));
            }
            if let Some(surge) = surge {
                stop.insert("surge".into(), surge);
            }
            Value::Object(stop)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Before: a kind restored with the mean of its bursts' logarithm at the edge (-100) learned
    /// a spread of its bursts of 1,439 from its first ordinary hours, past the 100 a snapshot
    /// may claim, and the breaker's next snapshot was refused.
    #[test]
    fn a_snapshot_at_the_edge_restores_into_a_breaker_whose_next_snapshot_reads_back(
        a in learned(),
        b in learned(),
        stops in prop::collection::vec(stop(), 3),
        start in time(),
        traffic in prop::collection::vec((0u64..3_000, 1u64..7_200_000), 1..6),
    ) {
        let snapshot = json!({
            "version": Snapshot::VERSION,
            "kinds": {"a": a, "b": b},
            "stops": {"a": stops[0], "c": stops[1], "_overflow": stops[2]},
        });
        let text = snapshot.to_string();
        let Ok(snapshot) = Snapshot::from_json(&text) else {
            // Not at the edge but past it: nothing to restore.
            return Ok(());
        };
        let clock = ManualClock::starting_at(start);
        let config = Config { max_kinds: 3, ..Config::default() };
        let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
        breaker.restore(&snapshot).unwrap();
        let again = breaker.snapshot().to_json();
        prop_assert!(Snapshot::from_json(&again).is_ok(), "restored: {}", again);
        // It runs on: bursts, quiet gaps, hours learned, a trip or a surge spent.
        for (sends, gap_ms) in traffic {
            for kind in ["a", "b", "c", "d"] {
                for _ in 0..sends {
                    let _ = breaker.check(kind);
                }
            }
            clock.advance(Duration::from_millis(gap_ms));
            breaker.refresh();
            let again = breaker.snapshot().to_json();
            let read = Snapshot::from_json(&again);
            prop_assert!(read.is_ok(), "{:?}: {}", read.err(), again);
        }
    }
}
