//! The tuner, through the library and as `spikebreaker tune`: suggestions that never trip on the
//! history and catch injected runaways sooner, excluded spans, the suggested configuration, and
//! bad input.

use crate::binary::{spikebreaker, spikebreaker_into_a_closed_pipe};
use crate::support::{DAY_MS, HOUR_MS, MONDAY_MS, Profile, Traffic, burst, merge, tagged};
use spikebreaker::Config;
use spikebreaker::backtest::{Runaway, Trace, Tuner};
use std::process::Output;

const KINDS: [&str; 2] = ["email.receipt", "security.2fa_changed"];

/// Five days of two kinds: receipts with a daily swing, a rare security notice; with
/// `incident`, a runaway of the security notice on the fourth day at 03:00.
fn history(incident: bool) -> String {
    let profiles = vec![
        Profile::daily(KINDS[0], 20.0, 6.0),
        Profile::steady(KINDS[1], 0.3),
    ];
    let ordinary = Traffic::new(profiles, 3, MONDAY_MS, MONDAY_MS + 5 * DAY_MS);
    let runaway = burst(
        MONDAY_MS + 3 * DAY_MS + 3 * HOUR_MS,
        if incident { 3_000 } else { 0 },
        20.0,
    );
    let mut log = String::from("t_ms,kind\n");
    for (t, kind) in merge(ordinary, tagged(runaway, 1)) {
        log.push_str(&format!("{t},{}\n", KINDS[kind]));
    }
    log
}

#[test]
fn suggestions_never_trip_on_the_history_and_let_fewer_runaway_sends_through() {
    let trace = Trace::read(history(false).as_bytes()).unwrap();
    let tuner = Tuner::new(Config::default());
    let tuning = tuner.run(&trace, &|_| {}).unwrap();
    assert_eq!(tuning.kinds.len(), 2);
    for (name, kind) in &tuning.kinds {
        assert!(kind.clean, "{name}");
        assert_eq!(kind.suggested.false_trips, 0, "{name}");
        assert!(kind.suggested.leak_score() <= kind.base.leak_score(), "{name}");
        assert_eq!(
            kind.suggested.leaks.len(),
            3,
            "{name}: a burst, a leak, a quiet-hour runaway"
        );
    }
    // The rare kind is caught well under the default floor of 50 once its floors come down.
    let rare = &tuning.kinds[KINDS[1]];
    assert!(
        rare.suggested.candidate.floors < 1.0,
        "{:?}",
        rare.suggested.candidate
    );
    assert!(rare.suggested.let_through(Runaway::Burst) < rare.base.let_through(Runaway::Burst));
    assert!(rare.suggested.leaks.iter().all(|leak| leak.caught()));

    // The suggested configuration, replayed on the same history, trips nowhere it was judged.
    let suggested = tuner.suggested_config(&tuning);
    let report = trace.replay(&suggested).unwrap();
    for (name, kind) in &report.kinds {
        let judged = kind
            .transitions
            .iter()
            .filter(|e| e.is_trip() && e.at_ms >= tuning.judged_from_ms);
        assert_eq!(judged.count(), 0, "{name}");
    }
}

#[test]
fn an_excluded_incident_is_not_a_false_trip() {
    let trace = Trace::read(history(true).as_bytes()).unwrap();
    let incident = MONDAY_MS + 3 * DAY_MS + 3 * HOUR_MS;
    let tuning = Tuner::new(Config::default()).run(&trace, &|_| {}).unwrap();
    let rare = &tuning.kinds[KINDS[1]];
    assert!(!rare.clean, "the incident trips every setting");
    assert!(
        rare.base
            .first_false_trip
            .as_ref()
            .is_some_and(|e| e.at_ms >= incident)
    );

    let tuning = Tuner::new(Config::default())
        .exclude(incident - HOUR_MS, incident + 2 * HOUR_MS)
        .run(&trace, &|_| {})
        .unwrap();
    let rare = &tuning.kinds[KINDS[1]];
    assert!(rare.clean);
    assert_eq!(rare.suggested.false_trips, 0);
    assert!(
        rare.suggested
            .leaks
            .iter()
            .all(|leak| { !(incident - HOUR_MS..incident + 2 * HOUR_MS).contains(&leak.at_ms) })
    );
}

#[test]
fn the_command_prints_a_table_and_writes_a_configuration_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("suggested.toml");
    let output = spikebreaker(
        &["tune", "--trace", "-", "--out", out.to_str().unwrap()],
        &history(false),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8(output.stdout).unwrap();
    for kind in KINDS {
        assert!(table.lines().any(|line| line.starts_with(kind)), "{table}");
    }
    let written = std::fs::read_to_string(&out).unwrap();
    let config = Config::from_toml(&written).unwrap();
    let rare = config.kind_config(KINDS[1]);
    assert!(rare.minute.floor < 50, "{written}");
    assert!(
        written.contains("[kinds.\"security.2fa_changed\"]\n# 0 false trips"),
        "{written}"
    );
    assert!(written.contains("minute = { "), "{written}");

    let output = spikebreaker(&["tune", "--trace", "-", "--json"], &history(false));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["kinds"][KINDS[1]]["suggested"]["false_trips"], 0);
}

#[test]
fn bad_input_exits_2_naming_what_is_wrong() {
    let said = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    let output = spikebreaker(&["tune", "--trace", "-"], "0,a\n5,b\n4,a\n");
    assert_eq!(output.status.code(), Some(2));
    assert!(said(&output).contains("line 3"), "{}", said(&output));

    let output = spikebreaker(&["tune", "--trace", "-"], "0,a\n60000,a\n");
    assert_eq!(output.status.code(), Some(2));
    assert!(said(&output).contains("too short to tune"), "{}", said(&output));

    for span in ["5..1", "yesterday..today", "12"] {
        let output = spikebreaker(&["tune", "--trace", "-", "--exclude", span], "0,a\n");
        assert_eq!(output.status.code(), Some(2), "{span}");
        assert!(said(&output).contains("--exclude"), "{}", said(&output));
    }
    let output = spikebreaker(
        &[
            "tune",
            "--trace",
            "-",
            "--exclude",
            "2025-01-20T03:00:00Z..1737400000000",
        ],
        "0,a\n60000,a\n",
    );
    assert!(
        said(&output).contains("too short"),
        "an RFC 3339 time is read: {}",
        said(&output)
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_table_quietly() {
    // `spikebreaker tune … | head` (before: "cannot write the table: Broken pipe", exit 1).
    let output = spikebreaker_into_a_closed_pipe(&["tune", "--trace", "-"], &history(false));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}
