//! Property tests of the public surface: the sliding window seen through a kind against a naive
//! count of the sends in the window, and configuration round-trips through TOML and JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use spikebreaker::config::{
    KindConfig, KindOverride, Recovery, RepeatConfig, RepeatOverride, SliceConfig, SliceOverride,
    SurgeConfig, TimescaleConfig, TimescaleOverride,
};
use spikebreaker::{Breaker, Config, ManualClock, Snapshot};

const BUCKETS: u64 = 12;

/// The largest limit a configuration may set: far more sends than any case makes.
const MAX_COUNT: u64 = 1_000_000_000;

/// Settings under which nothing trips, so the window only counts.
fn counting_only(window_secs: u64) -> Config {
    let never = TimescaleConfig {
        floor: MAX_COUNT,
        ..TimescaleConfig::MINUTE
    };
    Config {
        defaults: KindConfig {
            window_secs,
            minute: never,
            hour: never,
            day: never,
            warmup_ceiling: MAX_COUNT,
            ..KindConfig::default()
        },
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// After every send, the kind's window count is the number of sends whose bucket is the
    /// current one or one of the `BUCKETS - 1` before it, for random in-order send times that
    /// fall on, next to and far from bucket edges.
    #[test]
    fn the_window_count_is_the_naive_count_of_recent_sends(
        window_secs in prop::sample::select(vec![12u64, 60, 61, 300, 3600]),
        start in 0u64..10_000_000,
        gaps in prop::collection::vec(prop_oneof![
            4 => Just(0u64),
            4 => 0u64..2_000,
            1 => 0u64..200_000,
            1 => 1_000_000u64..10_000_000,
        ], 1..300),
    ) {
        let clock = ManualClock::starting_at(start);
        let breaker = Breaker::with_clock(counting_only(window_secs), clock.clone()).unwrap();
        let kind = breaker.kind("k");
        let bucket_ms = window_secs * 1000 / BUCKETS;
        let mut sent = Vec::new();
        let mut now = start;
        for gap in gaps {
            clock.advance(Duration::from_millis(gap));
            now += gap;
            prop_assert!(kind.check().is_allowed());
            sent.push(now);
            let current = now / bucket_ms;
            let naive = sent
                .iter()
                .filter(|t| *t / bucket_ms + BUCKETS > current)
                .count() as u64;
            let status = kind.status();
            prop_assert_eq!(status.minute().window_count, naive, "at {} ms", now);
            prop_assert_eq!(status.attempted, sent.len() as u64);
        }
    }
}

fn timescale() -> impl Strategy<Value = TimescaleConfig> {
    (
        1.0f64..100.0,
        1.0f64..=50.0,
        0u64..1_000_000,
        prop::option::of(0u64..1_000_000),
    )
        .prop_map(|(factor, sigmas, floor, ceiling)| TimescaleConfig {
            factor,
            sigmas,
            floor,
            ceiling: ceiling.map(|c| floor.max(1) + c),
        })
}

/// Valid slice settings: some dimensions named or none, a safe list, each timescale's guards.
fn slice_config() -> impl Strategy<Value = SliceConfig> {
    (
        (
            any::<bool>(),
            prop::option::of(prop::collection::vec("[a-z][a-z0-9_.-]{0,12}", 0..4)),
        ),
        (
            1usize..=1024,
            0u64..=2_592_000,
            timescale(),
            timescale(),
            timescale(),
        ),
        prop::collection::btree_map(
            "[a-z]{1,8}",
            prop::collection::vec("[A-Za-z0-9+ ]{1,12}", 0..3),
            0..3,
        ),
    )
        .prop_map(
            |((enabled, dimensions), (track, warmup_secs, minute, hour, day), safe)| SliceConfig {
                enabled,
                max_dimensions: 8,
                dimensions: dimensions.map(|mut names| {
                    names.retain(|name| name != "content");
                    names.sort();
                    names.dedup();
                    names
                }),
                track,
                minute,
                hour,
                day,
                warmup_secs,
                safe,
            },
        )
}

fn repeat_config() -> impl Strategy<Value = RepeatConfig> {
    (any::<bool>(), 1u32..=65_535, 1u64..=2_592_000, 128usize..=1 << 20).prop_map(
        |(enabled, max, window_secs, capacity)| RepeatConfig {
            enabled,
            max,
            window_secs,
            capacity,
        },
    )
}

fn kind_config() -> impl Strategy<Value = KindConfig> {
    (
        (1u64..=3_600, timescale(), timescale(), timescale()),
        (0u64..10_000_000, 1u64..=2_592_000, 1.0f64..10.0),
        (any::<bool>(), 0u64..=2_592_000, 0u64..=2_592_000),
        (
            1u64..=2_592_000,
            any::<bool>(),
            1.0f64..10.0,
            prop::option::of(0.01f64..1e6),
        ),
        (slice_config(), repeat_config()),
    )
        .prop_map(|(a, b, c, d, (slices, repeats))| {
            let (window_secs, minute, hour, day) = a;
            let (warmup_extra, warmup_secs, max_growth_per_hour) = b;
            let (manual, cooldown_secs, probe_secs) = c;
            let (open_alert_secs, dry_run, max_growth_per_day, expected_per_minute) = d;
            KindConfig {
                window_secs,
                minute,
                hour,
                day,
                warmup_ceiling: minute.floor + warmup_extra,
                warmup_secs,
                max_growth_per_hour,
                max_growth_per_day,
                expected_per_minute,
                recovery: if manual { Recovery::Manual } else { Recovery::Auto },
                cooldown_secs,
                probe_secs,
                open_alert_secs,
                dry_run,
                slices,
                repeats,
            }
        })
}

/// An override of one timescale that sets a random subset of a valid one's fields.
fn timescale_override(t: TimescaleConfig, set: u16) -> TimescaleOverride {
    let on = |bit: u16| set & (1 << bit) != 0;
    let limits = on(0);
    TimescaleOverride {
        factor: on(1).then_some(t.factor),
        sigmas: on(2).then_some(t.sigmas),
        floor: limits.then_some(t.floor),
        ceiling: limits.then_some(t.ceiling.unwrap_or(MAX_COUNT)),
    }
}

/// An override that sets a random subset of a valid kind config's fields, taken whole so the
/// patched result stays valid.
fn kind_override() -> impl Strategy<Value = KindOverride> {
    (kind_config(), any::<u32>()).prop_map(|(c, set)| {
        let on = |bit: u32| set & (1 << bit) != 0;
        let limits = on(0);
        KindOverride {
            window_secs: on(1).then_some(c.window_secs),
            // The minute floor is kept with the warm-up ceiling it must stay under.
            minute: timescale_override(
                c.minute,
                if limits {
                    0b111 | 1
                } else {
                    0b110 & (set >> 2) as u16
                },
            ),
            hour: timescale_override(c.hour, (set >> 5) as u16),
            day: timescale_override(c.day, (set >> 9) as u16),
            warmup_ceiling: limits.then_some(c.warmup_ceiling),
            warmup_secs: on(13).then_some(c.warmup_secs),
            max_growth_per_hour: on(14).then_some(c.max_growth_per_hour),
            recovery: on(15).then_some(c.recovery),
            cooldown_secs: on(16).then_some(c.cooldown_secs),
            probe_secs: on(17).then_some(c.probe_secs),
            open_alert_secs: on(18).then_some(c.open_alert_secs),
            dry_run: on(19).then_some(c.dry_run),
            max_growth_per_day: on(20).then_some(c.max_growth_per_day),
            expected_per_minute: on(21).then_some(c.expected_per_minute).flatten(),
            slices: if on(22) {
                SliceOverride {
                    enabled: Some(c.slices.enabled),
                    dimensions: c.slices.dimensions.clone(),
                    track: Some(c.slices.track),
                    hour: timescale_override(c.slices.hour, (set >> 24) as u16),
                    safe: Some(c.slices.safe.clone()),
                    ..SliceOverride::default()
                }
            } else {
                SliceOverride::default()
            },
            repeats: if on(23) {
                RepeatOverride {
                    max: Some(c.repeats.max),
                    window_secs: Some(c.repeats.window_secs),
                    ..RepeatOverride::default()
                }
            } else {
                RepeatOverride::default()
            },
        }
    })
}

/// Surges of distinct kinds, a second to 30 days long, from 2020 on.
fn surges() -> impl Strategy<Value = Vec<SurgeConfig>> {
    prop::collection::btree_map(
        "[a-z][a-z0-9._-]{0,12}",
        (1u64..=MAX_COUNT, 0u32..300_000_000, 1u32..=2_592_000),
        0..4,
    )
    .prop_map(|surges| {
        let at = |secs: u64| {
            let time = std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800 + secs);
            humantime::format_rfc3339(time).to_string()
        };
        surges
            .into_iter()
            .map(|(kind, (sends, from, length))| SurgeConfig {
                kind,
                sends,
                from: at(u64::from(from)),
                until: at(u64::from(from) + u64::from(length)),
            })
            .collect()
    })
}

