//! Envoy's rate-limit service over gRPC: what a descriptor's status says, and what a request the
//! server cannot count gets.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::google::protobuf::UInt64Value;
use tonic::Code as Status;

use crate::server::{Server, descriptor, request};

#[tokio::test]
async fn each_descriptor_says_the_window_that_binds_its_room_and_when_a_refusing_kind_reopens() {
    let server = Server::start("");
    let mut rls = server.rls().await;

    let ok = rls
        .should_rate_limit(request("spikebreaker", &["email.receipt"], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.overall_code, Code::Ok as i32);
    let status = &ok.statuses[0];
    assert_eq!(status.code, Code::Ok as i32);
    let limit = status
        .current_limit
        .as_ref()
        .expect("the warm-up ceiling binds a new kind");
    assert_eq!((limit.requests_per_unit, limit.unit), (500, Unit::Minute as i32));
    assert_eq!(
        limit.name,
        "minute window 1 ≤ 500 (the warm-up ceiling: nothing learned yet)"
    );
    assert_eq!(status.limit_remaining, 499);
    assert_eq!(status.duration_until_reset, None);

    // A batch of 600 crosses the ceiling: refused whole, the kind open for its cool-down.
    let over = rls
        .should_rate_limit(request("spikebreaker", &["push.promo"], 600))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(over.overall_code, Code::OverLimit as i32);
    let status = &over.statuses[0];
    assert_eq!(status.code, Code::OverLimit as i32);
    assert_eq!(status.limit_remaining, 0);
    assert_eq!(
        status.current_limit.as_ref().unwrap().name,
        "minute window 501 > 500 (the warm-up ceiling: nothing learned yet)"
    );
    let reset = status.duration_until_reset.expect("a cool-down");
    assert!((299..=300).contains(&reset.seconds), "{reset:?}");
    let headers: Vec<(&str, &str)> = over
        .response_headers_to_add
        .iter()
        .map(|header| (header.key.as_str(), header.value.as_str()))
        .collect();
    assert!(headers.contains(&("retry-after", "300")), "{headers:?}");
    assert!(headers.iter().any(|(key, value)| *key == "x-spikebreaker-refused"
        && value.starts_with("push.promo is open (warmup): minute window 501 > 500")));

    // Two descriptors: refused when either kind refuses; each has its own status.
    let both = rls
        .should_rate_limit(request("spikebreaker", &["email.receipt", "push.promo"], 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(both.overall_code, Code::OverLimit as i32);
    let codes: Vec<i32> = both.statuses.iter().map(|status| status.code).collect();
    assert_eq!(codes, [Code::Ok as i32, Code::OverLimit as i32]);
}

#[tokio::test]
async fn a_request_the_server_cannot_count_is_refused_whole_and_touches_no_kind() {
    let server = Server::start("[server]\nmax_hits_addend = 1000\n");
    let mut rls = server.rls().await;
    let huge = "k".repeat(10 * 1024);
    let mut no_kind = request("spikebreaker", &["email.receipt"], 1);
    no_kind.descriptors.push(descriptor(&[("generic_key", "x")]));
    let mut own_addend = request("spikebreaker", &["email.receipt"], 1);
    own_addend.descriptors[0].hits_addend = Some(UInt64Value { value: u64::MAX });
    let cases = [
        (
            request("mailer", &["email.receipt"], 1),
            "unknown domain \"mailer\"",
        ),
        (request("spikebreaker", &[], 1), "no descriptors"),
        (request("spikebreaker", &[&huge], 1), "(10240 bytes)"),
        (request("spikebreaker", &[""], 1), "invalid kind name"),
        (
            request("spikebreaker", &["email.receipt"], u32::MAX),
            "not 4294967295",
        ),
        (own_addend, "not 18446744073709551615"),
        (no_kind, "descriptor 1 has no `kind` entry"),
        (
            request("spikebreaker", &["a"; 11], 100),
            "counts 1100 sends in all, over the 1000",
        ),
    ];
    for (bad, expected) in cases {
        let refused = rls.should_rate_limit(bad).await.unwrap_err();
        assert_eq!(refused.code(), Status::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains(expected),
            "{expected}: {}",
            refused.message()
        );
    }
    // Nothing was counted, not even the valid descriptor beside a bad one.
    let status = server.http("GET", "/admin/status", "").json();
    assert_eq!(status["registered"], 0, "{status}");
}

#[tokio::test]
async fn an_unset_hits_addend_counts_one_send_and_a_descriptors_own_overrides_the_requests() {
    let server = Server::start("");
    let mut rls = server.rls().await;
    rls.should_rate_limit(request("spikebreaker", &["sms.otp"], 0))
        .await
        .unwrap();
    let mut own = request("spikebreaker", &["sms.otp"], 1);
    own.descriptors[0].hits_addend = Some(UInt64Value { value: 9 });
    rls.should_rate_limit(own).await.unwrap();
    let status = server.http("GET", "/admin/status/sms.otp", "").json();
    assert_eq!(status["attempted"], 10, "{status}");
}

#[tokio::test]
async fn the_health_service_says_serving() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let server = Server::start("");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "envoy.service.ratelimit.v3.RateLimitService"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
}
