//! One check, as every protocol asks it: "may I send `count` notifications of `kind` now?"
//! (each naming the same slices below the kind, if any), answered by the breaker send by send,
//! with what an answer over the wire needs to be honest: the window that binds, its room, and
//! when a refusing kind (or slice) may reopen.
//!
//! **Slices.** A request names slices as `name=value` pairs (a descriptor's entries beside
//! `kind`, `/v1/check`'s `slices` object), read as the send log's fourth column reads them:
//! `content` gives the content key of the repeat check; `recipient` names whom the notification is
//! for (the repeat check counts per recipient); every other pair is a slice (`prefix=+447`,
//! `tenant=acme`), checked by the library's rule before anything is counted.

use std::convert::Infallible;
use std::fmt;

use spikebreaker::config::validate_kind_name;
use spikebreaker::guard::{ByNotification, CONTENT, MAX_SLICES, Slices, check_pair};
use spikebreaker::status::{KindStatus, Reason, State, Timescale, Window};
use spikebreaker::{Clock, Config, GuardError, Guarded, Notification, Sender};

/// The pair that names the recipient of the repeat check rather than a slice.
pub(crate) const RECIPIENT: &str = "recipient";

/// A send asked about over the wire: its kind, and what it names below it.
#[derive(Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) kind: &'a str,
    pub(crate) slices: Slices<'a>,
}

impl Notification for Ask<'_> {
    fn kind(&self) -> &str {
        self.kind
    }

    fn slices(&self) -> Slices<'_> {
        self.slices
    }
}

/// The slices named by `pairs` (none: [`Slices::none`], so that a request naming nothing costs
/// what it did), each pair checked; a problem is named.
pub(crate) fn slices_of<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Slices<'a>, String> {
    let mut slices = Slices::none();
    let mut named = 0;
    for (name, value) in pairs {
        slices = match name {
            RECIPIENT if !value.is_empty() => slices.recipient(value),
            CONTENT if !value.is_empty() => slices.with(name, value),
            _ => {
                check_pair(name, value)?;
                named += 1;
                if named > MAX_SLICES {
                    return Err(format!("more than {MAX_SLICES} slices"));
                }
                slices.with(name, value)
            }
        };
    }
    Ok(slices)
}

/// The "sender" of a server: a send the breaker allows is answered, not sent. Guarding it gives
/// each refusal the library's own account of it (the kind that refused, why, when it may
/// reopen), exactly as an in-process sender gets it.
#[derive(Debug)]
pub(crate) struct Answer;

impl<'a> Sender<Ask<'a>> for Answer {
    type Output = ();
    type Error = Infallible;

    fn send(&self, _: Ask<'a>) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Why a request names no kind the server will count: answered as a client error, before
/// anything is counted, so that no kind is touched by a bad request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BadAsk {
    /// The name breaks the kind-name rule.
    Kind(String),
    /// The count is 0 or over the server's bound.
    Count { count: u64, most: u32 },
}

impl fmt::Display for BadAsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kind(problem) => f.write_str(problem),
            Self::Count { count, most } => write!(
                f,
                "a request counts 1 to {most} sends (`server.max_hits_addend`), not {count}"
            ),
        }
    }
}

/// Checks `kind`'s name and `count` before anything is counted.
pub(crate) fn validate(kind: &str, count: u64, most: u32) -> Result<(), BadAsk> {
    // The library's message names a long name by its start and its length.
    validate_kind_name(kind).map_err(|error| BadAsk::Kind(error.to_string()))?;
    if count == 0 || count > u64::from(most) {
        return Err(BadAsk::Count { count, most });
    }
    Ok(())
}

/// How a check went.
#[derive(Clone, Debug)]
pub(crate) struct Verdict {
    /// Sends asked about.
    pub(crate) count: u64,
    /// Of those, sends the breaker allowed (all of them, or the request is refused).
    pub(crate) allowed: u64,
    /// The first refusal, if any.
    pub(crate) refusal: Option<Refusal>,
    /// The kind's figures after the check.
    pub(crate) status: Option<KindStatus>,
    /// The breaker's clock when the check was made (milliseconds).
    pub(crate) now_ms: u64,
    /// The minute window's length for this kind, in seconds.
    pub(crate) window_secs: u64,
}

/// A refusal, as the library accounts for it.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    /// The kind that refused (the overflow kind's name if the registry was full).
    pub(crate) kind: String,
    /// Why the kind is open.
    pub(crate) reason: Reason,
    /// When it may let sends through again on its own (breaker clock), if it will.
    pub(crate) reopens_at_ms: Option<u64>,
    /// The slice that refused (`prefix=+447`, `recipient=…` for a repeat), when a slice did
    /// rather than the kind.
    pub(crate) slice: Option<String>,
    /// What the slice's trip was judged on, and the share it was judged by.
    pub(crate) slice_window: Option<(Window, f64)>,
}

