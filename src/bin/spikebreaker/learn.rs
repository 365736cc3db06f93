//! `spikebreaker learn`: rebuilds a snapshot file from a send log, for a breaker whose snapshot
//! was lost. The log is replayed with the warm-up ceilings lifted (see `Trace::learn`), so the
//! kinds above them learn their rate instead of being held to them.

use std::io::Write;
use std::path::PathBuf;

use super::{Failure, LogArgs};

#[derive(Debug, clap::Args)]
pub(crate) struct LearnArgs {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    /// The configuration the breaker runs on (`.toml` or `.json`); the defaults when left out.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where to write the snapshot (the breaker's snapshot file, or one to restore).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(crate) fn run(args: &LearnArgs) -> Result<(), Failure> {
    let config = super::load_config(args.config.as_deref())?;
    let trace = super::read_trace(&args.log, "learn")?;
    let snapshot = trace
        .learn(&config)
        .map_err(|e| Failure::BadInput(e.to_string()))?;
    let mut out = super::create(&args.out)?;
    let failed = |e: std::io::Error| Failure::Io(format!("cannot write {}: {e}", args.out.display()));
    out.write_all(snapshot.to_json().as_bytes()).map_err(failed)?;
    out.flush().map_err(failed)?;
    eprintln!(
        "spikebreaker learn: {} kinds learned from {} sends",
        snapshot.kinds().len(),
        trace.sends()
    );
    Ok(())
}
