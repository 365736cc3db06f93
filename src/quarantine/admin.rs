//! The quarantine's admin routes (feature `admin`): an axum router of its own, to merge beside
//! [`admin::router`](crate::admin::router) (or serve alone), answering JSON.
//!
//! | Method and path | Does | Answers |
//! |---|---|---|
//! | `GET /quarantine` | every trip of every kind | [`Summary`](super::Summary) |
//! | `GET /quarantine/{kind}?trip=T` | the kind's trips (or one) | [`Summary`](super::Summary) |
//! | `GET /quarantine/{kind}/items?trip=T&state=S&after=ID&limit=N` | items, oldest first (`limit` 20 by default, at most 1,000) | `[Item]` |
//! | `POST /quarantine/{kind}/release` `{"trip": T, "ids": [..], "per_minute": R, "delivery": "at_most_once"}` (all optional) | [`Quarantine::release`] | `{"approved": n}` |
//! | `POST /quarantine/{kind}/discard` `{"reason": "...", "trip": T, "ids": [..]}` | [`Quarantine::discard`] (held items only) | `{"discarded": n}` |
//!
//! A release only approves: the items go out from the service's [`Releaser`](super::Releaser).
//! Errors are `{"error": "..."}`: 400 for a bad request, 503 when the store cannot be reached,
//! 500 for a damaged store. The store's calls run on tokio's blocking pool. Every request passes
//! the same [`Options`] checks as the breaker's router (`Host`, `Origin`, JSON content type, an
//! optional bearer token); serve it where only operators reach it.
//!
//! ```no_run
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! use spikebreaker::quarantine::{MemoryStore, Quarantine};
//! use spikebreaker::{Breaker, Config, admin};
//! let breaker = Breaker::new(Config::default())?;
//! let quarantine = Quarantine::new(MemoryStore::new(100_000));
//! let routes = admin::router(breaker).merge(spikebreaker::quarantine::admin::router(quarantine));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9180").await?;
//! admin::serve(listener, routes).await?;
//! # Ok(())
//! # }
//! ```

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Quarantine;
use super::item::{Delivery, Filter, ItemState, Query, ReleaseOrder};
use super::store::StoreError;
use crate::admin::Options;

/// Items a page shows unless `limit` says otherwise, and at most.
const LIMIT: usize = 20;
const MAX_LIMIT: usize = 1_000;

/// The quarantine's routes over `quarantine` (see the [module](self) for the table), with the
/// default [`Options`].
pub fn router(quarantine: Quarantine) -> Router {
    router_with(quarantine, Options::default())
}

/// The quarantine's routes over `quarantine`, answering whom `options` allow, as the breaker's
/// [`admin::router_with`](crate::admin::router_with) does.
pub fn router_with(quarantine: Quarantine, options: Options) -> Router {
    let routes = Router::new()
        .route("/quarantine", get(summary_all))
        .route("/quarantine/{kind}", get(summary))
        .route("/quarantine/{kind}/items", get(items))
        .route("/quarantine/{kind}/release", post(release))
        .route("/quarantine/{kind}/discard", post(discard))
        .with_state(quarantine);
    crate::admin::protect(routes, options)
}

/// A refusal, answered as `{"error": "..."}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.error }))).into_response()
    }
}

fn bad_request(error: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        error: error.into(),
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        let status = match &error {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Unavailable(_) | StoreError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            error: error.to_string(),
        }
    }
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Serialize + Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<Json<T>, Refusal> {
    match tokio::task::spawn_blocking(call).await {
        Ok(answer) => Ok(Json(answer?)),
        Err(error) => Err(Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: format!("the store call failed: {error}"),
        }),
    }
}

/// The query's `name=value` pairs (names and values are numbers and plain words here: nothing to
/// decode).
fn params(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, Refusal> {
    value
        .parse()
        .map_err(|_| bad_request(format!("query `{name}` must be a whole number, not {value:?}")))
}

async fn summary_all(State(quarantine): State<Quarantine>) -> Result<Json<super::Summary>, Refusal> {
    blocking(move || quarantine.summary(&Filter::all())).await
}

async fn summary(
    State(quarantine): State<Quarantine>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<super::Summary>, Refusal> {
    let mut filter = Filter::kind(kind);
    for (name, value) in params(query.as_deref()) {
        match name {
            "trip" => filter.trip = Some(number(name, value)?),
            _ => return Err(bad_request(format!("unknown query `{name}`: only `trip`"))),
        }
    }
    blocking(move || quarantine.summary(&filter)).await
}

async fn items(
    State(quarantine): State<Quarantine>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<super::Item>>, Refusal> {
    let mut page = Query::new(Filter::kind(kind), LIMIT);
    for (name, value) in params(query.as_deref()) {
        match name {
            "trip" => page.filter.trip = Some(number(name, value)?),
            "after" => page.after = Some(number(name, value)?),
            "limit" => page.limit = number::<usize>(name, value)?.min(MAX_LIMIT),
            "state" => page.state = Some(value.parse::<ItemState>().map_err(bad_request)?),
            _ => {
                return Err(bad_request(format!(
                    "unknown query `{name}`: one of trip, state, after, limit"
                )));
            }
        }
    }
    blocking(move || quarantine.items(&page)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    #[serde(default)]
    trip: Option<u64>,
    #[serde(default)]
    ids: Vec<u64>,
    #[serde(default)]
    per_minute: Option<f64>,
    #[serde(default)]
    delivery: Delivery,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardBody {
    reason: String,
    #[serde(default)]
    trip: Option<u64>,
    #[serde(default)]
    ids: Vec<u64>,
}

/// The JSON body; an empty body is `{}`.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|error| bad_request(format!("bad JSON body: {error}")))
}

async fn release(
    State(quarantine): State<Quarantine>,
    Path(kind): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Refusal> {
    let request: ReleaseBody = body(&bytes)?;
    let filter = Filter {
        trip: request.trip,
        ids: request.ids,
        ..Filter::kind(kind)
    };
    let order = ReleaseOrder {
        per_minute: request.per_minute,
        delivery: request.delivery,
    };
    blocking(move || {
        let approved = quarantine.release(&filter, &order)?;
        Ok(json!({ "approved": approved }))
    })
    .await
}

async fn discard(
    State(quarantine): State<Quarantine>,
    Path(kind): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Refusal> {
    let request: DiscardBody = body(&bytes)?;
    let filter = Filter {
        trip: request.trip,
        ids: request.ids,
        ..Filter::kind(kind)
    };
    blocking(move || {
        let discarded = quarantine.discard(&filter, &request.reason)?;
        Ok(json!({ "discarded": discarded }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::params;

    #[test]
    fn query_pairs_split_on_ampersands_and_the_first_equals() {
        let pairs: Vec<_> = params(Some("trip=5&&state=held&limit")).collect();
        assert_eq!(pairs, [("trip", "5"), ("state", "held"), ("limit", "")]);
        assert_eq!(params(None).count(), 0);
    }
}
