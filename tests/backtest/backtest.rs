//! The replay engine and the send-log reader, through the public API.

use proptest::prelude::*;
use std::collections::BTreeMap;

use crate::support::{DAY_MS, HOUR_MS, Profile, Traffic, burst, merge, tagged};
use spikebreaker::backtest::{
    Backtest, BacktestReport, LogError, LogReader, Timeline, Trace, TraceReader, write_html,
};
use spikebreaker::status::State;
use spikebreaker::{Breaker, Config, Decision, ManualClock};

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
fn a_header_is_only_a_header_as_the_first_line_that_is_not_blank() {
    let (sends, errors) = read_all(b"1,a\nt_ms,kind\n");
    assert_eq!(sends.len(), 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 2);
    assert!(errors[0].1.contains("\"t_ms\""), "{}", errors[0].1);
    // After blank lines, as an export with a leading empty line has it (before: refused as a
    // bad time, "line 3: time \"t_ms\"").
    let (sends, errors) = read_all(b"\n \r\nt_ms,kind\n1,a\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(sends, [(4, 1, "a".into())]);
    // Only once: a second header is a bad line, after blank lines or not.
    let (_, errors) = read_all(b"\nt_ms,kind\n\nt_ms,kind\n1,a\n");
    assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [4]);
}

#[test]
fn a_stray_time_is_the_only_line_skipped() {
    // 2000 is a typo among times a millisecond apart: it alone is wrong (before: the 3 after it
    // was skipped too, as "backwards", 2 lines skipped where 1 is wrong).
    let (sends, errors) = read_all(b"1,a\n2,a\n2000,a\n3,a\n4,a\n5,a\n");
    let times: Vec<u64> = sends.iter().map(|s| s.1).collect();
    assert_eq!(times, [1, 2, 3, 4, 5]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 3);
    assert!(errors[0].1.contains("a stray time"), "{}", errors[0].1);
    // A line that is early rather than the one before it late: only it is skipped.
    let (sends, errors) = read_all(b"1,a\n5,a\n3,a\n6,a\n7,a\n");
    assert_eq!(sends.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 5, 6, 7]);
    assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [3]);
    // The stray time is named before the line it had put in doubt is returned.
    let mut reader = LogReader::new(&b"1,a\n9,a\n2,a\n3,a\n"[..]);
    let mut lines = Vec::new();
    while let Some(record) = reader.next_record() {
        lines.push(record.map_or_else(|e| e.line(), |r| r.line));
    }
    assert_eq!(lines, [1, 2, 3, 4]);
}

