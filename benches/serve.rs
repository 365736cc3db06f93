//! What `spikebreaker serve` costs a sender over the wire, beside the framework's own ceiling
//! measured in the same run: many concurrent requests on loopback from a tonic client (and a
//! hyper one for HTTP), each server in a process of its own.
//!
//! - `serve_grpc/reference_noop_tonic`: a tonic server with the same settings answering
//!   `ShouldRateLimit` with OK and no work; `serve_grpc/should_rate_limit`: the spikebreaker
//!   server, each request one descriptor checked by the breaker (one of 16 kinds).
//! - `serve_http/reference_noop_axum`: an axum handler that takes the body and answers a fixed
//!   JSON; `serve_http/v1_check`: `POST /v1/check`.
//!
//! Criterion reports throughput (requests a second); the latency of every request measured is
//! kept, and each group ends with a table of p50 and p99 and the ratios to the reference. Then a
//! paired comparison loads the reference and spikebreaker in turn, a second each for ten rounds,
//! and prints both sides' figures and the ratios: on a machine whose other load comes and goes,
//! the ratio to trust.
//!
//! Run with `cargo bench --features serve --bench serve -- --warm-up-time 1 --measurement-time 5`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::transport::Channel;

/// Requests in flight at once.
const CONCURRENCY: usize = 64;
/// Connections they share (gRPC streams are multiplexed over them; HTTP/1.1 uses one each).
const GRPC_CONNECTIONS: usize = 4;
/// Kinds the requests go round.
const KINDS: usize = 16;
/// What the reference servers are told to be, in the environment of a copy of this binary.
const ROLE: &str = "SPIKEBREAKER_BENCH_REFERENCE";

/// The spikebreaker server's configuration: no kind trips during a run, so every request
/// measured is an allowed check on the ordinary path.
const CONFIG: &str = "[server]\nquarantine = \"off\"\n[defaults]\nwarmup_ceiling = 1000000000000\n";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("grpc") => return reference_grpc(),
        Ok("http") => return reference_http(),
        _ => {}
    }
    let mut criterion = Criterion::default().configure_from_args();
    grpc(&mut criterion);
    http(&mut criterion);
    criterion.final_summary();
}

/// A server process, killed when dropped.
struct Process {
    child: Child,
    address: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and reads the address it prints (`listening grpc=... http=...`).
fn start(mut command: Command, field: &str) -> Process {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split_whitespace()
        .find_map(|part| part.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {line:?}"))
        .parse()
        .unwrap();
    Process { child, address }
}

fn spikebreaker(dir: &std::path::Path, field: &str) -> Process {
    let config = dir.join("bench.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_spikebreaker"));
    command
        .args([
            "serve",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir)
        .env("RUST_LOG", "error");
    start(command, field)
}

/// A copy of this binary serving a reference.
fn reference(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(ROLE, role);
    command
}

/// Every request's latency in one group, for its percentiles.
#[derive(Default, Clone)]
struct Latencies(Arc<Mutex<Vec<Duration>>>);

impl Latencies {
    fn add(&self, batch: Vec<Duration>) {
        self.0.lock().unwrap().extend(batch);
    }

    /// p50 and p99.
    fn percentiles(&self) -> (Duration, Duration) {
        let mut all = self.0.lock().unwrap().clone();
        all.sort_unstable();
        let at = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
        (at(0.50), at(0.99))
    }
}

/// Runs `iters` requests, `CONCURRENCY` at a time, each made by `call`; the time they took.
fn load<F, Fut>(runtime: &tokio::runtime::Runtime, iters: u64, latencies: &Latencies, call: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    runtime.block_on(async {
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..CONCURRENCY {
            let share = iters / CONCURRENCY as u64 + u64::from((worker as u64) < iters % CONCURRENCY as u64);
            let call = call.clone();
            workers.spawn(async move {
                let mut times = Vec::with_capacity(share as usize);
                for i in 0..share {
                    let at = Instant::now();
                    call(worker * 7 + i as usize).await;
                    times.push(at.elapsed());
                }
                times
            });
        }
        while let Some(times) = workers.join_next().await {
            latencies.add(times.unwrap());
        }
        started.elapsed()
    })
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn request(n: usize) -> RateLimitRequest {
    RateLimitRequest {
        domain: "spikebreaker".into(),
        hits_addend: 1,
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "kind".into(),
                value: format!("email.bench_{}", n % KINDS),
            }],
            ..RateLimitDescriptor::default()
        }],
    }
}

