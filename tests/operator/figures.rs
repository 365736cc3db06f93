//! The figures an operator reads as JSON: a kind's status, the breaker's, and events. A window
//! that is not judged yet has no threshold: `null`, never `18446744073709551615` (which a
//! JavaScript reader would read as 18446744073709552000, and which is no count).

use serde_json::Value;
use spikebreaker::status::Event;
use spikebreaker::{Breaker, Config, ManualClock};

#[test]
fn an_unjudged_window_has_a_null_threshold_in_status_and_events() {
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    let events = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<Event>::new()));
    let heard = events.clone();
    breaker
        .subscribe(move |event| heard.lock().push(event.clone()))
        .detach();
    assert!(breaker.check("email.welcome").is_allowed());
    breaker.force_open("email.welcome").unwrap();

    // A new kind: the minute window is held to the warm-up ceiling, the hour to its share of it
    // in every minute, the day not judged.
    let kind: Value = serde_json::to_value(breaker.kind_status("email.welcome").unwrap()).unwrap();
    let thresholds: Vec<_> = (0..3).map(|i| kind["windows"][i]["threshold"].clone()).collect();
    assert_eq!(thresholds, [Value::from(500), Value::from(24_000), Value::Null]);
    let whole = serde_json::to_string(&breaker.status()).unwrap();
    let event = serde_json::to_string(&events.lock()[0]).unwrap();
    for json in [kind.to_string(), whole, event] {
        assert!(!json.contains("18446744073709551615"), "{json}");
    }
    // Read back, a null is a window not judged.
    let back: spikebreaker::status::KindStatus = serde_json::from_value(kind).unwrap();
    assert_eq!(back.day().threshold, u64::MAX);
}
