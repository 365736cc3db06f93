//! The API a sender sees of slices: a notification that names its slices, the guarded sender, the
//! refusal that names the slice and hands the notification back, status, events, metrics,
//! snapshots, configuration, the quarantine and the admin route.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use spikebreaker::guard::Slices;
use spikebreaker::quarantine::{Filter, MemoryStore, Quarantine, Query};
use spikebreaker::status::{Event, Reason, State, metrics};
use spikebreaker::{
    Breaker, Clock, Config, GuardError, Guarded, ManualClock, Notification, Sender, Snapshot, sender_fn,
};

use crate::support::{HOUR_MS, MINUTE_MS, MONDAY_MS};

const KIND: &str = "sms.login_code";

/// An SMS that names its destination prefix and its recipient.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sms {
    to: String,
    prefix: String,
}

impl Notification for Sms {
    fn kind(&self) -> &str {
        KIND
    }

    fn recipient(&self) -> Option<&str> {
        Some(&self.to)
    }

    fn slices(&self) -> Slices<'_> {
        Slices::new().with("prefix", &self.prefix)
    }
}

fn sms(i: u64, prefix: &str) -> Sms {
    Sms {
        to: format!("+{i}"),
        prefix: prefix.to_owned(),
    }
}

/// The normal traffic: 60, 30 and 3 a minute to three prefixes.
const NORMAL: [(&str, u64); 3] = [("+447", 60), ("+336", 30), ("+491", 3)];

/// Sends `values` (prefix, a minute) for `minutes` from the clock's time, evenly and in time
/// order, through `send`; returns the refusals.
fn traffic<E>(
    clock: &ManualClock,
    minutes: u64,
    values: &[(&str, u64)],
    mut send: impl FnMut(Sms) -> Result<(), E>,
) -> Vec<E> {
    let from = clock.now_ms();
    let mut sends: Vec<(u64, &str)> = (0..minutes)
        .flat_map(|minute| {
            values.iter().flat_map(move |&(prefix, per_minute)| {
                (0..per_minute).map(move |i| (from + minute * MINUTE_MS + i * MINUTE_MS / per_minute, prefix))
            })
        })
        .collect();
    sends.sort_unstable();
    let mut refused = Vec::new();
    for (i, (t, prefix)) in sends.into_iter().enumerate() {
        clock.set(t);
        if let Err(error) = send(sms(t * 10 + i as u64 % 10, prefix)) {
            refused.push(error);
        }
    }
    clock.set(from + minutes * MINUTE_MS);
    refused
}

/// A breaker (on a clock at a Monday) whose kind has learned four hours of [`NORMAL`].
fn learned(config: Config) -> (Breaker<ManualClock>, ManualClock) {
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
    let refused = traffic(&clock, 4 * 60, &NORMAL, |sms| {
        breaker.check_sliced(KIND, &sms.slices())
    });
    assert!(refused.is_empty(), "learning refused {refused:?}");
    (breaker, clock)
}

fn gateway() -> impl Sender<Sms, Output = (), Error = String> {
    sender_fn(|_: Sms| Ok::<(), String>(()))
}

#[test]
fn a_pumped_prefix_is_refused_with_its_slice_named_and_the_sms_handed_back() {
    let (breaker, clock) = learned(Config::default());
    let guarded = Guarded::new(gateway(), breaker.clone());
    let pumped = [("+447", 60), ("+336", 30), ("+491", 120)];
    let refused = traffic(&clock, 3, &pumped, |sms| {
        guarded
            .send(sms.clone())
            .map(drop)
            .map_err(|e| Box::new((sms, e)))
    });
    assert!(!refused.is_empty());
    for refusal in &refused {
        let (sms, error) = &**refusal;
        let GuardError::Blocked(blocked) = error else {
            panic!("{error:?}")
        };
        assert_eq!(sms.prefix, "+491", "only the pumped prefix is refused");
        assert_eq!(blocked.notification(), sms, "handed back whole");
        assert_eq!((blocked.kind(), blocked.reason()), (KIND, Reason::Slice));
        assert_eq!(blocked.slice().unwrap().to_string(), "prefix=+491");
        assert!(
            blocked
                .reopens_at_ms()
                .is_some_and(|at| at >= blocked.tripped_at_ms() + 300_000)
        );
        assert!(
            blocked.to_string().contains("(slice of prefix=+491)"),
            "{blocked}"
        );
    }
    // The kind itself never tripped; its status shows the open slice and counts its refusals.
    let status = breaker.kind_status(KIND).unwrap();
    assert_eq!((status.state, status.trips), (State::Closed, 0));
    assert_eq!(status.blocked, refused.len() as u64);
    let prefix = &status.slices[0];
    assert_eq!((&*prefix.dimension, prefix.warmed_up), ("prefix", true));
    let open: Vec<_> = prefix.slices.iter().filter(|s| s.state == State::Open).collect();
    assert_eq!(open.len(), 1);
    assert_eq!((&*open[0].value, open[0].blocked), ("+491", refused.len() as u64));
    let learned = open[0].learned_share.unwrap();
    assert!((learned - 3.0 / 93.0).abs() < 0.01, "{learned}");
    // An operator closes the slice.
    breaker.reset_slice(KIND, "prefix", "+491").unwrap();
    assert!(guarded.send(sms(1, "+491")).is_ok());
}

