//! The HTTP routes, as a script (or `curl`) uses them.

use serde_json::json;

use crate::server::{Server, curl};

#[test]
fn check_answers_the_decision_or_429_with_the_explanation_and_retry_after() {
    let server = Server::start("");
    let allowed = server.http("POST", "/v1/check", r#"{"kind": "email.receipt"}"#);
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let body = allowed.json();
    assert_eq!(body["decision"], "allowed");
    assert_eq!(
        (body["count"].clone(), body["allowed"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(body["limit"]["remaining"], 499);

    let refused = server.http("POST", "/v1/check", r#"{"kind": "push.promo", "count": 600}"#);
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("300"));
    let body = refused.json();
    assert_eq!(body["decision"], "blocked");
    assert_eq!(
        body["allowed"], 500,
        "a batch sender may send the first 500 and hold the rest"
    );
    assert_eq!(body["reason"], "warmup");
    assert_eq!(
        body["explanation"],
        "push.promo is open (warmup): minute window 501 > 500 (the warm-up ceiling: nothing learned yet); \
         it may reopen in 300 s"
    );
}

#[test]
fn bad_requests_are_named_and_count_nothing() {
    let server = Server::start("[server]\nmax_hits_addend = 100\n");
    let huge = format!(r#"{{"kind": "{}"}}"#, "k".repeat(10 * 1024));
    for (body, expected) in [
        ("{", "expected a JSON body"),
        (r#"{"kind": 7}"#, "invalid type"),
        (r#"{"kind": "a", "cuont": 1}"#, "unknown field `cuont`"),
        (r#"{"kind": "a", "count": 0}"#, "not 0"),
        (r#"{"kind": "a", "count": 101}"#, "1 to 100"),
        (r#"{"kind": "a", "count": -1}"#, "invalid value"),
        (&huge, "(10240 bytes)"),
    ] {
        let reply = server.http("POST", "/v1/check", body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(expected), "{expected}: {error}");
    }
    assert_eq!(server.http("GET", "/admin/status", "").json()["registered"], 0);
}

#[test]
fn the_json_endpoint_answers_as_lyfts_ratelimit_does() {
    let server = Server::start("");
    let request = |kind: &str, hits: u32| {
        json!({
            "domain": "spikebreaker",
            "hitsAddend": hits,
            "descriptors": [{"entries": [{"key": "kind", "value": kind}]}],
        })
        .to_string()
    };
    let ok = server.http("POST", "/json", &request("email.receipt", 1));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.json(),
        json!({"overallCode": "OK", "statuses": [{"code": "OK", "limitRemaining": 499, "currentLimit": {
            "name": "minute window 1 ≤ 500 (the warm-up ceiling: nothing learned yet)",
            "requestsPerUnit": 500, "unit": "MINUTE"}}]})
    );
    let over = server.http("POST", "/json", &request("push.promo", 501));
    assert_eq!(over.status, 429, "{}", over.body);
    let body = over.json();
    assert_eq!(body["overallCode"], "OVER_LIMIT");
    assert_eq!(body["statuses"][0]["code"], "OVER_LIMIT");
    assert!(
        body["statuses"][0]["durationUntilReset"]
            .as_str()
            .unwrap()
            .ends_with('s')
    );
    let bad = server.http("POST", "/json", r#"{"domain": "other", "descriptors": []}"#);
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("unknown domain"));
}

#[test]
#[cfg_attr(
    spikebreaker_no_curl,
    ignore = "no curl on the PATH when the tests were built (apt-get install curl; \
              SPIKEBREAKER_CURL_TESTS=require makes it fail instead)"
)]
fn curl_checks_a_kind_as_a_shell_script_would() {
    let server = Server::start("");
    let url = format!("http://{}/v1/check", server.http);
    let (out, ok) = curl(&[
        "--fail-with-body",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"kind": "email.welcome"}"#,
        &url,
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["decision"],
        "allowed"
    );
    // `-w` shows what a script branches on: the status, and Retry-After.
    let (out, _) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %header{retry-after}",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"kind": "email.welcome", "count": 1000}"#,
        &url,
    ]);
    assert_eq!(out, "429 300");
}

#[test]
fn oversized_bodies_and_cross_site_requests_are_refused() {
    let server = Server::start("");
    let big = format!(r#"{{"kind": "a", "pad": "{}"}}"#, "x".repeat(64 * 1024));
    let reply = server.http("POST", "/v1/check", &big);
    assert_eq!(reply.status, 413, "{}", reply.body);
    // A form another site's page can post: no JSON content type.
    let form = server.http_with(
        "POST",
        "/v1/check",
        &["Content-Type: text/plain"],
        r#"{"kind": "a"}"#,
    );
    assert_eq!(form.status, 415, "{}", form.body);
    let foreign = server.http_with(
        "POST",
        "/v1/check",
        &["Content-Type: application/json", "Origin: http://evil.example"],
        r#"{"kind": "a"}"#,
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    // Neither counted anything.
    assert_eq!(server.http("GET", "/admin/status", "").json()["registered"], 0);
}

#[test]
fn metrics_and_health_for_the_operator() {
    let server = Server::start("[server]\nname = \"mailer\"\n");
    server.http("POST", "/v1/check", r#"{"kind": "email.receipt", "count": 3}"#);
    let metrics = server.http_with("GET", "/metrics", &[], "");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains(r#"spikebreaker_attempted_total{breaker="mailer",kind="email.receipt"} 3"#),
        "{}",
        metrics.body
    );
    assert_eq!(
        server.http_with("GET", "/healthz", &[], "").json()["status"],
        "serving"
    );
}

#[test]
fn a_foreign_host_is_refused_and_tokens_are_required_where_set() {
    let server = Server::start_with_env(
        "",
        &[
            ("SPIKEBREAKER_SENDER_TOKEN", "sender-secret"),
            ("SPIKEBREAKER_ADMIN_TOKEN", "admin-secret"),
        ],
    );
    // A page that rebinds a DNS name to the server sends that name as its Host.
    for path in ["/v1/check", "/v1/claim", "/admin/status"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let reply = crate::server::raw(server.http, request.as_bytes());
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
    }
    let check = |token: &str| {
        let auth = format!("Authorization: Bearer {token}");
        server.http_with(
            "POST",
            "/v1/check",
            &["Content-Type: application/json", &auth],
            r#"{"kind": "a"}"#,
        )
    };
    assert_eq!(check("sender-secret").status, 200);
    assert_eq!(check("admin-secret").status, 401);
    assert_eq!(server.http("POST", "/v1/check", r#"{"kind": "a"}"#).status, 401);
    let status = |token: &str| {
        let auth = format!("Authorization: Bearer {token}");
        server.http_with("GET", "/admin/status", &[&auth], "").status
    };
    assert_eq!((status("admin-secret"), status("sender-secret")), (200, 401));
}
