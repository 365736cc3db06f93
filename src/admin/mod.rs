//! An axum router that shows a breaker's status and takes an operator's controls, as JSON
//! (feature `admin`).
//!
//! | Method and path | Does | Answers |
//! |---|---|---|
//! | `GET /status` | every kind, the registry's bound and overflow | [`BreakerStatus`] |
//! | `GET /status/{kind}` | one kind | [`KindStatus`], or 404 |
//! | `POST /kinds/{kind}/force-open` | [`Breaker::force_open`] | the kind's [`KindStatus`] |
//! | `POST /kinds/{kind}/force-close` | [`Breaker::force_close`] | the kind's [`KindStatus`] |
//! | `POST /kinds/{kind}/reset` | [`Breaker::reset`] | the kind's [`KindStatus`] |
//! | `POST /kinds/{kind}/dry-run` | [`Breaker::set_dry_run`], from `?on=true` or `{"on": true}` | the kind's [`KindStatus`] |
//! | `POST /kinds/{kind}/relearn` | [`Breaker::relearn`] | the kind's [`KindStatus`] |
//! | `POST /kinds/{kind}/surge` | [`Breaker::plan_surge`], from `{"sends": 50000, "for_secs": 7200}` | the kind's [`KindStatus`] |
//! | `POST /kinds/{kind}/slices/{dimension}/{value}/reset` | [`Breaker::reset_slice`]: closes one slice of the kind | the kind's [`KindStatus`] (its `slices` included) |
//!
//! Controls act only on kinds the breaker knows (registered, `_overflow` included, or named in
//! the configuration): an unknown kind is a 404, so that a mistyped name cannot register a kind or
//! act on the overflow kind. A surge is the exception: it may announce a kind before its first
//! send (a new campaign), if its name is valid. Every error, whatever its status, is
//! `{"error": "..."}`.
//!
//! Every request passes [`Options`] first: by default the router answers only a `Host` of
//! `localhost` or an IP address (no DNS rebinding), and takes a `POST` only with
//! `Content-Type: application/json` and no foreign `Origin` (no cross-site form can force or
//! reset a kind); a bearer token is optional. Serve it on a private interface, with [`serve`]:
//! it bounds how long a client may take to send a request and to be answered, and how many
//! connections it holds, so that no client can make the router unreachable by opening
//! connections it never finishes ([`ServeLimits`]; a plain `axum::serve` has no such bounds).
//!
//! ```no_run
//! #[cfg(feature = "admin")]
//! async fn serve_admin(breaker: spikebreaker::Breaker) -> Result<(), Box<dyn std::error::Error>> {
//!     use spikebreaker::admin::{self, Options};
//!
//!     let token = std::env::var("SPIKEBREAKER_ADMIN_TOKEN")?; // from your secret store
//!     let options = Options::new().bearer_token(token).allow_host("admin.internal");
//!     let router = admin::router_with(breaker, options);
//!     admin::serve(tokio::net::TcpListener::bind("10.0.0.5:9180").await?, router).await?;
//!     Ok(())
//! }
//! ```
//!
//! Limits: a request target over 8 KiB is answered 414, headers over 16 KiB 431, a body over
//! 16 KiB 413. Requests hyper refuses before any router sees them (a malformed request line, a
//! target over 64 KiB, over 100 headers) get hyper's own answer, without a body.

mod options;
mod protect;
mod serve;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use options::Options;
pub use serve::{ServeLimits, serve, serve_until, serve_with};

use crate::breaker::Breaker;
use crate::clock::Clock;
use crate::error::Error;
use crate::observe::{BreakerStatus, KindStatus};

/// The admin routes over `breaker` (see the [module](self) for the table), with the default
/// [`Options`].
pub fn router<C: Clock>(breaker: Breaker<C>) -> Router {
    router_with(breaker, Options::default())
}

