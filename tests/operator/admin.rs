//! The admin router served on a real loopback socket and driven with plain HTTP/1.1: what it
//! answers, and what its controls do to the breaker.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use spikebreaker::status::Reason;
use spikebreaker::{Breaker, Config, Decision, ManualClock, admin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves the admin router over `breaker` on 127.0.0.1, on a free port.
async fn serve(breaker: Breaker<ManualClock>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { admin::serve(listener, admin::router(breaker)).await.unwrap() });
    address
}

/// One JSON request on its own connection, as an operator's client sends it: the status code
/// and the JSON body.
async fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (code, _, body) = raw(address, &request).await;
    (code, body)
}

/// Sends `request` as written (a full HTTP/1.1 request) on its own connection: the status code,
/// the head and the JSON body.
async fn raw(address: SocketAddr, request: &str) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON body: {head}\n\n{body}"));
    assert!(head.contains("content-type: application/json"), "{head}");
    (code, head.to_owned(), body)
}

fn breaker() -> (Breaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    (breaker, clock)
}

#[tokio::test]
async fn status_shows_a_tripped_kind_among_every_kind() {
    let (breaker, clock) = breaker();
    let runaway = breaker.kind("security.2fa_changed");
    assert!(breaker.check("email.welcome").is_allowed());
    for _ in 0..1_200 {
        clock.advance(Duration::from_millis(5));
        let _ = runaway.check();
    }
    let address = serve(breaker).await;

    let (code, status) = request(address, "GET", "/status", "").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["registered"], 2);
    assert_eq!(status["max_kinds"], 4096);
    assert_eq!(status["overflowed"], 0);
    let kinds: Vec<_> = status["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("email.welcome"), json!("security.2fa_changed")]);

    let (code, kind) = request(address, "GET", "/status/security.2fa_changed", "").await;
    assert_eq!(code, 200, "{kind}");
    assert_eq!(
        (kind["state"].as_str(), kind["reason"].as_str()),
        (Some("open"), Some("warmup"))
    );
    assert_eq!(
        (kind["attempted"].as_u64(), kind["blocked"].as_u64()),
        (Some(1_200), Some(700))
    );
    // The hour held to the warm-up's share; the day not judged yet: no threshold (`null`, not
    // 18446744073709551615).
    assert_eq!(
        (&kind["windows"][1]["threshold"], &kind["windows"][2]["threshold"]),
        (&json!(24_000), &Value::Null)
    );
    assert!(!status.to_string().contains("18446744073709551615"), "{status}");
}

#[tokio::test]
async fn controls_force_reset_and_toggle_dry_run_on_the_breaker() {
    let (breaker, _clock) = breaker();
    let kind = breaker.kind("sms.login");
    let address = serve(breaker.clone()).await;

    let (code, status) = request(address, "POST", "/kinds/sms.login/force-open", "").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        (status["state"].as_str(), status["forced"].as_bool()),
        (Some("open"), Some(true))
    );
    assert_eq!(kind.check(), Decision::Blocked(Reason::ForcedOpen));

    let (code, status) = request(address, "POST", "/kinds/sms.login/dry-run?on=true", "").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["dry_run"], true);
    assert_eq!(kind.check(), Decision::Allowed, "dry-run blocks nothing");

    let (code, status) = request(address, "POST", "/kinds/sms.login/dry-run", r#"{"on": false}"#).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["dry_run"], false);
    assert_eq!(kind.check(), Decision::Blocked(Reason::ForcedOpen));

    let (code, status) = request(address, "POST", "/kinds/sms.login/reset", "").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        (status["state"].as_str(), status["reason"].as_str()),
        (Some("closed"), Some("reset"))
    );
    assert_eq!(kind.check(), Decision::Allowed);

    let (code, status) = request(address, "POST", "/kinds/sms.login/force-close", "").await;
    assert_eq!(code, 200, "{status}");
    let status = breaker.kind_status("sms.login").unwrap();
    assert!(status.forced);
    assert_eq!((status.attempted, status.blocked, status.trips), (4, 2, 1));
}