#[test]
fn a_slice_trip_is_an_event_that_names_the_slice_and_the_share() {
    let (breaker, clock) = learned(Config::default());
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let sink = Arc::clone(&events);
    breaker
        .subscribe(move |event| sink.lock().unwrap().push(event.clone()))
        .detach();
    let _ = traffic(&clock, 2, &[("+491", 200)], |sms| {
        breaker.check_sliced(KIND, &sms.slices())
    });
    let sink = Arc::clone(&events);
    let events = events.lock().unwrap();
    let trip = events.iter().find(|e| e.is_trip()).expect("a trip");
    assert!(trip.is_slice() && trip.reason == Reason::Slice);
    assert_eq!(trip.slice.as_ref().unwrap().to_string(), "prefix=+491");
    let share = trip.expected_share.unwrap();
    assert!((share - 3.0 / 93.0).abs() < 0.01, "{share}");
    let text = trip.to_string();
    assert!(
        text.starts_with("prefix=+491 of sms.login_code tripped (slice)"),
        "{text}"
    );
    assert!(text.contains("(expected share 3.2%)"), "{text}");
    let json = serde_json::to_value(trip).unwrap();
    assert_eq!(json["slice"]["value"], "+491");
    assert_eq!(json["reason"], "slice");
    let kind_events_before = events.len();
    drop(events);
    // A kind's own events carry no slice, and no `slice` in JSON.
    breaker.force_open(KIND).unwrap();
    let events = sink.lock().unwrap();
    let forced = &events[kind_events_before..];
    assert!(
        forced.iter().any(|e| e.is_forced() && !e.is_slice()),
        "{forced:?}"
    );
    let json = serde_json::to_value(forced.last().unwrap()).unwrap();
    assert!(json.get("slice").is_none(), "{json}");
}

#[test]
fn the_eleventh_identical_notification_to_one_recipient_is_refused_as_a_repeat() {
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let guarded = Guarded::new(gateway(), breaker.clone());
    let loop_sms = || Sms {
        to: "+447700900123".into(),
        prefix: "+447".into(),
    };
    for _ in 0..10 {
        clock.advance(Duration::from_secs(30));
        assert!(guarded.send(loop_sms()).is_ok());
    }
    clock.advance(Duration::from_secs(30));
    let blocked = guarded.send(loop_sms()).unwrap_err().into_blocked().unwrap();
    assert_eq!(blocked.reason(), Reason::Repeat);
    assert_eq!(blocked.slice().unwrap().to_string(), "recipient=+447700900123");
    assert_eq!(blocked.into_notification(), loop_sms());
    // Another recipient flows; the repeat check shows in the status.
    assert!(guarded.send(sms(1, "+447")).is_ok());
    let repeats = breaker.kind_status(KIND).unwrap().repeats.unwrap();
    assert_eq!((repeats.max, repeats.window_secs, repeats.blocked), (10, 3600, 1));
    assert_eq!(repeats.remembered, 2);
    // With a content key, only the same content counts as the same notification.
    let other = Slices::new()
        .recipient("+447700900123")
        .content_of("another message");
    assert!(breaker.check_sliced(KIND, &other).is_ok());
}

#[test]
fn a_notification_that_names_nothing_is_untouched_by_slices() {
    struct Plain;
    impl Notification for Plain {
        fn kind(&self) -> &str {
            KIND
        }
        fn recipient(&self) -> Option<&str> {
            Some("+447700900123")
        }
    }
    let breaker = Breaker::with_clock(Config::default(), ManualClock::starting_at(MONDAY_MS)).unwrap();
    let guarded = Guarded::new(sender_fn(|_: Plain| Ok::<(), String>(())), breaker.clone());
    // Not opted in: the same recipient a hundred times is no repeat, and nothing is tracked.
    for _ in 0..100 {
        assert!(guarded.send(Plain).is_ok());
    }
    let status = breaker.kind_status(KIND).unwrap();
    assert!(status.slices.is_empty() && status.repeats.is_none());
}

