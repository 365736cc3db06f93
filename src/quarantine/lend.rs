//! The quarantine for senders in another process (`spikebreaker serve`'s clients):
//! [`Quarantine::hold_refused`] holds a notification the breaker refused them, and a [`Lender`]
//! hands them approved items to send, paced as a [`Releaser`](super::Releaser) paces its own.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::item::{Filter, Item, ItemId, NewItem, Query};
use super::store::new_store_id;
use super::store::{Claim, Claimed, Outcome, StoreError};
use super::{DEFAULT_LEASE, DEFAULT_POLL, Quarantine, pace};
use crate::breaker::{Breaker, Refused};
use crate::clock::{Clock, unix_ms};
use crate::guard::Quarantined;
use crate::observe::metrics::{self, count_quarantine};
use crate::slice::SliceId;

/// Why [`Quarantine::hold_refused`] held nothing: the notification stays with its sender.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum HoldError {
    /// The kind lets sends through now (it closed again, or never refused): send it.
    #[error("kind {0:?} is not refusing sends now: send the notification")]
    NotRefusing(String),
    /// The store refused it (full, unreachable): keep it and try again later.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Quarantine {
    /// Holds a notification of `kind` that `breaker` refused a sender in another process (one
    /// that asked over the wire, then handed the notification over), under the kind's trip as an
    /// in-process refusal is held: same trip, reason, metrics. Counts no send. A kind that is not
    /// refusing now (closed, dry-run) holds nothing: [`HoldError::NotRefusing`].
    pub fn hold_refused<C: Clock>(
        &self,
        breaker: &Breaker<C>,
        kind: &str,
        recipient: Option<&str>,
        notification: Box<RawValue>,
    ) -> Result<Quarantined, HoldError> {
        let refused = breaker
            .refusing(kind)
            .ok_or_else(|| HoldError::NotRefusing(kind.to_owned()))?;
        self.hold_over_the_wire(breaker, refused, None, recipient, notification)
    }

    /// [`hold_refused`](Self::hold_refused) for a notification that one slice of `kind` refused
    /// (`prefix=+447`, see [guide::slices](crate::guide::slices)): held under that slice's trip,
    /// the item naming the slice, as an in-process refusal by the slice is held. A slice that is
    /// not open now holds nothing: [`HoldError::NotRefusing`] naming the slice.
    pub fn hold_refused_by_slice<C: Clock>(
        &self,
        breaker: &Breaker<C>,
        kind: &str,
        slice: &SliceId,
        recipient: Option<&str>,
        notification: Box<RawValue>,
    ) -> Result<Quarantined, HoldError> {
        let refused = breaker
            .refusing_slice(kind, slice)
            .ok_or_else(|| HoldError::NotRefusing(format!("{slice} of {kind}")))?;
        self.hold_over_the_wire(breaker, refused, Some(slice), recipient, notification)
    }

    fn hold_over_the_wire<C: Clock>(
        &self,
        breaker: &Breaker<C>,
        refused: Refused,
        slice: Option<&SliceId>,
        recipient: Option<&str>,
        notification: Box<RawValue>,
    ) -> Result<Quarantined, HoldError> {
        // A slice's trips are its own, apart from its kind's and from each other's.
        let trip_of = match slice {
            None => Arc::clone(&refused.kind),
            Some(slice) => Arc::from(format!("{} {slice}", refused.kind)),
        };
        let trip = self.trip(&trip_of, refused.tripped_at_ms, breaker.now_ms());
        let item = NewItem {
            kind: refused.kind.to_string(),
            trip,
            reason: refused.reason,
            held_at_ms: unix_ms(),
            recipient: recipient.map(str::to_owned),
            slice: slice.map(|slice| slice.to_string().into()),
            notification,
        };
        match self.store().hold(item) {
            Ok(id) => {
                count_quarantine(metrics::QUARANTINE_HELD, &self.breaker(), &refused.kind, 1);
                Ok(Quarantined::new(id, refused.kind, refused.reason, trip))
            }
            Err(error) => {
                count_quarantine(metrics::QUARANTINE_REFUSED, &self.breaker(), &refused.kind, 1);
                self.warn_refused(&refused.kind, &error);
                Err(error.into())
            }
        }
    }
}

/// How much of a kind's pace a claim may catch up on after a pause: a second's worth.
const CATCH_UP_MS: u64 = 1_000;

