//! `spikebreaker`: what the breaker would have done to a send log (`backtest`, in
//! `spikebreaker/backtest.rs`), the settings each kind should have (`tune`, in
//! `spikebreaker/tune.rs`), a snapshot rebuilt from a send log (`learn`, in
//! `spikebreaker/learn.rs`), with a store's feature, what a quarantine holds (`quarantine`, in
//! `spikebreaker/quarantine.rs`), and with `serve`, the breaker as a sidecar for senders in any
//! language (`serve`, in `spikebreaker/serve/`). What the first three share, reading the log and
//! the configuration, is here.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use spikebreaker::backtest::{Trace, TraceReader};
use spikebreaker::{Breaker, Config};

mod backtest;
mod learn;
mod tune;

#[cfg(any(feature = "quarantine", feature = "redis"))]
mod quarantine;

#[cfg(feature = "serve")]
mod serve;

/// Per-kind spike detection for notification senders.
#[derive(Debug, Parser)]
#[command(name = "spikebreaker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replays a send log (`t_ms,kind[,recipient[,slices]]` lines, sorted by time) and prints a JSON
    /// report of what the breaker would have allowed, blocked and when it would have tripped.
    Backtest(backtest::BacktestArgs),
    /// Replays a send log against a grid of settings per kind, and against copies with runaways
    /// injected, and suggests for each kind the most sensitive settings that never trip on it.
    Tune(tune::TuneArgs),
    /// Rebuilds a snapshot file from a send log of traffic you trust, for a breaker whose
    /// snapshot was lost: what each kind would have learned, with the warm-up ceilings lifted.
    Learn(learn::LearnArgs),
    /// Looks at, releases and discards the notifications a quarantine holds.
    #[cfg(any(feature = "quarantine", feature = "redis"))]
    Quarantine(quarantine::QuarantineArgs),
    /// Serves the breaker to senders in any language: Envoy's rate-limit protocol over gRPC,
    /// HTTP JSON, the quarantine over the wire, the admin routes and `/metrics`.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
}

/// How the send log is read: shared by every command that reads one.
#[derive(Debug, clap::Args)]
struct LogArgs {
    /// The send log, or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// Skips bad lines (counted as `skipped_lines` in the report) instead of stopping.
    #[arg(long)]
    skip_bad_lines: bool,
    /// With --skip-bad-lines, the largest share of lines that may be skipped (0 to 1) before the
    /// run fails with exit code 2.
    #[arg(long, value_name = "SHARE", default_value_t = 0.01, value_parser = share)]
    max_skipped_share: f64,
    /// The longest line read, in bytes (1 to 1 GiB); a longer line is a bad line.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = line_bytes)]
    max_line_bytes: usize,
    /// Cores to use; all of them by default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

/// `--max-line-bytes`: 1 to 1 GiB, so that a line is bounded by memory one can spare.
fn line_bytes(text: &str) -> Result<usize, String> {
    const MOST: usize = 1 << 30;
    match text.parse::<usize>() {
        Ok(bytes) if (1..=MOST).contains(&bytes) => Ok(bytes),
        _ => Err(format!("{text:?} is not a number of bytes from 1 to {MOST}")),
    }
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
/// How many skipped lines are named on standard error.
const SKIPPED_SHOWN: u64 = 5;

enum Failure {
    BadInput(String),
    Io(String),
}

fn main() -> ExitCode {
    let (name, outcome) = match Cli::parse().command {
        Command::Backtest(args) => ("backtest", in_pool(args.log.threads, || backtest::run(&args))),
        Command::Tune(args) => ("tune", in_pool(args.log.threads, || tune::run(&args))),
        Command::Learn(args) => ("learn", in_pool(args.log.threads, || learn::run(&args))),
        #[cfg(any(feature = "quarantine", feature = "redis"))]
        Command::Quarantine(args) => return quarantine::run(&args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => return serve::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(message)) => {
            eprintln!("spikebreaker {name}: {message}");
            ExitCode::from(BAD_INPUT)
        }
        Err(Failure::Io(message)) => {
            eprintln!("spikebreaker {name}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` on a pool of `threads` cores (all by default).
fn in_pool(threads: Option<u16>, work: impl FnOnce() -> Result<(), Failure> + Send) -> Result<(), Failure> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.map_or(0, usize::from))
        .build()
        .map_err(|e| Failure::Io(format!("cannot start the threads: {e}")))?;
    pool.install(work)
}

/// The log named by `--trace` and its size, if it is a file.
fn open_log(path: &Path) -> Result<(Box<dyn Read + Send>, Option<u64>), Failure> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(io::stdin()), None));
    }
    let file =
        File::open(path).map_err(|e| Failure::BadInput(format!("cannot open {}: {e}", path.display())))?;
    let size = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(file), size))
}

