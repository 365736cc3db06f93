//! Settings that would break detection without a word: a warm-up too short to learn a rate, no
//! warm-up at all, limits so large they are no limits (`factor = 1e300`, `floor = i64::MAX`,
//! `warmup_ceiling = u64::MAX`), and planned surges that would switch a kind's protection off
//! (`u64::MAX` sends, a surge on the overflow kind). A short warm-up works; the others are refused
//! with an error naming the field, and a reload to one leaves the running configuration in force.

use std::time::Duration;

use spikebreaker::config::KindConfig;
use spikebreaker::status::State;
use spikebreaker::{Breaker, Config, ManualClock};

/// 2023-11-14T22:13:20Z: 200 seconds into a 5-minute slot.
const START: u64 = 1_700_000_000_000;

/// Sends `kind` at `per_minute`, evenly, for `minutes`; returns how many were blocked.
fn steady(
    breaker: &Breaker<ManualClock>,
    clock: &ManualClock,
    kind: &str,
    per_minute: u64,
    minutes: u64,
) -> u64 {
    let handle = breaker.kind(kind);
    let mut blocked = 0;
    for _ in 0..per_minute * minutes {
        clock.advance(Duration::from_millis(60_000 / per_minute));
        blocked += u64::from(!handle.check().is_allowed());
    }
    blocked
}

/// Before: with `warmup_secs` of 300 or less a kind could be warm before it had learned its rate
/// from a whole 5-minute slot: judged as expecting nothing, it tripped at its floor on its own
/// traffic, and open it never learned the rate that would have calmed it (49,232 to 50,350 of
/// its 50,400 sends blocked, by where in a slot it began).
#[test]
fn a_short_warm_up_learns_the_rate_before_it_judges_by_it() {
    for warmup_secs in [1, 60, 120, 180, 240, 300] {
        // Started on a slot's edge, a second in, halfway, and a second before the next.
        for into_slot_ms in [0, 1_000, 150_000, 299_000] {
            let clock = ManualClock::starting_at(START + 100_000 + into_slot_ms);
            let config = Config::from_toml(&format!("[defaults]\nwarmup_secs = {warmup_secs}\n")).unwrap();
            let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
            let blocked = steady(&breaker, &clock, "email.digest", 280, 180);
            let status = breaker.kind_status("email.digest").unwrap();
            assert_eq!(
                (blocked, status.trips),
                (0, 0),
                "warmup_secs = {warmup_secs}, {into_slot_ms} ms into the slot: {:?}",
                status.tripped_on
            );
            assert!(status.warmed_up && status.minute().expected > 200.0, "{status:?}");
        }
    }
}

/// A TOML or JSON document and the field its error must name.
const REFUSED: [(&str, &str, &str); 9] = [
    // Before: a kind at 20 a minute had all of its 1,200 sends in an hour blocked.
    (
        "[defaults]\nwarmup_secs = 0\nminute.floor = 0\n",
        "`defaults.warmup_secs` = 0",
        "at least 1 second",
    ),
    (
        "[kinds.a]\nwarmup_secs = 0\n",
        "`kinds.\"a\".warmup_secs` = 0",
        "at least 1 second",
    ),
    // Before: a learned kind's 10,000-send runaway went through whole.
    (
        "[defaults.minute]\nfactor = 1e300\n",
        "`defaults.minute.factor` = 1e300",
        "1 to 1000",
    ),
    (
        "[defaults.hour]\nfloor = 9223372036854775807\n",
        "`defaults.hour.floor` = 9223372036854775807",
        "at most 1000000000",
    ),
    (
        "[kinds.a]\nday = { ceiling = 5000000000 }\n",
        "`kinds.\"a\".day.ceiling` = 5000000000",
        "at most 1000000000",
    ),
    // Before: a new kind's 10,000-send runaway went through whole.
    (
        r#"{"defaults": {"warmup_ceiling": 18446744073709551615}}"#,
        "`defaults.warmup_ceiling` = 18446744073709551615",
        "at most 1000000000",
    ),
    // Before: 10,000 of 10,000 sends of made-up names went through the overflow kind.
    (
        "[[surges]]\nkind = \"_overflow\"\nsends = 1000\nfrom = \"2026-11-27T07:55:00Z\"\nuntil = \"2026-11-27T20:00:00Z\"\n",
        "`surges[0].kind` = \"_overflow\"",
        "the overflow kind takes no surge",
    ),
    // Before: a learned kind's runaway of 100,000 went through whole.
    (
        r#"{"surges": [{"kind": "a", "sends": 18446744073709551615, "from": "2026-11-27T07:55:00Z", "until": "2026-11-27T20:00:00Z"}]}"#,
        "`surges[0].sends` = 18446744073709551615",
        "1 to 1000000000",
    ),
    (
        "[[surges]]\nkind = \"a\"\nsends = 0\nfrom = \"2026-11-27T07:55:00Z\"\nuntil = \"2026-11-27T20:00:00Z\"\n",
        "`surges[0].sends` = 0",
        "1 to 1000000000",
    ),
];

