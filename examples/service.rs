//! One whole sender service, as it links spikebreaker in: a configuration file, a breaker with a
//! name and a snapshot file, Prometheus metrics, a SQLite quarantine on the guarded sender and
//! its releaser, and one HTTP router for operators (the breaker's controls, the quarantine's, and
//! `/metrics`) on 127.0.0.1. `start` is the wiring (the README shows it); `main` plays an
//! incident against it.
//!
//! `cargo run --example service --features admin,quarantine,prometheus` plays it and exits (CI runs it): a
//! job loops over every customer with a security notice, the kind trips after 20 and the rest are
//! held; an operator, over HTTP, finds the real customers' notices among those held, releases
//! them, discards the runaway and resets the kind; the releaser sends what was released; the
//! metrics and the snapshot file show it. Each step is checked.
//!
//! With `-- --serve [PORT]` it keeps serving afterwards (port 9180 by default), for curl:
//!
//! ```text
//! curl -s localhost:9180/status/security.2fa_changed
//! curl -s localhost:9180/quarantine
//! curl -s localhost:9180/metrics | grep spikebreaker_
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use spikebreaker::guard::ByNotification;
use spikebreaker::quarantine::{Item, Quarantine, Releaser, Serving, SqliteStore, Summary};
use spikebreaker::status::metrics;
use spikebreaker::{
    Breaker, Config, GuardError, Guarded, Notification, Sender, Snapshot, SystemClock, admin,
};

/// The service's configuration file: the defaults for every kind, and security notices held to
/// 20 a minute from their first send, kept open after a trip until an operator resets them.
const CONFIG: &str = r#"
[kinds."security.*"]
minute = { floor = 10, ceiling = 20 }
recovery = "manual"
"#;

const KIND: &str = "security.2fa_changed";

/// A notification: serde, so that a quarantine can hold it.
#[derive(Debug, Serialize, Deserialize)]
struct Email {
    kind: String,
    to: String,
    job: String,
}

impl Notification for Email {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn recipient(&self) -> Option<&str> {
        Some(&self.to)
    }
}

/// The provider. Here it records what it was given: the recipient, and the idempotency key of a
/// released notification.
#[derive(Clone, Default)]
struct Smtp {
    outbox: Arc<Mutex<Vec<Sent>>>,
}

/// What the provider was given.
#[derive(Debug)]
struct Sent {
    to: String,
    /// The idempotency key of a released notification.
    key: Option<String>,
}

impl Sender<Email> for Smtp {
    type Output = ();
    type Error = std::io::Error;

    fn send(&self, email: Email) -> std::io::Result<()> {
        self.outbox.lock().unwrap().push(Sent {
            to: email.to,
            key: None,
        });
        Ok(())
    }

    fn send_released(&self, email: Email, key: &str) -> std::io::Result<()> {
        // A real provider takes `key` as its idempotency key: a release repeated after a crash
        // then reaches its recipient once.
        let key = Some(key.to_owned());
        self.outbox.lock().unwrap().push(Sent { to: email.to, key });
        Ok(())
    }
}

// The README's "One whole service" shows `Mailer` and `start` as they stand here, line for line (a
// test in src/guide/mod.rs compares them): change both together.

/// The guarded sender the service sends through.
type Mailer = Guarded<Smtp, ByNotification, SystemClock, Quarantine>;

/// Builds the service from the files in `dir`: its guarded sender, the operators' router, and its
/// releaser (serving while kept).
fn start(dir: &Path) -> Result<(Mailer, Router, Serving), Box<dyn Error>> {
    // The recorder first: a breaker's metric handles bind to the recorder in place when it is built.
    let prometheus = metrics::prometheus(Duration::from_secs(60)).install_recorder()?; // scraped every minute
    let breaker = Breaker::builder()
        .config(Config::from_file(dir.join("spikebreaker.toml"))?)
        .name("mailer") // the `breaker` label of its metrics
        .snapshot_file(dir.join("spikebreaker.json")) // what it learned survives restarts
        .build()?;

    // Every notification the breaker refuses is held here before `send` returns.
    let quarantine = Quarantine::new(SqliteStore::open(dir.join("quarantine.db"))?);
    let mailer = Guarded::new(Smtp::default(), breaker.clone()).with_quarantine(quarantine.clone());

    // The releaser sends what operators release, at the kind's pace, on a thread of its own
    // until `releaser` is dropped: woken by each release, it waits for the next.
    let releaser = Releaser::<Email>::new(quarantine.clone()).spawn(mailer.clone())?;

    // One router for operators: the breaker's controls, the quarantine's, and the metrics.
    let scraped = breaker.clone();
    let metrics = move || async move {
        scraped.refresh(); // every kind's figures current for this scrape
        prometheus.render()
    };
    let router = admin::router(breaker)
        .merge(spikebreaker::quarantine::admin::router(quarantine))
        .route("/metrics", get(metrics));
    Ok((mailer, router, releaser))
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let serve = match args.next().as_deref() {
        None => false,
        Some("--serve") => true,
        Some(other) => {
            return Err(format!("unknown argument {other:?}: the only one is --serve [PORT]").into());
        }
    };
    let port: u16 = if serve {
        args.next().map_or(Ok(9180), |port| port.parse())?
    } else {
        0
    };

    // The service's files: its configuration, and where its snapshot and quarantine go.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("spikebreaker.toml"), CONFIG)?;
    let (mailer, router, releaser) = start(dir.path())?;

    // The operators' router on its own runtime, beside the (synchronous) sending code.
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)))?;
    let address = listener.local_addr()?;
    let server = runtime.spawn(spikebreaker::admin::serve(listener, router));
    println!(
        "operators: http://{address} (/status, /quarantine, /metrics); files in {}",
        dir.path().display()
    );

    incident(&mailer, address, dir.path())?;

    if serve {
        println!("serving http://{address} until Ctrl-C");
        runtime.block_on(server)??;
    }
    // At shutdown the releaser finishes the send under way, if any, and stops.
    let released = releaser.stop();
    assert_eq!(released.sent, 3);
    println!("releaser: stopped, {} sent", released.sent);
    Ok(())
}

