//! The HTTP routes, JSON in and out:
//!
//! | Request | Answers |
//! |---|---|
//! | `POST /v1/check` `{"kind": "...", "count": n, "slices": {"prefix": "+447", ...}}` (`count` 1 by default, `slices` none) | 200 `{"decision": "allowed", ...}`, or 429 `{"decision": "blocked", "slice": ..., "explanation": ..., "retry_after_secs": ...}` with `Retry-After` |
//! | `POST /json` | Envoy's `RateLimitRequest` as JSON, answered as lyft's ratelimit answers it: the `RateLimitResponse` as JSON, 200 or 429 |
//! | `POST /v1/hold`, `/v1/claim`, `/v1/ack` | the quarantine over the wire (`quarantine.rs`) |
//! | `GET /healthz` | 200 while serving |
//! | `GET /metrics` | the Prometheus exposition, every kind refreshed first |
//! | `/admin/...` | the library's admin routes (status, controls, the quarantine's), and `POST /admin/reload` |
//!
//! A bad request is a 400 `{"error": "..."}` naming the problem, before anything is counted.
//! Every route passes the library's admin checks ([`admin::protect`]): a `Host` of localhost, an
//! IP address or one `server.allow_hosts` names; a `POST` only as JSON and from no foreign
//! `Origin`; a bearer token if one is set (the admin token for `/admin`, the senders' for the
//! rest); bodies of at most 16 KiB.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use spikebreaker::Clock;
use spikebreaker::admin::{self, Options};
use spikebreaker::status::{Bound, Timescale};

use super::App;
use super::check::{self, Ask, Limit, Verdict};
use super::settings::ServerSection;
use super::{json, quarantine};

/// Every route, over `app`.
pub(crate) fn router<C: Clock>(app: Arc<App<C>>) -> Router {
    let senders = Router::new()
        .route("/v1/check", post(check_route::<C>))
        .route("/json", post(envoy_json::<C>))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::<C>))
        .route("/v1/hold", post(quarantine::hold::<C>))
        .route("/v1/claim", post(quarantine::claim::<C>))
        .route("/v1/ack", post(quarantine::ack::<C>))
        .with_state(Arc::clone(&app));
    let senders = admin::protect(senders, sender_options(&app.server));
    let mut operators = admin::router_with(app.breaker().clone(), admin_options(&app.server)).merge(
        Router::new()
            .route("/reload", post(reload::<C>))
            .with_state(Arc::clone(&app)),
    );
    if let Some(quarantine) = &app.quarantine {
        operators = operators.merge(spikebreaker::quarantine::admin::router_with(
            quarantine.clone(),
            admin_options(&app.server),
        ));
    }
    if app.manual_clock.is_some() {
        operators = operators.merge(Router::new().route("/clock", post(clock::<C>)).with_state(app));
    }
    senders.nest("/admin", operators)
}

/// Who the admin routes answer: loopback and IP hosts, those `allow_hosts` names, the admin
/// token if one is set.
fn admin_options(server: &ServerSection) -> Options {
    options(server, &server.admin_token_env)
}

/// Who the senders' routes answer: the same checks as the admin routes (no DNS rebinding, no
/// cross-site form, a body of at most 16 KiB), with the senders' token if one is set.
fn sender_options(server: &ServerSection) -> Options {
    options(server, &server.sender_token_env)
}

fn options(server: &ServerSection, token_env: &str) -> Options {
    let mut options = Options::new();
    for host in &server.allow_hosts {
        options = options.allow_host(host);
    }
    if let Some(token) = ServerSection::token(token_env) {
        options = options.bearer_token(token);
    }
    options
}

/// A client error: `{"error": "..."}`.
pub(crate) fn bad_request(error: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error.into() }))).into_response()
}

/// `POST /v1/check`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    kind: String,
    #[serde(default = "one")]
    count: u64,
    /// Slices below the kind, `recipient` and `content` for the repeat check (see `check.rs`).
    #[serde(default)]
    slices: BTreeMap<String, String>,
}

fn one() -> u64 {
    1
}

/// The window a verdict reports, in JSON (a refusal's explanation reads it out).
#[derive(Serialize)]
struct LimitJson {
    timescale: Timescale,
    window_secs: u64,
    window_count: u64,
    threshold: u64,
    expected: f64,
    bound: Bound,
    remaining: u64,
}

