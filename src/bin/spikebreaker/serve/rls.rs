//! Envoy's global rate-limit protocol (`envoy.service.ratelimit.v3.RateLimitService`), answered
//! by the breaker: over gRPC here, and as JSON on `/json` (see `http.rs`).
//!
//! **Descriptors.** Each descriptor names one kind, by its entry with the key `kind`
//! (`{key: "kind", value: "sms.login_code"}`); its other entries name slices below the kind
//! (`{key: "prefix", value: "+447"}`, `tenant`, `country`), tracked and judged as an in-process
//! sender's, with `recipient` and `content` giving the repeat check's recipient and content key
//! (see `check.rs`). A descriptor's `limit` override is ignored (the breaker learns each kind's
//! limits), its `hits_addend` overrides the request's.
//!
//! **Counting.** `hits_addend` is a batch of sends (0 is 1, as the protocol says of an unset
//! one); each descriptor's kind is checked send by send, as an in-process sender's would be, and
//! the request is `OVER_LIMIT` when any descriptor's kind refuses one. Every descriptor is
//! counted, as Envoy's reference server counts each.
//!
//! **Statuses.** Each `DescriptorStatus` says what the breaker knows: `current_limit` is the
//! window that binds now (for a refusal, the window the trip was judged on), its unit MINUTE,
//! HOUR or DAY and its name the window's account (`minute window 51 > 50 (the floor; expected
//! 0.6)`); `limit_remaining` is that window's room; `duration_until_reset` is the time until a
//! refusing kind may reopen on its own (absent when only an operator can reopen it). A kind
//! with no limit yet (its hour and day windows before a day is learned) reports none.
//!
//! **Errors.** A request the server cannot count is refused whole, before anything is counted,
//! with `INVALID_ARGUMENT` naming the problem: another domain, no descriptors, a descriptor
//! without a `kind` entry or with two, a name that breaks the kind-name rule, a slice that breaks
//! the slice rule (or more than 8), a `hits_addend`
//! (or the request's sends in all) over `server.max_hits_addend`.
//!
//! A sender may ask about a batch of notifications in one request, one descriptor each, in
//! order: each descriptor's code says whether its notification may go out.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use spikebreaker::Clock;
use spikebreaker::guard::Slices;
use spikebreaker::status::Timescale;
use tonic::{Request, Response, Status};

use super::App;
use super::check::{self, Ask, Verdict};

/// The descriptor entry that names the kind.
pub(crate) const KIND_KEY: &str = "kind";

/// What one descriptor asks about: its kind and the slices below it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub(crate) kind: &'a str,
    pub(crate) slices: Slices<'a>,
    /// Sends it counts.
    pub(crate) count: u64,
}

/// The descriptor's target, or why it names none.
pub(crate) fn target<'a>(
    index: usize,
    descriptor: &'a RateLimitDescriptor,
    request_count: u64,
) -> Result<Target<'a>, String> {
    let mut kinds = descriptor.entries.iter().filter(|entry| entry.key == KIND_KEY);
    let kind = match (kinds.next(), kinds.next()) {
        (Some(entry), None) => entry.value.as_str(),
        (None, _) => {
            let keys: Vec<&str> = descriptor
                .entries
                .iter()
                .map(|entry| entry.key.as_str())
                .collect();
            return Err(format!(
                "descriptor {index} has no `{KIND_KEY}` entry naming the notification kind (its keys: {keys:?})"
            ));
        }
        (Some(_), Some(_)) => {
            return Err(format!("descriptor {index} has more than one `{KIND_KEY}` entry"));
        }
    };
    let others = descriptor
        .entries
        .iter()
        .filter(|entry| entry.key != KIND_KEY)
        .map(|entry| (entry.key.as_str(), entry.value.as_str()));
    let slices = check::slices_of(others).map_err(|problem| format!("descriptor {index}: {problem}"))?;
    let count = match &descriptor.hits_addend {
        Some(addend) => addend.value,
        None => request_count,
    };
    Ok(Target { kind, slices, count })
}

/// A request refused before anything was counted.
#[derive(Debug)]
pub(crate) struct Invalid(pub(crate) String);