fn config() -> impl Strategy<Value = Config> {
    (
        kind_config(),
        prop::collection::btree_map("[a-z][a-z0-9._ \"-]{0,20}", kind_override(), 0..5),
        1usize..1_000_000,
        surges(),
    )
        .prop_map(
            |(defaults, kinds, max_kinds, surges): (KindConfig, BTreeMap<_, _>, _, _)| Config {
                defaults,
                kinds,
                max_kinds,
                evict_idle_secs: 7200,
                surges,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Any valid configuration written as TOML or JSON reads back the same.
    #[test]
    fn a_valid_config_round_trips_through_toml_and_json(config in config()) {
        prop_assert!(config.validate().is_ok(), "{:?}", config.validate());
        let toml_text = toml::to_string(&config).unwrap();
        prop_assert_eq!(&Config::from_toml(&toml_text).unwrap(), &config, "{}", toml_text);
        let json_text = serde_json::to_string(&config).unwrap();
        prop_assert_eq!(&Config::from_json(&json_text).unwrap(), &config, "{}", json_text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// A snapshot reads back exactly as written, so a restart restores what was learned.
    #[test]
    fn a_snapshot_round_trips_through_json(
        kinds in prop::collection::btree_map(
            "[a-z][a-z0-9._]{0,20}",
            (
                prop::collection::vec(prop::option::of(0.0f64..1e12), 168),
                // Rates up to a billion sends a second, the most a snapshot may claim.
                (0.0f64..6e10, 0.0f64..6e10, 0.0f64..3.6e12),
                (-1e6f64..1e6, 0.0f64..1e9, any::<u32>()),
                (-50.0f64..50.0, 0.0f64..100.0, any::<u32>(), any::<u32>(), any::<u32>()),
                (0.0f64..1e6, 0.0f64..6e10, prop::option::of(0.0f64..6e10)),
            ),
            0..4,
        )
    ) {
        // A snapshot's contents are private: it is written as JSON, as a file holds it.
        let written = json!({
            "version": Snapshot::VERSION,
            "kinds": kinds
                .into_iter()
                .map(|(k, (week, (average, recent, longrun), (dev, mu2, phi_hours), (burst, burst_var, burst_hours, minutes, hours), (lift, this_week, last_week)))| {
                    (k, json!({
                        "week": week,
                        "average_per_minute": average,
                        "recent_per_minute": recent,
                        "lift": lift,
                        "longrun_per_hour": longrun,
                        "spread_moments": [[dev, mu2], [dev / 2.0, mu2 / 2.0]],
                        "spread_hours": [phi_hours, phi_hours],
                        "burst": [burst, burst_var],
                        "burst_hours": burst_hours,
                        "busiest_minute": [this_week, last_week.unwrap_or(-1.0)],
                        "minutes": minutes,
                        "hours": hours,
                    }))
                })
                .collect::<serde_json::Map<String, Value>>(),
            // Nothing stopped (tests/config/roundtrip.rs writes stops at their edges).
            "stops": {},
        });
        let snapshot = Snapshot::from_json(&written.to_string()).unwrap();
        let read_back: Value = serde_json::from_str(&snapshot.to_json()).unwrap();
        prop_assert_eq!(&read_back, &written);
        prop_assert_eq!(Snapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
    }
}
