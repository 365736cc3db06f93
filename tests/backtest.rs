//! The replay engine and the send-log reader, through the public API.

use proptest::prelude::*;
use std::collections::BTreeMap;

use spikebreaker::backtest::{Backtest, BacktestReport, LogError, LogReader};
use spikebreaker::{Breaker, Config, Decision, ManualClock, State};

const OVERFLOW_KIND: &str = Breaker::OVERFLOW_KIND;

/// A send as read: line, time, kind.
type Read = (u64, u64, String);

/// Reads a whole log, returning the sends and the errors (line, message) it met.
fn read_all(log: &[u8]) -> (Vec<Read>, Vec<(u64, String)>) {
    let mut reader = LogReader::new(log);
    let (mut sends, mut errors) = (Vec::new(), Vec::new());
    while let Some(record) = reader.next_record() {
        match record {
            Ok(r) => sends.push((r.line, r.t_ms, r.kind.to_string())),
            Err(e) => errors.push((e.line(), e.to_string())),
        }
    }
    (sends, errors)
}

#[test]
fn the_report_follows_the_json_contract() {
    let mut backtest = Backtest::new(Config::default()).unwrap();
    for i in 0..1_500u64 {
        let _ = backtest.check(i, "job.runaway");
    }
    let _ = backtest.check(1_500, "email.welcome");
    let json = serde_json::to_value(backtest.report()).unwrap();
    assert_eq!(json["events"], 1_501);
    let kind = &json["kinds"]["job.runaway"];
    assert_eq!(kind["attempted"], 1_500);
    assert_eq!(kind["allowed"], 500);
    assert_eq!(kind["blocked"], 1_000);
    let trip = &kind["transitions"][0];
    assert_eq!(trip["at_ms"], 500);
    assert_eq!(trip["to"], "open");
    assert_eq!(trip["reason"], "warmup");
    // What the trip was judged on: the timescale, the window against its limit, and why.
    assert_eq!(trip["timescale"], "minute");
    assert_eq!(
        (trip["window_count"].as_u64(), trip["threshold"].as_u64()),
        (Some(501), Some(500))
    );
    assert_eq!(trip["bound"], "warmup");
    assert_eq!(
        json["kinds"]["email.welcome"]["transitions"],
        serde_json::json!([])
    );
}

#[test]
fn decisions_come_back_per_send_in_order() {
    let mut backtest = Backtest::new(Config::default()).unwrap();
    let decisions: Vec<Decision> = (0..502u64).map(|t| backtest.check(t, "a")).collect();
    assert!(decisions[..500].iter().all(|d| d.is_allowed()));
    assert!(decisions[500..].iter().all(|d| !d.is_allowed()));
    let report = backtest.report();
    assert_eq!(report.kinds["a"].state, State::Open);
    assert_eq!(report.kinds["a"].trips, 1);
}

#[test]
fn recovery_shows_in_the_transitions() {
    let mut backtest = Backtest::new(Config::default()).unwrap();
    for t in 0..2_000u64 {
        let _ = backtest.check(t, "a");
    }
    // Quiet for ten minutes, then a trickle: cool-down, probe, recovered.
    for minute in 10..20u64 {
        let _ = backtest.check(minute * 60_000, "a");
    }
    let report = backtest.report();
    let to: Vec<State> = report.kinds["a"].transitions.iter().map(|t| t.to).collect();
    assert_eq!(to, [State::Open, State::HalfOpen, State::Closed]);
    assert_eq!(report.kinds["a"].state, State::Closed);
}

#[test]
fn kinds_past_max_kinds_are_reported_as_the_overflow_kind() {
    let config = Config {
        max_kinds: 2,
        ..Config::default()
    };
    let mut backtest = Backtest::new(config).unwrap();
    for kind in ["a", "b", "c", "d", "c"] {
        let _ = backtest.check(0, kind);
    }
    let report = backtest.report();
    assert_eq!(report.kinds.len(), 3, "{:?}", report.kinds.keys());
    assert_eq!(report.kinds[OVERFLOW_KIND].attempted, 3);
    assert_eq!(report.sends, 5);
}

#[test]
fn an_invalid_configuration_is_refused() {
    let mut config = Config::default();
    config.defaults.minute.factor = 0.5;
    let error = Backtest::new(config).unwrap_err();
    assert!(error.to_string().contains("defaults.minute.factor"), "{error}");
}

