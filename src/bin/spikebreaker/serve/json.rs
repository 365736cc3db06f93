//! Envoy's rate-limit messages as JSON, the way lyft's ratelimit reads and writes them on its
//! `/json` endpoint (protobuf's JSON mapping): field names in lowerCamelCase (the proto names are
//! read too), enums by name, a `Duration` as `"1.5s"`, default values left out.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

/// `overall_code` of a refused request.
pub(crate) const OVER_LIMIT: i32 = Code::OverLimit as i32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    descriptors: Vec<Descriptor>,
    #[serde(
        default,
        alias = "hits_addend",
        rename = "hitsAddend",
        deserialize_with = "number"
    )]
    hits_addend: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Descriptor {
    #[serde(default)]
    entries: Vec<DescriptorEntry>,
    /// A limit override: read, and ignored (the breaker learns each kind's limits).
    #[serde(default)]
    #[allow(dead_code)]
    limit: Option<Value>,
    #[serde(
        default,
        alias = "hits_addend",
        rename = "hitsAddend",
        deserialize_with = "optional_number"
    )]
    hits_addend: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptorEntry {
    key: String,
    #[serde(default)]
    value: String,
}

/// A protobuf integer in JSON: a number, or a string of digits (as 64-bit ones are written).
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Number(u64),
    Text(String),
}

impl Number {
    fn value<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            Self::Number(number) => Ok(number),
            Self::Text(text) => text
                .parse()
                .map_err(|_| E::custom(format!("{text:?} is not a whole number"))),
        }
    }
}

fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Number::deserialize(deserializer)?.value()
}

fn optional_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<Number>::deserialize(deserializer)?
        .map(Number::value)
        .transpose()
}

/// A `RateLimitRequest` from its JSON; an error names what is wrong.
pub(crate) fn request(body: &[u8]) -> Result<RateLimitRequest, String> {
    let request: Request = serde_json::from_slice(body)
        .map_err(|error| format!("expected Envoy's RateLimitRequest as JSON: {error}"))?;
    let hits_addend = u32::try_from(request.hits_addend)
        .map_err(|_| format!("hitsAddend {} is over 2^32 - 1", request.hits_addend))?;
    Ok(RateLimitRequest {
        domain: request.domain,
        hits_addend,
        descriptors: request
            .descriptors
            .into_iter()
            .map(|descriptor| RateLimitDescriptor {
                entries: descriptor
                    .entries
                    .into_iter()
                    .map(|entry| Entry {
                        key: entry.key,
                        value: entry.value,
                    })
                    .collect(),
                limit: None,
                hits_addend: descriptor.hits_addend.map(|value| UInt64Value { value }),
            })
            .collect(),
    })
}

/// A `RateLimitResponse` as JSON.
pub(crate) fn response(response: &RateLimitResponse) -> Value {
    let mut out = Map::new();
    out.insert("overallCode".into(), code(response.overall_code));
    out.insert(
        "statuses".into(),
        response.statuses.iter().map(status).collect::<Vec<_>>().into(),
    );
    if !response.response_headers_to_add.is_empty() {
        let headers: Vec<Value> = response
            .response_headers_to_add
            .iter()
            .map(|header| json!({ "key": header.key, "value": header.value }))
            .collect();
        out.insert("responseHeadersToAdd".into(), headers.into());
    }
    Value::Object(out)
}

fn code(code: i32) -> Value {
    Code::try_from(code).unwrap_or(Code::Unknown).as_str_name().into()
}

fn status(status: &DescriptorStatus) -> Value {
    let mut out = Map::new();
    out.insert("code".into(), code(status.code));
    if let Some(limit) = &status.current_limit {
        out.insert(
            "currentLimit".into(),
            json!({
                "name": limit.name,
                "requestsPerUnit": limit.requests_per_unit,
                "unit": Unit::try_from(limit.unit).unwrap_or(Unit::Unknown).as_str_name(),
            }),
        );
    }
    if status.limit_remaining != 0 {
        out.insert("limitRemaining".into(), status.limit_remaining.into());
    }
    if let Some(duration) = &status.duration_until_reset {
        out.insert(
            "durationUntilReset".into(),
            duration_text(duration.seconds, duration.nanos).into(),
        );
    }
    Value::Object(out)
}

/// A `Duration` as protobuf's JSON writes it: seconds, with 3, 6 or 9 decimals when needed.
fn duration_text(seconds: i64, nanos: i32) -> String {
    match nanos {
        0 => format!("{seconds}s"),
        n if n % 1_000_000 == 0 => format!("{seconds}.{:03}s", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{seconds}.{:06}s", n / 1_000),
        n => format!("{seconds}.{n:09}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lowercamel_and_proto_names_and_numbers_as_text() {
        let request = request(
            br#"{"domain": "spikebreaker", "hitsAddend": 3,
                 "descriptors": [{"entries": [{"key": "kind", "value": "sms.otp"}], "hits_addend": "5"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (request.domain.as_str(), request.hits_addend),
            ("spikebreaker", 3)
        );
        assert_eq!(request.descriptors[0].entries[0].value, "sms.otp");
        assert_eq!(request.descriptors[0].hits_addend, Some(UInt64Value { value: 5 }));
    }

    #[test]
    fn bad_json_is_named() {
        for (body, expected) in [
            (&b"{"[..], "RateLimitRequest"),
            (br#"{"domain": 1}"#, "invalid type"),
            (br#"{"hitsAddend": 4294967296}"#, "over 2^32 - 1"),
            (br#"{"hitsAddend": "x"}"#, "not a whole number"),
            (
                br#"{"descriptors": [{"entries": [{"kye": "kind"}]}]}"#,
                "unknown field `kye`",
            ),
        ] {
            let error = request(body).unwrap_err();
            assert!(
                error.contains(expected),
                "{}: {error}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn durations_as_protobuf_writes_them() {
        assert_eq!(duration_text(300, 0), "300s");
        assert_eq!(duration_text(1, 500_000_000), "1.500s");
        assert_eq!(duration_text(0, 1_000), "0.000001s");
        assert_eq!(duration_text(0, 1), "0.000000001s");
    }
}