fn parse(text: &str) -> Result<Config, spikebreaker::Error> {
    if text.starts_with('{') {
        Config::from_json(text)
    } else {
        Config::from_toml(text)
    }
}

#[test]
fn settings_that_would_switch_detection_off_are_refused_by_field() {
    for (text, field, reason) in REFUSED {
        let error = parse(text).expect_err(text);
        let message = error.to_string();
        assert!(
            error.is_config() && message.contains(field) && message.contains(reason),
            "{text}: {message}"
        );
    }
    // Built in code, the same settings are refused when the breaker is made.
    let huge = |set: fn(&mut KindConfig)| {
        let mut defaults = KindConfig::default();
        set(&mut defaults);
        Breaker::with_clock(
            Config {
                defaults,
                ..Config::default()
            },
            ManualClock::new(),
        )
        .unwrap_err()
    };
    assert!(
        huge(|k| k.warmup_ceiling = u64::MAX)
            .to_string()
            .contains("defaults.warmup_ceiling")
    );
    assert!(
        huge(|k| k.minute.floor = i64::MAX as u64)
            .to_string()
            .contains("defaults.minute.floor")
    );
    assert!(
        huge(|k| k.day.factor = 1e300)
            .to_string()
            .contains("defaults.day.factor")
    );
    // The largest settings allowed still detect: a billion a window, a factor of 1,000.
    let largest = "[defaults]\nwarmup_ceiling = 1000000000\nminute = { factor = 1000.0, floor = 1000000000, ceiling = 1000000000 }\n";
    assert!(Config::from_toml(largest).is_ok());
}

#[test]
fn a_surge_that_would_switch_protection_off_is_refused_at_run_time_by_name() {
    let clock = ManualClock::starting_at(START);
    let breaker = Breaker::with_clock(
        Config {
            max_kinds: 1,
            ..Config::default()
        },
        clock.clone(),
    )
    .unwrap();
    assert!(breaker.check("email.receipt").is_allowed());
    let day = Duration::from_secs(86_400);
    let error = breaker
        .plan_surge(Breaker::OVERFLOW_KIND, 1_000, day)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid `kind` = \"_overflow\": the overflow kind takes no surge: it carries every kind without a slot \
         of its own, and a surge would let all of them through"
    );
    let error = breaker.plan_surge("email.receipt", u64::MAX, day).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid `sends` = 18446744073709551615: must be 1 to 1000000000"),
        "{error}"
    );
    // Made-up names still share the overflow kind's fixed limit.
    let through = (0..10_000)
        .filter(|i| {
            clock.advance(Duration::from_millis(10));
            breaker.check(&format!("user.{i}")).is_allowed()
        })
        .count();
    assert_eq!(through, 500, "the warm-up ceiling of the overflow kind");
    // The largest surge allowed still ends in its sends being spent.
    breaker.plan_surge("email.receipt", 1_000_000_000, day).unwrap();
    assert!(breaker.kind_status("email.receipt").unwrap().surge.is_some());
}

#[test]
fn a_reload_to_such_settings_is_refused_and_the_running_ones_stay() {
    let clock = ManualClock::starting_at(START);
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    for (text, _, _) in REFUSED {
        let config = match parse(text) {
            Ok(config) => config,
            // Refused already when read: what a reload of it from a file would meet.
            Err(_) => continue,
        };
        assert!(breaker.reload(config).is_err(), "{text}");
    }
    // Settings built in code get as far as the reload, which refuses them.
    let mut off = Config::default();
    off.defaults.minute.factor = 1e300;
    off.defaults.hour.factor = 1e300;
    off.defaults.day.factor = 1e300;
    assert!(breaker.reload(off).unwrap_err().to_string().contains("factor"));
    assert_eq!(breaker.config(), Config::default());
    // A new kind still warms up under the warm-up ceiling of the running configuration.
    let runaway = breaker.kind("security.2fa_changed");
    let through = (0..2_000)
        .filter(|_| {
            clock.advance(Duration::from_millis(10));
            runaway.check().is_allowed()
        })
        .count();
    assert_eq!((through, runaway.state()), (500, State::Open));
}