impl From<Invalid> for Status {
    fn from(Invalid(message): Invalid) -> Self {
        Status::invalid_argument(message)
    }
}

impl<C: Clock> App<C> {
    /// Answers a rate-limit request: every descriptor validated first, then each counted.
    pub(crate) fn rate_limit(&self, request: &RateLimitRequest) -> Result<RateLimitResponse, Invalid> {
        if request.domain != self.server.domain {
            return Err(Invalid(format!(
                "unknown domain {:?}: this server answers the domain {:?}",
                shown(&request.domain),
                self.server.domain
            )));
        }
        if request.descriptors.is_empty() {
            return Err(Invalid("the request has no descriptors".into()));
        }
        // 0 is how proto3 sends an unset field, which the protocol reads as 1.
        let request_count = u64::from(request.hits_addend.max(1));
        let targets = request
            .descriptors
            .iter()
            .enumerate()
            .map(|(index, descriptor)| {
                let target = target(index, descriptor, request_count).map_err(Invalid)?;
                check::validate(target.kind, target.count, self.server.max_hits_addend)
                    .map_err(|problem| Invalid(format!("descriptor {index}: {problem}")))?;
                Ok(target)
            })
            .collect::<Result<Vec<_>, Invalid>>()?;
        // Bounded as a whole too, so that many descriptors cannot make one request unbounded work.
        let sends: u64 = targets.iter().map(|target| target.count).sum();
        if sends > u64::from(self.server.max_hits_addend) {
            return Err(Invalid(format!(
                "the request counts {sends} sends in all, over the {} this server counts in one request \
                 (`server.max_hits_addend`)",
                self.server.max_hits_addend
            )));
        }
        let config = self.config();
        let verdicts: Vec<Verdict> = targets
            .iter()
            .map(|target| {
                let ask = Ask {
                    kind: target.kind,
                    slices: target.slices,
                };
                check::check(&self.guarded, &self.clock, &config, ask, target.count)
            })
            .collect();
        let over = verdicts.iter().any(|verdict| !verdict.is_allowed());
        let mut response = RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses: verdicts.iter().map(descriptor_status).collect(),
            ..RateLimitResponse::default()
        };
        if let Some(refused) = verdicts.iter().find(|verdict| !verdict.is_allowed()) {
            response.response_headers_to_add = refusal_headers(refused);
        }
        Ok(response)
    }
}

/// A client's text cut short and escaped for an error message.
pub(crate) fn shown(text: &str) -> String {
    let cut: String = text.chars().take(100).collect();
    let mut shown = cut.escape_debug().to_string();
    if cut.len() < text.len() {
        shown.push_str(&format!("… ({} bytes in all)", text.len()));
    }
    shown
}

/// What Envoy reads of one descriptor's verdict.
fn descriptor_status(verdict: &Verdict) -> DescriptorStatus {
    let limit = verdict.limit();
    DescriptorStatus {
        code: if verdict.is_allowed() {
            Code::Ok
        } else {
            Code::OverLimit
        } as i32,
        current_limit: limit.map(|limit| {
            let (requests_per_unit, unit) =
                per_unit(limit.window.threshold, limit.window.timescale, limit.span_secs);
            RateLimit {
                name: limit.window.to_string(),
                requests_per_unit,
                unit: unit as i32,
            }
        }),
        limit_remaining: match (&limit, verdict.is_allowed()) {
            (Some(limit), true) => u32::try_from(limit.remaining()).unwrap_or(u32::MAX),
            _ => 0,
        },
        duration_until_reset: verdict.retry_after_ms().map(|ms| ProtoDuration {
            seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            nanos: ((ms % 1000) * 1_000_000) as i32,
        }),
        quota: None,
    }
}

/// A window's threshold in Envoy's units: the minute window per minute (scaled when
/// `window_secs` is not 60), the hour window per hour, the day window per day.
pub(crate) fn per_unit(threshold: u64, timescale: Timescale, span_secs: u64) -> (u32, Unit) {
    let (count, unit) = match timescale {
        Timescale::Minute => (
            u128::from(threshold) * 60 / u128::from(span_secs.max(1)),
            Unit::Minute,
        ),
        Timescale::Hour => (u128::from(threshold), Unit::Hour),
        Timescale::Day => (u128::from(threshold), Unit::Day),
    };
    (u32::try_from(count).unwrap_or(u32::MAX), unit)
}