/// Channels to `address`, each a connection.
fn channels(runtime: &tokio::runtime::Runtime, address: SocketAddr) -> Vec<RateLimitServiceClient<Channel>> {
    runtime.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..GRPC_CONNECTIONS {
            let channel = Channel::from_shared(format!("http://{address}"))
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .unwrap();
            clients.push(RateLimitServiceClient::new(channel));
        }
        clients
    })
}

fn grpc(c: &mut Criterion) {
    let runtime = client_runtime();
    let dir = tempfile::tempdir().unwrap();
    let ours = spikebreaker(dir.path(), "grpc=");
    let noop = start(reference("grpc"), "grpc=");
    let mut group = c.benchmark_group("serve_grpc");
    group.throughput(Throughput::Elements(1));
    let mut table = Vec::new();
    let call = |address| {
        let clients = channels(&runtime, address);
        move |n: usize| {
            let mut client = clients[n % GRPC_CONNECTIONS].clone();
            async move {
                let answer = client.should_rate_limit(request(n)).await.unwrap().into_inner();
                assert_eq!(answer.overall_code, Code::Ok as i32);
            }
        }
    };
    let calls = [call(noop.address), call(ours.address)];
    for (name, call) in ["reference_noop_tonic", "should_rate_limit"]
        .into_iter()
        .zip(&calls)
    {
        let latencies = Latencies::default();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| load(&runtime, iters, &latencies, call.clone()))
        });
        table.push((name, latencies));
    }
    group.finish();
    report("serve_grpc", &table);
    let [reference, our_call] = calls;
    paired(&runtime, "serve_grpc", (&noop, reference), (&ours, our_call));
}

fn http(c: &mut Criterion) {
    let runtime = client_runtime();
    let dir = tempfile::tempdir().unwrap();
    let ours = spikebreaker(dir.path(), "http=");
    let noop = start(reference("http"), "http=");
    let mut group = c.benchmark_group("serve_http");
    group.throughput(Throughput::Elements(1));
    let mut table = Vec::new();
    let call = |address| {
        let connections = runtime.block_on(http_connections(address));
        move |n: usize| {
            let connection = Arc::clone(&connections[n % CONCURRENCY]);
            async move { http_check(&connection, n).await }
        }
    };
    let calls = [call(noop.address), call(ours.address)];
    for (name, call) in ["reference_noop_axum", "v1_check"].into_iter().zip(&calls) {
        let latencies = Latencies::default();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| load(&runtime, iters, &latencies, call.clone()))
        });
        table.push((name, latencies));
    }
    group.finish();
    report("serve_http", &table);
    let [reference, our_call] = calls;
    paired(&runtime, "serve_http", (&noop, reference), (&ours, our_call));
}

type Http1 = tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>>;

/// One kept-alive HTTP/1.1 connection per request in flight.
async fn http_connections(address: SocketAddr) -> Vec<Arc<Http1>> {
    let mut connections = Vec::new();
    for _ in 0..CONCURRENCY {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        connections.push(Arc::new(tokio::sync::Mutex::new(sender)));
    }
    connections
}

