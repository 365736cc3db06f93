//! Planned surges: legitimate bursts announced in advance (a campaign, a real mass security
//! notice), from the configuration or at run time through [`Breaker::plan_surge`].
//!
//! While a surge lasts its kind may send `sends` in all, whatever its limits say; once they are
//! spent its limits judge it again, so a job that sends more than it announced still trips. A
//! surge shows in events (`surge`, `surge_ended`), in the kind's status and in the `spikebreaker_surge_sends`
//! gauge, and when it ends the windows' counts are set aside so its own sends do not trip the
//! kind. Its sends are learned like any others, so a recurring job announced once is normal
//! from then on.
//!
//! [`Breaker::plan_surge`]: crate::Breaker::plan_surge

use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::name;

/// The longest a surge may last.
pub(crate) const MAX_SURGE_MS: u64 = 30 * 86_400_000;

/// The most sends a surge may announce: a billion, more than any campaign sends in 30 days, so
/// that a surge always ends in its sends being spent or its time running out, never in the
/// kind's protection switched off for good (`u64::MAX` sends).
pub(crate) const MAX_SURGE_SENDS: u64 = 1_000_000_000;

/// Why a surge on the overflow kind is refused.
pub(crate) const OVERFLOW_REASON: &str = "the overflow kind takes no surge: it carries every kind without a slot of its own, \
     and a surge would let all of them through";

/// Why a surge of no sends or too many is refused.
pub(crate) const SENDS_REASON: &str = "must be 1 to 1000000000";

/// A surge announced in the configuration (`[[surges]]`), between two RFC 3339 times.
///
/// ```
/// use spikebreaker::Config;
/// let config = Config::from_toml(r#"
///     [[surges]]
///     kind = "marketing.black_friday"
///     sends = 2000000
///     from = "2026-11-27T07:55:00Z"
///     until = "2026-11-27T20:00:00Z"
/// "#)?;
/// assert_eq!(config.surges[0].sends, 2_000_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It begins at the kind's first bucket edge (every `window_secs / 12`, 5 s by default) at or
/// after `from`, or when the kind is first seen during it: set `from` a little before the job
/// starts. Surges of one kind may not overlap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurgeConfig {
    /// The kind that surges (one kind by its name: not a pattern, not the overflow kind).
    pub kind: String,
    /// How many sends the kind may make while it lasts, whatever its limits say (1 to
    /// 1,000,000,000).
    pub sends: u64,
    /// When it begins, as an RFC 3339 time in UTC (`2026-11-27T07:55:00Z`).
    pub from: String,
    /// When it ends, as an RFC 3339 time in UTC: after `from`, at most 30 days after it.
    pub until: String,
}

/// A surge, checked: milliseconds since the Unix epoch, as the clocks count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) from_ms: u64,
    pub(crate) until_ms: u64,
    pub(crate) sends: u64,
}