#[test]
fn the_reader_skips_a_header_and_blank_lines_and_ignores_the_recipient() {
    let (sends, errors) = read_all(b"t_ms,kind,recipient\n\n10,a,x@example.com\r\n10,b\n  \n12,a\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        sends,
        [(3, 10, "a".into()), (4, 10, "b".into()), (6, 12, "a".into())]
    );
}

#[test]
fn a_header_is_only_a_header_on_the_first_line() {
    let (sends, errors) = read_all(b"1,a\nt_ms,kind\n");
    assert_eq!(sends.len(), 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 2);
    assert!(errors[0].1.contains("\"t_ms\""), "{}", errors[0].1);
}

#[test]
fn each_bad_line_is_named_and_reading_goes_on() {
    let log = b"5,a\n4,a\n6,\n7\nx,a\n1,a,b,c\n8,a\n";
    let mut reader = LogReader::new(&log[..]);
    let mut results = Vec::new();
    while let Some(record) = reader.next_record() {
        results.push(record.map(|r| r.t_ms));
    }
    // A send is returned once the next send confirms its time: the 5 after the bad lines.
    assert!(matches!(
        results[0],
        Err(LogError::Backwards {
            line: 2,
            t_ms: 4,
            previous_ms: 5
        })
    ));
    assert!(matches!(results[1], Err(LogError::EmptyKind { line: 3 })));
    assert!(matches!(results[2], Err(LogError::Malformed { line: 4, .. })));
    assert!(matches!(results[3], Err(LogError::Time { line: 5, .. })));
    assert!(matches!(results[4], Err(LogError::Malformed { line: 6, .. })));
    assert!(matches!(results[5], Ok(5)));
    assert!(matches!(results[6], Ok(8)));
    assert_eq!(results.len(), 7);
    let message = results[0].as_ref().unwrap_err().to_string();
    assert!(
        message.starts_with("line 2:") && message.contains("backwards"),
        "{message}"
    );
}

#[test]
fn equal_times_are_not_backwards() {
    let (sends, errors) = read_all(b"3,a\n3,b\n3,a\n");
    assert!(errors.is_empty());
    assert_eq!(sends.len(), 3);
}