/// Hands approved items ([`Quarantine::release`]) to senders that pull them: a claim leases a
/// batch, the sender sends each item with its idempotency key, then acknowledges it. An item
/// not acknowledged within its lease goes back as its release order says (sent again under the
/// same key, or held in doubt), exactly as a [`Releaser`](super::Releaser)'s claim does: the store
/// keeps the lease, so a sender that dies mid-batch, or a server that restarts, loses nothing.
///
/// **Pace.** Per kind, one item every `60 / per_minute` seconds of the breaker's clock, as a
/// releaser sends them (the order's pace, or the kind's learned normal rate); a claim after a
/// pause may catch up on at most a second's worth. Several lenders on one store each keep it.
///
/// Each claim leases its items under a name of its own, so that a late failure acknowledged by
/// one claimer never settles another's claim of the same item.
pub struct Lender {
    quarantine: Quarantine,
    lease: Duration,
    poll: Duration,
    /// Per kind, when it may lend its next item (breaker clock).
    next_at_ms: Mutex<HashMap<String, u64>>,
    /// Loans not yet acknowledged, by token, with their lease's end (Unix ms); read back from
    /// the store if forgotten.
    out: Mutex<HashMap<String, (u64, Claimed)>>,
}

impl fmt::Debug for Lender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lender")
            .field("lease", &self.lease)
            .field("out", &self.out.lock().len())
            .finish_non_exhaustive()
    }
}

/// An item lent to a sender: send its notification with `key`, then acknowledge it with
/// `token` ([`Lender::ack`]) before `lease_until_ms`.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Loan {
    /// What the sender hands back to acknowledge it.
    pub token: String,
    /// The idempotency key to send it with: the same on every attempt.
    pub key: String,
    /// When the lease runs out (Unix milliseconds): unacknowledged by then, it goes back.
    pub lease_until_ms: u64,
    /// The item, with its notification.
    pub item: Item,
}

/// What [`Lender::claim`] lent.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Lent {
    /// Items to send, oldest of each kind first.
    pub loans: Vec<Loan>,
    /// When more may be lent, if items are waiting (their kind's pace, another's lease); `None`
    /// when nothing more is approved.
    pub wait: Option<Duration>,
}

/// What [`Lender::ack`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acked {
    /// The store recorded the send (released) or the failure (held again).
    Settled,
    /// The token names no item the store has: a token from another store, or a finished item
    /// forgotten since.
    Unknown,
}

impl Lender {
    /// A lender of `quarantine`'s approved items, with the default lease (30 s).
    pub fn new(quarantine: Quarantine) -> Self {
        Self {
            quarantine,
            lease: DEFAULT_LEASE,
            poll: DEFAULT_POLL,
            next_at_ms: Mutex::new(HashMap::new()),
            out: Mutex::new(HashMap::new()),
        }
    }

    /// How long a sender has to acknowledge an item before it goes back.
    pub fn lease(self, lease: Duration) -> Self {
        Self { lease, ..self }
    }

    /// Leases up to `max` approved items, of the kinds whose pace allows one now.
    pub fn claim<C: Clock>(&self, breaker: &Breaker<C>, max: usize) -> Result<Lent, StoreError> {
        let store = self.quarantine.store();
        let kinds = store.releasing()?;
        let mut next_at_ms = self.next_at_ms.lock();
        if kinds.is_empty() {
            next_at_ms.clear();
            return Ok(Lent::default());
        }
        let owner = new_store_id();
        let now = breaker.now_ms();
        let poll_ms = self.poll.as_millis() as u64;
        let mut lent = Lent::default();
        let mut wait_ms: Option<u64> = None;
        let mut failed: Option<StoreError> = None;
        let mut failures = 0;
        for kind in &kinds {
            while lent.loans.len() < max {
                let at = next_at_ms
                    .get(kind)
                    .copied()
                    .unwrap_or(0)
                    .max(now.saturating_sub(CATCH_UP_MS));
                if at > now {
                    wait_ms = Some(wait_ms.map_or(at - now, |w| w.min(at - now)));
                    break;
                }
                match store.claim(kind, &owner, self.lease) {
                    Ok(Claim::Item(claimed)) => {
                        let per_minute = claimed
                            .item
                            .order
                            .and_then(|order| order.per_minute)
                            .unwrap_or_else(|| pace::normal_per_minute(breaker, kind));
                        next_at_ms.insert(kind.clone(), at.saturating_add(pace::interval_ms(per_minute)));
                        lent.loans.push(self.loan(claimed));
                    }
                    Ok(Claim::Busy) => {
                        wait_ms = Some(wait_ms.map_or(poll_ms, |w| w.min(poll_ms)));
                        break;
                    }
                    Ok(Claim::Empty) => break,
                    // One kind's trouble (an item the store cannot read) holds up that kind alone.
                    Err(error) => {
                        tracing::warn!(kind = kind.as_str(), %error, "cannot claim the next item of this kind");
                        next_at_ms.insert(kind.clone(), now.saturating_add(poll_ms));
                        failed.get_or_insert(error);
                        failures += 1;
                        break;
                    }
                }
            }
        }
        if let Some(error) = failed.filter(|_| failures == kinds.len() && lent.loans.is_empty()) {
            return Err(error);
        }
        lent.wait = wait_ms.map(Duration::from_millis);
        Ok(lent)
    }

