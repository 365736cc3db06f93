//! [`serve`]: a router served over HTTP/1.1 with bounds no client can push past.
//!
//! A plain `axum::serve` waits as long as a client likes for a request's head and keeps every
//! connection it accepts, so clients that open connections and send half a request (a
//! "slowloris") hold sockets until the process runs out of file descriptors; from then on it
//! accepts nothing, and the operator's own valid request goes unanswered. Here each connection
//! gets a deadline for its request head and each request one for its answer, and at most
//! `max_connections` are kept: when all are taken, the oldest connection with no request being
//! answered (half-sent, or idle between requests) is closed to make room for the new one.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::{AbortHandle, JoinSet};

use super::Refusal;

/// What [`serve_with`] lets clients hold. The defaults suit an admin endpoint that operators and
/// their scripts call:
///
/// - **`header_read_timeout`** (10 s): a connection that has not sent a whole request head this
///   long after it opened, or after its last answer, is closed.
/// - **`request_timeout`** (30 s): a request not answered in this time, its body included, is
///   answered `408` with a JSON error and its connection closed. A store operation it started
///   may still finish.
/// - **`max_connections`** (256): connections served at once. Keep it below the process's
///   open-file limit (`ulimit -n`) less what the rest of the service uses, so that accepting
///   never fails for want of a file descriptor.
///
/// ```no_run
/// # async fn serve_admin(router: axum::Router) -> std::io::Result<()> {
/// use std::time::Duration;
/// use spikebreaker::admin::{self, ServeLimits};
///
/// let limits = ServeLimits::new()
///     .header_read_timeout(Duration::from_secs(5))
///     .max_connections(64);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9180").await?;
/// admin::serve_with(listener, router, limits).await
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    header_read_timeout: Duration,
    request_timeout: Duration,
    max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

impl ServeLimits {
    /// The defaults: 10 s for a request head, 30 s for an answer, 256 connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a connection may take to send a request's head (more than zero).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a request may take to be answered, reading its body included (more than zero).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many connections are served at once (at least 1).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    fn check(&self) -> io::Result<()> {
        let problem = if self.header_read_timeout.is_zero() {
            "header_read_timeout = 0: a request head needs time to arrive"
        } else if self.request_timeout.is_zero() {
            "request_timeout = 0: a request needs time to be answered"
        } else if self.max_connections == 0 {
            "max_connections = 0: no connection could be served"
        } else {
            return Ok(());
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ServeLimits::{problem}"),
        ))
    }
}

/// Serves `router` on `listener` with the default [`ServeLimits`]. See [`serve_with`].
pub async fn serve(listener: TcpListener, router: Router) -> io::Result<()> {
    serve_with(listener, router, ServeLimits::default()).await
}

/// Serves `router` on `listener` (HTTP/1.1) within `limits`, until the returned future is dropped,
/// which stops accepting and closes every connection it serves (put it in a `tokio::select!` with
/// your shutdown signal, or use [`serve_until`] to let requests in flight finish). Returns only an
/// error: limits that could serve nothing (`InvalidInput`, naming the setting).
pub async fn serve_with(listener: TcpListener, router: Router, limits: ServeLimits) -> io::Result<()> {
    serve_until(listener, router, limits, std::future::pending()).await
}

/// As [`serve_with`], until `shutdown` completes: then it stops accepting, closes the
/// connections waiting for a request, lets each request in flight be answered (within the
/// request timeout), and returns `Ok` once every connection has closed.
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    limits.check()?;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let open = Arc::new(Open::default());
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    for id in 0u64.. {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // The client gave up before it was accepted: nothing to serve.
            Err(error) if is_the_clients(&error) => continue,
            Err(error) => {
                // Out of file descriptors or memory: wait for some to come back.
                tracing::warn!("spikebreaker admin: cannot accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        open.make_room(limits.max_connections).await;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = answer(
            router.clone(),
            Arc::clone(&in_flight),
            Arc::clone(&open),
            limits.request_timeout,
        );
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let closed = Closed {
            open: Arc::clone(&open),
            id,
        };
        let mut draining = draining.clone();
        // Under the lock, so that a connection that ends at once finds its slot to remove.
        let mut slots = open.slots.lock();
        let abort = connections.spawn(async move {
            let _closed = closed;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async { drop(draining.wait_for(|drain| *drain).await) } => {
                    // Answers the request in flight, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        slots.insert(id, Slot { in_flight, abort });
    }
    drop(listener);
    drain.send_replace(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A request on a connection: answered by `router` within `timeout`, counted in `in_flight`
/// while it is.
fn answer(
    router: Router,
    in_flight: Arc<AtomicUsize>,
    open: Arc<Open>,
    timeout: Duration,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send,
> {
    let router = TowerToHyperService::new(router);
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let busy = Busy::start(Arc::clone(&in_flight), Arc::clone(&open));
        let answer = hyper::service::Service::call(&router, request);
        async move {
            let _busy = busy;
            match tokio::time::timeout(timeout, answer).await {
                Ok(answered) => answered,
                Err(_) => Ok(timed_out(timeout)),
            }
        }
    })
}

fn timed_out(timeout: Duration) -> Response {
    let mut response = Refusal {
        status: StatusCode::REQUEST_TIMEOUT,
        error: format!("the request was not answered within {timeout:?}"),
    }
    .into_response();
    // Its body may be half read: the connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn is_the_clients(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// The connections being served, by the order they were accepted in.
#[derive(Default)]
struct Open {
    slots: Mutex<BTreeMap<u64, Slot>>,
    /// Told when a connection closes or its last request in flight is answered.
    room: Notify,
}

struct Slot {
    /// Requests of the connection being answered.
    in_flight: Arc<AtomicUsize>,
    abort: AbortHandle,
}

impl Open {
    /// Returns once fewer than `max` connections are open, closing the oldest with no request
    /// in flight if all are taken; waits while every one has a request being answered (each
    /// answered or timed out within the request timeout).
    async fn make_room(&self, max: usize) {
        loop {
            {
                let mut slots = self.slots.lock();
                if slots.len() < max {
                    return;
                }
                let idle = slots
                    .iter()
                    .find(|(_, slot)| slot.in_flight.load(Ordering::Acquire) == 0)
                    .map(|(&id, _)| id);
                if let Some(slot) = idle.and_then(|id| slots.remove(&id)) {
                    slot.abort.abort();
                    return;
                }
            }
            self.room.notified().await;
        }
    }
}

/// Removes its connection's slot when the connection ends, closed or aborted.
struct Closed {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Closed {
    fn drop(&mut self) {
        self.open.slots.lock().remove(&self.id);
        self.open.room.notify_one();
    }
}

/// A request in flight on its connection, until dropped.
struct Busy {
    in_flight: Arc<AtomicUsize>,
    open: Arc<Open>,
}

impl Busy {
    fn start(in_flight: Arc<AtomicUsize>, open: Arc<Open>) -> Self {
        in_flight.fetch_add(1, Ordering::AcqRel);
        Self { in_flight, open }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.open.room.notify_one();
        }
    }
}
