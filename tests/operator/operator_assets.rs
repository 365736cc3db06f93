//! The operator files in `operator/` (Prometheus alerting rules and their unit tests, the Grafana
//! dashboard) name only metrics spikebreaker exports: every `spikebreaker_*` name they use is
//! one a breaker, its kinds and a quarantine really record in the run below. Fleet mode's gauge
//! needs a Redis server to be recorded, so it is taken from its constant in
//! `spikebreaker::status::metrics` (with the `redis` feature; without it, fleet names are not checked).
//! `operator/check` checks their syntax and runs the rules' tests with promtool.

use std::collections::BTreeSet;
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use spikebreaker::quarantine::{Filter, MemoryStore, Quarantine, ReleaseOrder, Releaser};
use spikebreaker::{Breaker, Config, Guarded, ManualClock, Notification, Sender, sender_fn};

#[derive(serde::Serialize, serde::Deserialize)]
struct Email {
    kind: String,
}

impl Notification for Email {
    fn kind(&self) -> &str {
        &self.kind
    }
}

/// Every `spikebreaker_*` name in `text` (alert names are `Spikebreaker…`, not matched).
fn names_in(text: &str) -> BTreeSet<String> {
    text.match_indices("spikebreaker_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

/// The names a breaker, its kinds and a quarantine record when everything happens: sends, a
/// trip, an overflow, a planned surge, quarantine holds, refusals, a release and a discard.
fn exported() -> BTreeSet<String> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let clock = ManualClock::new();
        let config = Config {
            max_kinds: 2,
            ..Config::default()
        };
        let breaker = Breaker::builder()
            .config(config)
            .clock(clock.clone())
            .name("mailer")
            .build()
            .unwrap();
        for kind in ["email.welcome", "email.receipt", "user.1", "user.2"] {
            let _ = breaker.check(kind);
        }
        breaker
            .plan_surge("email.receipt", 10, Duration::from_secs(60))
            .unwrap();
        let sender = sender_fn(|_: Email| Ok::<_, std::io::Error>(()))
            .released(|_: Email, _key: &str| Ok::<_, std::io::Error>(()));
        let held = Quarantine::new(MemoryStore::new(10));
        let guarded = Guarded::new(sender, breaker.clone()).with_quarantine(held.clone());
        let full =
            Guarded::new(sender, breaker.clone()).with_quarantine(Quarantine::new(MemoryStore::new(0)));
        breaker.force_open("email.welcome").unwrap();
        for _ in 0..3 {
            let _ = guarded.send(Email {
                kind: "email.welcome".into(),
            });
        }
        let _ = full.send(Email {
            kind: "email.welcome".into(),
        });
        let welcome = Filter::kind("email.welcome");
        assert_eq!(
            held.release(&welcome.clone().ids(vec![1]), &ReleaseOrder::default())
                .unwrap(),
            1
        );
        Releaser::<Email>::new(held.clone()).step(&guarded).unwrap();
        assert!(held.discard(&welcome, "a runaway").unwrap() > 0);
        clock.advance(Duration::from_secs(5));
        breaker.refresh();
    });
    let names: BTreeSet<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, ..)| key.key().name().to_owned())
        .collect();
    #[cfg(feature = "redis")]
    let names = {
        let mut names = names;
        names.insert(spikebreaker::status::metrics::FLEET_DEGRADED.to_owned());
        names
    };
    names
}

#[test]
fn every_metric_the_rules_and_the_dashboard_use_is_exported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("operator");
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let rules = read("prometheus/spikebreaker.rules.yml");
    let tests = read("prometheus/spikebreaker.rules.test.yml");
    let dashboard: serde_json::Value = serde_json::from_str(&read("grafana/spikebreaker.json")).unwrap();

    // The dashboard's queries: every panel's targets, its variables and its annotations.
    let mut queries = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queries += target["expr"].as_str().expect("a PromQL expression");
            queries.push('\n');
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        queries += variable["definition"].as_str().unwrap_or_default();
        queries.push('\n');
    }
    for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
        queries += annotation["expr"].as_str().unwrap_or_default();
        queries.push('\n');
    }

    let exported = exported();
    for (file, text) in [
        ("rules", &rules),
        ("rules' tests", &tests),
        ("dashboard", &queries),
    ] {
        let used = names_in(text);
        assert!(used.len() >= 5, "{file}: {used:?}");
        let unknown: Vec<_> = used
            .iter()
            .filter(|name| !exported.contains(*name))
            .filter(|name| cfg!(feature = "redis") || !name.contains("fleet"))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics spikebreaker does not export: {unknown:?}; it exports {exported:?}"
        );
    }
    // The alerts the operator needs are there.
    for alert in [
        "SpikebreakerKindTripped",
        "SpikebreakerKindOpenLong",
        "SpikebreakerFleetDegraded",
        "SpikebreakerOverflowInUse",
        "SpikebreakerPlannedSurgeActive",
        "SpikebreakerProblem",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} is tested"
        );
    }
}

#[test]
fn a_misspelled_metric_would_be_caught() {
    let used = names_in("rate(spikebreaker_attempted_total[5m]) / spikebreaker_atempted_total");
    let exported = exported();
    let unknown: Vec<_> = used.iter().filter(|name| !exported.contains(*name)).collect();
    assert_eq!(unknown, vec!["spikebreaker_atempted_total"]);
}
