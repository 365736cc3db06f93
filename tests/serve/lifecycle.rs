//! What an operator does to a running server: reload its configuration (SIGHUP, or the admin
//! route), stop it (SIGTERM, the snapshot saved), start it again.

use crate::server::Server;

/// The minute threshold the server reports for `kind` after one check of it.
fn minute_threshold(server: &Server, kind: &str) -> u64 {
    let reply = server.http("POST", "/v1/check", &format!(r#"{{"kind": "{kind}"}}"#));
    reply.json()["limit"]["threshold"].as_u64().unwrap()
}

#[test]
fn sighup_and_the_admin_route_reload_the_file_and_a_bad_file_leaves_the_running_configuration() {
    let server = Server::start("[defaults]\nwarmup_ceiling = 300\n");
    assert_eq!(minute_threshold(&server, "email.receipt"), 300);
    let file = server.dir.join("spikebreaker.toml");

    std::fs::write(&file, "[defaults]\nwarmup_ceiling = 200\n").unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while minute_threshold(&server, "email.receipt") != 200 {
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    std::fs::write(&file, "[defaults]\nwarmup_ceiling = 100\n").unwrap();
    let reloaded = server.http("POST", "/admin/reload", "");
    assert_eq!(
        (reloaded.status, reloaded.json()["reloaded"].as_bool()),
        (200, Some(true))
    );
    assert_eq!(minute_threshold(&server, "email.receipt"), 100);

    // Each SIGHUP's refusal is logged once; the next file is written only after it, so that no
    // reload reads a file half written (an empty one is a valid configuration).
    let mut logged = String::new();
    for (refusals, bad) in [
        "[defaults]\nwarmup_ceiling = \"many\"\n",
        "[defaults\n",
        "[server]\nlease_secs = 0\n",
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&file, bad).unwrap();
        let refused = server.http("POST", "/admin/reload", "");
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
        assert!(
            refused.json()["error"]
                .as_str()
                .unwrap()
                .contains("the running configuration stays")
        );
        server.signal("HUP");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while logged.matches("reload refused").count() <= refusals {
            assert!(
                std::time::Instant::now() < deadline,
                "SIGHUP did not reload:\n{logged}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
            logged.push_str(&server.stderr_text());
        }
        assert_eq!(minute_threshold(&server, "email.receipt"), 100, "{bad}");
    }
}

#[test]
fn sigterm_saves_the_snapshot_and_a_restart_keeps_what_was_learned() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "", &[]);
    server.http("POST", "/v1/check", r#"{"kind": "email.receipt", "count": 7}"#);
    server.signal("TERM");
    let (status, stderr) = server.wait();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("snapshot saved"), "{stderr}");
    let snapshot = std::fs::read_to_string(dir.path().join("snapshot.json")).unwrap();
    assert!(snapshot.contains("email.receipt"), "{snapshot}");

    let again = Server::start_in(dir.path(), "", &[]);
    let status = again.http("GET", "/admin/status", "").json();
    let kinds: Vec<&str> = status["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["email.receipt"], "restored from the snapshot");
}

#[test]
fn a_configuration_the_server_cannot_use_stops_it_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spikebreaker.toml");
    std::fs::write(&file, "[server]\ndomain = \"\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spikebreaker"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spikebreaker.toml: `server.domain` must not be empty"),
        "{stderr}"
    );
}

/// The operator's files in operator/serve.
fn operator_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/operator/serve/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_example_configuration_and_the_systemd_units_command_start_a_server() {
    let config = operator_file("spikebreaker.toml");
    let unit = operator_file("spikebreaker.service");
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args, ["serve", "--config", "/etc/spikebreaker/spikebreaker.toml"]);
    assert!(
        config.starts_with("# /etc/spikebreaker/spikebreaker.toml"),
        "the unit's path"
    );
    assert!(
        config.contains("state_dir = \"/var/lib/spikebreaker\"")
            && unit.contains("StateDirectory=spikebreaker")
    );
    // The same file, the addresses and state directory moved to where a test may bind and write.
    let server = Server::start(&config);
    let reply = server.http("POST", "/v1/check", r#"{"kind": "security.2fa_changed"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let metrics = server.http_with("GET", "/metrics", &[], "").body;
    assert!(metrics.contains(r#"breaker="mailer""#), "{metrics}");
}

#[test]
fn the_envoy_snippet_points_at_the_example_servers_domain_port_and_descriptor_key() {
    let envoy = operator_file("envoy.yaml");
    let config = operator_file("spikebreaker.toml");
    assert!(config.contains("domain = \"spikebreaker\"") && envoy.contains("domain: spikebreaker "));
    assert!(config.contains("grpc = \"127.0.0.1:8081\"") && envoy.contains("port_value: 8081"));
    assert!(envoy.contains("descriptor_key: kind "));
    assert!(envoy.contains("transport_api_version: V3"));
}

#[test]
fn a_server_whose_standard_output_is_closed_serves_and_stops_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spikebreaker.toml");
    std::fs::write(&file, "").unwrap();
    // A pipe whose reader has exited, as when the server's output goes to `| head` or a
    // supervisor that stopped reading it: every write to it fails.
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let closed = reader.stdin.take().unwrap();
    assert!(reader.wait().unwrap().success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_spikebreaker"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path())
        .stdout(closed)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // The HTTP listener's log line comes after the line on standard output: before, the
    // server panicked writing that one (exit 101) and never logged this.
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!(
                "the server ended before serving ({:?}):\n{seen}",
                child.wait().unwrap()
            );
        }
        seen.push_str(&line);
        if line.contains("HTTP: /v1") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{status:?}\n{seen}{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
    assert!(
        dir.path().join("snapshot.json").exists(),
        "the snapshot saved at the stop"
    );
}
