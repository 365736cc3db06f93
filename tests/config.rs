//! Configuration through the public API: per-kind overrides, errors that name the field and the
//! value, hot reload that keeps what was counted and learned, and snapshots across a restart.

use std::time::Duration;

use spikebreaker::{Breaker, Config, Error, ManualClock, Snapshot, State};

const TOML: &str = r#"
max_kinds = 1000

[defaults]
factor = 4.0
floor = 50

[kinds."security.2fa_changed"]
floor = 20
warmup_ceiling = 20
recovery = "manual"
"#;

#[test]
fn overrides_apply_to_their_kind_and_defaults_to_the_rest() {
    let config = Config::from_toml(TOML).unwrap();
    assert_eq!(
        config,
        Config::from_json(&serde_json::to_string(&config).unwrap()).unwrap()
    );
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    let twofa = breaker.kind("security.2fa_changed");
    let other = breaker.kind("email.welcome");
    for _ in 0..30 {
        clock.advance(Duration::from_millis(10));
        let _ = twofa.check();
        let _ = other.check();
    }
    assert_eq!((twofa.state(), other.state()), (State::Open, State::Closed));
    assert_eq!(twofa.status().allowed, 20);
}

#[test]
fn errors_name_the_field_and_the_value() {
    let cases = [
        (Config::from_toml("[defaults]\nfloor = -3\n"), "floor"),
        (
            Config::from_toml("[defaults]\nfactor = 0.5\n"),
            "defaults.factor` = 0.5",
        ),
        (
            Config::from_toml("[kinds.a]\nwarmup_ceiling = 5\n"),
            "kinds.\"a\".warmup_ceiling` = 5",
        ),
        (
            Config::from_toml("[kinds.a]\nrecovery = \"sometimes\"\n"),
            "sometimes",
        ),
        (
            Config::from_json(r#"{"defaults": {"window_secs": 0}}"#),
            "defaults.window_secs` = 0",
        ),
        (
            Config::from_json(r#"{"defaults": {"peak_half_life_hours": -1}}"#),
            "peak_half_life_hours` = -1",
        ),
        (Config::from_json(r#"{"default": {}}"#), "default"),
        (Config::from_json("{"), "EOF"),
    ];
    for (result, needle) in cases {
        let error = result.unwrap_err();
        assert!(error.is_config(), "{error}");
        assert!(error.to_string().contains(needle), "{needle:?} not in: {error}");
    }
    let invalid = Config {
        max_kinds: 0,
        ..Config::default()
    };
    assert!(matches!(Breaker::new(invalid), Err(Error::Invalid { ref field, .. }) if field == "max_kinds"));
}

#[test]
fn reload_keeps_counts_and_baselines_and_a_rejected_one_changes_nothing() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let kind = breaker.kind("email.receipt");
    for _ in 0..90 {
        for _ in 0..40 {
            let _ = kind.check();
        }
        clock.advance(Duration::from_secs(60));
    }
    for _ in 0..40 {
        let _ = kind.check();
    }
    let before = kind.status();
    assert!(before.warmed_up);

    let mut stricter = Config::default();
    stricter.defaults.factor = 5.0;
    breaker.reload(stricter.clone()).unwrap();
    let after = kind.status();
    assert_eq!(
        (after.window_count, after.attempted, after.baseline),
        (before.window_count, before.attempted, before.baseline)
    );
    assert!(
        after.threshold > before.threshold,
        "{} -> {}",
        before.threshold,
        after.threshold
    );

    let mut broken = stricter.clone();
    broken.defaults.floor = 10;
    broken.defaults.ceiling = Some(5);
    let error = breaker.reload(broken).unwrap_err();
    assert!(error.to_string().contains("defaults.ceiling` = 5"), "{error}");
    assert_eq!(breaker.config(), stricter);
    assert_eq!(
        kind.status().threshold,
        after.threshold,
        "the running config stays in force"
    );
}

#[test]
fn a_snapshot_carries_what_was_learned_across_a_restart() {
    let clock = ManualClock::new();
    let first = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let kind = first.kind("sms.login_code");
    for _ in 0..120 {
        for _ in 0..900 {
            let _ = kind.check();
        }
        clock.advance(Duration::from_secs(60));
    }
    assert!(kind.status().warmed_up);
    let saved = first.snapshot().to_json();

    // A restart without the snapshot holds the busy kind to the warm-up ceiling...
    let cold = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    assert!(!(0..1_200).all(|_| cold.check("sms.login_code").is_allowed()));
    // ...with it, the kind carries on at its learned rate.
    let restarted = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    restarted.restore(&Snapshot::from_json(&saved).unwrap()).unwrap();
    assert!((0..1_200).all(|_| restarted.check("sms.login_code").is_allowed()));
    assert_eq!(
        restarted.kind_status("sms.login_code").unwrap().baseline,
        kind.status().baseline
    );
}

#[test]
fn a_corrupt_snapshot_is_refused_and_the_breaker_keeps_what_it_had() {
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    let kind = breaker.kind("email.welcome");
    let before = kind.status();
    let mut snapshot = breaker.snapshot();
    snapshot.kinds.get_mut("email.welcome").unwrap().peak = f64::NAN;
    let error = breaker.restore(&snapshot).unwrap_err();
    assert!(
        error.is_snapshot() && error.to_string().contains("peak"),
        "{error}"
    );
    snapshot.version = 99;
    assert!(
        breaker
            .restore(&snapshot)
            .unwrap_err()
            .to_string()
            .contains("version 99")
    );
    assert_eq!(kind.status(), before);
    assert!(kind.check().is_allowed());
}
