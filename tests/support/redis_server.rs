//! A throwaway `redis-server` for the tests that need one: persistence off, listening only on a
//! unix socket in a temp dir, its working dir that temp dir, stopped when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` with persistence off, listening only on a unix socket in a temp dir.
pub struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    pub fn start() -> Self {
        let mut server = Self {
            dir: tempfile::tempdir().expect("a temp dir"),
            child: None,
        };
        server.spawn();
        server
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    pub fn spawn(&mut self) {
        let socket = self.socket();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no"])
            // Whatever it writes (a test may turn persistence on) stays in its temp dir.
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the fleet tests need `redis-server` on PATH (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not open {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops (`STOP`) or resumes (`CONT`) the server: a black hole that keeps connections open.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
