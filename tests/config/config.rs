//! Configuration through the public API: per-kind overrides, hot reload that keeps what was
//! counted and learned, and bad configuration wherever it enters: parsing, validation and
//! reload. Every refusal names the field and the value; a refused reload leaves the running
//! configuration in force (checked by what the breaker does, not only by what `config()` says);
//! no input makes a parser panic.

use std::time::Duration;

use proptest::prelude::*;
use spikebreaker::config::{KindConfig, KindOverride, Recovery, TimescaleConfig, TimescaleOverride};
use spikebreaker::status::{Reason, State};
use spikebreaker::{Breaker, Config, Error, ManualClock};

const TOML: &str = r#"
max_kinds = 1000

[defaults.minute]
factor = 4.0
floor = 60

[kinds."security.2fa_changed"]
minute = { floor = 20 }
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

/// Sends a runaway of `sends` at 100 a second to `kind` on a fresh breaker of `config` (no
/// snapshot) and returns how many went through and the state it ends in.
fn runaway(config: &str, kind: &str, sends: u32) -> (u64, State, Breaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::from_toml(config).unwrap(), clock.clone()).unwrap();
    let handle = breaker.kind(kind);
    for _ in 0..sends {
        clock.advance(Duration::from_millis(10));
        let _ = handle.check();
    }
    let status = handle.status();
    (status.allowed, status.state, breaker, clock)
}

#[test]
fn a_pattern_override_applies_to_the_kinds_it_matches_and_the_most_specific_wins() {
    const PATTERNS: &str = r#"
[kinds."security.*"]
minute = { floor = 20, ceiling = 20 }
recovery = "manual"

[kinds."security.2fa.*"]
minute = { floor = 5, ceiling = 5 }

[kinds."security.2fa.sms"]
minute = { floor = 2, ceiling = 2 }
"#;
    // The issue's case: a runaway of a kind only a pattern names trips at its ceiling, not the
    // defaults' warm-up ceiling of 500, and stays open: recovery is manual.
    let (allowed, state, breaker, clock) = runaway(PATTERNS, "security.2fa_changed", 2_000);
    assert_eq!((allowed, state), (20, State::Open));
    clock.advance(Duration::from_secs(6 * 3600));
    breaker.refresh();
    assert_eq!(
        breaker.kind_status("security.2fa_changed").unwrap().state,
        State::Open
    );
    // The longest prefix beats a shorter one; the exact name beats both.
    assert_eq!(runaway(PATTERNS, "security.2fa.email", 100).0, 5);
    assert_eq!(runaway(PATTERNS, "security.2fa.sms", 100).0, 2);
    // A name the patterns do not match runs on the defaults.
    assert_eq!(runaway(PATTERNS, "securityx", 1_000).0, 500);
    assert_eq!(runaway(PATTERNS, "security", 1_000).0, 500);

    let config = Config::from_toml(PATTERNS).unwrap();
    assert_eq!(
        config.override_for("security.2fa.email").unwrap().0,
        "security.2fa.*"
    );
    assert_eq!(
        config.override_for("security.2fa.sms").unwrap().0,
        "security.2fa.sms"
    );
    assert_eq!(config.override_for("security.login").unwrap().0, "security.*");
    assert!(config.override_for("email.welcome").is_none());
    // The status shows the settings the kind runs on.
    assert_eq!(config.kind_config("security.login").recovery, Recovery::Manual);
    assert_eq!(
        config.kind_config("security.2fa.email").recovery,
        Recovery::Auto,
        "no stacking"
    );
}