impl From<Limit> for LimitJson {
    fn from(limit: Limit) -> Self {
        Self {
            timescale: limit.window.timescale,
            window_secs: limit.span_secs,
            window_count: limit.window.window_count,
            threshold: limit.window.threshold,
            expected: limit.window.expected,
            bound: limit.window.bound,
            remaining: limit.remaining(),
        }
    }
}

async fn check_route<C: Clock>(State(app): State<Arc<App<C>>>, body: Bytes) -> Response {
    let request: CheckRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return bad_request(format!(
                "expected a JSON body {{\"kind\": \"...\", \"count\": n}}: {error}"
            ));
        }
    };
    if let Err(problem) = check::validate(&request.kind, request.count, app.server.max_hits_addend) {
        return bad_request(problem.to_string());
    }
    let pairs = request
        .slices
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let slices = match check::slices_of(pairs) {
        Ok(slices) => slices,
        Err(problem) => return bad_request(problem),
    };
    let ask = Ask {
        kind: &request.kind,
        slices,
    };
    let verdict = check::check(&app.guarded, &app.clock, &app.config(), ask, request.count);
    verdict_response(&request.kind, &verdict)
}

/// `/v1/check`'s answer. Written straight from this struct: a check is answered per request, so
/// it builds no JSON tree.
#[derive(Serialize)]
struct CheckAnswer<'a> {
    decision: &'static str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    counted_as: Option<&'a str>,
    count: u64,
    allowed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<spikebreaker::status::Reason>,
    /// The slice that refused (`prefix=+447`), when a slice did rather than the kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    slice: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
    limit: Option<LimitJson>,
}

/// A verdict as `/v1/check` answers it.
fn verdict_response(kind: &str, verdict: &Verdict) -> Response {
    let retry_after_secs = verdict.retry_after_ms().map(|ms| ms.div_ceil(1000));
    let answer = CheckAnswer {
        decision: if verdict.is_allowed() {
            "allowed"
        } else {
            "blocked"
        },
        kind,
        counted_as: verdict.refusal.as_ref().map(|refusal| refusal.kind.as_str()),
        count: verdict.count,
        allowed: verdict.allowed,
        reason: verdict.refusal.as_ref().map(|refusal| refusal.reason),
        slice: verdict
            .refusal
            .as_ref()
            .and_then(|refusal| refusal.slice.as_deref()),
        explanation: verdict.explanation(),
        retry_after_secs,
        limit: verdict.limit().map(LimitJson::from),
    };
    if verdict.is_allowed() {
        return Json(answer).into_response();
    }
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(answer)).into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// `POST /json`: lyft's ratelimit's JSON endpoint, for scripts with no gRPC.
async fn envoy_json<C: Clock>(State(app): State<Arc<App<C>>>, body: Bytes) -> Response {
    let request = match json::request(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(error),
    };
    match app.rate_limit(&request) {
        Ok(response) => {
            let status = if response.overall_code == json::OVER_LIMIT {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::OK
            };
            (status, Json(json::response(&response))).into_response()
        }
        Err(invalid) => bad_request(invalid.0),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "serving" }))
}

async fn metrics<C: Clock>(State(app): State<Arc<App<C>>>) -> Response {
    app.refresh();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn reload<C: Clock>(State(app): State<Arc<App<C>>>) -> Response {
    match app.reload() {
        Ok(()) => Json(json!({ "reloaded": true })).into_response(),
        Err(error) => bad_request(format!(
            "reload refused, the running configuration stays: {error}"
        )),
    }
}

/// `POST /admin/clock`'s body: move the manual clock by, or to.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    #[serde(default)]
    advance_ms: Option<u64>,
    #[serde(default)]
    set_ms: Option<u64>,
}

/// Moves the manual clock of a test build started on one; answers the time.
async fn clock<C: Clock>(State(app): State<Arc<App<C>>>, body: Bytes) -> Response {
    let Some(manual) = &app.manual_clock else {
        return bad_request("this server runs on the system clock");
    };
    match serde_json::from_slice::<ClockRequest>(&body) {
        Ok(ClockRequest {
            advance_ms: Some(ms),
            set_ms: None,
        }) => manual.advance(std::time::Duration::from_millis(ms)),
        Ok(ClockRequest {
            advance_ms: None,
            set_ms: Some(ms),
        }) => manual.set(ms),
        _ => return bad_request("expected {\"advance_ms\": n} or {\"set_ms\": t}"),
    }
    Json(json!({ "now_ms": app.clock.now_ms() })).into_response()
}
