//! `spikebreaker serve`: one breaker as a sidecar, for senders in any language. A thin shell over
//! the library: it parses requests, asks the breaker (and the quarantine), and answers; every
//! decision, figure and store is the library's, so a sender over the wire and a sender linked
//! with the crate are treated alike.
//!
//! - gRPC (`server.grpc`): Envoy's rate-limit service, v3 (`rls.rs`), and the gRPC health
//!   service.
//! - HTTP (`server.http`, `http.rs`): `POST /v1/check`, lyft's `POST /json`, the quarantine over
//!   the wire, `/metrics`, `/healthz`, and the library's admin routes under `/admin`.
//! - Signals: `SIGHUP` reloads the configuration file (a bad one leaves the running
//!   configuration); `SIGTERM` and `SIGINT` stop taking requests, finish those in flight, save
//!   the snapshot and exit.

mod check;
mod http;
mod json;
mod quarantine;
mod rls;
mod settings;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use parking_lot::RwLock;
use spikebreaker::admin::{self, ServeLimits};
use spikebreaker::fleet::Fleet;
use spikebreaker::guard::ByNotification;
use spikebreaker::quarantine::{
    Lender, MemoryStore, Quarantine, RedisOptions, RedisStore, SqliteOptions, SqliteStore,
};
use spikebreaker::{Breaker, Clock, Config, Guarded, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::watch;

use check::Answer;
use settings::{ServerSection, Settings, StoreChoice};

/// `spikebreaker serve`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML or JSON): the breaker's configuration, with an optional
    /// `[server]` section. Without one, the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the gRPC services listen (overrides `server.grpc`; `""` for nowhere).
    #[arg(long, value_name = "ADDR")]
    grpc: Option<String>,
    /// Where the HTTP routes listen (overrides `server.http`; `""` for nowhere).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Where the snapshot file and the quarantine live (overrides `server.state_dir`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Runs the breaker on a manual clock starting at this time (Unix ms), moved only by `POST
    /// /admin/clock`: for tests that replay traffic over the wire. Exists in debug builds only,
    /// so a release binary cannot be started on a clock that does not move.
    #[cfg(debug_assertions)]
    #[arg(long, value_name = "MS", hide = true)]
    manual_clock_at: Option<u64>,
}

/// Exit code for a configuration that cannot be used.
const BAD_CONFIG: u8 = 2;

/// Runs the server until `SIGTERM` or `SIGINT`.
pub(crate) fn run(args: &ServeArgs) -> ExitCode {
    init_logging();
    let settings = match settings_from(args) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("spikebreaker serve: {message}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spikebreaker serve: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        #[cfg(debug_assertions)]
        if let Some(start_ms) = args.manual_clock_at {
            tracing::warn!(
                start_ms,
                "running on a manual clock, moved by POST /admin/clock: for tests only"
            );
            let clock = spikebreaker::ManualClock::starting_at(start_ms);
            return serve(settings, args.config.clone(), clock.clone(), Some(clock)).await;
        }
        serve(settings, args.config.clone(), SystemClock::new(), None).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("spikebreaker serve: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs on standard error, `info` and above unless `RUST_LOG` names a level.
fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|level| level.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// The file's settings, the flags laid over them.
fn settings_from(args: &ServeArgs) -> Result<Settings, String> {
    let mut settings = settings::load(args.config.as_deref())?;
    if let Some(grpc) = &args.grpc {
        settings.server.grpc.clone_from(grpc);
    }
    if let Some(http) = &args.http {
        settings.server.http.clone_from(http);
    }
    if let Some(dir) = &args.state_dir {
        settings.server.state_dir.clone_from(dir);
    }
    settings.server.validate()?;
    Ok(settings)
}

/// What every request handler shares.
pub(crate) struct App<C: Clock> {
    /// The breaker, guarding the server's answers.
    guarded: Guarded<Answer, ByNotification, C>,
    /// The breaker's clock.
    clock: C,
    /// The server's settings as started (a reload changes the breaker's configuration only).
    server: ServerSection,
    /// The breaker's configuration in force, for what a status reports (a window's length).
    config: RwLock<Arc<Config>>,
    /// The file to reload from.
    config_path: Option<PathBuf>,
    /// Where refused notifications handed over the wire are held.
    quarantine: Option<Quarantine>,
    /// Lends the released items to the senders that pull them.
    lender: Option<Lender>,
    /// The Prometheus exposition.
    metrics: PrometheusHandle,
    /// The manual clock that `POST /admin/clock` moves, in a test build started on one.
    manual_clock: Option<spikebreaker::ManualClock>,
}

impl<C: Clock> App<C> {
    pub(crate) fn breaker(&self) -> &Breaker<C> {
        self.guarded.breaker()
    }

    /// The breaker's configuration in force.
    pub(crate) fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read())
    }

    /// Reads the configuration file again and puts the breaker's part in force; an error leaves
    /// the running configuration as it is. Changes to `[server]` take effect at the next start.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let path = self
            .config_path
            .as_deref()
            .ok_or("the server was started without a configuration file: there is nothing to reload")?;
        let settings = settings::load(Some(path))?;
        self.breaker()
            .reload(settings.config.clone())
            .map_err(|error| error.to_string())?;
        *self.config.write() = Arc::new(settings.config);
        if settings.server != self.server {
            tracing::warn!("the [server] section changed: it takes effect at the next start");
        }
        tracing::info!(path = %path.display(), "configuration reloaded");
        Ok(())
    }

    /// Exports every kind's figures (and recoveries due) and drops the series of kinds forgotten.
    pub(crate) fn refresh(&self) {
        self.breaker().refresh();
        self.metrics.run_upkeep();
    }
}

