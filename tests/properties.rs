//! Property tests of the public surface: the sliding window seen through a kind against a naive
//! count of the sends in the window, and configuration round-trips through TOML and JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use spikebreaker::{
    Breaker, Config, KindConfig, KindOverride, LearnedBaseline, ManualClock, Recovery, Snapshot,
};

const BUCKETS: u64 = 12;

/// Settings under which nothing trips, so the window only counts.
fn counting_only(window_secs: u64) -> Config {
    Config {
        defaults: KindConfig {
            window_secs,
            floor: u64::MAX,
            warmup_ceiling: u64::MAX,
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
            prop_assert_eq!(status.window_count, naive, "at {} ms", now);
            prop_assert_eq!(status.attempted, sent.len() as u64);
        }
    }
}

fn kind_config() -> impl Strategy<Value = KindConfig> {
    (
        (1u64..=86_400, 1.0f64..100.0, 0.0f64..50.0, 0u64..1_000_000),
        (
            prop::option::of(0u64..1_000_000),
            0u64..10_000_000,
            0u64..=2_592_000,
        ),
        (1.0f64..10.0, 0.001f64..10_000.0, any::<bool>()),
        (0u64..=2_592_000, 0u64..=2_592_000, any::<bool>()),
    )
        .prop_map(|(a, b, c, d)| {
            let (window_secs, factor, margin_sigmas, floor) = a;
            let (ceiling, warmup_extra, warmup_secs) = b;
            let (max_growth_per_hour, peak_half_life_hours, manual) = c;
            let (cooldown_secs, probe_secs, dry_run) = d;
            KindConfig {
                window_secs,
                factor,
                margin_sigmas,
                floor,
                ceiling: ceiling.map(|c| floor.max(1) + c),
                warmup_ceiling: floor + warmup_extra,
                warmup_secs,
                max_growth_per_hour,
                peak_half_life_hours,
                recovery: if manual { Recovery::Manual } else { Recovery::Auto },
                cooldown_secs,
                probe_secs,
                dry_run,
            }
        })
}

/// An override that sets a random subset of a valid kind config's fields, taken whole so the
/// patched result stays valid.
fn kind_override() -> impl Strategy<Value = KindOverride> {
    (kind_config(), any::<u16>()).prop_map(|(c, set)| {
        let on = |bit: u16| set & (1 << bit) != 0;
        let limits = on(0);
        KindOverride {
            window_secs: on(1).then_some(c.window_secs.min(3600)),
            factor: on(2).then_some(c.factor),
            margin_sigmas: on(3).then_some(c.margin_sigmas),
            floor: limits.then_some(c.floor),
            ceiling: limits.then_some(c.ceiling.unwrap_or(u64::MAX)),
            warmup_ceiling: limits.then_some(c.warmup_ceiling),
            warmup_secs: on(4).then_some(c.warmup_secs),
            max_growth_per_hour: on(5).then_some(c.max_growth_per_hour),
            peak_half_life_hours: on(6).then_some(c.peak_half_life_hours),
            recovery: on(7).then_some(c.recovery),
            cooldown_secs: on(8).then_some(c.cooldown_secs),
            probe_secs: on(9).then_some(c.probe_secs),
            dry_run: on(10).then_some(c.dry_run),
        }
    })
}

fn config() -> impl Strategy<Value = Config> {
    (
        kind_config(),
        prop::collection::btree_map("[a-z][a-z0-9._ \"-]{0,20}", kind_override(), 0..5),
        1usize..1_000_000,
    )
        .prop_map(
            |(mut defaults, kinds, max_kinds): (KindConfig, BTreeMap<_, _>, _)| {
                defaults.window_secs = defaults.window_secs.min(3600);
                Config {
                    defaults,
                    kinds,
                    max_kinds,
                    evict_idle_secs: 7200,
                }
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
            // Figures up to a billion sends a second, the most a snapshot may claim.
            (1u64..=86_400, 0.0f64..1e9, 0.0f64..1e18, 0.0f64..1e9, any::<u64>()),
            0..5,
        )
    ) {
        let snapshot = Snapshot {
            version: Snapshot::VERSION,
            kinds: kinds
                .into_iter()
                .map(|(k, (window_secs, mean, variance, peak, windows))| {
                    let secs = window_secs as f64;
                    let (mean, variance, peak) = (mean * secs, variance * secs * secs, peak * secs);
                    (k, LearnedBaseline { window_secs, mean, variance, peak, windows })
                })
                .collect(),
        };
        prop_assert_eq!(Snapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
    }
}
