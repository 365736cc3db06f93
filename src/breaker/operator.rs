//! The operator's controls: force a kind open or closed, reset it, put it in dry-run, plan a
//! surge, relearn its normal. Each acts on a kind the breaker knows (see
//! [`Breaker::force_open`]), never on the overflow kind by mistake.

use std::sync::Arc;
use std::time::Duration;

use super::Breaker;
use crate::clock::Clock;
use crate::config::{MAX_SURGE_MS, MAX_SURGE_SENDS, OVERFLOW_SURGE_REASON, SURGE_SENDS_REASON};
use crate::error::Error;
use crate::kind::{Kind, Resolve};
use crate::name::{self, OVERFLOW_KIND};
use crate::state::State;

impl<C: Clock> Breaker<C> {
    /// Operator: blocks `kind` until [`reset`](Self::reset).
    ///
    /// Every control acts on a kind the breaker has registered, the overflow kind (by its own
    /// name), or a kind the configuration names (registering it in its own slot). Any other name is
    /// refused with [`Error::UnknownKind`], and a name that breaks the kind-name rule with
    /// [`Error::InvalidKindName`]: a control never falls through to the overflow kind.
    ///
    /// ```
    /// use spikebreaker::{Breaker, Config, Decision, ManualClock};
    /// use spikebreaker::status::Reason;
    /// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
    /// assert!(breaker.force_open("push.promo").unwrap_err().is_unknown_kind());
    /// assert!(breaker.check("push.promo").is_allowed());
    /// breaker.force_open("push.promo")?;
    /// assert_eq!(breaker.check("push.promo"), Decision::Blocked(Reason::ForcedOpen));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn force_open(&self, kind: &str) -> Result<(), Error> {
        self.known(kind)?.force(State::Open);
        Ok(())
    }

    /// Operator: lets `kind` flow, detection suspended, until [`reset`](Self::reset). Refuses a
    /// kind the breaker does not know, as [`force_open`](Self::force_open) does.
    pub fn force_close(&self, kind: &str) -> Result<(), Error> {
        self.known(kind)?.force(State::Closed);
        Ok(())
    }

    /// Operator: closes `kind` and resumes automatic detection, forgetting the window's counts
    /// but keeping what it learned. Refuses a kind the breaker does not know, as
    /// [`force_open`](Self::force_open) does.
    pub fn reset(&self, kind: &str) -> Result<(), Error> {
        self.known(kind)?.reset();
        Ok(())
    }

    /// Operator: in dry-run, `kind` detects and reports (events, status, metrics) but never
    /// blocks. A configuration reload sets it back to the configured value. Refuses a kind the
    /// breaker does not know, as [`force_open`](Self::force_open) does.
    pub fn set_dry_run(&self, kind: &str, on: bool) -> Result<(), Error> {
        self.known(kind)?.set_dry_run(on);
        // A change of no state sends no event: the snapshot file is told here.
        self.inner.save_soon();
        Ok(())
    }

    /// The kind an operator control acts on: registered, the overflow kind, or named in the
    /// configuration.
    pub(super) fn known(&self, name: &str) -> Result<Arc<Kind<C>>, Error> {
        if let Some(kind) = self.inner.registry.get(name) {
            return Ok(kind);
        }
        name::validate_kind_name(name)?;
        if name == OVERFLOW_KIND || self.inner.config.read().1.names(name) {
            if let Ok(kind) = self.inner.resolve(name) {
                return Ok(kind);
            }
        }
        Err(Error::UnknownKind(name.to_owned()))
    }

    /// Announces a legitimate surge of `kind` in advance (a campaign, a real mass security
    /// notice): for `duration`, it may send `sends` in all, whatever its limits say; once they
    /// are spent its limits judge it again, so a job that sends more than it announced still
    /// trips.
    /// The surge shows in events (`surge`, then `surge_ended`), in the kind's status and in the
    /// `spikebreaker_surge_sends` gauge; when it ends, the windows' counts are forgotten so the
    /// surge's own sends do not trip the kind. Its sends are learned like any others, so a
    /// surge that recurs (a weekly job announced once) becomes normal. A new surge replaces the
    /// one in force. Surges known ahead of time can be written into the configuration instead
    /// ([`SurgeConfig`](crate::config::SurgeConfig)).
    ///
    /// ```
    /// use spikebreaker::{Breaker, Config, ManualClock};
    /// use std::time::Duration;
    /// let breaker = Breaker::with_clock(Config::default(), ManualClock::new())?;
    /// breaker.plan_surge("email.campaign", 50_000, Duration::from_secs(2 * 3600))?;
    /// let sent = (0..20_000).filter(|_| breaker.check("email.campaign").is_allowed()).count();
    /// assert_eq!(sent, 20_000); // far over the warm-up ceiling, but announced
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A surge may announce a kind not seen yet (a new campaign), registering it; it is refused
    /// with [`Error::InvalidKindName`] for a name that breaks the kind-name rule, with
    /// [`Error::Invalid`] for the overflow kind (which carries every kind without a slot: a surge
    /// would let all of them through), for no sends or over 1,000,000,000, or a duration of
    /// nothing or over 30 days, and with
    /// [`Error::NoRoom`] when the registry is full (a surge never lands on the overflow kind:
    /// name the kind in the configuration to keep it a slot).
    pub fn plan_surge(&self, kind: &str, sends: u64, duration: Duration) -> Result<(), Error> {
        name::validate_kind_name(kind)?;
        if kind == OVERFLOW_KIND {
            return Err(Error::invalid("kind", name::shown(kind), OVERFLOW_SURGE_REASON));
        }
        if !(1..=MAX_SURGE_SENDS).contains(&sends) {
            return Err(Error::invalid("sends", sends, SURGE_SENDS_REASON));
        }
        let for_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        if !(1..=MAX_SURGE_MS).contains(&for_ms) {
            return Err(Error::invalid(
                "duration",
                format!("{duration:?}"),
                "must be 1 ms to 30 days",
            ));
        }
        let found = self
            .inner
            .resolve(kind)
            .map_err(|_| Error::UnknownKind(kind.to_owned()))?;
        if found.name().as_ref() != kind {
            return Err(Error::NoRoom(kind.to_owned()));
        }
        found.plan_surge(sends, for_ms);
        Ok(())
    }

    /// Operator: `kind` is open on a lasting change in legitimate traffic (a new customer, a new
    /// feature), or tripped on a recurring job's first run: take the rate it kept while open as
    /// its new normal, learn the hour in progress and the one before as ordinary hours (a weekly
    /// job relearned within the hour after its run is normal at its hour of the week), and close
    /// it. Unlike [`reset`](Self::reset), which keeps what was learned (right after a runaway),
    /// this teaches the kind the level that tripped it.
    ///
    /// Refuses a kind the breaker does not know, as [`force_open`](Self::force_open) does.
    pub fn relearn(&self, kind: &str) -> Result<(), Error> {
        self.known(kind)?.relearn();
        Ok(())
    }
}
