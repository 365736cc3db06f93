//! The quarantine over the wire: a sender refused by `/v1/check` (or Envoy's protocol) hands the
//! notification over to be held, and later pulls back the items an operator released.
//!
//! | Request | Does | Answers |
//! |---|---|---|
//! | `POST /v1/hold` `{"kind", "key", "notification", "recipient", "slice"}` | holds it under the kind's trip ([`Quarantine::hold_refused`]), or with `"slice": "prefix=+447"` (what a refusal by a slice named) under the slice's ([`Quarantine::hold_refused_by_slice`]) | 201 `{"id", "trip", "reason"}`; 409 when the kind (or slice) lets sends through now (send it); 503 when the store refused it (keep it, try again) |
//! | `POST /v1/claim` `{"max": n}` | leases up to `n` released items, at the kind's pace ([`Lender::claim`]) | `{"items": [{"token", "key", "kind", "id", "notification", ...}], "retry_after_ms"}` |
//! | `POST /v1/ack` `{"token", "outcome": "sent" \| "failed", "note"}` | records the send ([`Lender::ack`]) | `{"acked": "settled" \| "unknown"}` |
//!
//! A notification is kept as `{"key": ..., "notification": ...}`, so that its sender's
//! idempotency key stays with it (operators see both) and comes back with it when released: a
//! hold retried after a lost answer and a release sent again after a lost ack carry the same
//! key. Held items are the library's: the operator's routes (`/admin/quarantine/...`) and
//! `spikebreaker quarantine` list, release and discard them.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use spikebreaker::Clock;
use spikebreaker::config::validate_kind_name;
use spikebreaker::guard::check_pair;
use spikebreaker::quarantine::{Acked, HoldError, Item, Outcome, StoreError};
use spikebreaker::status::SliceId;

use super::App;
use super::http::bad_request;
use super::rls::shown;

/// The longest idempotency key taken.
const MAX_KEY_BYTES: usize = 256;

/// `POST /v1/hold`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest<'a> {
    kind: String,
    key: String,
    #[serde(borrow)]
    notification: &'a RawValue,
    #[serde(default)]
    recipient: Option<String>,
    /// The slice that refused it (`prefix=+447`), when a slice did rather than the kind.
    #[serde(default)]
    slice: Option<String>,
}

/// How a notification held over the wire is kept in the store.
#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    key: &'a str,
    #[serde(borrow)]
    notification: &'a RawValue,
}

fn error(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({ "error": error.into() }))).into_response()
}

fn store_error(refused: &StoreError) -> Response {
    let status = match refused {
        StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        // Over the store's item bound: sent again, it would be refused again.
        StoreError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        StoreError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, refused.to_string())
}

/// A slice as a hold names it, `dimension=value`, checked by the library's rule.
fn slice_id(text: &str) -> Result<SliceId, String> {
    let (dimension, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`slice` \"{}\" is not `dimension=value`", shown(text)))?;
    check_pair(dimension, value)?;
    Ok(SliceId {
        dimension: dimension.into(),
        value: value.into(),
    })
}

fn no_quarantine() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this server keeps no quarantine (`server.quarantine = \"off\"`)",
    )
}

pub(crate) async fn hold<C: Clock>(State(app): State<Arc<App<C>>>, body: Bytes) -> Response {
    let Some(quarantine) = app.quarantine.clone() else {
        return no_quarantine();
    };
    let request: HoldRequest<'_> = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return bad_request(format!(
                "expected a JSON body {{\"kind\": \"...\", \"key\": \"...\", \"notification\": {{...}}, \"recipient\": \"...\"}}: {error}"
            ));
        }
    };
    if let Err(error) = validate_kind_name(&request.kind) {
        return bad_request(error.to_string());
    }
    if request.key.is_empty() || request.key.len() > MAX_KEY_BYTES {
        return bad_request(format!(
            "`key` (the notification's idempotency key) must be 1 to {MAX_KEY_BYTES} bytes, not {}",
            request.key.len()
        ));
    }
    let envelope = Envelope {
        key: &request.key,
        notification: request.notification,
    };
    let stored = match serde_json::value::to_raw_value(&envelope) {
        Ok(stored) => stored,
        Err(error) => return bad_request(error.to_string()),
    };
    let slice = match request.slice.as_deref().map(slice_id).transpose() {
        Ok(slice) => slice,
        Err(problem) => return bad_request(problem),
    };
    let (kind, recipient) = (request.kind, request.recipient);
    // A durable store commits to disk: off the request threads.
    let held = tokio::task::spawn_blocking(move || match &slice {
        None => quarantine.hold_refused(app.breaker(), &kind, recipient.as_deref(), stored),
        Some(slice) => {
            quarantine.hold_refused_by_slice(app.breaker(), &kind, slice, recipient.as_deref(), stored)
        }
    })
    .await;
    match held {
        Ok(Ok(held)) => (
            StatusCode::CREATED,
            Json(
                json!({ "id": held.id(), "kind": held.kind(), "trip": held.trip(), "reason": held.reason() }),
            ),
        )
            .into_response(),
        Ok(Err(HoldError::NotRefusing(kind))) => error(
            StatusCode::CONFLICT,
            format!("{kind} lets sends through now: send the notification (nothing was held)"),
        ),
        Ok(Err(HoldError::Store(error))) => store_error(&error),
        Ok(Err(other)) => error(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, join.to_string()),
    }
}