/// 03:00: a job loops over 200 customers with a "your two-step verification settings changed"
/// notice; three real customers change their settings meanwhile. Then an operator steps in.
fn incident(mailer: &Mailer, address: SocketAddr, dir: &Path) -> Result<(), Box<dyn Error>> {
    let real_customers = [50, 120, 170];
    let (mut sent, mut held) = (0, 0);
    for i in 0..200 {
        let job = if real_customers.contains(&i) {
            "settings-page"
        } else {
            "2fa-migration"
        };
        match mailer.send(email(KIND, &format!("user{i}@example.com"), job)) {
            Ok(()) => sent += 1,
            Err(GuardError::Quarantined(_)) => held += 1,
            Err(GuardError::Blocked(blocked)) => return Err(format!("not held: {blocked}").into()),
            Err(GuardError::Sender(error)) => return Err(error.into()),
        }
    }
    println!("runaway: {sent} sent, {held} held");
    assert_eq!(
        (sent, held),
        (20, 180),
        "the kind's ceiling lets 20 a minute through"
    );
    let receipt = mailer.send(email("email.receipt", "a@example.com", "checkout"));
    assert!(receipt.is_ok(), "other kinds flow");

    // The operator looks: the kind is open, and one trip holds 180 notices.
    let status = call(address, "GET", &format!("/status/{KIND}"), "")?;
    assert!(status.contains(r#""state":"open""#), "{status}");
    let answer = call(address, "GET", &format!("/quarantine/{KIND}"), "")?;
    let summary: Summary = serde_json::from_str(&answer)?;
    let trip = &summary.trips[0];
    println!(
        "held: trip {} of {}, {} notices to {} recipients",
        trip.trip, trip.kind, trip.held, trip.recipients
    );
    assert_eq!((summary.trips.len(), trip.held), (1, 180));

    // Finds the real customers' notices among those held, releases them, discards the rest and
    // resets the kind.
    let page = format!("/quarantine/{KIND}/items?trip={}&limit=1000", trip.trip);
    let items: Vec<Item> = serde_json::from_str(&call(address, "GET", &page, "")?)?;
    let real: Vec<u64> = items
        .iter()
        .filter(|item| {
            item.decode::<Email>()
                .is_ok_and(|email| email.job == "settings-page")
        })
        .map(|item| item.id)
        .collect();
    let release = format!(r#"{{"trip": {}, "ids": {real:?}, "per_minute": 600}}"#, trip.trip);
    let approved = call(address, "POST", &format!("/quarantine/{KIND}/release"), &release)?;
    assert_eq!(approved, r#"{"approved":3}"#);
    let discard = format!(r#"{{"trip": {}, "reason": "INC-4711"}}"#, trip.trip);
    let discarded = call(address, "POST", &format!("/quarantine/{KIND}/discard"), &discard)?;
    assert_eq!(discarded, r#"{"discarded":177}"#);
    call(address, "POST", &format!("/kinds/{KIND}/reset"), "")?;
    println!("operator: released items {real:?}, discarded the other 177, reset {KIND}");

    // The releaser sends the three, each with its idempotency key.
    let outbox = &mailer.get_ref().outbox;
    let released = || -> Vec<String> {
        let outbox = outbox.lock().unwrap();
        outbox
            .iter()
            .filter_map(|sent| Some(format!("{} ({})", sent.to, sent.key.as_ref()?)))
            .collect()
    };
    // Counted once each send has returned and been recorded: after the outbox has it.
    let counted = format!(r#"spikebreaker_quarantine_released_total{{breaker="mailer",kind="{KIND}"}} 3"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut metrics = call(address, "GET", "/metrics", "")?;
    while !(released().len() == 3 && metrics.lines().any(|line| line == counted)) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        metrics = call(address, "GET", "/metrics", "")?;
    }
    println!("releaser: sent {:?}", released());
    assert_eq!(released().len(), 3, "the releaser sent what was released");

    // The metrics, as Prometheus scrapes them, and the snapshot file.
    for series in [
        format!(r#"spikebreaker_quarantine_held_total{{breaker="mailer",kind="{KIND}"}} 180"#),
        format!(r#"spikebreaker_quarantine_released_total{{breaker="mailer",kind="{KIND}"}} 3"#),
        format!(r#"spikebreaker_state{{breaker="mailer",kind="{KIND}"}} 0"#),
    ] {
        assert!(
            metrics.lines().any(|line| line == series),
            "no `{series}` in\n{metrics}"
        );
        println!("metrics: {series}");
    }
    mailer.breaker().save_snapshot()?; // as at a graceful shutdown (and every 5 minutes)
    let path = dir.join("spikebreaker.json");
    let saved = std::fs::read_to_string(&path)?;
    Snapshot::from_json(&saved)?;
    assert!(saved.contains(&format!("\"{KIND}\"")), "{saved}");
    println!("snapshot: {}", path.display());
    Ok(())
}

fn email(kind: &str, to: &str, job: &str) -> Email {
    Email {
        kind: kind.into(),
        to: to.into(),
        job: job.into(),
    }
}

/// One request over a plain socket, as an operator's tool sends it (JSON): the body of a 200, or
/// an error with the status line and body.
fn call(address: SocketAddr, method: &str, path: &str, body: &str) -> Result<String, Box<dyn Error>> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(format!("{method} {path}: {status} {body}").into());
    }
    Ok(body.to_owned())
}