proptest! {
    /// Arbitrary bytes never panic the reader; every error names a line of the input.
    #[test]
    fn arbitrary_input_never_panics_and_errors_name_a_line(log in proptest::collection::vec(any::<u8>(), 0..400)) {
        let lines = log.split(|&b| b == b'\n').count() as u64;
        let (sends, errors) = read_all(&log);
        for (line, message) in &errors {
            prop_assert!(*line >= 1 && *line <= lines, "line {line} of {lines}");
            let prefix = format!("line {line}:");
            prop_assert!(message.starts_with(&prefix), "{}", message);
        }
        prop_assert!(sends.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    /// Input made of a log's own characters reaches every branch of the parser, and still never
    /// panics: every line is a send, an error naming it, or ignored (blank, or the header).
    #[test]
    fn log_shaped_junk_never_panics(log in "[0-9,a_ \r\n]{0,300}") {
        let lines = log.split('\n').count() as u64;
        let (sends, errors) = read_all(log.as_bytes());
        prop_assert!(sends.len() + errors.len() <= lines as usize);
        for (line, _) in &errors {
            prop_assert!(*line >= 1 && *line <= lines);
        }
    }

    /// Log-shaped input (digits, commas, kinds, junk) parses exactly as written.
    #[test]
    fn well_formed_lines_read_back_exactly(
        sends in proptest::collection::vec((0u64..1_000, "[a-z._]{1,12}", proptest::option::of("[a-z@.]{0,8}")), 0..50)
    ) {
        let mut t = 0;
        let mut log = String::from("t_ms,kind\n");
        let mut expected = Vec::new();
        for (i, (step, kind, recipient)) in sends.iter().enumerate() {
            t += step;
            match recipient {
                Some(r) => log.push_str(&format!("{t},{kind},{r}\n")),
                None => log.push_str(&format!("{t},{kind}\n")),
            }
            expected.push((i as u64 + 2, t, kind.clone()));
        }
        let (read, errors) = read_all(log.as_bytes());
        prop_assert!(errors.is_empty(), "{:?}", errors);
        prop_assert_eq!(read, expected);
    }
}

#[test]
fn many_kinds_are_each_tallied_under_their_own_name() {
    let config = Config {
        max_kinds: 5_000,
        ..Config::default()
    };
    let mut backtest = Backtest::new(config).unwrap();
    for round in 0..3u64 {
        for i in 0..5_000u64 {
            let _ = backtest.check(round * 10_000 + i, &format!("kind.{i}"));
        }
    }
    let report = backtest.report();
    assert_eq!(report.kinds.len(), 5_000);
    assert!(
        report
            .kinds
            .values()
            .all(|kind| kind.attempted == 3 && kind.allowed == 3)
    );
    assert_eq!(report.sends, 15_000);
}

/// Replays `sends` through a `Backtest` and through a `Breaker` checked by name, as a service
/// does; returns the report and the direct breaker's decisions tallied per engine kind name.
fn replay_both(config: Config, sends: &[(u64, String)]) -> (Backtest, Breaker<ManualClock>, Tallies) {
    let mut backtest = Backtest::new(config.clone()).unwrap();
    let clock = ManualClock::new();
    let direct = Breaker::with_clock(config, clock.clone()).unwrap();
    let mut tallies = Tallies::new();
    for (t_ms, kind) in sends {
        let replayed = backtest.check(*t_ms, kind);
        clock.set(*t_ms);
        // `kind(name).check()` is `check(name)`: one look-up, counted on the kind it finds,
        // whose name says whether the registry sent it to the overflow kind.
        let handle = direct.kind(kind);
        let decision = handle.check();
        assert_eq!(replayed, decision, "{kind} at {t_ms}");
        let name = handle.name().to_string();
        drop(handle);
        let tally = tallies.entry(name).or_default();
        tally.0 += u64::from(decision.is_allowed());
        tally.1 += u64::from(!decision.is_allowed());
    }
    (backtest, direct, tallies)
}

/// Allowed and blocked sends per engine kind name.
type Tallies = BTreeMap<String, (u64, u64)>;

fn tallies_of(report: &BacktestReport) -> Tallies {
    report
        .kinds
        .iter()
        .map(|(name, kind)| (name.clone(), (kind.allowed, kind.blocked)))
        .collect()
}

/// Few kinds at a time, many over the log: `generations` of `per_generation` kinds, each sending
/// ten times over a minute, then quiet for `gap_secs` before the next generation; one kind
/// sends all along, every ten seconds.
fn short_lived_kinds(generations: u64, per_generation: u64, gap_secs: u64) -> Vec<(u64, String)> {
    let mut sends = Vec::new();
    let period_ms = (60 + gap_secs) * 1000;
    for generation in 0..generations {
        let start = generation * period_ms;
        for i in 0..10 {
            for k in 0..per_generation {
                sends.push((start + i * 6_000 + k, format!("job.{generation}.{k}")));
            }
        }
    }
    let end = generations * period_ms;
    sends.extend((0..end / 10_000).map(|i| (i * 10_000 + 500, "email.steady".to_string())));
    sends.sort();
    sends
}

/// Room for four kinds, forgotten after two minutes idle.
fn room_for_four() -> Config {
    Config {
        max_kinds: 4,
        evict_idle_secs: 120,
        ..Config::default()
    }
}

#[test]
fn short_lived_kinds_are_evicted_as_a_service_would_never_sent_to_overflow() {
    // 60 kinds over the log, at most four at once, each quiet for over 120 s before the next.
    let sends = short_lived_kinds(20, 3, 150);
    let (backtest, direct, expected) = replay_both(room_for_four(), &sends);
    let report = backtest.report();
    assert!(
        !report.kinds.contains_key(OVERFLOW_KIND),
        "{:?}",
        report.kinds.keys()
    );
    assert_eq!(report.kinds.len(), 61);
    assert_eq!(tallies_of(&report), expected);
    let (replayed, direct) = (backtest.breaker().status(), direct.status());
    assert_eq!(replayed.overflowed, 0);
    assert_eq!(direct.overflowed, 0);
    assert!(replayed.evicted > 0);
    assert_eq!(replayed.evicted, direct.evicted);
}

#[test]
fn a_crowded_log_overflows_exactly_as_a_service_would() {
    // Five kinds at once (six with the steady one) into room for four: some sends overflow,
    // and each generation's kinds get their own once the last generation's are forgotten.
    let sends = short_lived_kinds(6, 5, 150);
    let (backtest, direct, expected) = replay_both(room_for_four(), &sends);
    let report = backtest.report();
    assert!(report.kinds[OVERFLOW_KIND].attempted > 0);
    assert_eq!(tallies_of(&report), expected);
    let (replayed, direct) = (backtest.breaker().status(), direct.status());
    assert_eq!(replayed.overflowed, direct.overflowed);
    assert_eq!(replayed.evicted, direct.evicted);
}