/// `POST /v1/claim`'s body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClaimRequest {
    #[serde(default)]
    max: Option<u32>,
}

/// A lent item as a sender gets it.
#[derive(Serialize)]
struct Lent<'a> {
    token: &'a str,
    key: &'a str,
    id: u64,
    kind: &'a str,
    trip: u64,
    recipient: Option<&'a str>,
    attempts: u32,
    lease_until_ms: u64,
    notification: Option<&'a RawValue>,
}

pub(crate) async fn claim<C: Clock>(State(app): State<Arc<App<C>>>, body: Bytes) -> Response {
    if app.lender.is_none() {
        return no_quarantine();
    }
    let request: ClaimRequest = match body.is_empty() {
        true => ClaimRequest::default(),
        false => match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => return bad_request(format!("expected a JSON body {{\"max\": n}}: {error}")),
        },
    };
    let most = app.server.max_claim;
    let max = request.max.unwrap_or(most.min(10));
    if !(1..=most).contains(&max) {
        return bad_request(format!(
            "`max` must be 1 to {most} (`server.max_claim`), not {max}"
        ));
    }
    let lent = {
        let app = Arc::clone(&app);
        tokio::task::spawn_blocking(move || {
            let lender = app.lender.as_ref().expect("checked above");
            lender.claim(app.breaker(), max as usize)
        })
        .await
    };
    let lent = match lent {
        Ok(Ok(lent)) => lent,
        Ok(Err(error)) => return store_error(&error),
        Err(join) => return error(StatusCode::INTERNAL_SERVER_ERROR, join.to_string()),
    };
    let items: Vec<Lent<'_>> = lent
        .loans
        .iter()
        .map(|loan| {
            let (key, notification) = unwrap(&loan.item, &loan.key);
            Lent {
                token: &loan.token,
                key,
                id: loan.item.id,
                kind: &loan.item.kind,
                trip: loan.item.trip,
                recipient: loan.item.recipient.as_deref(),
                attempts: loan.item.attempts,
                lease_until_ms: loan.lease_until_ms,
                notification,
            }
        })
        .collect();
    let retry_after_ms = lent.wait.map(|wait| wait.as_millis() as u64);
    Json(json!({ "items": items, "retry_after_ms": retry_after_ms })).into_response()
}

/// The sender's key and notification of an item held over the wire; an item held in-process
/// (another service sharing the store) keeps the store's key and its notification as it is.
fn unwrap<'a>(item: &'a Item, store_key: &'a str) -> (&'a str, Option<&'a RawValue>) {
    let Some(stored) = item.notification.as_deref() else {
        return (store_key, None);
    };
    match serde_json::from_str::<Envelope<'a>>(stored.get()) {
        Ok(envelope) => (envelope.key, Some(envelope.notification)),
        Err(_) => (store_key, Some(stored)),
    }
}

/// `POST /v1/ack`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    token: String,
    outcome: AckOutcome,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum AckOutcome {
    Sent,
    Failed,
}

pub(crate) async fn ack<C: Clock>(State(app): State<Arc<App<C>>>, body: Bytes) -> Response {
    if app.lender.is_none() {
        return no_quarantine();
    }
    let request: AckRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return bad_request(format!(
                "expected a JSON body {{\"token\": \"...\", \"outcome\": \"sent\" or \"failed\", \"note\": \"...\"}}: {error}"
            ));
        }
    };
    let outcome = match request.outcome {
        AckOutcome::Sent => Outcome::Sent,
        AckOutcome::Failed => Outcome::Failed(
            request
                .note
                .unwrap_or_else(|| "the sender failed to send it".to_owned()),
        ),
    };
    let acked = tokio::task::spawn_blocking(move || {
        let lender = app.lender.as_ref().expect("checked above");
        lender.ack(&request.token, &outcome)
    })
    .await;
    match acked {
        Ok(Ok(Acked::Settled)) => Json(json!({ "acked": "settled" })).into_response(),
        Ok(Ok(_)) => Json(json!({ "acked": "unknown" })).into_response(),
        Ok(Err(error)) => store_error(&error),
        Err(join) => error(StatusCode::INTERNAL_SERVER_ERROR, join.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_the_store_refuses_for_good_is_no_unavailable_store() {
        let status = |refused: StoreError| store_error(&refused).status();
        assert_eq!(
            status(StoreError::TooLarge("a notification of 2 MiB".into())),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(status(StoreError::Invalid("bad".into())), StatusCode::BAD_REQUEST);
    }
}
