//! The admin router served on a real loopback socket and driven with plain HTTP/1.1: what it
//! answers, and what its controls do to the breaker.
#![cfg(feature = "admin")]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use spikebreaker::{Breaker, Config, Decision, ManualClock, Reason, admin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves the admin router over `breaker` on 127.0.0.1, on a free port.
async fn serve(breaker: Breaker<ManualClock>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, admin::router(breaker)).await.unwrap() });
    address
}

/// One request on its own connection: the status code and the JSON body.
async fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    assert!(head.contains("content-type: application/json"), "{head}");
    (code, serde_json::from_str(body).expect("a JSON body"))
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