/// How long series of kinds the breaker no longer updates stay in `/metrics`.
const METRICS_IDLE: Duration = Duration::from_secs(600);
/// How often the breaker's figures are exported and due recoveries made without a request.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How long a graceful stop waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Starts everything, serves until a stop signal, then saves the snapshot.
async fn serve<C: Clock>(
    settings: Settings,
    config_path: Option<PathBuf>,
    clock: C,
    manual_clock: Option<spikebreaker::ManualClock>,
) -> Result<(), String> {
    let Settings { server, config } = settings;
    // Installed before the breaker, so that its handles bind to it.
    let metrics = PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::ALL, Some(METRICS_IDLE))
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    std::fs::create_dir_all(&server.state_dir)
        .map_err(|error| format!("cannot create {}: {error}", server.state_dir.display()))?;
    let breaker = Breaker::builder()
        .config(config.clone())
        .clock(clock.clone())
        .name(server.name.clone())
        .snapshot_file(server.snapshot_file())
        .build()
        .map_err(|error| error.to_string())?;
    let quarantine = open_quarantine(&server)?;
    let fleet = match &server.fleet {
        Some(fleet) => Some(Fleet::start(breaker.clone(), fleet.clone()).map_err(|error| error.to_string())?),
        None => None,
    };
    let app = Arc::new(App {
        guarded: Guarded::new(Answer, breaker.clone()),
        clock,
        config: RwLock::new(Arc::new(config)),
        config_path,
        lender: quarantine
            .clone()
            .map(|quarantine| Lender::new(quarantine).lease(Duration::from_secs(server.lease_secs))),
        quarantine,
        metrics,
        manual_clock,
        server,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let grpc = listen(&app.server.grpc).await?;
    let http = listen(&app.server.http).await?;
    // One line on standard output once both are bound, for whoever started the server (a
    // test on port 0 learns its ports from it).
    let listening_to = Signals::listen()?;
    let listening = format!(
        "listening grpc={} http={}",
        grpc.as_ref().map_or_else(|| "-".into(), local),
        http.as_ref().map_or_else(|| "-".into(), local)
    );
    // Whoever started the server may not read its output (`| head`, a closed descriptor): it
    // serves all the same.
    if let Err(error) = crate::to_stdout(|out| writeln!(out, "{listening}")) {
        tracing::warn!(%error, "cannot write the listening line on standard output");
    }
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = grpc {
        tracing::info!(address = %local(&listener), "gRPC: envoy.service.ratelimit.v3 and grpc.health.v1");
        tasks.spawn(serve_grpc(Arc::clone(&app), listener, stopped(stop_rx.clone())));
    }
    if let Some(listener) = http {
        tracing::info!(address = %local(&listener), "HTTP: /v1, /json, /admin, /metrics");
        let router = http::router(Arc::clone(&app));
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            // Bounded as the admin router is served: a client that opens connections and never
            // finishes its requests cannot take the port from every other sender.
            admin::serve_until(listener, router, ServeLimits::new(), stop)
                .await
                .map_err(|error| format!("HTTP server: {error}"))
        });
    }
    let refresher = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REFRESH_EVERY);
            loop {
                every.tick().await;
                app.refresh();
            }
        })
    };

    let stopping = signals(&app, &mut tasks, listening_to).await;
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(error)) = done {
                tracing::error!(%error, "a listener failed");
            }
        }
    })
    .await
    .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}: stopping anyway");
    }
    refresher.abort();
    if let Some(fleet) = fleet {
        fleet.shutdown().await;
    }
    app.breaker()
        .save_snapshot()
        .map_err(|error| format!("cannot save the snapshot: {error}"))?;
    tracing::info!(file = %app.server.snapshot_file().display(), "snapshot saved; stopped");
    stopping
}