async fn http_check(connection: &Http1, n: usize) {
    use http_body_util::BodyExt;
    let body = format!(r#"{{"kind": "email.bench_{}"}}"#, n % KINDS);
    let request = hyper::Request::post("/v1/check")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let mut sender = connection.lock().await;
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
}

/// Rounds of the paired comparison, and how long each side runs in a round.
const ROUNDS: u32 = 10;
const ROUND: Duration = Duration::from_millis(1_000);

/// The reference and spikebreaker loaded in turn, a second each, for ten rounds (the order
/// swapped each round), so that a machine whose other load comes and goes weighs on both alike:
/// prints each side's requests a second, p50 and p99, the server's own CPU time per request, and
/// the ratios.
fn paired<R, RF, O, OF>(
    runtime: &tokio::runtime::Runtime,
    group: &str,
    (reference_process, reference): (&Process, R),
    (our_process, ours): (&Process, O),
) where
    R: Fn(usize) -> RF + Clone + Send + 'static,
    RF: Future<Output = ()> + Send,
    O: Fn(usize) -> OF + Clone + Send + 'static,
    OF: Future<Output = ()> + Send,
{
    let (reference_latencies, our_latencies) = (Latencies::default(), Latencies::default());
    let (mut reference_count, mut our_count) = (0, 0);
    let cpu_before = (cpu_secs(reference_process), cpu_secs(our_process));
    for round in 0..ROUNDS {
        let mut reference_round =
            || reference_count += load_for(runtime, &reference_latencies, reference.clone());
        if round % 2 == 0 {
            reference_round();
            our_count += load_for(runtime, &our_latencies, ours.clone());
        } else {
            our_count += load_for(runtime, &our_latencies, ours.clone());
            reference_round();
        }
    }
    let cpu_per_request =
        |before: f64, process: &Process, count: u64| (cpu_secs(process) - before) / count as f64 * 1e6;
    let reference_cpu = cpu_per_request(cpu_before.0, reference_process, reference_count);
    let our_cpu = cpu_per_request(cpu_before.1, our_process, our_count);
    let seconds = (ROUND * ROUNDS).as_secs_f64();
    let (reference_p50, reference_p99) = reference_latencies.percentiles();
    let (our_p50, our_p99) = our_latencies.percentiles();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!("{group}: paired, {ROUNDS} rounds of {ROUND:?} each, alternating ({CONCURRENCY} in flight)");
    println!(
        "  reference   {:>9.0} requests/s   p50 {:>8.1} µs   p99 {:>8.1} µs   server CPU {reference_cpu:.1} µs a request",
        reference_count as f64 / seconds,
        micros(reference_p50),
        micros(reference_p99)
    );
    println!(
        "  spikebreaker {:>8.0} requests/s   p50 {:>8.1} µs   p99 {:>8.1} µs   server CPU {our_cpu:.1} µs a request",
        our_count as f64 / seconds,
        micros(our_p50),
        micros(our_p99)
    );
    println!(
        "  throughput {:.2}x the reference, p99 {:.2}x",
        our_count as f64 / reference_count as f64,
        our_p99.as_secs_f64() / reference_p99.as_secs_f64()
    );
}

/// The CPU time a server process has used (user and system), in seconds; 0 where `/proc` is not.
fn cpu_secs(process: &Process) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", process.child.id())) else {
        return 0.0;
    };
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports them in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Requests made by `call`, `CONCURRENCY` at a time, for one [`ROUND`].
fn load_for<F, Fut>(runtime: &tokio::runtime::Runtime, latencies: &Latencies, call: F) -> u64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    runtime.block_on(async {
        let deadline = Instant::now() + ROUND;
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..CONCURRENCY {
            let call = call.clone();
            workers.spawn(async move {
                let mut times = Vec::new();
                let mut n = worker;
                while Instant::now() < deadline {
                    let at = Instant::now();
                    call(n).await;
                    times.push(at.elapsed());
                    n += CONCURRENCY;
                }
                times
            });
        }
        let mut count = 0;
        while let Some(times) = workers.join_next().await {
            let times = times.unwrap();
            count += times.len() as u64;
            latencies.add(times);
        }
        count
    })
}

/// Prints each benchmark's p50 and p99 and their ratios to the first (the reference).
fn report(group: &str, table: &[(&str, Latencies)]) {
    if table
        .iter()
        .any(|(_, latencies)| latencies.0.lock().unwrap().is_empty())
    {
        return; // filtered out
    }
    let (_, reference) = table[0].1.percentiles();
    println!("{group}: latency of every request measured ({CONCURRENCY} in flight)");
    for (name, latencies) in table {
        let (p50, p99) = latencies.percentiles();
        println!(
            "  {name:<24} p50 {:>8.1} µs   p99 {:>8.1} µs   p99 vs reference {:.2}x",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p99.as_secs_f64() / reference.as_secs_f64()
        );
    }
}

/// The reference gRPC server: the same tonic settings as spikebreaker's, OK and no work.
fn reference_grpc() {
    struct Noop;

    #[tonic::async_trait]
    impl RateLimitService for Noop {
        async fn should_rate_limit(
            &self,
            request: tonic::Request<RateLimitRequest>,
        ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
            let statuses = request
                .get_ref()
                .descriptors
                .iter()
                .map(|_| DescriptorStatus {
                    code: Code::Ok as i32,
                    ..DescriptorStatus::default()
                })
                .collect();
            Ok(tonic::Response::new(RateLimitResponse {
                overall_code: Code::Ok as i32,
                statuses,
                ..RateLimitResponse::default()
            }))
        }
    }

    client_runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening grpc={}", listener.local_addr().unwrap());
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(RateLimitServiceServer::new(Noop).max_decoding_message_size(64 * 1024))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
}

/// The reference HTTP server: an axum handler that takes the body and answers fixed JSON.
fn reference_http() {
    client_runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening http={}", listener.local_addr().unwrap());
        let router = axum::Router::new().route(
            "/v1/check",
            axum::routing::post(|_body: axum::body::Bytes| async {
                axum::Json(serde_json::json!({ "decision": "allowed" }))
            }),
        );
        axum::serve(listener, router).await.unwrap();
    });
}
