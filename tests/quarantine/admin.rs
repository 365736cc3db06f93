//! The quarantine's admin routes, driven in process through the router as a tower service.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use spikebreaker::Guarded;
use spikebreaker::quarantine::{Filter, MemoryStore, Quarantine, admin};
use tower::ServiceExt;

use super::{Outbox, RECEIPT, RUNAWAY, breaker, email, force_open, held};

async fn call(router: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn an_operator_looks_discards_and_releases_over_http() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(1_000));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    force_open(&breaker, RECEIPT);
    for i in 0..30 {
        held(&guarded, email(RUNAWAY, "loop@example.com"));
        if i < 3 {
            held(&guarded, email(RECEIPT, &format!("u{i}@example.com")));
        }
    }
    let router = admin::router(quarantine.clone());

    let (status, summary) = call(&router, "GET", "/quarantine", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["trips"].as_array().unwrap().len(), 2);
    let (_, runaway) = call(&router, "GET", &format!("/quarantine/{RUNAWAY}"), "").await;
    let trip = &runaway["trips"][0];
    assert_eq!(
        (trip["held"].as_u64(), trip["recipients"].as_u64()),
        (Some(30), Some(1))
    );
    let trip_id = trip["trip"].as_u64().unwrap();

    let (status, items) = call(
        &router,
        "GET",
        &format!("/quarantine/{RECEIPT}/items?state=held&limit=2"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items.as_array().unwrap().len(), 2);
    assert_eq!(items[0]["notification"]["to"], "u0@example.com");

    let (status, error) = call(&router, "POST", &format!("/quarantine/{RUNAWAY}/discard"), "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"].as_str().unwrap().contains("reason"), "{error}");
    let body = json!({ "reason": "runaway 2FA job", "trip": trip_id }).to_string();
    let (status, discarded) = call(&router, "POST", &format!("/quarantine/{RUNAWAY}/discard"), &body).await;
    assert_eq!((status, discarded), (StatusCode::OK, json!({ "discarded": 30 })));

    let (status, approved) = call(&router, "POST", &format!("/quarantine/{RECEIPT}/release"), "").await;
    assert_eq!((status, approved), (StatusCode::OK, json!({ "approved": 3 })));
    let (status, error) = call(
        &router,
        "POST",
        &format!("/quarantine/{RECEIPT}/release"),
        r#"{"per_minute": -1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, error) = call(
        &router,
        "GET",
        &format!("/quarantine/{RECEIPT}/items?state=parked"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

#[tokio::test]
async fn the_quarantine_routes_refuse_what_a_browser_can_send_cross_site() {
    let (breaker, _) = breaker();
    let quarantine = Quarantine::new(MemoryStore::new(1_000));
    let guarded = Guarded::new(Outbox::default(), breaker.clone()).with_quarantine(quarantine.clone());
    force_open(&breaker, RUNAWAY);
    held(&guarded, email(RUNAWAY, "loop@example.com"));
    let router = admin::router(quarantine.clone());
    let discard = format!("/quarantine/{RUNAWAY}/discard");
    let attempts = [
        // A form posted from another site: no JSON content type.
        ("localhost", "application/x-www-form-urlencoded", 415),
        // A rebound DNS name.
        ("evil.example", "application/json", 403),
    ];
    for (host, content_type, expected) in attempts {
        let request = Request::builder()
            .method("POST")
            .uri(&discard)
            .header("host", host)
            .header("content-type", content_type)
            .body(Body::from(r#"{"reason": "cross-site"}"#))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{host} {content_type}");
    }
    assert_eq!(
        quarantine.summary(&Filter::all()).unwrap().live(),
        1,
        "nothing was discarded"
    );
}