/// Waits for a stop signal (or a listener's failure), reloading on each `SIGHUP`.
async fn signals<C: Clock>(
    app: &Arc<App<C>>,
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
    Signals {
        mut hangup,
        mut terminate,
        mut interrupt,
    }: Signals,
) -> Result<(), String> {
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if let Err(error) = app.reload() {
                    tracing::error!(%error, "reload refused: the running configuration stays");
                }
            }
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            Some(done) = tasks.join_next() => {
                return Err(match done {
                    Ok(Err(error)) => error,
                    _ => "a listener stopped".into(),
                });
            }
        }
    }
}

/// The signals the server answers, listened for from before it says it is listening: a
/// `SIGTERM` sent once the listening line is out stops it cleanly, never kills it.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map_err(|error| format!("cannot listen for signals: {error}"));
        Ok(Self {
            hangup: listen(SignalKind::hangup())?,
            terminate: listen(SignalKind::terminate())?,
            interrupt: listen(SignalKind::interrupt())?,
        })
    }
}

/// Resolves when the stop flag is raised.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// A listener on `address`, or none for `""`.
async fn listen(address: &str) -> Result<Option<TcpListener>, String> {
    if address.is_empty() {
        return Ok(None);
    }
    TcpListener::bind(address)
        .await
        .map(Some)
        .map_err(|error| format!("cannot listen on {address}: {error}"))
}

fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".into(), |address: SocketAddr| address.to_string())
}

/// The largest gRPC message taken: far above any real request (a few descriptors of names of at
/// most 256 bytes), far below what would cost memory.
const MAX_GRPC_MESSAGE: usize = 64 * 1024;

async fn serve_grpc<C: Clock>(
    app: Arc<App<C>>,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RateLimitServiceServer<rls::Rls<C>>>().await;
    let service = RateLimitServiceServer::new(rls::Rls { app }).max_decoding_message_size(MAX_GRPC_MESSAGE);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .map_err(|error| format!("gRPC server: {error}"))
}

/// The quarantine `server` asks for.
fn open_quarantine(server: &ServerSection) -> Result<Option<Quarantine>, String> {
    let store_error =
        |error: spikebreaker::quarantine::StoreError| format!("cannot open the quarantine: {error}");
    Ok(Some(match server.store() {
        StoreChoice::Off => return Ok(None),
        StoreChoice::Memory => Quarantine::new(MemoryStore::new(server.quarantine_max_items)),
        StoreChoice::Sqlite | StoreChoice::Auto => {
            let options = SqliteOptions {
                max_items: server.quarantine_max_items,
                ..SqliteOptions::default()
            };
            Quarantine::new(
                SqliteStore::open_with(server.state_dir.join("quarantine.db"), options)
                    .map_err(store_error)?,
            )
        }
        StoreChoice::Redis => {
            let fleet = server
                .fleet
                .as_ref()
                .ok_or("a Redis quarantine needs [server.fleet]")?;
            let options = RedisOptions {
                key_prefix: fleet.key_prefix.clone(),
                max_items: server.quarantine_max_items,
                ..RedisOptions::default()
            };
            Quarantine::new(RedisStore::open(&fleet.url, options).map_err(store_error)?)
        }
    }))
}
