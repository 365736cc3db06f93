//! A seeded send log for trying the backtest and the tuner at scale: `t_ms,kind` lines on
//! standard output, from Monday 2025-01-06 00:00 UTC, kinds with daily and weekly cycles and
//! overdispersed bursts (`tests/support`'s traffic model), scaled so the log holds about
//! `--sends` sends.
//!
//! ```text
//! cargo run --release --example trace -- --days 30 --kinds 20 --sends 50000000 > trace.csv
//! cargo run --release --example trace -- --days 21 --kinds 8 --sends 2000000 --incident > trace.csv
//! ```
//!
//! `--incident` adds, two thirds into the log at 03:00, a runaway of 20,000 sends at 50 a second
//! on the first kind and a slow leak of 60 a minute for six hours on the second. `--seed N`
//! draws other traffic.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{self, BufWriter, Write};

use support::{DAY_MS, HOUR_MS, Profile, Rng, Traffic, burst, merge, poisson_sends, tagged};

/// Monday 2025-01-06 00:00 UTC.
const START_MS: u64 = 1_736_121_600_000;
const NAMES: [&str; 8] = [
    "security.2fa_changed",
    "email.receipt",
    "sms.login_code",
    "push.promo",
    "email.welcome",
    "email.digest",
    "push.reminder",
    "sms.delivery",
];

struct Args {
    days: u64,
    kinds: usize,
    sends: f64,
    seed: u64,
    incident: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        days: 14,
        kinds: 8,
        sends: 1e6,
        seed: 1,
        incident: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || words.next().ok_or(format!("{word} needs a value"));
        match word.as_str() {
            "--days" => args.days = value()?.parse().map_err(|e| format!("--days: {e}"))?,
            "--kinds" => args.kinds = value()?.parse().map_err(|e| format!("--kinds: {e}"))?,
            "--sends" => args.sends = value()?.parse().map_err(|e| format!("--sends: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--incident" => args.incident = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.days == 0 || args.kinds == 0 {
        return Err("--days and --kinds must be at least 1".into());
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let end_ms = START_MS + args.days * DAY_MS;
    let mut rng = Rng::new(args.seed);
    let mut profiles: Vec<Profile> = (0..args.kinds)
        .map(|i| {
            let name = match i / NAMES.len() {
                0 => NAMES[i].to_owned(),
                n => format!("{}.{n}", NAMES[i % NAMES.len()]),
            };
            let mut profile = Profile::daily(Box::leak(name.into_boxed_str()), 1.0, 2.0 + 8.0 * rng.unit());
            profile.weekend = 0.4 + 0.6 * rng.unit();
            profile.burst_cv = 0.2 + 0.3 * rng.unit();
            // Kinds from rare to busy: relative sizes over two orders of magnitude.
            profile.peak_per_minute = 10f64.powf(2.0 * rng.unit());
            profile
        })
        .collect();
    // Scale the kinds so the whole log holds about `--sends`.
    let mean: f64 = profiles
        .iter()
        .map(|p| {
            let hours = args.days * 24;
            let total: f64 = (0..hours)
                .map(|h| p.rate_per_minute(START_MS + h * HOUR_MS))
                .sum();
            total * 60.0
        })
        .sum();
    let scale = args.sends / mean.max(f64::MIN_POSITIVE);
    for profile in &mut profiles {
        profile.peak_per_minute *= scale;
    }
    let names: Vec<&str> = profiles.iter().map(|p| p.kind).collect();

    let traffic = Traffic::new(profiles, args.seed, START_MS, end_ms);
    let incident_at = START_MS + args.days * 2 / 3 * DAY_MS + 3 * HOUR_MS;
    let incident: Box<dyn Iterator<Item = (u64, usize)>> = if args.incident {
        let runaway = tagged(burst(incident_at, 20_000, 50.0), 0);
        let leak_kind = 1.min(names.len() - 1);
        let leak_from = incident_at + DAY_MS;
        let leak = tagged(
            poisson_sends(|_| 60.0, args.seed, leak_from, leak_from + 6 * HOUR_MS),
            leak_kind,
        );
        Box::new(merge(runaway, leak))
    } else {
        Box::new(std::iter::empty())
    };
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    writeln!(out, "t_ms,kind")?;
    let mut sends = 0u64;
    for (t_ms, kind) in merge(traffic, incident) {
        writeln!(out, "{t_ms},{}", names[kind])?;
        sends += 1;
    }
    out.flush()?;
    eprintln!(
        "{sends} sends of {} kinds over {} days ({} a minute on average)",
        names.len(),
        args.days,
        sends / (args.days * 1440).max(1)
    );
    Ok(())
}
