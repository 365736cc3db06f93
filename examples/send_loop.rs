//! A tight loop of allowed sends, for reading the send path under a profiler, where
//! instruction counts are repeatable on a busy machine:
//!
//! ```text
//! cargo build --release --example send_loop
//! valgrind --tool=callgrind --dump-instr=yes target/release/examples/send_loop handle 1000000
//! callgrind_annotate --auto=no callgrind.out.<pid>
//! ```
//!
//! Modes: `handle` (a resolved handle on the system clock), `name` (a look-up by name each send),
//! `replay` (a manual clock set before each send, as a backtest replays), `guarded` and
//! `quarantined` (a `Guarded` sender that does nothing, without and with a quarantine: the same
//! instructions, since a quarantine is reached from refusals only). The second argument is the
//! number of sends (default 10,000,000). Prints the sends per second it saw.

use std::hint::black_box;
use std::time::Instant;

use spikebreaker::config::KindConfig;
use spikebreaker::quarantine::{MemoryStore, Quarantine};
use spikebreaker::{Breaker, Config, Guarded, ManualClock, Sender};

#[path = "../tests/support/null_sender.rs"]
mod null_sender;
use null_sender::{Note, NullSender};

const KIND: &str = "email.welcome";

/// A configuration whose threshold the loop never reaches: every send is allowed (the warm-up
/// ceiling at its largest, a billion sends a minute, far above what a run of the loop sends).
fn config() -> Config {
    Config {
        defaults: KindConfig {
            warmup_ceiling: 1_000_000_000,
            ..KindConfig::default()
        },
        ..Config::default()
    }
}

fn run(sends: u64, mut send: impl FnMut(u64) -> bool) -> u64 {
    let mut allowed = 0;
    for i in 0..sends {
        allowed += u64::from(send(black_box(i)));
    }
    allowed
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "handle".into());
    let sends: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000_000);

    let started = Instant::now();
    let allowed = match mode.as_str() {
        "handle" => {
            let breaker = Breaker::new(config())?;
            let handle = breaker.kind(KIND);
            run(sends, |_| handle.check().is_allowed())
        }
        "name" => {
            let breaker = Breaker::new(config())?;
            run(sends, |_| breaker.check(black_box(KIND)).is_allowed())
        }
        "replay" => {
            let clock = ManualClock::new();
            let breaker = Breaker::with_clock(config(), clock.clone())?;
            let handle = breaker.kind(KIND);
            // A send every 2 ms of simulated time: buckets roll over as they would in a replay.
            run(sends, |i| {
                clock.set(i * 2);
                handle.check().is_allowed()
            })
        }
        "guarded" => {
            let guarded = Guarded::new(NullSender(7), Breaker::new(config())?);
            run(sends, |_| guarded.send(Note(black_box(KIND))).is_ok())
        }
        "quarantined" => {
            let quarantine = Quarantine::new(MemoryStore::new(1));
            let guarded = Guarded::new(NullSender(7), Breaker::new(config())?).with_quarantine(quarantine);
            run(sends, |_| guarded.send(Note(black_box(KIND))).is_ok())
        }
        other => {
            return Err(format!(
                "unknown mode {other:?}: expected handle, name, replay, guarded or quarantined"
            )
            .into());
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "mode={mode} sends={sends} allowed={allowed} sends_per_sec={:.0}",
        sends as f64 / secs
    );
    Ok(())
}
