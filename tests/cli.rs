//! The `spikebreaker backtest` command, run as a user runs it: a log on disk or on standard
//! input, the JSON report on standard output, exit code 2 on bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn spikebreaker(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spikebreaker"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Fed from a thread so a large log and a large report can't fill both pipes at once; a
    // command that refuses its arguments exits without reading, which is not an error here.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let feeder = std::thread::spawn(move || drop(input.write_all(stdin.as_bytes())));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    output
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("stdout is the JSON report")
}

/// A runaway kind: 2,000 sends in 2 seconds, and a quiet kind beside it.
fn runaway_log() -> String {
    let mut log = String::from("t_ms,kind,recipient\n");
    for i in 0..2_000u64 {
        log.push_str(&format!("{i},security.2fa_changed,user{i}@example.com\n"));
        if i % 500 == 0 {
            log.push_str(&format!("{i},email.welcome\n"));
        }
    }
    log
}

#[test]
fn a_log_file_is_replayed_and_reported_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("sends.csv");
    let decisions = dir.path().join("decisions.csv");
    std::fs::write(&trace, runaway_log()).unwrap();
    let output = spikebreaker(
        &[
            "backtest",
            "--trace",
            trace.to_str().unwrap(),
            "--decisions",
            decisions.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "no progress bar when stderr is not a terminal"
    );
    let report = json(&output);
    assert_eq!(report["events"], 2_004);
    let runaway = &report["kinds"]["security.2fa_changed"];
    assert_eq!(runaway["attempted"], 2_000);
    assert_eq!(runaway["allowed"], 500, "the warm-up ceiling");
    assert_eq!(runaway["blocked"], 1_500);
    assert_eq!(runaway["transitions"][0]["to"], "open");
    assert_eq!(runaway["transitions"][0]["reason"], "warmup");
    assert_eq!(runaway["transitions"][0]["at_ms"], 500);
    assert_eq!(report["kinds"]["email.welcome"]["blocked"], 0);

    let decisions = std::fs::read_to_string(decisions).unwrap();
    let lines: Vec<&str> = decisions.lines().collect();
    assert_eq!(lines.len(), 2_004);
    assert_eq!(lines[0], "0,security.2fa_changed,allowed");
    assert_eq!(lines[1], "0,email.welcome,allowed");
    assert_eq!(lines.last().copied(), Some("1999,security.2fa_changed,blocked"));
}

#[test]
fn standard_input_is_read_for_a_dash() {
    let output = spikebreaker(&["backtest", "--trace", "-"], "0,a\n5,b,someone\n9,a\n");
    assert!(output.status.success());
    let report = json(&output);
    assert_eq!(report["events"], 3);
    assert_eq!(report["kinds"]["a"]["allowed"], 2);
    assert_eq!(report["kinds"]["b"]["attempted"], 1);
}

#[test]
fn a_bad_line_stops_with_exit_code_2_naming_it() {
    let output = spikebreaker(&["backtest", "--trace", "-"], "0,a\n5,b\n4,a\n");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("backwards"),
        "{stderr}"
    );

    let output = spikebreaker(&["backtest", "--trace", "-"], "0,a\nsoon,b\n");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2"));
}

#[test]
fn bad_lines_can_be_skipped_and_counted() {
    let output = spikebreaker(
        &["backtest", "--trace", "-", "--skip-bad-lines"],
        // An empty kind, a line without a time, and a time before the last good line's.
        "0,a\n5,\n4,a\nnonsense\n3,a\n7,a\n",
    );
    assert!(output.status.success());
    let report = json(&output);
    assert_eq!(report["skipped_lines"], 3);
    assert_eq!(report["events"], 3);
    assert_eq!(report["kinds"]["a"]["attempted"], 3);
}

#[test]
fn a_bad_configuration_names_the_field_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("breaker.toml");
    std::fs::write(&config, "[defaults.minute]\nfactor = 0.5\n").unwrap();
    let output = spikebreaker(
        &["backtest", "--trace", "-", "--config", config.to_str().unwrap()],
        "0,a\n",
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("defaults.minute.factor"), "{stderr}");
}

#[test]
fn a_configuration_changes_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("breaker.json");
    std::fs::write(&config, r#"{"defaults": {"warmup_ceiling": 200}}"#).unwrap();
    let output = spikebreaker(
        &["backtest", "--trace", "-", "--config", config.to_str().unwrap()],
        &runaway_log(),
    );
    assert!(output.status.success());
    assert_eq!(json(&output)["kinds"]["security.2fa_changed"]["allowed"], 200);
}

#[test]
fn a_missing_log_or_an_unknown_configuration_format_exits_2() {
    let output = spikebreaker(&["backtest", "--trace", "/nonexistent/sends.csv"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/sends.csv"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("breaker.yaml");
    std::fs::write(&config, "defaults: {}\n").unwrap();
    let output = spikebreaker(
        &["backtest", "--trace", "-", "--config", config.to_str().unwrap()],
        "0,a\n",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains(".toml or .json"));
}
