//! `spikebreaker quarantine` on the embedded store's file, as an operator runs it beside a
//! service that has the file open.

use std::process::{Command, Output};

#[path = "../support/cli.rs"]
mod binary;

use serde_json::Value;
use spikebreaker::Guarded;
use spikebreaker::quarantine::{Filter, ItemState, Quarantine, Query, SqliteStore};

use super::{Outbox, RECEIPT, RUNAWAY, breaker, email, force_open, held};

fn quarantine(store: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spikebreaker"))
        .arg("quarantine")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn list_show_discard_and_release_on_the_file_of_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarantine.db");
    let (breaker, _) = breaker();
    let service = Quarantine::new(SqliteStore::open(&path).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(service.clone());
    force_open(&breaker, RUNAWAY);
    force_open(&breaker, RECEIPT);
    for i in 0..40 {
        held(&guarded, email(RUNAWAY, &format!("u{}@example.com", i % 8)));
    }
    for i in 0..2 {
        held(&guarded, email(RECEIPT, &format!("r{i}@example.com")));
    }

    let listed = json(&quarantine(&path, &["list"]));
    let trips = listed["trips"].as_array().unwrap();
    assert_eq!(trips.len(), 2);
    let runaway = trips.iter().find(|t| t["kind"] == RUNAWAY).unwrap();
    assert_eq!(
        (runaway["held"].as_u64(), runaway["recipients"].as_u64()),
        (Some(40), Some(8))
    );
    let trip = runaway["trip"].as_u64().unwrap().to_string();

    let shown = json(&quarantine(&path, &["show", "--kind", RECEIPT, "--limit", "1"]));
    assert_eq!(shown.as_array().unwrap().len(), 1);
    assert_eq!(shown[0]["notification"]["to"], "r0@example.com");

    let reason = "bug 4711: the 2FA job looped";
    let discarded = json(&quarantine(
        &path,
        &["discard", "--kind", RUNAWAY, "--trip", &trip, "--reason", reason],
    ));
    assert_eq!(discarded["discarded"], 40);
    // The first receipt is legitimate: release it by its number, discard the other.
    let first = shown[0]["id"].as_u64().unwrap().to_string();
    let released = json(&quarantine(
        &path,
        &[
            "release",
            "--kind",
            RECEIPT,
            "--ids",
            &first,
            "--per-minute",
            "30",
        ],
    ));
    assert_eq!(released["approved"], 1);
    let rest = json(&quarantine(
        &path,
        &["discard", "--kind", RECEIPT, "--reason", "duplicate"],
    ));
    assert_eq!(rest["discarded"], 1, "the approved one is left to the releaser");

    // The service sees what the operator did.
    let approved = Query::new(Filter::kind(RECEIPT), 10).in_state(ItemState::Approved);
    let approved = service.items(&approved).unwrap();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].recipient.as_deref(), Some("r0@example.com"));
    assert_eq!(approved[0].order.unwrap().per_minute, Some(30.0));
    let audit = Query::new(Filter::kind(RUNAWAY), 1).in_state(ItemState::Discarded);
    assert_eq!(service.items(&audit).unwrap()[0].note.as_deref(), Some(reason));
}

#[test]
fn bad_arguments_and_damaged_files_are_named_with_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarantine.db");
    drop(SqliteStore::open(&path).unwrap()); // the service's store
    let cases: [(&[&str], i32, &str); 3] = [
        (&["show", "--state", "parked"], 2, "unknown item state"),
        (
            &["release", "--kind", RECEIPT, "--per-minute", "0"],
            2,
            "per_minute",
        ),
        (&["discard", "--kind", RECEIPT, "--reason", " "], 2, "reason"),
    ];
    for (args, code, message) in cases {
        let output = quarantine(&path, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, [0x5a; 4096]).unwrap();
    let output = quarantine(&garbage, &["list"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unreadable") && stderr.contains("set-aside"),
        "{stderr}"
    );
    // As the message says: the file (and the log beside it, which may hold its last commits)
    // moved aside whole, for recovery.
    std::fs::write(dir.path().join("garbage.db-wal"), b"last commits").unwrap();
    let moved = json(&quarantine(&garbage, &["set-aside"]));
    let aside = std::path::PathBuf::from(moved["set_aside"].as_str().unwrap());
    assert!(!garbage.exists());
    assert_eq!(std::fs::read(&aside).unwrap(), [0x5a; 4096]);
    let mut wal = aside.into_os_string();
    wal.push("-wal");
    assert_eq!(std::fs::read(wal).unwrap(), b"last commits");
}

#[test]
fn a_mistyped_store_path_is_an_error_not_an_empty_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let mistyped = dir.path().join("quarantne.db");
    let output = quarantine(&mistyped, &["list"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no quarantine store at"), "{stderr}");
    assert!(!mistyped.exists(), "nothing created");
}

#[test]
fn the_operators_tools_keep_the_bound_the_service_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarantine.db");
    let (breaker, _) = breaker();
    let options = spikebreaker::quarantine::SqliteOptions {
        max_items: 2,
        ..Default::default()
    };
    let service = Quarantine::new(SqliteStore::open_with(&path, options).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(service.clone());
    force_open(&breaker, RUNAWAY);
    held(&guarded, email(RUNAWAY, "a@example.com"));
    // An operator looks while the service runs (before: opening the file set its bound to the
    // tools' default of a million).
    json(&quarantine(&path, &["list"]));
    held(&guarded, email(RUNAWAY, "b@example.com"));
    let refused = spikebreaker::Sender::send(&guarded, email(RUNAWAY, "c@example.com")).unwrap_err();
    assert!(refused.is_blocked(), "full at 2: handed back, {refused:?}");
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    // `spikebreaker quarantine … | head` (before: a panic on the broken pipe, exit code 101).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarantine.db");
    let (breaker, _) = breaker();
    let service = Quarantine::new(SqliteStore::open(&path).unwrap());
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(service);
    force_open(&breaker, RUNAWAY);
    for i in 0..3 {
        held(&guarded, email(RUNAWAY, &format!("u{i}@example.com")));
    }
    let store = path.to_str().unwrap();
    for args in [
        &["list"][..],
        &["show", "--kind", RUNAWAY],
        &["release", "--kind", RUNAWAY, "--ids", "1"],
        &["discard", "--kind", RUNAWAY, "--reason", "a loop"],
    ] {
        let args = [&["quarantine", "--store", store][..], args].concat();
        let output = binary::spikebreaker_into_a_closed_pipe(&args, "");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}
