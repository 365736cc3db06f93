//! `spikebreaker backtest`: replays a send log against a configuration and prints, as JSON, what
//! the breaker would have done to it; `--report` draws it as an HTML page.
//!
//! The log is read into memory and each kind replayed on its own, the kinds spread over the
//! cores. With `--decisions`, which writes every send's decision in input order, the log is
//! replayed line by line on one core instead, with the same outcome.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use spikebreaker::backtest::{Backtest, BacktestReport, LogReader, Timeline, write_html};
use spikebreaker::{Config, Decision};

use super::{Failure, LogArgs, Progress};

#[derive(Debug, clap::Args)]
pub(crate) struct BacktestArgs {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    /// A configuration (`.toml` or `.json`); the defaults when left out.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Writes `t_ms,kind,allowed|blocked` for every send, in input order.
    #[arg(long, value_name = "FILE")]
    decisions: Option<PathBuf>,
    /// Writes an HTML page (one file, viewable offline) with a chart per kind and a summary.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// The most kinds the report shows one by one (the most trips, then blocked, then sends);
    /// the others are summed in its `folded` row.
    #[arg(long, value_name = "N", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_report_kinds: u32,
}

/// How many sends between progress updates of the line-by-line replay.
const PROGRESS_EVERY: u64 = 1 << 16;

pub(crate) fn run(args: &BacktestArgs) -> Result<(), Failure> {
    let config = super::load_config(args.config.as_deref())?;
    config.validate().map_err(|e| Failure::BadInput(e.to_string()))?;
    let mut report_file = args.report.as_deref().map(super::create).transpose()?;
    let max_kinds = args.max_report_kinds as usize;
    let (report, timelines) = match &args.decisions {
        Some(path) => line_by_line(args, config.clone(), path, report_file.is_some())?,
        None => {
            let trace = super::read_trace(&args.log, "backtest")?;
            let bar = super::progress_bar(Some(Progress::Sends(trace.sends(), "replaying")));
            let progress = |sends: u64| {
                if let Some(bar) = &bar {
                    bar.set_position(sends);
                }
            };
            let replay = trace
                .replay_folded(&config, max_kinds, report_file.is_some(), &progress)
                .map_err(|e| Failure::BadInput(e.to_string()))?;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            super::warn_unmatched("backtest", &config, trace.kinds().map(|(kind, _)| kind));
            (replay.report, replay.timelines)
        }
    };
    if let Some(folded) = &report.folded {
        eprintln!(
            "spikebreaker backtest: the report shows {} of {} kinds one by one (the most trips, then blocked, then \
             sends); the other {} are summed in `folded` ({} sends, {} blocked, {} trips); --max-report-kinds shows more",
            report.kinds.len(),
            report.kinds.len() as u64 + folded.kinds,
            folded.kinds,
            folded.attempted,
            folded.blocked,
            folded.trips,
        );
    }
    if let (Some(out), Some(path)) = (&mut report_file, &args.report) {
        let failed = |e: io::Error| Failure::Io(format!("cannot write {}: {e}", path.display()));
        write_html(&report, &timelines, out).map_err(failed)?;
        out.flush().map_err(failed)?;
    }
    super::to_stdout(|stdout| {
        serde_json::to_writer_pretty(&mut *stdout, &report)?;
        writeln!(stdout)
    })
    .map_err(|e| Failure::Io(format!("cannot write the report: {e}")))
}

/// The log replayed line by line on one breaker, each decision written to `decisions`.
fn line_by_line(
    args: &BacktestArgs,
    config: Config,
    decisions: &std::path::Path,
    timelines: bool,
) -> Result<(BacktestReport, BTreeMap<String, Timeline>), Failure> {
    let mut backtest = Backtest::new(config).map_err(|e| Failure::BadInput(e.to_string()))?;
    if timelines {
        backtest.record_timelines();
    }
    let (input, size) = super::open_log(&args.log.trace)?;
    let mut out = super::create(decisions)?;
    let write_failed = |e: io::Error| Failure::Io(format!("cannot write the decisions file: {e}"));
    let progress = super::progress_bar(Some(size.map_or(Progress::Stream, Progress::Bytes)));

    let mut reader = LogReader::new(super::buffered(input)).with_max_line_bytes(args.log.max_line_bytes);
    let (mut sends, mut skipped) = (0u64, 0u64);
    while let Some(record) = reader.next_record() {
        let record = match record {
            Ok(record) => record,
            Err(error) if args.log.skip_bad_lines && error.is_bad_line() => {
                backtest.skip_line();
                skipped += 1;
                if skipped <= super::SKIPPED_SHOWN {
                    eprintln!("spikebreaker backtest: skipped {error}");
                }
                continue;
            }
            Err(error) if error.is_bad_line() => return Err(Failure::BadInput(error.to_string())),
            Err(error) => return Err(Failure::Io(error.to_string())),
        };
        let verdict = match backtest.check_sliced(record.t_ms, record.kind, &record.slices) {
            Decision::Allowed => "allowed",
            Decision::Blocked(_) => "blocked",
        };
        writeln!(out, "{},{},{verdict}", record.t_ms, csv_field(record.kind)).map_err(write_failed)?;
        sends += 1;
        if sends % PROGRESS_EVERY == 0 {
            if let Some(bar) = &progress {
                bar.set_position(reader.bytes_read());
            }
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    out.flush().map_err(write_failed)?;
    super::check_skipped(&args.log, sends, skipped)?;
    if sends == 0 {
        eprintln!("spikebreaker backtest: warning: the trace holds no sends");
    }
    super::warn_unmatched("backtest", &backtest.breaker().config(), backtest.kinds());
    let report = backtest.report_folded(args.max_report_kinds as usize);
    let mut timelines = backtest.timelines();
    timelines.retain(|kind, _| report.kinds.contains_key(kind));
    Ok((report, timelines))
}

/// A kind as a CSV field: quoted when it holds a comma or a quote.
fn csv_field(kind: &str) -> Cow<'_, str> {
    if kind.contains([',', '"']) {
        Cow::Owned(format!("\"{}\"", kind.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(kind)
    }
}