/// The admin routes over `breaker`, answering whom `options` allow.
pub fn router_with<C: Clock>(breaker: Breaker<C>, options: Options) -> Router {
    let routes = Router::new()
        .route("/status", get(status::<C>))
        .route("/status/{kind}", get(kind_status::<C>))
        .route("/kinds/{kind}/force-open", post(force_open::<C>))
        .route("/kinds/{kind}/force-close", post(force_close::<C>))
        .route("/kinds/{kind}/reset", post(reset::<C>))
        .route("/kinds/{kind}/dry-run", post(dry_run::<C>))
        .route("/kinds/{kind}/relearn", post(relearn::<C>))
        .route("/kinds/{kind}/surge", post(surge::<C>))
        .route(
            "/kinds/{kind}/slices/{dimension}/{value}/reset",
            post(reset_slice::<C>),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(breaker);
    protect(routes, options)
}

/// `routes` behind the checks `options` ask for, as the admin routes are: the body, target and
/// header limits, the `Host`, `Origin`, content type and token checks, and JSON errors. The
/// quarantine's routes pass them too; so may a service's own routes (`spikebreaker serve`'s).
pub fn protect(routes: Router, options: Options) -> Router {
    routes
        .layer(DefaultBodyLimit::max(protect::MAX_BODY_BYTES))
        .layer(from_fn_with_state(Arc::new(options), protect::check))
}

/// A refusal, answered as `{"error": "..."}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: &self.error })).into_response()
    }
}

fn unknown_kind(kind: &str) -> Refusal {
    Refusal {
        status: StatusCode::NOT_FOUND,
        error: format!("unknown kind {kind:?}: the breaker has not seen it"),
    }
}

/// The kind named in the path; a path that is not UTF-8 is a 400 naming the problem.
fn kind_in(path: Result<Path<String>, PathRejection>) -> Result<String, Refusal> {
    path.map(|Path(kind)| kind).map_err(|rejection| Refusal {
        status: StatusCode::BAD_REQUEST,
        error: format!("the kind in the path cannot be read: {}", rejection.body_text()),
    })
}

async fn status<C: Clock>(State(breaker): State<Breaker<C>>) -> Json<BreakerStatus> {
    Json(breaker.status())
}

async fn kind_status<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KindStatus>, Refusal> {
    let kind = kind_in(path)?;
    breaker
        .kind_status(&kind)
        .map(Json)
        .ok_or_else(|| unknown_kind(&kind))
}

/// Runs `control` on a kind the breaker knows, and answers with its status after.
fn control<C: Clock>(
    breaker: &Breaker<C>,
    path: Result<Path<String>, PathRejection>,
    control: impl FnOnce(&Breaker<C>, &str) -> Result<(), Error>,
) -> Result<Json<KindStatus>, Refusal> {
    let kind = kind_in(path)?;
    control(breaker, &kind).map_err(|error| match error {
        Error::UnknownKind(_) => unknown_kind(&kind),
        error @ Error::NoRoom(_) => Refusal {
            status: StatusCode::CONFLICT,
            error: error.to_string(),
        },
        error => Refusal {
            status: StatusCode::BAD_REQUEST,
            error: error.to_string(),
        },
    })?;
    breaker
        .kind_status(&kind)
        .map(Json)
        .ok_or_else(|| unknown_kind(&kind))
}

async fn force_open<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KindStatus>, Refusal> {
    control(&breaker, path, Breaker::force_open)
}

async fn force_close<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KindStatus>, Refusal> {
    control(&breaker, path, Breaker::force_close)
}

async fn reset<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KindStatus>, Refusal> {
    control(&breaker, path, Breaker::reset)
}

async fn dry_run<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Json<KindStatus>, Refusal> {
    let on = dry_run_setting(query.as_deref(), &body).map_err(|error| Refusal {
        status: StatusCode::BAD_REQUEST,
        error,
    })?;
    control(&breaker, path, |breaker, kind| breaker.set_dry_run(kind, on))
}