#[test]
fn each_bad_line_is_named_and_reading_goes_on() {
    let log = b"5,a\n4,a\n6,\n7\nx,a\n1,a,b,c=d,e\n8,a\n9,a,b,c\n10,a\n";
    let mut reader = LogReader::new(&log[..]);
    let mut results = Vec::new();
    while let Some(record) = reader.next_record() {
        results.push(record.map(|r| r.t_ms));
    }
    // A send is returned once a later send confirms its time, and a line earlier than it waits
    // for that too (either could be the wrong one): the 8 confirms the 5, so the 4 was early.
    assert!(matches!(results[0], Err(LogError::EmptyKind { line: 3 })));
    assert!(matches!(results[1], Err(LogError::Malformed { line: 4, .. })));
    assert!(matches!(results[2], Err(LogError::Time { line: 5, .. })));
    assert!(matches!(results[3], Err(LogError::Malformed { line: 6, .. })));
    assert!(matches!(results[4], Ok(5)));
    assert!(matches!(
        results[5],
        Err(LogError::Backwards {
            line: 2,
            t_ms: 4,
            previous_ms: 5
        })
    ));
    // A fourth column that is not `name=value` pairs names what is wrong.
    assert!(
        matches!(&results[6], Err(LogError::Slices { line: 8, problem }) if problem.contains("`name=value`"))
    );
    assert!(matches!(results[7], Ok(8)));
    assert!(matches!(results[8], Ok(10)));
    assert_eq!(results.len(), 9);
    let message = results[5].as_ref().unwrap_err().to_string();
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

// The log read whole ([`Trace`]) and replayed kind by kind, on every core: the same outcome as
// the line-by-line replay, and the same reading of every bad line.

/// Line-by-line: the report and the timelines of a [`Backtest`] fed `log` through a [`LogReader`].
fn line_by_line(config: Config, log: &[u8]) -> (BacktestReport, BTreeMap<String, Timeline>) {
    let mut backtest = Backtest::new(config).unwrap();
    backtest.record_timelines();
    let mut reader = LogReader::new(log);
    while let Some(record) = reader.next_record() {
        match record {
            Ok(record) => {
                let _ = backtest.check(record.t_ms, record.kind);
            }
            Err(_) => backtest.skip_line(),
        }
    }
    (backtest.report(), backtest.timelines())
}

/// Three days of six kinds, one of them running away on the third day, another leaking.
fn busy_log() -> String {
    let start = crate::support::MONDAY_MS;
    let profiles = vec![
        Profile::daily("email.receipt", 40.0, 6.0),
        Profile::daily("sms.login_code", 12.0, 4.0),
        Profile::daily("push.promo", 3.0, 8.0),
        Profile::steady("security.2fa_changed", 0.5),
        Profile::daily("email.digest", 1.0, 2.0),
        Profile::steady("email.welcome", 5.0),
    ];
    let ordinary = Traffic::new(profiles, 7, start, start + 3 * DAY_MS);
    let incident = merge(
        tagged(burst(start + 2 * DAY_MS + 3 * HOUR_MS, 5_000, 50.0), 3),
        tagged(burst(start + 2 * DAY_MS + 14 * HOUR_MS, 4_000, 2.0), 4),
    );
    let names = [
        "email.receipt",
        "sms.login_code",
        "push.promo",
        "security.2fa_changed",
        "email.digest",
        "email.welcome",
    ];
    let mut log = String::from("t_ms,kind,recipient\n");
    for (t, kind) in merge(ordinary, incident) {
        log.push_str(&format!("{t},{},someone@example.com\n", names[kind]));
    }
    log
}

#[test]
fn kind_by_kind_on_every_core_equals_line_by_line_exactly() {
    let log = busy_log();
    let trace = Trace::read(log.as_bytes()).unwrap();
    let (expected, expected_timelines) = line_by_line(Config::default(), log.as_bytes());
    assert!(
        expected.kinds.values().map(|k| k.trips).sum::<u64>() >= 2,
        "the log trips"
    );
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let replay = pool
            .install(|| trace.replay_with(&Config::default(), true, &|_| {}))
            .unwrap();
        assert_eq!(replay.report, expected, "{threads} threads");
        assert_eq!(replay.timelines, expected_timelines, "{threads} threads");
    }
    // Without timelines, the same decisions.
    assert_eq!(trace.replay(&Config::default()).unwrap(), expected);
}

#[test]
fn a_log_with_more_kinds_than_room_is_replayed_on_one_breaker_and_still_agrees() {
    let mut log = String::new();
    for t in 0..3_000u64 {
        log.push_str(&format!("{},kind.{}\n", t * 10, t % 7));
    }
    let config = Config {
        max_kinds: 4,
        ..Config::default()
    };
    let trace = Trace::read(log.as_bytes()).unwrap();
    let (expected, _) = line_by_line(config.clone(), log.as_bytes());
    assert!(expected.kinds.contains_key(OVERFLOW_KIND));
    assert_eq!(trace.replay(&config).unwrap(), expected);
}

/// 200 kinds sent once each (a user id in the kind), then three jobs running away together.
fn many_kinds_and_three_runaways() -> String {
    let mut log = String::new();
    for user in 0..200u64 {
        log.push_str(&format!("{},user.{user}\n", user * 1_000));
    }
    for i in 0..600u64 {
        for job in ["job.a", "job.b", "job.c"] {
            log.push_str(&format!("{},{job}\n", 200_000 + i));
        }
    }
    log
}

