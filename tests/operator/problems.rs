//! What is wrong with a breaker itself, where an operator sees it without a `tracing`
//! subscriber: in `BreakerStatus::problems` and in the `spikebreaker_problem` gauge. Before, each
//! was only a `tracing` warning: a snapshot file set aside as corrupt, a save that failed, two
//! live breakers sharing a name (their series overwriting each other), a recorder installed late.
//! And the builder's option to fail `build()` rather than set a snapshot file aside.

use std::path::Path;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use spikebreaker::status::Problem;
use spikebreaker::status::metrics::PROBLEM;
use spikebreaker::{Breaker, ManualClock};

/// Runs `f` with a fresh Prometheus recorder as the thread's recorder.
fn with_prometheus(f: impl FnOnce(&PrometheusHandle)) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || f(&handle));
}

/// The problem gauge of `breaker` for `problem` in the exposition.
fn gauge(exposition: &str, breaker: &str, problem: &str) -> Option<f64> {
    let series = format!("{PROBLEM}{{breaker=\"{breaker}\",problem=\"{problem}\"}} ");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.parse().expect("a number"))
}

fn keeping(path: &Path, name: &str) -> spikebreaker::BreakerBuilder<ManualClock> {
    Breaker::builder()
        .clock(ManualClock::new())
        .name(name)
        .snapshot_file(path)
        .save_every(Duration::from_secs(86_400))
}

#[test]
fn a_snapshot_file_set_aside_shows_in_status_and_the_gauge() {
    with_prometheus(|prometheus| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spikebreaker.json");
        std::fs::write(&path, "{\"version\":3,\"kinds\":").unwrap();
        let breaker = keeping(&path, "set-aside").build().unwrap();
        let problems = breaker.status().problems;
        let [
            Problem::SnapshotSetAside {
                path: shown,
                set_aside_as,
                why,
            },
        ] = problems.as_slice()
        else {
            panic!("{problems:?}");
        };
        assert_eq!(shown, &path.display().to_string());
        let aside = dir.path().join("spikebreaker.json.corrupt");
        assert_eq!(
            set_aside_as.as_deref(),
            Some(aside.display().to_string().as_str())
        );
        assert!(why.contains("EOF"), "{why}");
        assert!(aside.exists());
        let text = prometheus.render();
        assert_eq!(
            gauge(&text, "set-aside", "snapshot_set_aside"),
            Some(1.0),
            "{text}"
        );
        // Every problem is exported, so a cleared one reads 0 rather than a missing series.
        for other in [
            "snapshot_unreadable",
            "snapshot_not_saved",
            "name_shared",
            "recorder_late",
        ] {
            assert_eq!(gauge(&text, "set-aside", other), Some(0.0), "{other}");
        }
    });
}

/// The option to fail `build()`: the file is left byte for byte, nothing set aside.
#[test]
fn a_strict_breaker_refuses_to_build_on_a_snapshot_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    let junk = b"{\"version\":99,\"kinds\":{}}".to_vec();
    std::fs::write(&path, &junk).unwrap();
    let error = keeping(&path, "strict")
        .strict_snapshot(true)
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(error.is_file(), "{message}");
    assert!(
        message.starts_with(&format!("cannot read the snapshot file {}:", path.display()))
            && message.contains("version 99"),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), junk, "left as it was");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["spikebreaker.json"], "nothing set aside, nothing saved");
    // A missing file is a first start, strict or not; a readable one restores.
    std::fs::remove_file(&path).unwrap();
    let breaker = keeping(&path, "strict").strict_snapshot(true).build().unwrap();
    assert!(breaker.check("email.welcome").is_allowed());
    drop(breaker);
    let restored = keeping(&path, "strict").strict_snapshot(true).build().unwrap();
    assert!(restored.kind_status("email.welcome").is_some());
    assert!(restored.status().problems.is_empty());
}

/// A save that fails (here: something not a regular file put at the path) is a problem until a
/// save succeeds.
#[cfg(unix)]
#[test]
fn a_failed_save_stands_until_a_save_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    let breaker = keeping(&path, "not-saved").build().unwrap();
    assert!(breaker.status().problems.is_empty());
    std::fs::create_dir(&path).unwrap();
    assert!(breaker.save_snapshot().is_err());
    let problems = breaker.status().problems;
    assert!(
        matches!(problems.as_slice(), [Problem::SnapshotNotSaved { why, .. }] if why.contains("not a regular file")),
        "{problems:?}"
    );
    std::fs::remove_dir(&path).unwrap();
    breaker.save_snapshot().unwrap();
    assert!(breaker.status().problems.is_empty());
}

#[test]
fn two_live_breakers_sharing_a_name_show_it_until_one_goes() {
    with_prometheus(|prometheus| {
        let named = || {
            Breaker::builder()
                .clock(ManualClock::new())
                .name("shared-name")
                .build()
                .unwrap()
        };
        let first = named();
        assert!(first.status().problems.is_empty());
        let second = named();
        for breaker in [&first, &second] {
            assert_eq!(breaker.status().problems, [Problem::NameShared { breakers: 2 }]);
        }
        assert_eq!(
            gauge(&prometheus.render(), "shared-name", "name_shared"),
            Some(1.0)
        );
        drop(second);
        assert!(first.status().problems.is_empty());
        first.refresh();
        assert_eq!(
            gauge(&prometheus.render(), "shared-name", "name_shared"),
            Some(0.0)
        );
    });
}

#[test]
fn a_recorder_installed_late_shows_from_the_refresh_that_finds_it() {
    let breaker = Breaker::builder()
        .clock(ManualClock::new())
        .name("late-recorder")
        .build()
        .unwrap();
    assert!(breaker.check("email.receipt").is_allowed());
    assert!(breaker.status().problems.is_empty());
    with_prometheus(|prometheus| {
        breaker.refresh();
        assert_eq!(breaker.status().problems, [Problem::RecorderLate]);
        assert_eq!(
            gauge(&prometheus.render(), "late-recorder", "recorder_late"),
            Some(1.0)
        );
    });
}
