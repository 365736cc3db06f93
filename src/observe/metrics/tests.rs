use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

use super::*;
use crate::state::{Reason, State};

fn values(recorder: &DebuggingRecorder) -> HashMap<(MetricKind, String, Vec<String>), DebugValue> {
    let label = |key: &CompositeKey| {
        key.key()
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect()
    };
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| ((key.kind(), key.key().name().to_owned(), label(&key)), value))
        .collect()
}

#[test]
fn live_breakers_are_counted_by_name_and_a_dropped_one_frees_its_name() {
    use crate::{Breaker, ManualClock};
    let named = || {
        Breaker::builder()
            .clock(ManualClock::new())
            .name("names-in-use-test")
            .build()
            .unwrap()
    };
    let first = named();
    assert_eq!(NameInUse::live("names-in-use-test"), 1);
    let second = named(); // warns: both write the same series
    let clone = second.clone();
    assert_eq!(
        NameInUse::live("names-in-use-test"),
        2,
        "a clone is the same breaker"
    );
    drop((second, clone));
    assert_eq!(NameInUse::live("names-in-use-test"), 1);
    drop(first);
    assert_eq!(NameInUse::live("names-in-use-test"), 0);
    assert!(
        !NAMES_IN_USE.lock().contains_key("names-in-use-test"),
        "forgotten at zero"
    );
    // A replay's breakers (a backtest runs many at once) claim no name.
    let replay = Breaker::for_replay(crate::Config::default(), ManualClock::new()).unwrap();
    assert_eq!(replay.name(), "default");
    assert!(replay.claims_no_name());
}

#[test]
fn a_kind_exports_its_figures_under_its_label() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let handles = KindMetrics::register(&Arc::from("default"), &Arc::from("sms.login"));
        let mut figures = KindStatus {
            state: State::Open,
            reason: Reason::Spike,
            open_for_ms: 90_000,
            attempted: 120,
            allowed: 100,
            blocked: 20,
            trips: 1,
            ..KindStatus::for_tests("sms.login")
        };
        figures.windows[0].window_count = 110;
        figures.windows[0].threshold = 100;
        figures.windows[0].expected = 12.5;
        handles.export_counts(figures.attempted, figures.blocked, figures.trips);
        KindMetrics::export_gauges(&Arc::from("default"), &figures);
    });
    let values = values(&recorder);
    let kind = vec!["breaker=default".to_owned(), "kind=sms.login".to_owned()];
    let get = |metric: MetricKind, name: &str| values.get(&(metric, name.to_owned(), kind.clone()));
    let labels = |timescale: &str| {
        vec![
            "breaker=default".to_owned(),
            "kind=sms.login".to_owned(),
            format!("timescale={timescale}"),
        ]
    };
    let (minute, day) = (labels("minute"), labels("day"));
    let window =
        |name: &str, labels: &Vec<String>| values.get(&(MetricKind::Gauge, name.to_owned(), labels.clone()));
    let gauge = |value: f64| Some(DebugValue::Gauge(value.into()));
    assert_eq!(
        get(MetricKind::Counter, ATTEMPTED),
        Some(&DebugValue::Counter(120))
    );
    assert_eq!(get(MetricKind::Counter, ALLOWED), Some(&DebugValue::Counter(100)));
    assert_eq!(get(MetricKind::Counter, BLOCKED), Some(&DebugValue::Counter(20)));
    assert_eq!(get(MetricKind::Counter, TRIPS), Some(&DebugValue::Counter(1)));
    assert_eq!(get(MetricKind::Gauge, STATE), gauge(1.0).as_ref());
    assert_eq!(get(MetricKind::Gauge, OPEN_SECONDS), gauge(90.0).as_ref());
    assert_eq!(window(WINDOW_SENDS, &minute), gauge(110.0).as_ref());
    assert_eq!(window(EXPECTED_SENDS, &minute), gauge(12.5).as_ref());
    assert_eq!(window(THRESHOLD_SENDS, &minute), gauge(100.0).as_ref());
    assert_eq!(
        window(THRESHOLD_SENDS, &day),
        gauge(f64::INFINITY).as_ref(),
        "not judged yet"
    );
}

#[test]
fn counters_never_go_back() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let handles = BreakerMetrics::register(&Arc::from("api"));
        handles.export(3, 7);
        handles.export(2, 5);
    });
    let values = values(&recorder);
    assert_eq!(
        values.get(&(
            MetricKind::Counter,
            OVERFLOWED.to_owned(),
            vec!["breaker=api".to_owned()]
        )),
        Some(&DebugValue::Counter(7))
    );
    assert_eq!(
        values.get(&(
            MetricKind::Gauge,
            KINDS.to_owned(),
            vec!["breaker=api".to_owned()]
        )),
        Some(&DebugValue::Gauge(2.0.into()))
    );
}

#[cfg(feature = "redis")]
#[test]
fn the_fleet_gauge_is_described() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        describe();
        set_fleet_degraded("default", true);
    });
    let snapshot = recorder.snapshotter().snapshot().into_vec();
    let (_, _, help, _) = snapshot
        .iter()
        .find(|(key, ..)| key.key().name() == FLEET_DEGRADED)
        .expect("the gauge is recorded");
    assert!(
        help.as_ref().is_some_and(|help| help.contains("Redis")),
        "{help:?}"
    );
}
