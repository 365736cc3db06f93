//! A real client in another language: Python with grpcio and Envoy's messages generated from
//! Envoy's own protos (tests/serve/python/requirements.txt), replaying the incident against the
//! server over the wire; and `curl`, replaying it in batches over HTTP.
//!
//! `.ci/run` makes the virtual environment and sets `SPIKEBREAKER_PYTHON` to its interpreter and
//! `SPIKEBREAKER_PYTHON_TESTS=require`, so a missing Python fails there; elsewhere, built without
//! `SPIKEBREAKER_PYTHON` (or curl), these tests are ignored with their reason (build.rs).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use spikebreaker::{Breaker, Config, Decision, ManualClock};

use crate::server::Server;
use crate::support::{
    DAY_MS, HOUR_MS, INCIDENT_RUNAWAY, MONDAY_MS, Profile, Traffic, burst, incident_profiles, merge,
};

/// The Python interpreter with the requirements installed. A test calling this is built only
/// where `SPIKEBREAKER_PYTHON` was set (or required): elsewhere it is ignored with its reason.
pub fn python() -> PathBuf {
    std::env::var_os("SPIKEBREAKER_PYTHON")
        .map(PathBuf::from)
        .expect("SPIKEBREAKER_PYTHON must name a Python with tests/serve/python/requirements.txt installed")
}

/// Runs a Python script of tests/serve/python (or examples/python) with `args`: its standard
/// output, which must be a success.
pub fn run_python(python: &PathBuf, script: &str, args: &[&str]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(python)
        .arg(format!("{root}/{script}"))
        .args(args)
        .env("PYTHONPATH", format!("{root}/tests/serve/python"))
        .output()
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stderr}");
    String::from_utf8(output.stdout).unwrap()
}

const RUNAWAY: &str = INCIDENT_RUNAWAY;

fn profiles() -> Vec<Profile> {
    incident_profiles()
}

/// The incident example's traffic: a week learned (the snapshot a server starts from), then the
/// hour at Monday 03:00 when the job runs away (`(t, kind, from_job)`, sorted).
struct Incident {
    snapshot: String,
    start: u64,
    sends: Vec<(u64, &'static str, bool)>,
}

fn incident() -> Incident {
    let week = 7 * DAY_MS;
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let names: Vec<&'static str> = profiles().iter().map(|p| p.kind).collect();
    let handles: Vec<_> = names.iter().map(|name| breaker.kind(name)).collect();
    for (t, kind) in Traffic::new(profiles(), 7, MONDAY_MS, MONDAY_MS + week) {
        clock.set(t);
        let _ = handles[kind].check();
    }
    let start = MONDAY_MS + week + 3 * HOUR_MS;
    let ordinary = Traffic::new(profiles(), 8, start, start + HOUR_MS);
    let runaway = burst(start, 125_000, 400.0).map(|t| (t, usize::MAX));
    let sends = merge(ordinary, runaway)
        .map(|(t, kind)| match kind {
            usize::MAX => (t, RUNAWAY, true),
            kind => (t, names[kind], false),
        })
        .collect();
    Incident {
        snapshot: breaker.snapshot().to_json(),
        start,
        sends,
    }
}

/// What got through, counted as the incident example counts it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    let_through: u64,
    handed_back: u64,
    others_sent: u64,
    others_blocked: u64,
}

impl Tally {
    fn add(&mut self, kind: &str, from_job: bool, allowed: bool) {
        match (from_job, allowed) {
            (true, true) => self.let_through += 1,
            (true, false) => self.handed_back += 1,
            (false, _) if kind == RUNAWAY => {}
            (false, true) => self.others_sent += 1,
            (false, false) => self.others_blocked += 1,
        }
    }
}

/// The steps of replay_incident.py: its clock moves only at the first send of each.
const STEP_MS: u64 = 5_000;

/// The library's own replay of the incident hour, from the same snapshot: each send at its own
/// time (as the incident example replays it), or with the clock moved as the Python replay moves
/// it (`stepped`).
fn in_process(incident: &Incident, stepped: bool) -> Tally {
    let clock = ManualClock::starting_at(incident.start);
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    breaker
        .restore(&spikebreaker::Snapshot::from_json(&incident.snapshot).unwrap())
        .unwrap();
    let mut tally = Tally::default();
    let mut step_start: Option<u64> = None;
    for &(t, kind, from_job) in &incident.sends {
        if !stepped {
            clock.set(t);
        } else if step_start.is_none_or(|start| t - start >= STEP_MS) {
            step_start = Some(t);
            clock.set(t);
        }
        tally.add(kind, from_job, breaker.check(kind) == Decision::Allowed);
    }
    tally
}

