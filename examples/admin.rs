//! The admin router on 127.0.0.1: a runaway kind trips, then an operator looks at it, holds it
//! open and resets it over HTTP.
//!
//! `cargo run --example admin --features admin` plays the operator itself and exits;
//! `cargo run --example admin --features admin -- --serve [PORT]` keeps serving for curl:
//!
//! ```text
//! curl -s localhost:9180/status
//! curl -s localhost:9180/status/security.2fa_changed
//! curl -s -X POST -H 'content-type: application/json' localhost:9180/kinds/security.2fa_changed/force-open
//! curl -s -X POST -H 'content-type: application/json' 'localhost:9180/kinds/security.2fa_changed/dry-run?on=true'
//! curl -s -X POST -H 'content-type: application/json' localhost:9180/kinds/security.2fa_changed/reset
//! ```
//!
//! (A `POST` must say `Content-Type: application/json`, which no cross-site HTML form can.)

use std::net::{Ipv4Addr, SocketAddr};

use spikebreaker::{Breaker, Config, admin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let serve = args.next().is_some_and(|arg| arg == "--serve");
    let port = if serve {
        args.next().map_or(Ok(9180), |port| port.parse())?
    } else {
        0
    };

    let breaker = Breaker::new(Config::default())?;
    breaker
        .subscribe(|event| {
            println!(
                "event: {} {} -> {} ({})",
                event.kind,
                event.from.as_str(),
                event.to.as_str(),
                event.reason.as_str()
            )
        })
        .detach();
    // A runaway job on a kind with no baseline yet: the warm-up ceiling stops it at 500.
    let runaway = breaker.kind("security.2fa_changed");
    let blocked = (0..1_500).filter(|_| !runaway.check().is_allowed()).count();
    let _ = breaker.check("email.welcome");
    println!("runaway job: 1500 attempted, {blocked} blocked");
    assert_eq!(blocked, 1_000, "500 through: the warm-up ceiling");

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let address = listener.local_addr()?;
    println!("admin on http://{address}");
    // Served with bounds no client can push past (a plain `axum::serve` has none).
    let server = tokio::spawn(admin::serve(listener, admin::router(breaker)));
    if serve {
        server.await??;
        return Ok(());
    }
    for (method, path) in [
        ("GET", "/status/security.2fa_changed"),
        ("POST", "/kinds/security.2fa_changed/force-open"),
        ("POST", "/kinds/security.2fa_changed/reset"),
        ("GET", "/status/no.such.kind"),
    ] {
        println!("\n{method} {path}\n{}", request(address, method, path).await?);
    }
    Ok(())
}

/// One bodiless request over a plain socket, as JSON (the router refuses a state-changing request
/// of any other type, as a cross-site form would send): the status line and the body.
async fn request(address: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok(format!("{status}\n{body}"))
}
