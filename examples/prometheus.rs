//! spikebreaker's metrics in Prometheus: installs `metrics-exporter-prometheus` with its HTTP
//! listener on 127.0.0.1, runs two hours of simulated traffic and a runaway job on a manual clock
//! (in well under a second), then scrapes its own `/metrics` and prints the tripped kind's series.
//!
//! Run with `cargo run --example prometheus --features prometheus [PORT] [--serve]` (a free port
//! if none is given). With `--serve` it keeps serving (and refreshing every 5 seconds) until
//! Ctrl-C, for a real Prometheus, or `curl`, to scrape: `cargo run --example prometheus
//! --features prometheus -- 9000 --serve`, then `curl -s localhost:9000/metrics | grep
//! spikebreaker_`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use spikebreaker::status::metrics;
use spikebreaker::{Breaker, Config, Decision, ManualClock};

const RUNAWAY: &str = "security.2fa_changed";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (flags, ports): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|arg| arg.starts_with("--"));
    let serve = match flags.as_slice() {
        [] => false,
        [flag] if flag == "--serve" => true,
        _ => return Err(format!("unknown option in {flags:?}: the only one is --serve").into()),
    };
    let port = match ports.first() {
        Some(port) => port.parse()?,
        None => TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port(),
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Install the recorder before the breaker: handles bind to the recorder in place when the
    // breaker and each kind are created. Built for a breaker refreshed every 5 seconds, it drops
    // the series of kinds the breaker has forgotten (evicted) and keeps every other.
    metrics::prometheus(Duration::from_secs(5))
        .with_http_listener(address)
        .install()?;
    println!("serving http://{address}/metrics");

    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
    breaker
        .subscribe(|event| {
            if event.is_trip() {
                println!("event: {event}");
            }
        })
        .detach();
    let welcome = breaker.kind("email.welcome");
    let runaway = breaker.kind(RUNAWAY);

    // Two hours of ordinary traffic: welcome mails 5 a second, 2FA notices one every 2 seconds.
    for tick in 0..2 * 3_600 * 10 {
        clock.advance(Duration::from_millis(100));
        if tick % 2 == 0 {
            let _ = welcome.check();
        }
        if tick % 20 == 0 {
            let _ = runaway.check();
        }
    }
    // A buggy job: 100 2FA notices a second for 20 seconds.
    let mut blocked = 0;
    for _ in 0..2_000 {
        clock.advance(Duration::from_millis(10));
        if let Decision::Blocked(_) = runaway.check() {
            blocked += 1;
        }
    }
    println!("runaway job: 2000 attempted, {blocked} blocked");
    // Export every kind's figures now, as a service does before each scrape.
    breaker.refresh();

    let exposition = scrape(address)?;
    println!("\n{RUNAWAY} in the exposition:");
    for line in exposition.lines().filter(|line| line.contains(RUNAWAY)) {
        println!("  {line}");
    }
    if !exposition.contains(&format!(
        "spikebreaker_state{{breaker=\"default\",kind=\"{RUNAWAY}\"}} 1"
    )) {
        return Err("the tripped kind is not open in the exposition".into());
    }
    if serve {
        println!("\nserving http://{address}/metrics until Ctrl-C");
        loop {
            // As a service does: every kind current before the next scrape.
            std::thread::sleep(Duration::from_secs(5));
            breaker.refresh();
        }
    }
    Ok(())
}

/// GET /metrics over a plain socket, the body returned.
fn scrape(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok(body.to_owned())
}