/// The limit a verdict reports: the window that binds now, or for a refusal the one that
/// tripped the kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Limit {
    pub(crate) window: Window,
    /// The window's length in seconds.
    pub(crate) span_secs: u64,
}

impl Limit {
    /// Sends the window may still take before the kind trips.
    pub(crate) fn remaining(&self) -> u64 {
        self.window.threshold.saturating_sub(self.window.window_count)
    }
}

/// Checks `count` sends of `ask`'s kind (already [`validate`]d) through `guarded`, send by send:
/// the same as `count` sends of an in-process guarded sender. The request is allowed when every
/// one of them is; every one is counted, as Envoy's reference server counts a request's hits.
pub(crate) fn check<C: Clock>(
    guarded: &Guarded<Answer, ByNotification, C>,
    clock: &C,
    config: &Config,
    ask: Ask<'_>,
    count: u64,
) -> Verdict {
    let kind = ask.kind;
    let mut allowed = 0;
    let mut refusal = None;
    for _ in 0..count {
        match guarded.send(ask) {
            Ok(()) => allowed += 1,
            Err(GuardError::Blocked(blocked)) => {
                refusal.get_or_insert_with(|| {
                    let slice_window = blocked.slice().and_then(|slice| {
                        let found = guarded.breaker().slice_status(blocked.kind(), slice)?;
                        Some((found.tripped_on?, found.expected_share))
                    });
                    Refusal {
                        kind: blocked.kind().to_owned(),
                        reason: blocked.reason(),
                        reopens_at_ms: blocked.reopens_at_ms(),
                        slice: blocked.slice().map(ToString::to_string),
                        slice_window,
                    }
                });
            }
            Err(GuardError::Quarantined(_) | GuardError::Sender(_)) => {}
        }
    }
    let breaker = guarded.breaker();
    let counted_as = refusal
        .as_ref()
        .map_or(kind, |refusal: &Refusal| refusal.kind.as_str());
    let (status, window_secs) = (breaker.kind_figures(counted_as), window_secs(config, counted_as));
    Verdict {
        count,
        allowed,
        status,
        refusal,
        now_ms: clock.now_ms(),
        window_secs,
    }
}

/// The minute window's length for `kind`, as its configuration sets it.
pub(crate) fn window_secs(config: &Config, kind: &str) -> u64 {
    config
        .override_for(kind)
        .and_then(|(_, patch)| patch.window_secs)
        .unwrap_or(config.defaults.window_secs)
}

impl Verdict {
    /// Whether every send was allowed.
    pub(crate) fn is_allowed(&self) -> bool {
        self.refusal.is_none()
    }

    /// The limit to report: for a refusal by a detected trip, the window the trip was judged on;
    /// otherwise the window with the least room left, if it has a limit yet.
    pub(crate) fn limit(&self) -> Option<Limit> {
        let status = self.status.as_ref()?;
        let window = match &self.refusal {
            Some(Refusal {
                slice: Some(_),
                slice_window,
                ..
            }) => slice_window.as_ref()?.0,
            Some(refusal) if judged(refusal.reason) => status.tripped_on.unwrap_or(status.nearest),
            Some(_) => return None,
            None => status.nearest,
        };
        (window.threshold != u64::MAX).then_some(Limit {
            window,
            span_secs: match window.timescale {
                Timescale::Minute => self.window_secs,
                Timescale::Hour => 3_600,
                Timescale::Day => 86_400,
            },
        })
    }

    /// Milliseconds until a refusing kind may let sends through again on its own.
    pub(crate) fn retry_after_ms(&self) -> Option<u64> {
        let reopens = self.refusal.as_ref()?.reopens_at_ms?;
        Some(reopens.saturating_sub(self.now_ms))
    }

    /// Why the request was refused, in one line: `security.2fa_changed is open (spike): minute
    /// window 51 > 50 (the floor; expected 0.6)`, or for a slice `prefix=+447 of sms.login_code
    /// is open (slice): minute window 21 > 20 (expected share 3.2%)`.
    pub(crate) fn explanation(&self) -> Option<String> {
        let refusal = self.refusal.as_ref()?;
        let state = match &refusal.slice {
            Some(_) => State::Open,
            None => self.status.as_ref().map_or(State::Open, |status| status.state),
        };
        let mut text = match &refusal.slice {
            Some(slice) => format!("{slice} of {} is {state} ({})", refusal.kind, refusal.reason),
            None => format!("{} is {} ({})", refusal.kind, state, refusal.reason),
        };
        match (self.limit(), refusal.reason) {
            (Some(limit), _) => {
                text.push_str(&format!(": {}", limit.window));
                if let Some((_, share)) = refusal.slice_window.filter(|_| refusal.slice.is_some()) {
                    text.push_str(&format!(" (expected share {:.1}%)", share * 100.0));
                }
            }
            (None, Reason::Repeat) => text.push_str(": the same notification to one recipient too often"),
            (None, Reason::ForcedOpen) => text.push_str(": forced open by an operator"),
            (None, Reason::Fleet) => text.push_str(": tripped for the whole fleet"),
            (None, _) => {}
        }
        match self.retry_after_ms() {
            Some(ms) => text.push_str(&format!("; it may reopen in {} s", ms.div_ceil(1000))),
            None => text.push_str("; only an operator can reopen it"),
        }
        Some(text)
    }
}