impl SurgeConfig {
    /// Validates the surge; `path` names it in errors (`surges[0]`).
    pub(crate) fn compile(&self, path: &str) -> Result<Planned, Error> {
        let field = |name: &str| format!("{path}.{name}");
        if let Some(reason) = name::problem(&self.kind) {
            return Err(Error::invalid(field("kind"), name::shown(&self.kind), reason));
        }
        if !(1..=MAX_SURGE_SENDS).contains(&self.sends) {
            return Err(Error::invalid(field("sends"), self.sends, SENDS_REASON));
        }
        let from_ms = epoch_ms(&self.from).ok_or_else(|| {
            Error::invalid(
                field("from"),
                format!("{:?}", self.from),
                "must be an RFC 3339 time in UTC after 1970, such as \"2026-11-27T07:55:00Z\"",
            )
        })?;
        let until_ms = epoch_ms(&self.until)
            .filter(|&until| until > from_ms && until - from_ms <= MAX_SURGE_MS)
            .ok_or_else(|| {
                Error::invalid(
                    field("until"),
                    format!("{:?}", self.until),
                    "must be an RFC 3339 time in UTC after `from`, at most 30 days after it",
                )
            })?;
        Ok(Planned {
            from_ms,
            until_ms,
            sends: self.sends,
        })
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 time in UTC (`Z`): the reader takes no
/// other offset, and refuses one rather than misread it.
fn epoch_ms(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339(text.trim()).ok()?;
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// The surges of one kind, by start, checked not to overlap; `paths` names each in errors.
pub(crate) fn schedule(mut surges: Vec<(Planned, String)>) -> Result<Vec<Planned>, Error> {
    surges.sort_by_key(|(planned, _)| planned.from_ms);
    for pair in surges.windows(2) {
        let ((earlier, earlier_path), (later, later_path)) = (&pair[0], &pair[1]);
        if later.from_ms < earlier.until_ms {
            return Err(Error::invalid(
                format!("{later_path}.from"),
                format!("overlaps {earlier_path}"),
                "surges of one kind must not overlap",
            ));
        }
    }
    Ok(surges.into_iter().map(|(planned, _)| planned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surge(from: &str, until: &str) -> SurgeConfig {
        SurgeConfig {
            kind: "k".into(),
            sends: 10,
            from: from.into(),
            until: until.into(),
        }
    }

    #[test]
    fn times_are_read_to_the_millisecond_and_only_in_utc() {
        let planned = surge("2026-11-27T08:00:00Z", "2026-11-27T09:00:00.5Z")
            .compile("surges[0]")
            .unwrap();
        assert_eq!(planned.from_ms, 1_795_766_400_000);
        assert_eq!(planned.until_ms - planned.from_ms, 3_600_500);
        // An offset is refused, not misread as UTC.
        let offset = surge("2026-11-27T08:00:00Z", "2026-11-27T10:00:00+01:00").compile("surges[0]");
        assert!(offset.unwrap_err().to_string().contains("in UTC"));
    }

    #[test]
    fn a_bad_surge_is_refused_by_field_and_value() {
        let cases = [
            (
                surge("tomorrow", "2026-11-27T10:00:00Z"),
                "surges[0].from",
                "tomorrow",
            ),
            (
                surge("2026-11-27T10:00:00Z", "2026-11-27T10:00:00Z"),
                "surges[0].until",
                "10:00",
            ),
            (
                surge("2026-11-01T00:00:00Z", "2026-12-02T00:00:00Z"),
                "surges[0].until",
                "12-02",
            ),
            (
                surge("1969-12-31T00:00:00Z", "1970-01-02T00:00:00Z"),
                "surges[0].from",
                "1969",
            ),
            (
                SurgeConfig {
                    sends: 0,
                    ..surge("2026-11-27T08:00:00Z", "2026-11-27T09:00:00Z")
                },
                "surges[0].sends",
                "0",
            ),
            (
                SurgeConfig {
                    kind: " ".into(),
                    ..surge("2026-11-27T08:00:00Z", "2026-11-27T09:00:00Z")
                },
                "surges[0].kind",
                "\" \"",
            ),
        ];
        for (surge, field, value) in cases {
            let message = surge.compile("surges[0]").unwrap_err().to_string();
            assert!(message.contains(field) && message.contains(value), "{message}");
        }
    }

    #[test]
    fn surges_of_a_kind_are_put_in_order_and_may_not_overlap() {
        let at = |from: u64, until: u64| Planned {
            from_ms: from,
            until_ms: until,
            sends: 1,
        };
        let ordered = schedule(vec![(at(50, 60), "b".into()), (at(10, 50), "a".into())]).unwrap();
        assert_eq!(ordered, vec![at(10, 50), at(50, 60)]);
        let message = schedule(vec![
            (at(10, 50), "surges[0]".into()),
            (at(40, 60), "surges[3]".into()),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("surges[3].from") && message.contains("overlaps surges[0]"),
            "{message}"
        );
    }
}
