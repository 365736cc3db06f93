//! Fleet mode: several instances of a sender service, each seeing a share of one runaway kind,
//! trip together once the fleet-wide count crosses the threshold, instead of each waiting for
//! its own share to. Then the cost: the round trip of one sync, by number of busy kinds.
//!
//! Needs a Redis server:
//! `cargo run --release --features redis --example fleet -- [redis-url] [instances]`
//! (the URL may also come from `SPIKEBREAKER_REDIS_URL`; default `redis://127.0.0.1:6379`).

use std::time::{Duration, Instant};

use spikebreaker::fleet::{Fleet, FleetConfig};
use spikebreaker::status::State;
use spikebreaker::{Breaker, Config, KindHandle};

const RUNAWAY: &str = "security.2fa_changed";
const SYNC_MS: u64 = 50;

struct Instance {
    breaker: Breaker,
    fleet: Fleet,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("SPIKEBREAKER_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    // A prefix of its own, so that runs never see each other's counts.
    let prefix = format!("spikebreaker-example-{}", std::process::id());
    let config = FleetConfig {
        key_prefix: prefix,
        sync_interval_ms: SYNC_MS,
        ..FleetConfig::new(url.as_str())
    };

    let mut instances = Vec::new();
    for _ in 0..n {
        let breaker = Breaker::new(Config::default())?;
        let fleet = Fleet::start(breaker.clone(), config.clone())?;
        instances.push(Instance { breaker, fleet });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while instances.iter().any(|i| i.fleet.status().syncs == 0) {
        if Instant::now() > deadline {
            return Err(format!("no Redis answering at {url}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    println!("{n} instances synced through {url} every {SYNC_MS} ms");
    println!("runaway `{RUNAWAY}`: one send per instance per millisecond, spread evenly");
    let handles: Vec<KindHandle> = instances.iter().map(|i| i.breaker.kind(RUNAWAY)).collect();
    let mut allowed = vec![0u64; n];
    let started = Instant::now();
    while handles.iter().any(|h| h.state() != State::Open) && started.elapsed() < Duration::from_secs(30) {
        for (handle, allowed) in handles.iter().zip(&mut allowed) {
            if handle.check().is_allowed() {
                *allowed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for (i, (handle, allowed)) in handles.iter().zip(&allowed).enumerate() {
        let status = handle.status();
        println!(
            "  instance {i}: let {allowed} through, then {:?} ({})",
            status.state,
            status.reason.as_str()
        );
    }
    let total: u64 = allowed.iter().sum();
    let threshold = Config::default().defaults.warmup_ceiling;
    println!(
        "fleet let {total} through in {:.1} s; alone, each instance would have let {threshold} through \
         ({} in all)",
        started.elapsed().as_secs_f64(),
        threshold * n as u64
    );

    println!("round trip of one sync (one instance), by busy kinds synced:");
    let probe = &instances[0];
    // Kinds stay in the sync for a while after their last send, so the busy set grows by step.
    let mut busy = 1; // the runaway, held open
    for kinds in [1usize, 10, 100, 1000] {
        busy += kinds;
        let handles: Vec<KindHandle> = (0..kinds)
            .map(|k| probe.breaker.kind(&format!("bulk.{kinds}.{k}")))
            .collect();
        let mut seen = probe.fleet.status().syncs;
        let mut samples = Vec::new();
        while samples.len() < 100 {
            for handle in &handles {
                let _ = handle.check();
            }
            tokio::time::sleep(Duration::from_millis(SYNC_MS)).await;
            let status = probe.fleet.status();
            if let (true, Some(rtt)) = (status.syncs > seen, status.last_round_trip) {
                samples.push(rtt);
            }
            seen = status.syncs;
        }
        samples.sort();
        println!(
            "  {busy:>5} kinds: median {:>7.3} ms, p90 {:>7.3} ms",
            samples[samples.len() / 2].as_secs_f64() * 1e3,
            samples[samples.len() * 9 / 10].as_secs_f64() * 1e3
        );
    }
    for instance in instances {
        instance.fleet.shutdown().await;
    }
    Ok(())
}
