//! Fleet mode: several servers with one Redis count a kind fleet-wide, and each goes on alone
//! (detecting on its own counts) when Redis is gone.

use std::time::{Duration, Instant};

use crate::redis_server;
use crate::server::Server;

fn config(redis: &redis_server::Server) -> String {
    format!(
        "[server]\n[server.fleet]\nurl = \"{}\"\nsync_interval_ms = 50\nresponse_timeout_ms = 100\n",
        redis.url()
    )
}

/// Checks one send of `kind` until it is refused (or a minute passes).
fn until_refused(server: &Server, kind: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = server.http("POST", "/v1/check", &format!(r#"{{"kind": "{kind}"}}"#));
        if reply.status == 429 {
            return;
        }
        assert!(Instant::now() < deadline, "never refused: {}", reply.body);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_servers_on_one_redis_trip_a_kind_on_its_fleet_wide_count() {
    let redis = redis_server::Server::start();
    let (a, b) = (Server::start(&config(&redis)), Server::start(&config(&redis)));
    // 300 on each: under each server's own warm-up ceiling (500), over it fleet-wide.
    for server in [&a, &b] {
        let reply = server.http("POST", "/v1/check", r#"{"kind": "push.promo", "count": 300}"#);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    until_refused(&a, "push.promo");
    until_refused(&b, "push.promo");
    let status = a.http("GET", "/admin/status/push.promo", "").json();
    assert!(status["attempted"].as_u64().unwrap() < 500, "{status}");
}

#[test]
fn with_redis_gone_a_server_detects_on_its_own_counts_and_says_it_is_degraded() {
    let mut redis = redis_server::Server::start();
    let server = Server::start(&config(&redis));
    assert_eq!(
        server
            .http("POST", "/v1/check", r#"{"kind": "email.receipt"}"#)
            .status,
        200
    );
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server
        .http_with("GET", "/metrics", &[], "")
        .body
        .contains(r#"spikebreaker_fleet_degraded{breaker="spikebreaker"} 1"#)
    {
        assert!(Instant::now() < deadline, "never degraded");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Checks are answered at once, and a runaway is stopped by the local warm-up ceiling.
    let started = Instant::now();
    let reply = server.http("POST", "/v1/check", r#"{"kind": "push.promo", "count": 600}"#);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.json()["allowed"], 500);
    assert_eq!(
        server
            .http("POST", "/v1/check", r#"{"kind": "email.welcome"}"#)
            .status,
        200
    );
    // The fleet's quarantine is in that Redis: a hold is refused, the notification stays with
    // its sender.
    let hold = server.http(
        "POST",
        "/v1/hold",
        r#"{"kind": "push.promo", "key": "k", "notification": {}}"#,
    );
    assert_eq!(hold.status, 503, "{}", hold.body);
    assert!(
        hold.json()["error"].as_str().unwrap().contains("unavailable"),
        "{}",
        hold.body
    );
}

#[test]
fn a_loan_acknowledged_to_another_server_of_the_fleet_is_settled_in_the_shared_store() {
    let redis = redis_server::Server::start();
    let mut first = Server::start(&config(&redis));
    first.http("POST", "/v1/check", r#"{"kind": "sms.otp"}"#);
    assert_eq!(
        first.http("POST", "/admin/kinds/sms.otp/force-open", "").status,
        200
    );
    for key in ["a", "b"] {
        let body = format!(r#"{{"kind": "sms.otp", "key": "{key}", "notification": {{"to": "{key}"}}}}"#);
        let reply = first.http("POST", "/v1/hold", &body);
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let released = first.http(
        "POST",
        "/admin/quarantine/sms.otp/release",
        r#"{"per_minute": 600000}"#,
    );
    assert_eq!(released.json()["approved"], 2);
    let lent = first.http("POST", "/v1/claim", r#"{"max": 2}"#).json()["items"].clone();
    first.kill();

    // The sender acknowledges to another server of the fleet, which never lent them.
    let second = Server::start(&config(&redis));
    for (item, outcome) in [(&lent[0], "failed"), (&lent[1], "sent")] {
        let body = serde_json::json!({"token": item["token"], "outcome": outcome, "note": "bounced"});
        let reply = second.http("POST", "/v1/ack", &body.to_string());
        assert_eq!(reply.json()["acked"], "settled", "{}", reply.body);
    }
    let items = second
        .http_with("GET", "/admin/quarantine/sms.otp/items", &[], "")
        .json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    let failed = items
        .iter()
        .find(|item| item["state"] == "held")
        .expect("held again");
    assert_eq!(failed["note"], "bounced");
    assert_eq!(
        failed["notification"]["notification"]["to"], "a",
        "kept whole: {failed}"
    );
    assert!(items.iter().any(|item| item["state"] == "released"));
}
