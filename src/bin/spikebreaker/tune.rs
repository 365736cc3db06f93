//! `spikebreaker tune`: replays each kind of a send log against a grid of settings, and against
//! copies with runaways injected, then prints per kind what the base settings and the suggested
//! ones do, and writes the suggestion as a configuration (`--out`).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use spikebreaker::Config;
use spikebreaker::backtest::{Outcome, Runaway, Tuner, Tuning};

use super::{Failure, LogArgs, Progress};

#[derive(Debug, clap::Args)]
pub(crate) struct TuneArgs {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    /// The configuration to tune (`.toml` or `.json`); the defaults when left out.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A span of the log that is not clean history (a known incident): its trips are not false
    /// and no runaway is injected there. `FROM..TO`, each milliseconds on the log's clock or an
    /// RFC 3339 time (`2025-01-20T03:00:00Z`). May be given more than once.
    #[arg(long, value_name = "FROM..TO", value_parser = span)]
    exclude: Vec<(u64, u64)>,
    /// Writes the suggested configuration (TOML): the base with each kind's suggestion as an
    /// override.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Prints every kind's outcomes as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// `FROM..TO`, each milliseconds or an RFC 3339 time.
fn span(text: &str) -> Result<(u64, u64), String> {
    let (from, to) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a span `FROM..TO`"))?;
    let (from, to) = (time(from)?, time(to)?);
    if from >= to {
        return Err(format!("{text:?} ends before it begins"));
    }
    Ok((from, to))
}

fn time(text: &str) -> Result<u64, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let at = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?} is neither milliseconds nor an RFC 3339 time: {e}"))?;
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn run(args: &TuneArgs) -> Result<(), Failure> {
    let base = super::load_config(args.config.as_deref())?;
    base.validate().map_err(|e| Failure::BadInput(e.to_string()))?;
    let mut out = args.out.as_deref().map(super::create).transpose()?;
    let trace = super::read_trace(&args.log, "tune")?;
    super::warn_unmatched("tune", &base, trace.kinds().map(|(kind, _)| kind));
    let tuner = args
        .exclude
        .iter()
        .fold(Tuner::new(base), |tuner, &(from, to)| tuner.exclude(from, to));
    let replays = trace.kinds().len() as u64 * tuner.candidates() as u64 * 2;
    let bar = super::progress_bar(Some(Progress::Replays(replays)));
    let progress = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let tuning = tuner
        .run(&trace, &progress)
        .map_err(|e| Failure::BadInput(e.to_string()));
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let tuning = tuning?;
    let suggested = tuner.suggested_config(&tuning);
    if let (Some(file), Some(path)) = (&mut out, &args.out) {
        let failed = |e: io::Error| Failure::Io(format!("cannot write {}: {e}", path.display()));
        file.write_all(toml_document(&suggested, &tuning)?.as_bytes())
            .map_err(failed)?;
        file.flush().map_err(failed)?;
    }
    super::to_stdout(|stdout| {
        if args.json {
            serde_json::to_writer_pretty(&mut *stdout, &tuning)?;
            writeln!(stdout)
        } else {
            stdout.write_all(table(&tuning).as_bytes())
        }
    })
    .map_err(|e| Failure::Io(format!("cannot write the table: {e}")))
}

/// The table: per kind, the base settings' false trips and runaway sends let through, and the
/// suggestion's.
fn table(tuning: &Tuning) -> String {
    let mut text = String::new();
    let width = tuning
        .kinds
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        text,
        "{:width$}  {:>11}  {:>28}  {:>16}  {:>28}",
        "", "", "base settings", "suggested", "suggested settings"
    );
    let _ = writeln!(
        text,
        "{:width$}  {:>11}  {:>5} {:>22}  {:>16}  {:>5} {:>22}",
        "kind", "sends", "false", "let through b/l/q", "sigmas floor fac", "false", "let through b/l/q"
    );
    for (name, kind) in &tuning.kinds {
        let c = kind.suggested.candidate;
        let _ = writeln!(
            text,
            "{name:width$}  {:>11}  {:>5} {:>22}  {:>16}  {:>5} {:>22}{}",
            thousands(kind.sends),
            kind.base.false_trips,
            leaks(&kind.base),
            format!("x{} x{} x{}", c.sigmas, c.floors, c.factors),
            kind.suggested.false_trips,
            leaks(&kind.suggested),
            if kind.clean {
                ""
            } else {
                "  (every setting trips on the history)"
            },
        );
    }
    let _ = writeln!(
        text,
        "\nlet through: runaway sends let through before the kind refused one, summed over the injected \
         bursts / slow leaks / quiet-hour runaways;\nfalse: trips on the history after its learning \
         prefix (from {} ms), outside excluded spans.",
        tuning.judged_from_ms
    );
    text
}

fn leaks(outcome: &Outcome) -> String {
    let [b, l, q] =
        [Runaway::Burst, Runaway::Leak, Runaway::Quiet].map(|r| thousands(outcome.let_through(r)));
    format!("{b}/{l}/{q}")
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The suggested configuration as TOML, each tuned kind's timescales as inline tables, checked to
/// read back as the same configuration.
fn toml_document(config: &Config, tuning: &Tuning) -> Result<String, Failure> {
    let failed = |e: &dyn std::fmt::Display| Failure::Io(format!("cannot write the configuration: {e}"));
    let mut text = String::from(
        "# Suggested by `spikebreaker tune`: the base configuration, with each kind whose most\n\
         # sensitive setting that never tripped on the history differs from the base as an override.\n\n",
    );
    let rest = Config {
        kinds: Default::default(),
        ..config.clone()
    };
    text.push_str(&toml::to_string(&rest).map_err(|e| failed(&e))?);
    for (name, patch) in &config.kinds {
        let key = toml::Value::String(name.clone()).to_string();
        let _ = writeln!(text, "\n[kinds.{key}]");
        if let Some(kind) = tuning.kinds.get(name) {
            let b = &kind.suggested;
            let _ = writeln!(
                text,
                "# {} false trips; let through (burst/leak/quiet) {} (base settings: {} false trips, {})",
                b.false_trips,
                leaks(b),
                kind.base.false_trips,
                leaks(&kind.base)
            );
        }
        let others = spikebreaker::config::KindOverride {
            minute: Default::default(),
            hour: Default::default(),
            day: Default::default(),
            ..patch.clone()
        };
        text.push_str(&toml::to_string(&others).map_err(|e| failed(&e))?);
        for (timescale, table) in [
            ("minute", &patch.minute),
            ("hour", &patch.hour),
            ("day", &patch.day),
        ] {
            let fields = toml::to_string(table).map_err(|e| failed(&e))?;
            if !fields.trim().is_empty() {
                let _ = writeln!(text, "{timescale} = {{ {} }}", fields.trim().replace('\n', ", "));
            }
        }
    }
    let read_back = Config::from_toml(&text).map_err(|e| failed(&e))?;
    if read_back != *config {
        return Err(failed(&"it does not read back as the suggestion"));
    }
    Ok(text)
}