#[tokio::test]
async fn mistakes_get_clear_json_errors_and_change_nothing() {
    let (breaker, _clock) = breaker();
    let _ = breaker.check("sms.login");
    let address = serve(breaker.clone()).await;

    let (code, error) = request(address, "GET", "/status/sms.logn", "").await;
    assert_eq!(code, 404);
    assert_eq!(
        error["error"],
        r#"unknown kind "sms.logn": the breaker has not seen it"#
    );

    let (code, _) = request(address, "POST", "/kinds/sms.logn/force-open", "").await;
    assert_eq!(code, 404);
    assert!(
        breaker.kind_status("sms.logn").is_none(),
        "a mistyped name registers nothing"
    );

    let (code, error) = request(address, "POST", "/kinds/sms.login/dry-run?on=yes", "").await;
    assert_eq!(code, 400);
    assert!(
        error["error"].as_str().unwrap().contains("not \"yes\""),
        "{error}"
    );
    let (code, error) = request(address, "POST", "/kinds/sms.login/dry-run", "{}").await;
    assert_eq!(code, 400);
    assert!(
        error["error"].as_str().unwrap().contains("missing field `on`"),
        "{error}"
    );
    assert!(!breaker.kind_status("sms.login").unwrap().dry_run);

    let (code, error) = request(address, "GET", "/kinds", "").await;
    assert_eq!(code, 404);
    assert_eq!(error["error"], "no route GET /kinds");
}

#[tokio::test]
async fn a_surge_is_announced_for_a_new_kind_and_a_lasting_change_relearned() {
    let (breaker, clock) = breaker();
    let address = serve(breaker.clone()).await;

    // A campaign announced before its first send: 2,000 at once pass a new kind's warm-up ceiling.
    let (code, status) = request(
        address,
        "POST",
        "/kinds/email.campaign/surge",
        r#"{"sends": 2000, "for_secs": 3600}"#,
    )
    .await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["surge"]["sends"], 2000);
    let campaign = breaker.kind("email.campaign");
    let sent = (0..2_000).filter(|_| campaign.check().is_allowed()).count();
    assert_eq!(sent, 2_000);
    clock.advance(std::time::Duration::from_secs(10));
    assert!(
        (0..1_000).any(|_| !campaign.check().is_allowed()),
        "sends past the surge trip the kind"
    );

    let (code, error) = request(
        address,
        "POST",
        "/kinds/email.campaign/surge",
        r#"{"sends": 0, "for_secs": 60}"#,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("`sends` must be at least 1"),
        "{error}"
    );
    let (code, error) = request(address, "POST", "/kinds/email.campaign/surge", r#"{"sends": 10}"#).await;
    assert_eq!(code, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("missing field `for_secs`"),
        "{error}"
    );

    // The campaign is open on what it sends: relearn takes that as its normal and closes it.
    let (code, status) = request(address, "POST", "/kinds/email.campaign/relearn", "").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        (status["state"].as_str(), status["reason"].as_str()),
        (Some("closed"), Some("relearned"))
    );
    let (code, _) = request(address, "POST", "/kinds/email.campaing/relearn", "").await;
    assert_eq!(code, 404, "relearn acts only on a kind the breaker has seen");
}

// What a browser on another site, a rebound DNS name or a client without the token can do:
// nothing that changes state, and every refusal is JSON.

/// A tripped kind behind the default router.
async fn tripped() -> (Breaker<ManualClock>, ManualClock, SocketAddr) {
    let (breaker, clock) = breaker();
    let runaway = breaker.kind("security.2fa_changed");
    for _ in 0..1_200 {
        clock.advance(Duration::from_millis(5));
        let _ = runaway.check();
    }
    let address = serve(breaker.clone()).await;
    (breaker, clock, address)
}

fn allowed(breaker: &Breaker<ManualClock>, clock: &ManualClock, sends: u32) -> u32 {
    let kind = breaker.kind("security.2fa_changed");
    (0..sends)
        .filter(|_| {
            clock.advance(Duration::from_millis(1));
            kind.check().is_allowed()
        })
        .count() as u32
}

#[tokio::test]
async fn a_cross_site_form_post_changes_nothing() {
    let (breaker, clock, address) = tripped().await;
    let form = |path: &str, origin: Option<&str>| {
        let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
        format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\non=1"
        )
    };
    for path in [
        "/kinds/security.2fa_changed/force-close",
        "/kinds/security.2fa_changed/dry-run?on=true",
        "/kinds/security.2fa_changed/reset",
    ] {
        let (code, _, error) = raw(address, &form(path, Some("http://evil.example"))).await;
        assert_eq!(code, 403, "{path}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains("evil.example"),
            "{error}"
        );
        // Without an Origin (an old browser), the form's content type alone is refused.
        let (code, _, error) = raw(address, &form(path, None)).await;
        assert_eq!(code, 415, "{path}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains("application/json"),
            "{error}"
        );
    }
    // JSON from a foreign page (a browser would preflight it; a script might not) is refused too.
    let json = format!(
        "POST /kinds/security.2fa_changed/force-close HTTP/1.1\r\nHost: {address}\r\nOrigin: https://evil.example\r\n\
         Content-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(address, &json).await.0, 403);
    let status = breaker.kind_status("security.2fa_changed").unwrap();
    assert!(!status.forced && !status.dry_run, "{status:?}");
    assert_eq!(
        allowed(&breaker, &clock, 10_000),
        0,
        "the tripped kind stays shut"
    );

    // The router's own page (same origin) may.
    let own = json.replace("https://evil.example", &format!("http://{address}"));
    let (code, _, status) = raw(address, &own).await;
    assert_eq!((code, status["forced"].as_bool()), (200, Some(true)), "{status}");
}