#[test]
fn a_closure_names_the_slices_of_a_type_that_does_not() {
    struct Push {
        tenant: String,
    }
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let push = Guarded::with_classifier(
        sender_fn(|_: Push| Ok::<(), String>(())),
        breaker.clone(),
        |_: &Push| "push.promo",
    )
    .with_slices(|push: &Push| Slices::new().with("tenant", &push.tenant));
    assert!(
        push.send(Push {
            tenant: "acme".into()
        })
        .is_ok()
    );
    let status = breaker.kind_status("push.promo").unwrap();
    assert_eq!(status.slices[0].slices[0].value.as_ref(), "acme");
}

#[test]
fn safe_listed_values_never_trip_and_a_kind_can_switch_slices_and_repeats_off() {
    let safe = Config::from_toml("[kinds.\"sms.*\".slices]\nsafe = { prefix = [\"+491\"] }\n").unwrap();
    let (breaker, clock) = learned(safe);
    let pumped = [("+447", 60), ("+336", 30), ("+491", 100)];
    let refused = traffic(&clock, 3, &pumped, |sms| {
        breaker.check_sliced(KIND, &sms.slices())
    });
    assert!(refused.is_empty(), "a safe value never trips: {refused:?}");
    let status = breaker.kind_status(KIND).unwrap();
    assert!(
        status.slices[0]
            .slices
            .iter()
            .any(|s| &*s.value == "+491" && s.safe)
    );

    let off = Config::from_toml(
        "[kinds.\"sms.*\".slices]\nenabled = false\n[kinds.\"sms.*\".repeats]\nenabled = false\n",
    )
    .unwrap();
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(off, clock.clone()).unwrap();
    let same = Slices::new().with("prefix", "+447").recipient("+1");
    for _ in 0..50 {
        clock.advance(Duration::from_secs(1));
        assert!(breaker.check_sliced(KIND, &same).is_ok());
    }
    let status = breaker.kind_status(KIND).unwrap();
    assert!(status.slices.is_empty() && status.repeats.is_none());
}

#[test]
fn only_the_dimensions_configured_are_tracked_and_a_bad_slice_is_ignored() {
    let config = Config::from_toml("[defaults.slices]\ndimensions = [\"tenant\"]\n").unwrap();
    let breaker = Breaker::with_clock(config, ManualClock::starting_at(MONDAY_MS)).unwrap();
    let slices = Slices::new()
        .with("tenant", "acme")
        .with("country", "GB")
        .with("bad dimension", "x")
        .with("plan", "");
    assert!(breaker.check_sliced(KIND, &slices).is_ok());
    let dimensions: Vec<_> = breaker
        .kind_status(KIND)
        .unwrap()
        .slices
        .iter()
        .map(|d| d.dimension.to_string())
        .collect();
    assert_eq!(dimensions, ["tenant"]);
}

#[test]
fn in_dry_run_a_slice_trips_and_reports_but_refuses_nothing() {
    let config = Config::from_toml("[defaults]\ndry_run = true\n").unwrap();
    let (breaker, clock) = learned(config);
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let sink = Arc::clone(&events);
    breaker
        .subscribe(move |event| sink.lock().unwrap().push(event.clone()))
        .detach();
    let refused = traffic(&clock, 2, &[("+491", 200)], |sms| {
        breaker.check_sliced(KIND, &sms.slices())
    });
    assert!(refused.is_empty());
    let events = events.lock().unwrap();
    assert!(
        events.iter().any(|e| e.is_would_trip() && e.is_slice()),
        "{events:?}"
    );
    assert_eq!(breaker.kind_status(KIND).unwrap().blocked, 0);
}

