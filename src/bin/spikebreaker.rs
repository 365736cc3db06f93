//! `spikebreaker backtest`: replays a send log against a configuration and prints, as JSON, what
//! the breaker would have done to it. `spikebreaker quarantine` (with a store's feature) is in
//! `spikebreaker/quarantine.rs`.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use spikebreaker::backtest::{Backtest, LogReader};
use spikebreaker::{Config, Decision};

#[cfg(any(feature = "quarantine", feature = "redis"))]
#[path = "spikebreaker/quarantine.rs"]
mod quarantine;

/// Per-kind spike detection for notification senders.
#[derive(Debug, Parser)]
#[command(name = "spikebreaker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replays a send log (`t_ms,kind[,recipient]` lines, sorted by time) and prints a JSON
    /// report of what the breaker would have allowed, blocked and when it would have tripped.
    Backtest(BacktestArgs),
    /// Looks at, releases and discards the notifications a quarantine holds.
    #[cfg(any(feature = "quarantine", feature = "redis"))]
    Quarantine(quarantine::QuarantineArgs),
}

#[derive(Debug, clap::Args)]
struct BacktestArgs {
    /// The send log, or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// A configuration (`.toml` or `.json`); the defaults when left out.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Writes `t_ms,kind,allowed|blocked` for every send, in input order.
    #[arg(long, value_name = "FILE")]
    decisions: Option<PathBuf>,
    /// Skips bad lines (counted as `skipped_lines` in the report) instead of stopping.
    #[arg(long)]
    skip_bad_lines: bool,
    /// With --skip-bad-lines, the largest share of lines that may be skipped (0 to 1) before the
    /// run fails with exit code 2.
    #[arg(long, value_name = "SHARE", default_value_t = 0.01, value_parser = share)]
    max_skipped_share: f64,
    /// The longest line read, in bytes; a longer line is a bad line.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    max_line_bytes: usize,
}

/// A share from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a share from 0 to 1")),
    }
}

/// Bad input (log or configuration): exit code 2, like a usage error.
const BAD_INPUT: u8 = 2;
/// How many sends between progress updates.
const PROGRESS_EVERY: u64 = 1 << 16;
/// How many skipped lines are named on standard error.
const SKIPPED_SHOWN: u64 = 5;

enum Failure {
    BadInput(String),
    Io(String),
}

fn main() -> ExitCode {
    let args = match Cli::parse().command {
        Command::Backtest(args) => args,
        #[cfg(any(feature = "quarantine", feature = "redis"))]
        Command::Quarantine(args) => return quarantine::run(&args),
    };
    match backtest(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(message)) => {
            eprintln!("spikebreaker backtest: {message}");
            ExitCode::from(BAD_INPUT)
        }
        Err(Failure::Io(message)) => {
            eprintln!("spikebreaker backtest: {message}");
            ExitCode::FAILURE
        }
    }
}

fn backtest(args: &BacktestArgs) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => load_config(path)?,
        None => Config::default(),
    };
    let mut backtest = Backtest::new(config).map_err(|e| Failure::BadInput(e.to_string()))?;
    let (input, size): (Box<dyn BufRead>, Option<u64>) = if args.trace.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.trace)
            .map_err(|e| Failure::BadInput(format!("cannot open {}: {e}", args.trace.display())))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 16, file)), size)
    };
    let mut decisions = match &args.decisions {
        Some(path) => Some(BufWriter::with_capacity(
            1 << 16,
            File::create(path)
                .map_err(|e| Failure::BadInput(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => None,
    };
    let write_failed = |e: io::Error| Failure::Io(format!("cannot write the decisions file: {e}"));
    let progress = progress_bar(size);

    let mut reader = LogReader::new(input).with_max_line_bytes(args.max_line_bytes);
    let (mut sends, mut skipped) = (0u64, 0u64);
    while let Some(record) = reader.next_record() {
        let record = match record {
            Ok(record) => record,
            Err(error) if args.skip_bad_lines && error.is_bad_line() => {
                backtest.skip_line();
                skipped += 1;
                if skipped <= SKIPPED_SHOWN {
                    eprintln!("spikebreaker backtest: skipped {error}");
                }
                continue;
            }
            Err(error) if error.is_bad_line() => return Err(Failure::BadInput(error.to_string())),
            Err(error) => return Err(Failure::Io(error.to_string())),
        };
        let decision = backtest.check(record.t_ms, record.kind);
        if let Some(out) = &mut decisions {
            let verdict = match decision {
                Decision::Allowed => "allowed",
                Decision::Blocked(_) => "blocked",
            };
            writeln!(out, "{},{},{verdict}", record.t_ms, csv_field(record.kind)).map_err(write_failed)?;
        }
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
    if let Some(mut out) = decisions {
        out.flush().map_err(write_failed)?;
    }
    let lines = sends + skipped;
    if skipped as f64 > args.max_skipped_share * lines as f64 {
        return Err(Failure::BadInput(format!(
            "skipped {skipped} of {lines} lines ({:.2}%), more than --max-skipped-share {}: the log or its format is \
             likely wrong (the first skipped lines are named above)",
            100.0 * skipped as f64 / lines as f64,
            args.max_skipped_share
        )));
    }
    if sends == 0 {
        eprintln!("spikebreaker backtest: warning: the trace holds no sends");
    }

    let mut stdout = io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &backtest.report())
        .map_err(|e| Failure::Io(format!("cannot write the report: {e}")))?;
    writeln!(stdout).map_err(|e| Failure::Io(format!("cannot write the report: {e}")))
}

/// A kind as a CSV field: quoted when it holds a comma or a quote.
fn csv_field(kind: &str) -> Cow<'_, str> {
    if kind.contains([',', '"']) {
        Cow::Owned(format!("\"{}\"", kind.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(kind)
    }
}

fn load_config(path: &Path) -> Result<Config, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let parsed = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Config::from_toml(&text),
        Some("json") => Config::from_json(&text),
        _ => {
            return Err(Failure::BadInput(format!(
                "{}: a configuration must be a .toml or .json file",
                path.display()
            )));
        }
    };
    parsed.map_err(|e| Failure::BadInput(format!("{}: {e}", path.display())))
}

/// A bar over the log's bytes when standard error is a terminal; nothing otherwise.
fn progress_bar(size: Option<u64>) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = match size {
        Some(size) => ProgressBar::new(size).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    Some(bar)
}