#[test]
fn a_pattern_reserves_no_slot_but_an_exact_name_does() {
    let config = "max_kinds = 1
[kinds.\"security.*\"]
recovery = \"manual\"
[kinds.\"billing.receipt\"]
recovery = \"manual\"
";
    let breaker = Breaker::with_clock(Config::from_toml(config).unwrap(), ManualClock::new()).unwrap();
    assert!(breaker.check("email.welcome").is_allowed()); // takes the one free slot
    let _ = breaker.check("security.login");
    let _ = breaker.check("billing.receipt");
    assert!(
        breaker.kind_status("security.login").is_none(),
        "no room: the pattern reserves none"
    );
    assert!(
        breaker.kind_status("billing.receipt").is_some(),
        "named exactly: its own slot"
    );
    // Controls act on kinds the configuration names exactly, not on a pattern's kinds unseen.
    assert!(
        breaker
            .force_open("security.other")
            .unwrap_err()
            .is_unknown_kind()
    );
}

#[test]
fn a_reload_resolves_patterns_again() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let handle = breaker.kind("security.login");
    breaker
        .reload(Config::from_toml("[kinds.\"security.*\"]\nminute = { floor = 10, ceiling = 10 }\n").unwrap())
        .unwrap();
    let mut allowed = 0;
    for _ in 0..100 {
        clock.advance(Duration::from_millis(10));
        allowed += u32::from(handle.check().is_allowed());
    }
    assert_eq!(allowed, 10);
}

#[test]
fn bad_patterns_are_refused_by_name() {
    for (text, expected) in [
        ("[kinds.\"*\"]\nrecovery = \"manual\"\n", "`*` alone"),
        (
            "[kinds.\"*.login\"]\nrecovery = \"manual\"\n",
            "one `*` at the end",
        ),
        ("[kinds.\"a.*.*\"]\nrecovery = \"manual\"\n", "one `*` at the end"),
        (
            "[[surges]]\nkind = \"a.*\"\nsends = 5\nfrom = \"2026-01-01T00:00:00Z\"\nuntil = \"2026-01-02T00:00:00Z\"\n",
            "surges[0].kind",
        ),
    ] {
        let error = Config::from_toml(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn keys_that_apply_to_no_kind_are_named() {
    let config = Config::from_toml(
        "[kinds.\"security.*\"]\nrecovery = \"manual\"\n[kinds.\"security.login\"]\nrecovery = \"manual\"\n[kinds.\"sms.*\"]\nrecovery = \"manual\"\n[kinds.\"email.welcom\"]\nrecovery = \"manual\"\n",
    )
    .unwrap();
    // `security.*` matches only a kind that the exact key takes: it applies to none.
    assert_eq!(
        config.unmatched_keys(["security.login", "sms.otp", "email.welcome"]),
        vec!["email.welcom", "security.*"]
    );
    assert!(
        config
            .unmatched_keys(["security.x", "security.login", "sms.a", "email.welcom"])
            .is_empty()
    );
}

/// The warm-up follows the kind's own settings: the configuration guide's override protects from the first
/// send, and an override that lowers (or raises) the minute floor scales the warm-up ceiling.
#[test]
fn a_kind_warms_up_under_its_own_settings() {
    const GUIDE: &str = r#"
[kinds."security.2fa_changed"]
minute = { floor = 10, ceiling = 20 }
recovery = "manual"
"#;
    assert_eq!(runaway(GUIDE, "security.2fa_changed", 2_000).0, 20);
    // A floor alone: the defaults' ratio (500 over 50), ten times the floor.
    let floor_only = "[kinds.\"security.2fa_changed\"]\nminute = { floor = 20 }\n";
    assert_eq!(runaway(floor_only, "security.2fa_changed", 2_000).0, 200);
    // A higher floor raises the warm-up ceiling too (no longer an error under the defaults').
    let raised = "[kinds.bulk]\nminute = { floor = 300 }\n";
    assert_eq!(runaway(raised, "bulk", 10_000).0, 3_000);
    // Its own warm-up ceiling wins; the defaults scale from their own ratio.
    let explicit = "[kinds.a]\nminute = { floor = 20 }\nwarmup_ceiling = 30\n";
    assert_eq!(runaway(explicit, "a", 2_000).0, 30);
    let scaled = "[defaults]\nwarmup_ceiling = 100\n[kinds.a]\nminute = { floor = 25 }\n";
    assert_eq!(runaway(scaled, "a", 2_000).0, 50);
    // No floor scales as a floor of 1: the kind still sends (and so learns) while it warms up.
    let no_floor = "[kinds.a]\nminute = { floor = 0 }\n";
    assert_eq!(runaway(no_floor, "a", 2_000).0, 10);
    let no_floor_anywhere = "[defaults.minute]\nfloor = 0\n";
    assert_eq!(runaway(no_floor_anywhere, "a", 2_000).0, 10);
    // Defaults with no floor give no ratio: their ceiling stands for an override's floor.
    let base_without_floor =
        "[defaults]\nwarmup_ceiling = 500\nminute = { floor = 0 }\n[kinds.a]\nminute = { floor = 50 }\n";
    assert_eq!(runaway(base_without_floor, "a", 2_000).0, 500);
}

#[test]
fn errors_name_the_field_and_the_value() {
    let cases = [
        (Config::from_toml("[defaults.minute]\nfloor = -3\n"), "floor"),
        (
            Config::from_toml("[defaults.hour]\nfactor = 0.5\n"),
            "defaults.hour.factor` = 0.5",
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
            Config::from_json(r#"{"defaults": {"day": {"sigmas": -1}}}"#),
            "defaults.day.sigmas` = -1",
        ),
        // A field of 0.1's configuration says where it went.
        (Config::from_toml("[defaults]\nfloor = 20\n"), "`minute.floor`"),
        (
            Config::from_json(r#"{"defaults": {"peak_half_life_hours": 72}}"#),
            "learns its week",
        ),
        (Config::from_json(r#"{"default": {}}"#), "default"),
        // A warm-up ceiling of 0 would refuse a new kind's every send, so it never learned.
        (
            Config::from_toml("[defaults]\nwarmup_ceiling = 0\nminute = { floor = 0 }\n"),
            "defaults.warmup_ceiling` = 0",
        ),
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
    stricter.defaults.minute.floor = 1_000;
    stricter.defaults.warmup_ceiling = 1_000;
    breaker.reload(stricter.clone()).unwrap();
    let after = kind.status();
    assert_eq!(
        (
            after.minute().window_count,
            after.attempted,
            after.minute().expected
        ),
        (
            before.minute().window_count,
            before.attempted,
            before.minute().expected
        )
    );
    assert_eq!(
        after.minute().threshold,
        1_000,
        "{:?} -> {:?}",
        before.minute(),
        after.minute()
    );
    assert!(before.minute().threshold < 1_000);

    let mut broken = stricter.clone();
    broken.defaults.minute.floor = 10;
    broken.defaults.minute.ceiling = Some(5);
    let error = breaker.reload(broken).unwrap_err();
    assert!(
        error.to_string().contains("defaults.minute.ceiling` = 5"),
        "{error}"
    );
    assert_eq!(breaker.config(), stricter);
    assert_eq!(
        kind.status().minute().threshold,
        1_000,
        "the running config stays in force"
    );
}

// Bad configuration, wherever it enters.

/// TOML text, the field the error must name, and the value it must quote.
const TOML_CASES: &[(&str, &str, &str)] = &[
    // Unknown fields, at every level.
    ("max_kind = 5\n", "max_kind", "max_kind"),
    ("[defaults]\nfactr = 2.0\n", "factr", "factr"),
    ("[kinds.a]\nflor = 1\n", "flor", "flor"),
    ("[defualts]\nfactor = 2.0\n", "defualts", "defualts"),
    // Zero, negative, not a number, infinite, wrong type.
    ("[defaults]\nwindow_secs = 0\n", "defaults.window_secs", "0"),
    ("[defaults]\nwindow_secs = -60\n", "window_secs", "-60"),
    ("[defaults.minute]\nfloor = -5\n", "floor", "-5"),
    (
        "[defaults.minute]\nfactor = 0.5\n",
        "defaults.minute.factor",
        "0.5",
    ),
    ("[defaults.hour]\nfactor = -3.0\n", "defaults.hour.factor", "-3"),
    ("[defaults.day]\nfactor = nan\n", "defaults.day.factor", "NaN"),
    (
        "[defaults.minute]\nfactor = inf\n",
        "defaults.minute.factor",
        "inf",
    ),
    (
        "[defaults.minute]\nfactor = -inf\n",
        "defaults.minute.factor",
        "-inf",
    ),
    ("[defaults.minute]\nfactor = \"three\"\n", "factor", "three"),
    (
        "[defaults.minute]\nsigmas = -1.0\n",
        "defaults.minute.sigmas",
        "-1",
    ),
    (
        "[[surges]]\nkind = \"x\"\nsends = 9\nfrom = \"soon\"\nuntil = \"2026-11-27T20:00:00Z\"\n",
        "surges[0].from",
        "soon",
    ),
    (
        "[[surges]]\nkind = \"x\"\nsends = 9\nfrom = \"2026-11-27T08:00:00Z\"\nuntil = \"2026-11-27T20:00:00Z\"\n[[surges]]\nkind = \"x\"\nsends = 9\nfrom = \"2026-11-27T19:00:00Z\"\nuntil = \"2026-11-27T21:00:00Z\"\n",
        "surges[1].from",
        "overlaps surges[0]",
    ),
    (
        "[kinds.x.minute]\nsigmas = 0.5\n",
        "kinds.\"x\".minute.sigmas",
        "0.5",
    ),
    ("[defaults.hour]\nsigmas = nan\n", "defaults.hour.sigmas", "NaN"),
    ("[defaults.day]\nsigmas = 51\n", "defaults.day.sigmas", "51"),
    (
        "[defaults]\nmax_growth_per_hour = 0.9\n",
        "defaults.max_growth_per_hour",
        "0.9",
    ),
    (
        "[defaults]\nmax_growth_per_hour = inf\n",
        "defaults.max_growth_per_hour",
        "inf",
    ),
    (
        "[defaults]\nmax_growth_per_day = 0.5\n",
        "defaults.max_growth_per_day",
        "0.5",
    ),
    (
        "[kinds.x]\nexpected_per_minute = 0\n",
        "kinds.\"x\".expected_per_minute",
        "0",
    ),
    (
        "[kinds.x]\nexpected_per_minute = -3\n",
        "kinds.\"x\".expected_per_minute",
        "-3",
    ),
    (
        "[kinds.x]\nexpected_per_minute = 1e11\n",
        "kinds.\"x\".expected_per_minute",
        "100000000000",
    ),
    ("[defaults.minute]\nceiling = 0\n", "defaults.minute.ceiling", "0"),
    ("[defaults.day]\nceiling = 0\n", "defaults.day.ceiling", "0"),
    ("[defaults]\nrecovery = \"sometimes\"\n", "recovery", "sometimes"),
    (
        "[defaults]\nopen_alert_secs = 0\n",
        "defaults.open_alert_secs",
        "0",
    ),
    ("max_kinds = 0\n", "max_kinds", "0"),
    ("max_kinds = 1000001\n", "max_kinds", "1000001"),
    ("max_kinds = -1\n", "max_kinds", "-1"),
    ("evict_idle_secs = 0\n", "evict_idle_secs", "0"),
    ("evict_idle_secs = 999999999\n", "evict_idle_secs", "999999999"),
    // Floor above ceiling, and above the warm-up ceiling, in defaults and in an override.
    (
        "[defaults.minute]\nfloor = 500\nceiling = 200\n",
        "defaults.minute.ceiling",
        "200",
    ),
    (
        "[defaults.hour]\nfloor = 500\nceiling = 200\n",
        "defaults.hour.ceiling",
        "200",
    ),
    (
        "[defaults]\nwarmup_ceiling = 500\nminute.floor = 2000\n",
        "defaults.warmup_ceiling",
        "500",
    ),
    (
        "[kinds.a]\nminute = { floor = 50, ceiling = 10 }\n",
        "kinds.\"a\".minute.ceiling",
        "10",
    ),
    (
        "[defaults.minute]\nfloor = 10\nceiling = 50\n[kinds.a]\nminute.floor = 60\n",
        "kinds.\"a\".minute.ceiling",
        "50",
    ),
    // Kind names that break the rule, and one given twice.
    ("[kinds.\"\"]\ndry_run = true\n", "kinds", "\"\""),
    ("[kinds.\"   \"]\ndry_run = true\n", "kinds", "\"   \""),
    ("[kinds.\"a\\tb\"]\ndry_run = true\n", "kinds", "\"a\\tb\""),
    (
        "[kinds.a]\ndry_run = true\n[kinds.a]\ndry_run = false\n",
        "kinds",
        "a",
    ),
    // Absurd windows and durations.
    ("[defaults]\nwindow_secs = 3601\n", "defaults.window_secs", "3601"),
    (
        "[kinds.a]\nwindow_secs = 18446744073709551615\n",
        "kinds.\"a\".window_secs",
        "18446744073709551615",
    ),
    (
        "[defaults]\nwindow_secs = 18446744073709551616\n",
        "window_secs",
        "18446744073709551616",
    ),
    (
        "[defaults]\ncooldown_secs = 2592001\n",
        "defaults.cooldown_secs",
        "2592001",
    ),
    (
        "[defaults]\nprobe_secs = 99999999999\n",
        "defaults.probe_secs",
        "99999999999",
    ),
    (
        "[defaults]\nwarmup_secs = 99999999999\n",
        "defaults.warmup_secs",
        "99999999999",
    ),
];

#[test]
fn every_bad_toml_field_is_refused_by_name_and_value() {
    for (text, field, value) in TOML_CASES {
        let err = Config::from_toml(text).expect_err(text);
        let message = err.to_string();
        assert!(err.is_config(), "{text:?}: {message}");
        assert!(
            message.contains(field) && message.contains(value),
            "{text:?} should name {field} and {value}: {message}"
        );
    }
}

/// JSON is checked like TOML once parsed; a value of the wrong type (or out of `f64` range) is
/// refused by serde_json, which locates it by line and column rather than by field name.
#[test]
fn bad_json_is_refused_by_name_and_value_or_by_position() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"max_kinds": 5, "colour": 1}"#, &["colour"]),
        (
            r#"{"defaults": {"minute": {"factor": -2}}}"#,
            &["defaults.minute.factor", "-2"],
        ),
        (
            r#"{"defaults": {"window_secs": 0}}"#,
            &["defaults.window_secs", "0"],
        ),
        (r#"{"kinds": {"": {"dry_run": true}}}"#, &["kinds", "\"\""]),
        (
            r#"{"kinds": {"a": {"hour": {"floor": 9, "ceiling": 3}}}}"#,
            &["kinds.\"a\".hour.ceiling", "3"],
        ),
        (r#"{"max_kinds": 0}"#, &["max_kinds", "0"]),
        (
            r#"{"max_kinds": 1000001}"#,
            &["max_kinds", "1000001", "must be 1 to 1000000"],
        ),
        // An array would be read by position (`[]` as the defaults): only an object is a config.
        ("[]", &["expected a JSON object", "'['"]),
        (r#"[{}, {}, 5, 60]"#, &["expected a JSON object"]),
        ("\"max_kinds\"", &["expected a JSON object"]),
        // A key given twice is refused, naming it, rather than the last one kept.
        (
            r#"{"kinds": {"a": {"dry_run": true}, "a": {"dry_run": false}}}"#,
            &["`kinds`", "kind \"a\" is given twice"],
        ),
        (
            r#"{"max_kinds": 5, "max_kinds": 50000}"#,
            &["duplicate field `max_kinds`"],
        ),
        (
            r#"{"defaults": {"warmup_secs": 5, "warmup_secs": 500}}"#,
            &["duplicate field `warmup_secs`"],
        ),
        (
            r#"{"defaults": {"minute": {"factor": 1e400}}}"#,
            &["out of range", "line 1 column 40"],
        ),
        (
            r#"{"defaults": {"minute": {"factor": "3"}}}"#,
            &["`defaults.minute.factor`", "\"3\"", "line 1 column 38"],
        ),
        (
            r#"{"defaults": {"window_secs": 1.5}}"#,
            &["`defaults.window_secs`", "1.5", "line 1 column 32"],
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .map(|(text, needles)| {
            (
                text,
                needles,
                Config::from_json(text).expect_err(text).to_string(),
            )
        })
        .filter(|(_, needles, message)| !needles.iter().all(|n| message.contains(n)))
        .map(|(text, needles, message)| format!("{text} should say {needles:?}: {message}"))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_config_built_in_code_is_checked_when_the_breaker_is_made() {
    let config = Config {
        defaults: KindConfig {
            minute: TimescaleConfig {
                factor: f64::NAN,
                ..TimescaleConfig::MINUTE
            },
            ..KindConfig::default()
        },
        ..Config::default()
    };
    let message = Breaker::with_clock(config, ManualClock::new())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("defaults.minute.factor") && message.contains("NaN"),
        "{message}"
    );
}

#[test]
fn a_refused_reload_leaves_the_running_config_in_force() {
    let clock = ManualClock::new();
    let running =
        Config::from_toml("[kinds.a]\nminute = { floor = 10, ceiling = 50 }\nrecovery = \"manual\"\n")
            .unwrap();
    let breaker = Breaker::with_clock(running.clone(), clock.clone()).unwrap();
    let mut bad = running.clone();
    bad.kinds.insert(
        "a".into(),
        KindOverride {
            minute: TimescaleOverride {
                ceiling: Some(5_000),
                floor: Some(10_000),
                ..TimescaleOverride::default()
            },
            ..KindOverride::default()
        },
    );
    bad.defaults.window_secs = 0;
    assert!(breaker.reload(bad).unwrap_err().is_config());
    assert_eq!(breaker.config(), running);
    // The running ceiling of 50 still trips "a", and manual recovery still holds it open.
    let allowed = (0..100).filter(|_| breaker.check("a").is_allowed()).count();
    assert_eq!(allowed, 50);
    let status = breaker.kind_status("a").unwrap();
    assert_eq!(
        (status.state, status.reason, status.minute().threshold),
        (State::Open, Reason::Ceiling, 50)
    );
    clock.advance(Duration::from_secs(3600));
    assert!(!breaker.check("a").is_allowed(), "recovery stayed manual");
    // And a good reload after the bad one applies.
    let mut good = running;
    good.kinds.get_mut("a").unwrap().recovery = Some(Recovery::Auto);
    breaker.reload(good).unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(
        breaker.check("a").is_allowed(),
        "auto recovery after the cooldown"
    );
}

/// A valid document to mutate: every field set, two overrides.
fn valid_toml() -> String {
    let mut config = Config::default();
    config.defaults.minute.ceiling = Some(50_000);
    config.defaults.day.ceiling = Some(5_000_000);
    config.kinds.insert(
        "security.2fa_changed".into(),
        KindOverride {
            minute: TimescaleOverride {
                floor: Some(20),
                ..TimescaleOverride::default()
            },
            recovery: Some(Recovery::Manual),
            ..KindOverride::default()
        },
    );
    config.kinds.insert(
        "email.digest".into(),
        KindOverride {
            window_secs: Some(300),
            hour: TimescaleOverride {
                factor: Some(5.0),
                ..TimescaleOverride::default()
            },
            ..KindOverride::default()
        },
    );
    toml::to_string(&config).unwrap()
}

/// `text` with one edit: a run of characters removed, replaced, inserted or repeated.
fn mutate(text: &str, edit: u8, at: usize, len: usize, with: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + len).min(chars.len());
    let (head, tail) = (&chars[..at], &chars[end..]);
    let middle: String = match edit % 4 {
        0 => String::new(),
        1 => with.to_string(),
        2 => format!("{with}{}", chars[at..end].iter().collect::<String>()),
        _ => chars[at..end].iter().collect::<String>().repeat(2),
    };
    head.iter().collect::<String>() + &middle + &tail.iter().collect::<String>()
}

/// Whatever parses must run: a breaker made from it sends without panicking.
fn runs(config: Config) {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config, clock.clone()).expect("a parsed config is valid");
    for kind in ["security.2fa_changed", "email.digest", "other"] {
        for _ in 0..3 {
            clock.advance(Duration::from_secs(7));
            let _ = breaker.check(kind);
        }
    }
    let _ = breaker.status();
}

fn tokens() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~\n]{0,12}",
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("1e308".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"\"".to_string()),
        Just("[kinds.\"\"]\n".to_string()),
        Just("{}".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics_a_parser(text in "\\PC{0,200}") {
        let _ = Config::from_toml(&text);
        let _ = Config::from_json(&text);
    }

    #[test]
    fn mutated_valid_toml_is_refused_or_runs(
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), 0usize..8, tokens()), 1..4)
    ) {
        let mut text = valid_toml();
        for (edit, at, len, with) in &edits {
            text = mutate(&text, *edit, *at, *len, with);
        }
        if let Ok(config) = Config::from_toml(&text) {
            runs(config);
        }
    }

    #[test]
    fn mutated_valid_json_is_refused_or_runs(
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), 0usize..8, tokens()), 1..4)
    ) {
        let config = Config::from_toml(&valid_toml()).unwrap();
        let mut text = serde_json::to_string(&config).unwrap();
        for (edit, at, len, with) in &edits {
            text = mutate(&text, *edit, *at, *len, with);
        }
        if let Ok(config) = Config::from_json(&text) {
            runs(config);
        }
    }
}