    /// Records how the send of a lent item went: `Sent` releases it (whoever holds the lease
    /// now), `Failed` holds it again with the note (while the lease is still this loan's).
    pub fn ack(&self, token: &str, outcome: &Outcome) -> Result<Acked, StoreError> {
        let claimed = match self.out.lock().remove(token) {
            Some((_, claimed)) => claimed,
            None => match self.read_back(token)? {
                Some(claimed) => claimed,
                None => return Ok(Acked::Unknown),
            },
        };
        self.quarantine.store().settle(&claimed, outcome)?;
        if *outcome == Outcome::Sent {
            count_quarantine(
                metrics::QUARANTINE_RELEASED,
                &self.quarantine.breaker(),
                &claimed.item.kind,
                1,
            );
        }
        Ok(Acked::Settled)
    }

    /// A loan of `claimed`, remembered until acknowledged; loans whose lease ran out long ago
    /// are forgotten (an acknowledgement reads them back from the store).
    fn loan(&self, claimed: Claimed) -> Loan {
        let now = unix_ms();
        let lease_until_ms = now.saturating_add(self.lease.as_millis() as u64);
        let token = token(&claimed.item.kind, claimed.item.id, &claimed.receipt);
        let loan = Loan {
            token: token.clone(),
            key: self.quarantine.idempotency_key(claimed.item.id),
            lease_until_ms,
            item: claimed.item.clone(),
        };
        let mut out = self.out.lock();
        // A loan whose lease ran out a lease ago is another claim's by now, or soon.
        let forget_before = now.saturating_sub(self.lease.as_millis() as u64);
        out.retain(|_, (until, _)| *until >= forget_before);
        if out.len() >= MAX_REMEMBERED {
            out.clear();
        }
        out.insert(token, (lease_until_ms, claimed));
        loan
    }

    /// The claim a token names, read from the store: for a loan this lender forgot (it
    /// restarted).
    fn read_back(&self, token: &str) -> Result<Option<Claimed>, StoreError> {
        let Some((kind, id, receipt)) = parse_token(token) else {
            return Err(StoreError::Invalid(format!("not a loan's token: {token:?}")));
        };
        // With its notification: a store may write the item back whole (held again on a failure).
        let query = Query::new(Filter::kind(kind).ids([id]), 1);
        Ok(self
            .quarantine
            .store()
            .items(&query)?
            .into_iter()
            .next()
            .map(|item| Claimed { item, receipt }))
    }
}

/// Loans a lender remembers at most: beyond, it reads acknowledgements back from the store.
const MAX_REMEMBERED: usize = 100_000;

/// A loan's token: its kind, item and the store's receipt, as a JSON array in a string.
fn token(kind: &str, id: ItemId, receipt: &str) -> String {
    serde_json::to_string(&(kind, id, receipt)).unwrap_or_default()
}