async fn relearn<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KindStatus>, Refusal> {
    control(&breaker, path, Breaker::relearn)
}

async fn reset_slice<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<KindStatus>, Refusal> {
    let (kind, dimension, value) = path.map(|Path(parts)| parts).map_err(|rejection| Refusal {
        status: StatusCode::BAD_REQUEST,
        error: format!("the path cannot be read: {}", rejection.body_text()),
    })?;
    breaker
        .reset_slice(&kind, &dimension, &value)
        .map_err(|error| match error {
            Error::UnknownKind(_) => unknown_kind(&kind),
            error => Refusal {
                status: StatusCode::NOT_FOUND,
                error: error.to_string(),
            },
        })?;
    breaker
        .kind_status(&kind)
        .map(Json)
        .ok_or_else(|| unknown_kind(&kind))
}

/// A planned surge, as the request body gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SurgeRequest {
    sends: u64,
    for_secs: u64,
}

/// The longest surge the route takes, as the configuration's `[[surges]]`.
const MAX_SURGE_SECS: u64 = 30 * 86_400;

async fn surge<C: Clock>(
    State(breaker): State<Breaker<C>>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<KindStatus>, Refusal> {
    let bad = |error: String| Refusal {
        status: StatusCode::BAD_REQUEST,
        error,
    };
    let request: SurgeRequest = serde_json::from_slice(&body).map_err(|error| {
        bad(format!(
            "expected a JSON body {{\"sends\": n, \"for_secs\": n}}: {error}"
        ))
    })?;
    if request.sends == 0 || !(1..=MAX_SURGE_SECS).contains(&request.for_secs) {
        return Err(bad(format!(
            "`sends` must be at least 1 and `for_secs` 1 to {MAX_SURGE_SECS} (30 days), not {} and {}",
            request.sends, request.for_secs
        )));
    }
    let duration = Duration::from_secs(request.for_secs);
    control(&breaker, path, |breaker, kind| {
        breaker.plan_surge(kind, request.sends, duration)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRun {
    on: bool,
}

/// The dry-run setting from the query (`on=true|false`), or else the JSON body (`{"on": bool}`).
fn dry_run_setting(query: Option<&str>, body: &[u8]) -> Result<bool, String> {
    let from_query = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("on="));
    match from_query {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("query `on` must be true or false, not {other:?}")),
        None => serde_json::from_slice::<DryRun>(body)
            .map(|setting| setting.on)
            .map_err(|error| format!("expected `?on=true|false` or a JSON body {{\"on\": bool}}: {error}")),
    }
}

async fn no_route(method: Method, uri: Uri) -> Refusal {
    Refusal {
        status: StatusCode::NOT_FOUND,
        error: format!("no route {method} {}", uri.path()),
    }
}

async fn wrong_method(method: Method, uri: Uri) -> Refusal {
    Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: format!("{} does not take {method}", uri.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::dry_run_setting;

    #[test]
    fn dry_run_setting_from_query_or_body() {
        let cases: [(Option<&str>, &str, Result<bool, &str>); 7] = [
            (Some("on=true"), "", Ok(true)),
            (Some("x=1&on=false"), "", Ok(false)),
            (None, r#"{"on": true}"#, Ok(true)),
            (Some("x=1"), r#"{"on": false}"#, Ok(false)),
            (
                Some("on=yes"),
                "",
                Err("query `on` must be true or false, not \"yes\""),
            ),
            (None, "", Err("expected `?on=true|false`")),
            (None, r#"{"on": true, "off": 1}"#, Err("unknown field `off`")),
        ];
        for (query, body, expected) in cases {
            let got = dry_run_setting(query, body.as_bytes());
            match (&got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(*got, expected, "{query:?} {body}"),
                (Err(got), Err(expected)) => assert!(got.contains(expected), "{got} lacks {expected}"),
                _ => panic!("{query:?} {body}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