/// Headers Envoy adds to the 429 it answers a refused request with: when to retry, and why.
fn refusal_headers(verdict: &Verdict) -> Vec<HeaderValue> {
    let mut headers = Vec::new();
    if let Some(ms) = verdict.retry_after_ms() {
        headers.push(header("retry-after", ms.div_ceil(1000).to_string()));
    }
    if let Some(explanation) = verdict.explanation() {
        // Header values are visible ASCII: anything else is escaped.
        headers.push(header(
            "x-spikebreaker-refused",
            explanation.escape_default().to_string(),
        ));
    }
    headers
}

fn header(key: &str, value: String) -> HeaderValue {
    HeaderValue {
        key: key.to_owned(),
        value,
        raw_value: Vec::new(),
    }
}

/// The gRPC service over the app.
pub(crate) struct Rls<C: Clock> {
    pub(crate) app: Arc<App<C>>,
}

#[tonic::async_trait]
impl<C: Clock> RateLimitService for Rls<C> {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        Ok(Response::new(self.app.rate_limit(request.get_ref())?))
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
    use envoy_types::pb::google::protobuf::UInt64Value;

    use super::*;

    fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(key, value)| Entry {
                    key: (*key).into(),
                    value: (*value).into(),
                })
                .collect(),
            ..RateLimitDescriptor::default()
        }
    }

    #[test]
    fn a_descriptor_names_its_kind_by_the_kind_entry() {
        let plain = descriptor(&[("kind", "email.receipt")]);
        assert_eq!(
            target(0, &plain, 3),
            Ok(Target {
                kind: "email.receipt",
                slices: Slices::none(),
                count: 3
            })
        );
        assert!(
            target(0, &plain, 3).unwrap().slices.is_none(),
            "no slices: opted out"
        );
        let with_others = descriptor(&[("tenant", "acme"), ("kind", "sms.otp"), ("recipient", "+4477")]);
        let sliced = target(0, &with_others, 1).unwrap();
        assert_eq!(sliced.kind, "sms.otp");
        assert_eq!(sliced.slices.iter().collect::<Vec<_>>(), [("tenant", "acme")]);
        assert_eq!(sliced.slices.recipient_named(), Some("+4477"));
        let bad = target(1, &descriptor(&[("kind", "a"), ("ten ant", "x")]), 1).unwrap_err();
        assert!(bad.starts_with("descriptor 1: slice dimension"), "{bad}");
        let mut own_count = plain.clone();
        own_count.hits_addend = Some(UInt64Value { value: 7 });
        assert_eq!(target(0, &own_count, 3).unwrap().count, 7);
        let none = target(2, &descriptor(&[("generic_key", "x")]), 1).unwrap_err();
        assert!(
            none.contains("descriptor 2 has no `kind` entry") && none.contains("generic_key"),
            "{none}"
        );
        let two = target(0, &descriptor(&[("kind", "a"), ("kind", "b")]), 1).unwrap_err();
        assert!(two.contains("more than one"), "{two}");
    }

    #[test]
    fn thresholds_in_envoy_units() {
        assert_eq!(per_unit(50, Timescale::Minute, 60), (50, Unit::Minute));
        assert_eq!(per_unit(100, Timescale::Minute, 120), (50, Unit::Minute));
        assert_eq!(per_unit(120, Timescale::Hour, 3_600), (120, Unit::Hour));
        assert_eq!(
            per_unit(u64::MAX - 1, Timescale::Day, 86_400),
            (u32::MAX, Unit::Day)
        );
    }

    #[test]
    fn client_text_in_errors_is_short_and_escaped() {
        assert_eq!(shown("mailer"), "mailer");
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = shown(&"x".repeat(10_000));
        assert!(
            long.len() < 200 && long.ends_with("(10000 bytes in all)"),
            "{long}"
        );
    }
}