/// A server on a manual clock at the incident's start, restored from the week's snapshot.
fn server_for(incident: &Incident, dir: &std::path::Path) -> Server {
    std::fs::write(dir.join("snapshot.json"), &incident.snapshot).unwrap();
    let at = incident.start.to_string();
    Server::start_in(
        dir,
        "[server]\nquarantine = \"off\"\n",
        &["--manual-clock-at", &at],
    )
}

#[test]
#[cfg_attr(
    spikebreaker_no_python,
    ignore = "no SPIKEBREAKER_PYTHON when the tests were built (a Python with tests/serve/python/requirements.txt; \
              SPIKEBREAKER_PYTHON_TESTS=require makes it fail instead)"
)]
fn a_python_grpc_client_replaying_the_incident_gets_the_librarys_let_through_and_other_kinds_flow() {
    let python = python();
    let incident = incident();
    let exact = in_process(&incident, false);
    let expected = in_process(&incident, true);
    // Moving the clock a second at a time changes nothing the incident shows.
    assert_eq!(expected, exact);
    assert_eq!(expected.others_blocked, 0);

    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("incident.trace");
    let lines: String = incident
        .sends
        .iter()
        .map(|(t, kind, from_job)| format!("{t} {kind} {}\n", if *from_job { "job" } else { "ordinary" }))
        .collect();
    std::fs::write(&trace, lines).unwrap();
    let server = server_for(&incident, dir.path());
    let out = run_python(
        &python,
        "tests/serve/python/replay_incident.py",
        &[
            &server.grpc.to_string(),
            &server.http.to_string(),
            trace.to_str().unwrap(),
            RUNAWAY,
        ],
    );
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    let over_the_wire = Tally {
        let_through: got["let_through"].as_u64().unwrap(),
        handed_back: got["handed_back"].as_u64().unwrap(),
        others_sent: got["others_sent"].as_u64().unwrap(),
        others_blocked: got["others_blocked"].as_u64().unwrap(),
    };
    assert_eq!(over_the_wire, expected);
    assert_eq!(got["sends"].as_u64(), Some(incident.sends.len() as u64));
}

#[test]
#[cfg_attr(
    spikebreaker_no_curl,
    ignore = "no curl on the PATH when the tests were built (apt-get install curl; \
              SPIKEBREAKER_CURL_TESTS=require makes it fail instead)"
)]
fn curl_replaying_the_runaway_in_batches_gets_the_same_let_through_and_other_kinds_flow() {
    let incident = incident();
    let exact = in_process(&incident, false);
    let dir = tempfile::tempdir().unwrap();
    let server = server_for(&incident, dir.path());
    let check = format!("http://{}/v1/check", server.http);
    let clock = format!("http://{}/admin/clock", server.http);
    let curl_json = |url: &str, body: &str| -> Value {
        let (out, ok) = crate::server::curl(&["-H", "Content-Type: application/json", "-d", body, url]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    };
    // The job's sends, five seconds' worth (2,000) in each request: a batch sender sends the
    // `allowed` first ones and holds the rest.
    let mut let_through = 0;
    for batch in 0..125_000 / 2_000 + 1 {
        let count = (125_000 - batch * 2_000).min(2_000);
        curl_json(
            &clock,
            &format!(r#"{{"set_ms": {}}}"#, incident.start + batch * 5_000),
        );
        let answer = curl_json(&check, &format!(r#"{{"kind": "{RUNAWAY}", "count": {count}}}"#));
        let_through += answer["allowed"].as_u64().unwrap();
    }
    assert_eq!(let_through, exact.let_through);
    // Every other kind still flows.
    for profile in profiles().iter().filter(|profile| profile.kind != RUNAWAY) {
        let answer = curl_json(&check, &format!(r#"{{"kind": "{}"}}"#, profile.kind));
        assert_eq!(answer["decision"], "allowed", "{answer}");
    }
}

#[test]
#[cfg_attr(
    spikebreaker_no_python,
    ignore = "no SPIKEBREAKER_PYTHON when the tests were built (a Python with tests/serve/python/requirements.txt; \
              SPIKEBREAKER_PYTHON_TESTS=require makes it fail instead)"
)]
fn the_python_sender_example_holds_what_is_refused_and_sends_each_released_item_once() {
    let python = python();
    let server = Server::start("");
    let out = run_python(&python, "examples/python/sender.py", &[&server.http.to_string()]);
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "sent_at_once": 500, // a new kind's warm-up ceiling
            "held": 100,
            "approved": 100,
            "released": 100,
            "provider_received": 600,
        })
    );
}