/// Whether a refusal for `reason` was judged on a window (rather than forced, or the fleet's).
fn judged(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Spike | Reason::Ceiling | Reason::Warmup | Reason::ProbeFailed | Reason::StillOpen
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use spikebreaker::ManualClock;

    use spikebreaker::Breaker;

    use super::*;

    fn ask(kind: &str) -> Ask<'_> {
        Ask {
            kind,
            slices: Slices::none(),
        }
    }

    fn guarded() -> (Guarded<Answer, ByNotification, ManualClock>, ManualClock) {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        (Guarded::new(Answer, breaker), clock)
    }

    #[test]
    fn names_and_counts_are_checked_before_anything_is_counted() {
        assert_eq!(validate("email.receipt", 1, 10), Ok(()));
        assert_eq!(validate("email.receipt", 10, 10), Ok(()));
        assert!(matches!(
            validate("email.receipt", 0, 10),
            Err(BadAsk::Count { .. })
        ));
        assert!(matches!(
            validate("email.receipt", 11, 10),
            Err(BadAsk::Count { .. })
        ));
        let huge = "k".repeat(10_000);
        let Err(BadAsk::Kind(problem)) = validate(&huge, 1, 10) else {
            panic!("a 10 KB name passed");
        };
        assert!(
            problem.len() < 1_000 && problem.contains("(10000 bytes)"),
            "{problem}"
        );
        assert!(matches!(validate("", 1, 10), Err(BadAsk::Kind(_))));
    }

    #[test]
    fn pairs_name_slices_a_recipient_and_a_content_key_each_checked() {
        assert!(slices_of([]).unwrap().is_none(), "nothing named: opted out");
        let slices = slices_of([
            ("prefix", "+447"),
            ("recipient", "+447700900123"),
            ("content", "login"),
            ("tenant", "acme"),
        ])
        .unwrap();
        assert_eq!(
            slices.iter().collect::<Vec<_>>(),
            [("prefix", "+447"), ("tenant", "acme")]
        );
        assert_eq!(slices.recipient_named(), Some("+447700900123"));
        assert!(slices.content_key().is_some());
        assert!(slices_of([("bad name", "x")]).unwrap_err().contains("dimension"));
        assert!(slices_of([("tenant", "")]).unwrap_err().contains("value"));
        let nine: Vec<String> = (0..9).map(|i| format!("d{i}")).collect();
        let too_many = slices_of(nine.iter().map(|d| (d.as_str(), "v"))).unwrap_err();
        assert!(too_many.contains("more than 8"), "{too_many}");
    }

    #[test]
    fn a_batch_is_checked_send_by_send_and_refused_whole() {
        let (guarded, clock) = guarded();
        let config = Config::default();
        clock.advance(Duration::from_secs(1));
        let first = check(&guarded, &clock, &config, ask("push.promo"), 400);
        assert!(first.is_allowed());
        assert_eq!((first.allowed, first.count), (400, 400));
        let limit = first.limit().expect("a warm-up ceiling");
        assert_eq!(
            (limit.window.threshold, limit.remaining(), limit.span_secs),
            (500, 100, 60)
        );

        let second = check(&guarded, &clock, &config, ask("push.promo"), 200);
        assert!(!second.is_allowed());
        assert_eq!(second.allowed, 100);
        let explanation = second.explanation().unwrap();
        assert!(
            explanation.starts_with("push.promo is open (warmup): minute window 501 > 500"),
            "{explanation}"
        );
        assert_eq!(second.retry_after_ms(), Some(300_000));
        assert!(explanation.ends_with("it may reopen in 300 s"), "{explanation}");
        assert_eq!(second.limit().unwrap().remaining(), 0);
    }

    #[test]
    fn a_forced_kind_names_no_window_and_no_reopening() {
        let (guarded, clock) = guarded();
        let config = Config::default();
        let _ = check(&guarded, &clock, &config, ask("sms.otp"), 1);
        guarded.breaker().force_open("sms.otp").unwrap();
        let refused = check(&guarded, &clock, &config, ask("sms.otp"), 1);
        assert_eq!(refused.limit(), None);
        assert_eq!(refused.retry_after_ms(), None);
        assert_eq!(
            refused.explanation().unwrap(),
            "sms.otp is open (forced_open): forced open by an operator; only an operator can reopen it"
        );
    }
}