#[test]
fn a_report_over_its_bound_shows_the_kinds_that_matter_and_folds_the_rest() {
    let log = many_kinds_and_three_runaways();
    let trace = Trace::read(log.as_bytes()).unwrap();
    // Kind by kind (room for all), and on one breaker (room for 50 of the 203: the users fill
    // it, overflow, and give their room to the jobs once idle for a minute).
    let configs = [
        Config::default(),
        Config {
            max_kinds: 50,
            evict_idle_secs: 60,
            ..Config::default()
        },
    ];
    for config in configs {
        let whole = trace.replay(&config).unwrap();
        assert_eq!(whole.folded, None);
        let replay = trace.replay_folded(&config, 5, true, &|_| {}).unwrap();
        let report = &replay.report;
        assert_eq!(report.kinds.len(), 5);
        for job in ["job.a", "job.b", "job.c"] {
            assert!(
                report.kinds[job].trips >= 1,
                "{job} shown: {:?}",
                report.kinds.keys()
            );
        }
        // Shown rows are the whole report's, and the folded row sums the others exactly.
        for (kind, row) in &report.kinds {
            assert_eq!(row, &whole.kinds[kind], "{kind}");
        }
        let folded = report.folded.as_ref().expect("the rest folded");
        assert_eq!(folded.kinds as usize, whole.kinds.len() - 5);
        let sum = |f: fn(&spikebreaker::backtest::KindReport) -> u64, kinds: &BTreeMap<String, _>| {
            kinds.values().map(f).sum::<u64>()
        };
        assert_eq!(
            sum(|k| k.attempted, &report.kinds) + folded.attempted,
            report.sends
        );
        assert_eq!(
            sum(|k| k.blocked, &report.kinds) + folded.blocked,
            sum(|k| k.blocked, &whole.kinds)
        );
        assert_eq!(
            sum(|k| k.trips, &report.kinds) + folded.trips,
            sum(|k| k.trips, &whole.kinds)
        );
        // Timelines for the kinds shown only, as a full replay records them.
        let full = trace.replay_with(&config, true, &|_| {}).unwrap();
        assert!(replay.timelines.keys().eq(report.kinds.keys()));
        for (kind, timeline) in &replay.timelines {
            assert_eq!(timeline, &full.timelines[kind], "{kind}");
        }
        // Line by line, folded while reporting, and folded after: the same report.
        let mut backtest = Backtest::new(config.clone()).unwrap();
        let mut reader = LogReader::new(log.as_bytes());
        while let Some(Ok(record)) = reader.next_record() {
            let _ = backtest.check(record.t_ms, record.kind);
        }
        assert_eq!(&backtest.report_folded(5), report);
        let mut folded_after = backtest.report();
        folded_after.fold(5);
        assert_eq!(&folded_after, report);
        assert_eq!(backtest.kinds().len(), whole.kinds.len());
    }
}

/// Each kind's sends as [`LogReader`] reads them (bad lines skipped), and the lines skipped.
fn read_by_kind_line_by_line(log: &[u8]) -> (BTreeMap<String, Vec<u64>>, Vec<u64>) {
    let (sends, errors) = read_all(log);
    let mut kinds: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, t, kind) in sends {
        kinds.entry(kind).or_default().push(t);
    }
    (kinds, errors.iter().map(|e| e.0).collect())
}

fn read_by_kind_whole(log: &[u8]) -> (BTreeMap<String, Vec<u64>>, Vec<u64>) {
    let mut skipped = Vec::new();
    let trace = TraceReader::new(log)
        .skip_bad_lines(|error| skipped.push(error.line()))
        .read()
        .unwrap();
    assert_eq!(trace.skipped_lines(), skipped.len() as u64);
    let kinds = trace
        .kinds()
        .map(|(kind, times)| (kind.to_owned(), times.to_vec()))
        .collect();
    (kinds, skipped)
}