#[test]
fn only_tracked_values_that_tripped_get_series_of_their_own() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::describe();
    ::metrics::with_local_recorder(&recorder, || {
        let (breaker, clock) = learned(Config::default());
        let _ = traffic(&clock, 2, &[("+491", 200)], |sms| {
            breaker.check_sliced(KIND, &sms.slices())
        });
        breaker.refresh();
    });
    let series: Vec<(String, Vec<String>, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (key.key().name().to_owned(), labels, value)
        })
        .collect();
    let open: Vec<_> = series
        .iter()
        .filter(|(name, ..)| name == metrics::SLICE_OPEN)
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].1.contains(&"value=+491".to_owned()));
    assert_eq!(open[0].2, DebugValue::Gauge(1.0.into()));
    let trips = series
        .iter()
        .find(|(name, labels, _)| {
            name == metrics::SLICE_TRIPS && labels.contains(&"dimension=prefix".to_owned())
        })
        .expect("the dimension's trips");
    assert_eq!(trips.2, DebugValue::Counter(1));
    assert!(
        series
            .iter()
            .all(|(_, labels, _)| !labels.iter().any(|l| l == "value=+447")),
        "a value that never tripped has no series"
    );
}

#[test]
fn a_snapshot_keeps_the_learned_shares_and_a_restart_judges_at_once() {
    let (breaker, _) = learned(Config::default());
    let saved = breaker.snapshot().to_json();
    assert!(
        saved.contains("\"slices\"") && saved.contains("\"+491\""),
        "{saved}"
    );
    let clock = ManualClock::starting_at(MONDAY_MS + 10 * HOUR_MS);
    let restarted = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    restarted.restore(&Snapshot::from_json(&saved).unwrap()).unwrap();
    let refused = traffic(&clock, 2, &[("+447", 60), ("+491", 200)], |sms| {
        restarted.check_sliced(KIND, &sms.slices())
    });
    assert!(
        !refused.is_empty(),
        "the restored share judges the pumped prefix at once"
    );
    assert!(
        refused
            .iter()
            .all(|b| b.slice().unwrap().to_string() == "prefix=+491")
    );
    // A share out of range is refused with the snapshot.
    let bad = saved.replacen("\"share\":", "\"share\":7.0,\"x\":", 1);
    assert!(Snapshot::from_json(&bad).is_err());
}

#[test]
fn a_quarantined_item_names_the_slice_that_refused_it() {
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let quarantine = Quarantine::new(MemoryStore::new(100));
    let guarded = Guarded::new(gateway(), breaker.clone()).with_quarantine(quarantine.clone());
    let same = || Sms {
        to: "+447700900123".into(),
        prefix: "+447".into(),
    };
    for _ in 0..10 {
        assert!(guarded.send(same()).is_ok());
    }
    assert!(matches!(guarded.send(same()), Err(GuardError::Quarantined(_))));
    let items = quarantine.items(&Query::new(Filter::all(), 10)).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].slice.as_deref(), Some("recipient=+447700900123"));
    assert_eq!(items[0].reason, Reason::Repeat);
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn the_tower_layer_refuses_a_repeat_with_the_request_inside() {
    use spikebreaker::guard::tower::GuardLayer;
    use tower::{Layer, Service, ServiceExt, service_fn};

    let breaker = Breaker::with_clock(Config::default(), ManualClock::starting_at(MONDAY_MS)).unwrap();
    let layer = GuardLayer::new(breaker);
    let mut service = layer.layer(service_fn(|_: Sms| async { Ok::<_, String>(()) }));
    for _ in 0..10 {
        service.ready().await.unwrap().call(sms(7, "+447")).await.unwrap();
    }
    let refused = service
        .ready()
        .await
        .unwrap()
        .call(sms(7, "+447"))
        .await
        .unwrap_err();
    let blocked = refused.into_blocked().unwrap();
    assert_eq!(blocked.slice().unwrap().to_string(), "recipient=+7");
}

#[cfg(feature = "admin")]
#[tokio::test]
async fn the_admin_route_closes_one_slice() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let (breaker, clock) = learned(Config::default());
    let _ = traffic(&clock, 2, &[("+491", 200)], |sms| {
        breaker.check_sliced(KIND, &sms.slices())
    });
    let post = |path: &str| {
        Request::post(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Body::empty())
            .unwrap()
    };
    let router = spikebreaker::admin::router(breaker.clone());
    let answer = router
        .clone()
        .oneshot(post("/kinds/sms.login_code/slices/prefix/+491/reset"))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap();
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let slice = status["slices"][0]["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["value"] == "+491")
        .unwrap()
        .clone();
    assert_eq!(
        (slice["state"].as_str(), slice["reason"].as_str()),
        (Some("closed"), Some("reset"))
    );
    let unknown = router
        .oneshot(post("/kinds/sms.login_code/slices/prefix/+999/reset"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