/// Reads the whole log into memory, as `args` say, with a bar on a terminal.
fn read_trace(args: &LogArgs, program: &str) -> Result<Trace, Failure> {
    let (input, size) = open_log(&args.trace)?;
    let bar = progress_bar(size.map(Progress::Bytes));
    let mut reader = TraceReader::new(input).with_max_line_bytes(args.max_line_bytes);
    let mut shown = 0u64;
    if args.skip_bad_lines {
        reader = reader.skip_bad_lines(move |error| {
            shown += 1;
            if shown <= SKIPPED_SHOWN {
                eprintln!("spikebreaker {program}: skipped {error}");
            }
        });
    }
    if let Some(bar) = &bar {
        let bar = bar.clone();
        reader = reader.on_progress(move |bytes| bar.set_position(bytes));
    }
    let trace = reader.read().map_err(|error| {
        if error.is_bad_line() {
            Failure::BadInput(error.to_string())
        } else {
            Failure::Io(error.to_string())
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let trace = trace?;
    check_skipped(args, trace.sends(), trace.skipped_lines())?;
    if trace.sends() == 0 {
        eprintln!("spikebreaker {program}: warning: the trace holds no sends");
    }
    Ok(trace)
}

/// Fails if more than `--max-skipped-share` of the lines were skipped.
fn check_skipped(args: &LogArgs, sends: u64, skipped: u64) -> Result<(), Failure> {
    let lines = sends + skipped;
    if skipped as f64 > args.max_skipped_share * lines as f64 {
        return Err(Failure::BadInput(format!(
            "skipped {skipped} of {lines} lines ({:.2}%), more than --max-skipped-share {}: the log or its format is \
             likely wrong (the first skipped lines are named above)",
            100.0 * skipped as f64 / lines as f64,
            args.max_skipped_share
        )));
    }
    Ok(())
}

fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    path.map_or_else(
        || Ok(Config::default()),
        |path| Config::from_file(path).map_err(|e| Failure::BadInput(e.to_string())),
    )
}

/// Warns of each `[kinds."…"]` key that applies to no kind of the log: a mistyped name or
/// pattern, or a kind that never sent in it (the overflow kind's key aside).
fn warn_unmatched<'k>(program: &str, config: &Config, kinds: impl IntoIterator<Item = &'k str>) {
    for key in config.unmatched_keys(kinds) {
        if key != Breaker::OVERFLOW_KIND {
            eprintln!("spikebreaker {program}: warning: [kinds.{key:?}] applies to no kind in the log");
        }
    }
}

/// What a bar counts.
enum Progress {
    /// Bytes of a log of this size.
    Bytes(u64),
    /// Bytes of a log of unknown size.
    Stream,
    /// Sends, of this many, while `what` is done to them.
    Sends(u64, &'static str),
    /// Replays, of this many.
    Replays(u64),
}

/// A bar when standard error is a terminal; nothing otherwise.
fn progress_bar(what: Option<Progress>) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let style = |template: &str| {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
    };
    let bar = match what.unwrap_or(Progress::Stream) {
        Progress::Bytes(size) => ProgressBar::new(size).with_style(style(
            "reading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )),
        Progress::Stream => {
            ProgressBar::new_spinner().with_style(style("reading {spinner} {bytes} read, {bytes_per_sec}"))
        }
        Progress::Sends(total, what) => ProgressBar::new(total).with_style(style(&format!(
            "{what} {{bar:40}} {{human_pos}}/{{human_len}} sends, eta {{eta}}"
        ))),
        Progress::Replays(total) => ProgressBar::new(total).with_style(style(
            "tuning {bar:40} {human_pos}/{human_len} replays of a kind, eta {eta}",
        )),
    };
    Some(bar)
}

/// A new file to write to, buffered; an error names the path.
fn create(path: &Path) -> Result<io::BufWriter<File>, Failure> {
    File::create(path)
        .map(|file| io::BufWriter::with_capacity(1 << 16, file))
        .map_err(|e| Failure::BadInput(format!("cannot create {}: {e}", path.display())))
}

/// Writes to standard output through `write`. A reader that went away (`spikebreaker … | head`,
/// once `head` has what it wants) ends the output quietly, as it ends any Unix tool's: no
/// message, and success, since nothing failed that the reader still wanted.
fn to_stdout(write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match write(&mut stdout).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// A buffered standard input or file for the line-by-line replay.
fn buffered(input: Box<dyn Read + Send>) -> BufReader<Box<dyn Read + Send>> {
    BufReader::with_capacity(1 << 16, input)
}
