//! The send log's fourth column: read, replayed (line by line and held in memory alike), and a
//! tripped slice drawn in the HTML report.

use std::fmt::Write as _;

use spikebreaker::Config;
use spikebreaker::backtest::{Backtest, LogReader, Trace, write_html};

use crate::support::{MINUTE_MS, MONDAY_MS};

/// Four hours of 60, 30 and 3 a minute to three prefixes, then 100 a minute to the smallest, as
/// a send log with the fourth column.
fn pumped_log() -> String {
    let mut log = String::from("t_ms,kind,recipient,slices\n");
    let mut sends = Vec::new();
    let minutes = 4 * 60 + 3;
    for minute in 0..minutes {
        let mut rates = vec![("+447", 60u64), ("+336", 30), ("+491", 3)];
        if minute >= 4 * 60 {
            rates[2].1 = 100;
        }
        for (prefix, per_minute) in rates {
            for i in 0..per_minute {
                sends.push((
                    MONDAY_MS + minute * MINUTE_MS + i * MINUTE_MS / per_minute,
                    prefix,
                ));
            }
        }
    }
    sends.sort_unstable();
    for (i, (t, prefix)) in sends.into_iter().enumerate() {
        writeln!(log, "{t},sms.login_code,+{i},prefix={prefix};tenant=acme").unwrap();
    }
    log
}

#[test]
fn the_fourth_column_is_read_and_replayed_alike_line_by_line_and_in_memory() {
    let log = pumped_log();
    let mut reader = LogReader::new(log.as_bytes());
    let mut backtest = Backtest::new(Config::default()).unwrap();
    let first = reader.next_record().unwrap().unwrap();
    assert_eq!(first.recipient, Some("+0"));
    assert_eq!(
        first.slices.iter().collect::<Vec<_>>(),
        [("prefix", "+336"), ("tenant", "acme")]
    );
    let _ = backtest.check_sliced(first.t_ms, first.kind, &first.slices);
    while let Some(record) = reader.next_record() {
        let record = record.unwrap();
        let _ = backtest.check_sliced(record.t_ms, record.kind, &record.slices);
    }
    let line_by_line = backtest.report();
    let kind = &line_by_line.kinds["sms.login_code"];
    assert!(kind.slice_trips >= 1 && kind.slice_blocked > 200, "{kind:?}");
    assert_eq!(kind.trips, 0);
    let trip = kind.slice_transitions.iter().find(|e| e.is_trip()).unwrap();
    assert_eq!(trip.slice.as_ref().unwrap().to_string(), "prefix=+491");

    let in_memory = Trace::read(log.as_bytes())
        .unwrap()
        .replay(&Config::default())
        .unwrap();
    assert_eq!(in_memory, line_by_line);
}

#[test]
fn a_log_of_three_columns_replays_as_it_always_did() {
    // The same recipient a hundred times: without a fourth column nothing opts in.
    let log: String = (0..100)
        .map(|i| format!("{},email.welcome,a@example.com\n", i * 1_000))
        .collect();
    let report = Trace::read(log.as_bytes())
        .unwrap()
        .replay(&Config::default())
        .unwrap();
    assert_eq!(report.kinds["email.welcome"].blocked, 0);
    // With it, the eleventh is a repeat.
    let log: String = (0..100)
        .map(|i| format!("{},email.welcome,a@example.com,\n", i * 1_000))
        .collect();
    let report = Trace::read(log.as_bytes())
        .unwrap()
        .replay(&Config::default())
        .unwrap();
    assert_eq!(report.kinds["email.welcome"].blocked, 90);
    assert_eq!(report.kinds["email.welcome"].slice_blocked, 90);
}

#[test]
fn the_report_shows_a_tripped_slice() {
    let log = pumped_log();
    let trace = Trace::read(log.as_bytes()).unwrap();
    let replay = trace.replay_with(&Config::default(), true, &|_| {}).unwrap();
    let mut page = Vec::new();
    write_html(&replay.report, &replay.timelines, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("Slices that tripped"),
        "the kind's section lists its tripped slices"
    );
    assert!(page.contains("<td>prefix=+491</td>"));
    assert!(
        page.contains("(expected share 3.2%)"),
        "what the trip was judged on"
    );
    assert!(page.contains("slice trip"), "the summary row counts it");
}