fn parse_token(token: &str) -> Option<(String, ItemId, String)> {
    serde_json::from_str(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use crate::quarantine::{ItemState, MemoryStore, ReleaseOrder};

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn tripped() -> (Breaker<ManualClock>, ManualClock, Quarantine) {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        let _ = breaker.kind("sms.otp");
        breaker.force_open("sms.otp").unwrap();
        (breaker, clock, Quarantine::new(MemoryStore::new(100)))
    }

    #[test]
    fn a_refused_notification_is_held_under_its_trip_and_a_flowing_kind_holds_nothing() {
        let (breaker, _clock, quarantine) = tripped();
        let first = quarantine
            .hold_refused(&breaker, "sms.otp", Some("+1555"), raw(r#"{"to":"+1555"}"#))
            .unwrap();
        let second = quarantine
            .hold_refused(&breaker, "sms.otp", None, raw("{}"))
            .unwrap();
        assert_eq!(first.trip(), second.trip());
        assert_eq!(first.reason(), crate::state::Reason::ForcedOpen);
        let held = quarantine
            .items(&Query::new(Filter::kind("sms.otp"), 10))
            .unwrap();
        assert_eq!(held.len(), 2);
        assert_eq!(held[0].recipient.as_deref(), Some("+1555"));
        breaker.reset("sms.otp").unwrap();
        let error = quarantine
            .hold_refused(&breaker, "sms.otp", None, raw("{}"))
            .unwrap_err();
        assert!(matches!(error, HoldError::NotRefusing(_)), "{error}");
        let unknown = quarantine
            .hold_refused(&breaker, "never.seen", None, raw("{}"))
            .unwrap_err();
        assert!(matches!(unknown, HoldError::NotRefusing(_)), "{unknown}");
    }

    #[test]
    fn claims_keep_the_kinds_pace_and_an_ack_releases_or_holds_again() {
        let (breaker, clock, quarantine) = tripped();
        for i in 0..5 {
            quarantine
                .hold_refused(&breaker, "sms.otp", None, raw(&format!("{{\"n\":{i}}}")))
                .unwrap();
        }
        let order = ReleaseOrder {
            per_minute: Some(60.0),
            ..ReleaseOrder::default()
        };
        assert_eq!(quarantine.release(&Filter::kind("sms.otp"), &order).unwrap(), 5);
        let lender = Lender::new(quarantine.clone());
        // One a second: a claim takes one, the next must wait a second.
        let first = lender.claim(&breaker, 10).unwrap();
        assert_eq!(first.loans.len(), 1);
        assert_eq!(first.wait, Some(Duration::from_secs(1)));
        assert!(lender.claim(&breaker, 10).unwrap().loans.is_empty());
        // After a long pause, at most a second's worth more.
        clock.advance(Duration::from_secs(60));
        let caught_up = lender.claim(&breaker, 10).unwrap();
        assert_eq!(caught_up.loans.len(), 2);
        let keys: Vec<&str> = caught_up.loans.iter().map(|loan| loan.key.as_str()).collect();
        assert_ne!(keys[0], keys[1]);

        assert_eq!(
            lender.ack(&first.loans[0].token, &Outcome::Sent).unwrap(),
            Acked::Settled
        );
        let failed = Outcome::Failed("provider said 503".into());
        assert_eq!(
            lender.ack(&caught_up.loans[0].token, &failed).unwrap(),
            Acked::Settled
        );
        let states: Vec<ItemState> = quarantine
            .items(&Query::new(Filter::kind("sms.otp"), 10))
            .unwrap()
            .iter()
            .map(|item| item.state)
            .collect();
        use ItemState::*;
        assert_eq!(states, [Released, Held, Sending, Approved, Approved]);
    }

    #[test]
    fn a_lender_that_forgot_its_loans_reads_them_back_from_the_store() {
        let (breaker, _clock, quarantine) = tripped();
        quarantine
            .hold_refused(&breaker, "sms.otp", None, raw("{}"))
            .unwrap();
        quarantine
            .release(&Filter::kind("sms.otp"), &ReleaseOrder::default())
            .unwrap();
        let loan = Lender::new(quarantine.clone())
            .claim(&breaker, 1)
            .unwrap()
            .loans
            .remove(0);
        // A new lender (the server restarted) is handed the token.
        let again = Lender::new(quarantine.clone());
        assert_eq!(again.ack(&loan.token, &Outcome::Sent).unwrap(), Acked::Settled);
        let item = &quarantine.items(&Query::new(Filter::kind("sms.otp"), 1)).unwrap()[0];
        assert_eq!(item.state, ItemState::Released);
        assert_eq!(
            again.ack(&token("sms.otp", 99, "x"), &Outcome::Sent).unwrap(),
            Acked::Unknown
        );
        assert!(again.ack("garbage", &Outcome::Sent).is_err());
    }
}