#[test]
fn the_whole_log_reads_as_the_line_reader_reads_it() {
    let logs: [&[u8]; 11] = [
        b"\xEF\xBB\xBFt_ms,kind\n1,a\n2,b\n",
        b"1,a\n5,b\n4,a\n6,a\n",
        b"1,a\n2,a\n2000,a\n3,a\n4,a\n5,b\n",
        b"1,a\n\"2\",\"b, c\"\n3,a\n",
        b"1,a\n2,\n3,\xff\n4,a\x1b\n5,a,b,c\n6, a \r\n7,\xc3\xa9t\xc3\xa9\n",
        b"t_ms,kind\nt_ms,kind\n1,a",
        b"\n\nt_ms,kind\n1,a\nt_ms,kind\n",
        b"1,a\n9,a\n2,a\n3,a\n",
        b"1,a\n9,a\n5,a\n2,a\n3,a\n",
        b"",
        b"\n\n   \n",
    ];
    for log in logs {
        assert_eq!(
            read_by_kind_whole(log),
            read_by_kind_line_by_line(log),
            "{}",
            String::from_utf8_lossy(log)
        );
    }
}

#[test]
fn a_bad_line_past_the_first_block_is_named_with_its_line() {
    // About 30 MB: the reader's blocks are 8 MB, so the bad lines fall in later blocks: a bad
    // time, a stray time, a late line.
    let mut log = String::with_capacity(21 << 20);
    let mut t = 0u64;
    for line in 1..=1_000_000u64 {
        t += 1;
        match line {
            600_000 => log.push_str("not a time,a\n"),
            700_000 => log.push_str(&format!("{},a\n", t * 1_000)),
            900_000 => log.push_str("5,b\n"),
            _ => log.push_str(&format!("{t},kind.{}.with.a.longer.name\n", line % 3)),
        }
    }
    let (whole, skipped) = read_by_kind_whole(log.as_bytes());
    // The stray time alone is skipped, not the line after it too.
    assert_eq!(skipped, [600_000, 700_000, 900_000]);
    assert_eq!((whole, skipped), read_by_kind_line_by_line(log.as_bytes()));
    let error = Trace::read(log.as_bytes()).unwrap_err();
    assert_eq!(error.line(), 600_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn log_shaped_junk_reads_the_same_whole_and_line_by_line(log in "[0-9,ab\" \r\n]{0,300}") {
        prop_assert_eq!(read_by_kind_whole(log.as_bytes()), read_by_kind_line_by_line(log.as_bytes()));
    }
}

#[test]
fn the_html_report_has_a_chart_per_kind_and_stays_small() {
    // 200 kinds over 30 days, each sent every ten minutes; one runs away.
    let mut log = String::new();
    let start = crate::support::MONDAY_MS;
    for step in 0..(30 * 144u64) {
        for kind in 0..200u64 {
            log.push_str(&format!("{},kind.{kind:03}\n", start + step * 600_000 + kind));
        }
        if step == 20 * 144 {
            for i in 0..2_000u64 {
                log.push_str(&format!("{},kind.000\n", start + step * 600_000 + 200 + i * 10));
            }
        }
    }
    let trace = Trace::read(log.as_bytes()).unwrap();
    let replay = trace.replay_with(&Config::default(), true, &|_| {}).unwrap();
    let mut page = Vec::new();
    write_html(&replay.report, &replay.timelines, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 200);
    assert!(page.len() < 200 * 20_000, "{} bytes for 200 kinds", page.len());
    // The kind that ran away comes first, its trip explained by the window it was judged on.
    let first = page.find("data-kind=\"kind.000\"").unwrap();
    assert!(first < page.find("data-kind=\"kind.001\"").unwrap());
    // A kind that sends once in ten minutes gets a floor of its own, not the default 50.
    assert!(
        page.contains("minute window 11 &gt; 10 (the floor"),
        "the trip's window"
    );
}