#[tokio::test]
async fn a_rebound_host_name_is_refused() {
    let (breaker, _clock, address) = tripped().await;
    let port = address.port();
    for (method, path) in [
        ("GET", "/status"),
        ("POST", "/kinds/security.2fa_changed/force-close"),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: evil.example:{port}\r\nContent-Type: application/json\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (code, _, error) = raw(address, &request).await;
        assert_eq!(code, 403, "{method} {path}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains("evil.example"),
            "{error}"
        );
    }
    assert!(!breaker.kind_status("security.2fa_changed").unwrap().forced);
    // localhost and allowed names are answered.
    let request = format!("GET /status HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(address, &request).await.0, 200);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_at = listener.local_addr().unwrap();
    let options = admin::Options::new().allow_host("breaker-admin.internal");
    tokio::spawn(admin::serve(listener, admin::router_with(breaker, options)));
    let request = "GET /status HTTP/1.1\r\nHost: breaker-admin.internal\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(allowed_at, request).await.0, 200);
}

#[tokio::test]
async fn with_a_token_every_request_must_carry_it() {
    let (breaker, _clock) = breaker();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = admin::Options::new().bearer_token("s3cret-t0ken");
    tokio::spawn(admin::serve(listener, admin::router_with(breaker, options)));
    let get = |authorization: &str| {
        format!("GET /status HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n")
    };
    for authorization in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cret-t0ke\r\n",
        "Authorization: s3cret-t0ken\r\n",
    ] {
        let (code, head, error) = raw(address, &get(authorization)).await;
        assert_eq!(code, 401, "{authorization:?}: {error}");
        assert!(head.contains("www-authenticate: Bearer"), "{head}");
    }
    let (code, _, status) = raw(address, &get("Authorization: Bearer s3cret-t0ken\r\n")).await;
    assert_eq!(code, 200, "{status}");
}

#[tokio::test]
async fn every_error_status_has_a_json_body() {
    let (breaker, _clock) = breaker();
    let _ = breaker.check("sms.login");
    let address = serve(breaker).await;
    let long_path = format!("/status/{}", "k".repeat(10 * 1024));
    let big_header = format!("X-Padding: {}\r\n", "p".repeat(20 * 1024));
    let big_body = "x".repeat(20 * 1024);
    let cases = [
        (
            "GET /status/%FF%FE HTTP/1.1\r\n".to_owned(),
            String::new(),
            String::new(),
            400,
            "UTF-8",
        ),
        (
            "GET /kinds/sms.login/reset HTTP/1.1\r\n".into(),
            String::new(),
            String::new(),
            405,
            "does not take GET",
        ),
        (
            "DELETE /status HTTP/1.1\r\n".into(),
            "Content-Type: application/json\r\n".into(),
            String::new(),
            405,
            "does not take DELETE",
        ),
        (
            format!("GET {long_path} HTTP/1.1\r\n"),
            String::new(),
            String::new(),
            414,
            "request target",
        ),
        (
            "GET /status HTTP/1.1\r\n".into(),
            big_header,
            String::new(),
            431,
            "headers",
        ),
        (
            "POST /kinds/sms.login/dry-run HTTP/1.1\r\n".into(),
            "Content-Type: application/json\r\n".into(),
            big_body,
            413,
            "",
        ),
        (
            "GET /nowhere HTTP/1.1\r\n".into(),
            String::new(),
            String::new(),
            404,
            "no route",
        ),
    ];
    for (line, headers, body, expected, says) in cases {
        let request = format!(
            "{line}Host: {address}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (code, _, error) = raw(address, &request).await;
        assert_eq!(code, expected, "{line}: {error}");
        let message = error["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}: {error}"));
        assert!(message.contains(says), "{line}: {message}");
    }
}
