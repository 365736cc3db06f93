//! The admin router served by `admin::serve` against clients that hold connections: thousands
//! of half-sent requests, a head that never ends, a body that never comes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spikebreaker::admin::{self, ServeLimits};
use spikebreaker::{Breaker, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Set for the child process that serves.
const SERVER_CHILD: &str = "SPIKEBREAKER_TEST_ADMIN_SERVER";
/// The child's open-file limit: a small service's.
const CHILD_FILES: u32 = 1024;
/// The connections the child serves at once.
const CHILD_CONNECTIONS: usize = 64;

/// A request head cut off before its end, as a slowloris sends it.
const HALF_SENT: &[u8] = b"GET /status HTTP/1.1\r\nHost: localhost\r\nX-Wait: ";

/// The server of [`thousands_of_half_sent_connections_leave_room_for_a_valid_request`], in a
/// process of its own whose open-file limit is [`CHILD_FILES`], as a service's is: it prints its
/// address and serves until killed.
#[test]
#[ignore = "a child process of the admin server test, which starts and kills it"]
fn admin_server_child() {
    if std::env::var_os(SERVER_CHILD).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        let router = admin::router(Breaker::new(Config::default()).unwrap());
        // A head timeout longer than the test waits: room must come from the bound.
        let limits = ServeLimits::new()
            .header_read_timeout(Duration::from_secs(600))
            .max_connections(CHILD_CONNECTIONS);
        admin::serve_with(listener, router, limits).await.unwrap();
    });
}

/// The serving child process, killed when dropped.
struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts [`admin_server_child`] under `ulimit -n` [`CHILD_FILES`]: the child and its address.
fn server_child() -> (ServerChild, SocketAddr) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {CHILD_FILES} && exec \"$0\" \"$@\""))
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "admin_server::admin_server_child",
            "--ignored",
            "--nocapture",
        ])
        .env(SERVER_CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = ServerChild(child);
    let address = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("listening on ").map(|a| a.parse().unwrap()))
        .expect("the child serves");
    (child, address)
}

/// `GET /status` on a connection of its own, read to its end: the status code.
async fn status_code(address: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET /status HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"))
}

#[tokio::test]
async fn thousands_of_half_sent_connections_leave_room_for_a_valid_request() {
    let (_server, address) = server_child();
    // Twice the server's open-file limit in connections, each with half a request head and then
    // nothing. Served with axum::serve, the server accepted about a thousand, ran out of file
    // descriptors and accepted nothing more: once its backlog was full too (about the 2,030th),
    // connecting timed out, a valid request's as any other.
    let mut half_sent = Vec::new();
    for _ in 0..2 * CHILD_FILES {
        let mut stream = timeout(Duration::from_secs(10), TcpStream::connect(address))
            .await
            .expect("the server's backlog takes the connection")
            .unwrap();
        // The server may have closed it already, to make room for newer ones.
        let _ = stream.write_all(HALF_SENT).await;
        half_sent.push(stream);
    }
    let code = timeout(Duration::from_secs(30), status_code(address))
        .await
        .expect("a valid request is answered while thousands of half-sent ones are open");
    assert_eq!(code, 200);
    // The server holds at most its bound: it closed the oldest half-sent connections to make
    // room for newer ones (a closed one reads as its end, or as reset).
    let oldest = half_sent.len() - CHILD_CONNECTIONS;
    for (i, stream) in half_sent[..oldest].iter_mut().enumerate() {
        let read = timeout(Duration::from_secs(10), stream.read(&mut [0; 1])).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "half-sent connection {i} still open: {read:?}"
        );
    }
}

/// Serves the admin router within `limits` on 127.0.0.1: the address.
async fn serve(limits: ServeLimits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = admin::router(Breaker::new(Config::default()).unwrap());
    tokio::spawn(admin::serve_with(listener, router, limits));
    address
}

#[tokio::test]
async fn a_head_that_never_ends_is_closed_after_the_header_read_timeout() {
    let address = serve(ServeLimits::new().header_read_timeout(Duration::from_millis(200))).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(HALF_SENT).await.unwrap();
    let mut rest = Vec::new();
    // Closed by the server (a plain axum::serve waits for ever).
    let read = timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
        .await
        .expect("closed after the header read timeout");
    assert!(
        read.is_err() || rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{rest:?}"
    );
    assert_eq!(status_code(address).await, 200, "others are still served");
}

#[tokio::test]
async fn a_body_that_never_comes_is_answered_408_after_the_request_timeout() {
    let address = serve(ServeLimits::new().request_timeout(Duration::from_millis(200))).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /kinds/email.welcome/dry-run HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"on\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("answered and closed after the request timeout")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(
        response.contains("{\"error\":\"the request was not answered within 200ms\"}"),
        "{response}"
    );
}

#[tokio::test]
async fn limits_that_could_serve_nothing_are_refused_by_name() {
    for (limits, name) in [
        (ServeLimits::new().max_connections(0), "max_connections = 0"),
        (
            ServeLimits::new().header_read_timeout(Duration::ZERO),
            "header_read_timeout = 0",
        ),
        (
            ServeLimits::new().request_timeout(Duration::ZERO),
            "request_timeout = 0",
        ),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router = admin::router(Breaker::new(Config::default()).unwrap());
        let error = admin::serve_with(listener, router, limits).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[tokio::test]
async fn at_shutdown_the_request_in_flight_is_answered_and_an_idle_connection_closed() {
    use std::sync::Arc;
    use tokio::sync::{Notify, oneshot};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let slow = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        move || async move {
            entered.notify_one();
            release.notified().await;
            "answered"
        }
    };
    let router = axum::Router::new().route("/slow", axum::routing::get(slow));
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(admin::serve_until(listener, router, ServeLimits::new(), async {
        let _ = stopped.await;
    }));
    let mut idle = TcpStream::connect(address).await.unwrap();
    let mut busy = TcpStream::connect(address).await.unwrap();
    let request = format!("GET /slow HTTP/1.1\r\nHost: {address}\r\n\r\n");
    busy.write_all(request.as_bytes()).await.unwrap();
    entered.notified().await;
    stop.send(()).unwrap();
    // A connection with no request is closed (or, not yet accepted, refused with the listener).
    let read = timeout(Duration::from_secs(30), idle.read(&mut [0; 1]))
        .await
        .expect("the idle connection closed at shutdown");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The request in flight holds the server open until it is answered, then gets its answer.
    assert!(!served.is_finished(), "a request is still being answered");
    release.notify_one();
    let mut response = Vec::new();
    timeout(Duration::from_secs(30), busy.read_to_end(&mut response))
        .await
        .expect("answered, then closed")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("answered"), "{response}");
    timeout(Duration::from_secs(30), served)
        .await
        .expect("returns once every connection has closed")
        .unwrap()
        .unwrap();
}
