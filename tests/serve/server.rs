//! A `spikebreaker serve` started by a test, as an operator starts it: the binary, a
//! configuration file, a state directory, ports on loopback; and the clients a sender would use
//! (tonic for gRPC, plain HTTP/1.1, `curl`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use serde_json::Value;
use tonic::transport::Channel;

/// A running server, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
    /// What it wrote on standard error, gathered by a thread.
    stderr: mpsc::Receiver<String>,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with `config` (TOML: the breaker's configuration and a `[server]` section) in a
    /// fresh state directory.
    pub fn start(config: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(temp.path(), config, &[]);
        server._temp = Some(temp);
        server
    }

    /// The same on a manual clock starting at `at_ms`, moved with [`Server::set_clock`].
    pub fn start_manual(config: &str, at_ms: u64) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let at = at_ms.to_string();
        let mut server = Self::start_in(temp.path(), config, &["--manual-clock-at", &at]);
        server._temp = Some(temp);
        server
    }

    /// The same with these environment variables (tokens).
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let mut server = Self::start_in_with(temp.path(), config, &[], env);
        server._temp = Some(temp);
        server
    }

    /// A server whose state lives in `dir` (kept after it stops, for a restart).
    pub fn start_in(dir: &Path, config: &str, args: &[&str]) -> Self {
        Self::start_in_with(dir, config, args, &[])
    }

    fn start_in_with(dir: &Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let file = dir.join("spikebreaker.toml");
        std::fs::write(&file, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_spikebreaker"))
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--state-dir"])
            .arg(dir)
            .args(args)
            .env_remove("SPIKEBREAKER_ADMIN_TOKEN")
            .env_remove("SPIKEBREAKER_SENDER_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the spikebreaker binary starts");
        let (line_tx, line_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = line_tx.send(line.unwrap_or_default());
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let _ = err_tx.send(line.unwrap_or_default());
            }
        });
        let mut server = Self {
            child: Some(child),
            grpc: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            dir: dir.to_owned(),
            stderr: err_rx,
            _temp: None,
        };
        let Ok(line) = line_rx.recv_timeout(Duration::from_secs(60)) else {
            let status = server.child.as_mut().unwrap().try_wait();
            panic!("the server did not start ({status:?}):\n{}", server.stderr_text());
        };
        let address = |name: &str| {
            let field = line
                .split(' ')
                .find_map(|field| field.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"));
            field.parse::<SocketAddr>().unwrap()
        };
        server.grpc = address("grpc=");
        server.http = address("http=");
        server
    }

    /// What the server wrote on standard error so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }

    /// Sends `signal` (`HUP`, `TERM`, `KILL`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal}");
    }

    /// Waits for the server to exit (at most a minute): its exit status and standard error.
    pub fn wait(&mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("a running server");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // The stderr thread ends with the process: gather everything.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.stderr_text());
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (`SIGKILL`), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A gRPC client of the rate-limit service.
    pub async fn rls(&self) -> RateLimitServiceClient<Channel> {
        RateLimitServiceClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("a gRPC connection")
    }

    /// An HTTP request with a JSON body (`""` for none), on its own connection.
    pub fn http(&self, method: &str, path: &str, body: &str) -> Reply {
        self.http_with(method, path, &["Content-Type: application/json"], body)
    }

    /// An HTTP request with these headers besides `Host`.
    pub fn http_with(&self, method: &str, path: &str, headers: &[&str], body: &str) -> Reply {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.http);
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        request.push_str(body);
        raw(self.http, request.as_bytes())
    }

    /// Moves the manual clock to `ms` (a server started with [`Server::start_manual`]).
    pub fn set_clock(&self, ms: u64) {
        let reply = self.http("POST", "/admin/clock", &format!("{{\"set_ms\": {ms}}}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The head, header names in lower case as hyper writes them.
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}\n\n{}", self.head, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `request` as written on its own connection and reads the answer to the end.
pub fn raw(address: SocketAddr, request: &[u8]) -> Reply {
    try_raw(address, request).unwrap_or_else(|| panic!("no complete answer from {address}"))
}

/// [`raw`], or `None` when the server answers nothing complete (it is gone).
pub fn try_raw(address: SocketAddr, request: &[u8]) -> Option<Reply> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    // A server that answers before reading the whole body (413) may close early.
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok())?;
    Some(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A request about `count` sends of each kind (`count` 0 leaves `hits_addend` unset).
pub fn request(domain: &str, kinds: &[&str], count: u32) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_owned(),
        hits_addend: count,
        descriptors: kinds.iter().map(|kind| descriptor(&[("kind", kind)])).collect(),
    }
}

pub fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(key, value)| Entry {
                key: (*key).to_owned(),
                value: (*value).to_owned(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
    }
}

/// `curl` with these arguments: its standard output, and whether it exited 0.
pub fn curl(args: &[&str]) -> (String, bool) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error"])
        .args(args)
        .output()
        .expect("curl runs (apt-get install curl)");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.success(),
    )
}
