//! What a quarantine holds: an [`Item`], a blocked notification with its kind, trip, reason, time
//! and recipient and where it stands; the [`NewItem`] a sender hands a store; and how operators
//! pick items ([`Filter`], [`Query`]) and release them ([`ReleaseOrder`], [`Delivery`]).

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::state::Reason;

/// An item's number in its store: given by the store, never reused.
pub type ItemId = u64;

/// Where an item stands. `Held`, `Approved` and `Sending` are live (they count against the
/// store's bound); `Released` and `Discarded` are finished, kept for audit without the
/// notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Parked, waiting for an operator.
    Held,
    /// An operator released it; a releaser will send it.
    Approved,
    /// A releaser claimed it and is sending it (until its lease runs out).
    Sending,
    /// Sent by a releaser.
    Released,
    /// Discarded by an operator, with a reason.
    Discarded,
}

impl ItemState {
    /// Every state, live ones first.
    pub const ALL: [ItemState; 5] = [
        Self::Held,
        Self::Approved,
        Self::Sending,
        Self::Released,
        Self::Discarded,
    ];

    /// The state's name in JSON, in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Approved => "approved",
            Self::Sending => "sending",
            Self::Released => "released",
            Self::Discarded => "discarded",
        }
    }

    /// Whether the item is done with (released or discarded).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Released | Self::Discarded)
    }
}

impl fmt::Display for ItemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ItemState {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| {
                format!("unknown item state {name:?}: one of held, approved, sending, released, discarded")
            })
    }
}

/// What a release promises when a releaser dies between the sender accepting an item and the
/// store recording it (the only moment either can go wrong; the releaser sends one item at a
/// time, so it concerns at most one item per crashed releaser).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The item is sent again once its lease runs out: it may reach the sender twice, under the
    /// same idempotency key, and is never lost.
    #[default]
    AtLeastOnce,
    /// The item is never sent again on its own: once its lease runs out it goes back to `Held`,
    /// marked `in_doubt`, for an operator to release (again) or discard.
    AtMostOnce,
}

impl Delivery {
    /// The guarantee's name in JSON and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtLeastOnce => "at_least_once",
            Self::AtMostOnce => "at_most_once",
        }
    }
}

impl FromStr for Delivery {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "at_least_once" => Ok(Self::AtLeastOnce),
            "at_most_once" => Ok(Self::AtMostOnce),
            _ => Err(format!(
                "unknown delivery {name:?}: at_least_once or at_most_once"
            )),
        }
    }
}

/// How an operator wants held items released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseOrder {
    /// At most this many sends a minute for the kind; by default the kind's learned normal
    /// rate (see [`Releaser`](super::Releaser)).
    #[serde(default)]
    pub per_minute: Option<f64>,
    /// The guarantee if a releaser dies mid-send.
    #[serde(default)]
    pub delivery: Delivery,
}

impl ReleaseOrder {
    /// Checks the pace: a finite number of sends a minute, at least one an hour (1/60).
    pub fn validate(&self) -> Result<(), String> {
        match self.per_minute {
            Some(rate) if !(rate.is_finite() && rate > 0.0) => Err(format!(
                "invalid `per_minute` = {rate}: must be a finite number above 0"
            )),
            Some(rate) if rate < super::pace::SLOWEST_PER_MINUTE => Err(format!(
                "invalid `per_minute` = {rate}: the slowest pace is one an hour (0.0167 a minute)"
            )),
            _ => Ok(()),
        }
    }
}

/// A blocked notification as handed to a store: everything but the number the store gives it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewItem {
    /// The kind it was counted under.
    pub kind: String,
    /// The trip that blocked it: the wall-clock time (Unix milliseconds) the trip began, the
    /// same for every item of one trip of one breaker.
    pub trip: u64,
    /// Why the kind was open.
    pub reason: Reason,
    /// When it was held (Unix milliseconds).
    pub held_at_ms: u64,
    /// Whom it was for, if the notification names a recipient.
    pub recipient: Option<String>,
    /// The slice of the kind that refused it (`prefix=+447`, `recipient=…` for a repeat), when
    /// a slice did rather than the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Box<str>>,
    /// The notification, as JSON.
    pub notification: Box<RawValue>,
}

/// A quarantined notification and where it stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Item {
    /// Its number in the store.
    pub id: ItemId,
    /// The kind it was counted under.
    pub kind: String,
    /// The trip that blocked it (see [`NewItem::trip`]).
    pub trip: u64,
    /// Why the kind was open.
    pub reason: Reason,
    /// When it was held (Unix milliseconds).
    pub held_at_ms: u64,
    /// Whom it was for, if known.
    pub recipient: Option<String>,
    /// The slice of the kind that refused it, if a slice did (see [`NewItem::slice`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Box<str>>,
    /// Where it stands.
    pub state: ItemState,
    /// A release may have sent it before its releaser died ([`Delivery::AtMostOnce`]): it is
    /// held again and never sent on its own.
    pub in_doubt: bool,
    /// Sends attempted by releasers.
    pub attempts: u32,
    /// The discard's reason, or why the last release attempt failed.
    pub note: Option<String>,
    /// The release order, once approved.
    pub order: Option<ReleaseOrder>,
    /// When it was released or discarded (Unix milliseconds).
    pub finished_at_ms: Option<u64>,
    /// The notification as JSON; dropped once the item is finished.
    pub notification: Option<Box<RawValue>>,
}

impl Item {
    /// A held item made from `new`, numbered `id`.
    pub fn held(id: ItemId, new: NewItem) -> Self {
        Self {
            id,
            kind: new.kind,
            trip: new.trip,
            reason: new.reason,
            held_at_ms: new.held_at_ms,
            recipient: new.recipient,
            slice: new.slice,
            state: ItemState::Held,
            in_doubt: false,
            attempts: 0,
            note: None,
            order: None,
            finished_at_ms: None,
            notification: Some(new.notification),
        }
    }

    /// The notification, decoded as `N`.
    pub fn decode<N: DeserializeOwned>(&self) -> Result<N, String> {
        let json = self
            .notification
            .as_ref()
            .ok_or_else(|| format!("item {} is {} and keeps no notification", self.id, self.state))?;
        serde_json::from_str(json.get()).map_err(|error| {
            format!(
                "item {} does not decode as the sender's notification: {error}",
                self.id
            )
        })
    }
}

/// Which items an operator means: a kind, or one trip of it, narrowed to named items if need be
/// (the legitimate notices among a runaway's); everything when empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only this trip (see [`NewItem::trip`]).
    #[serde(default)]
    pub trip: Option<u64>,
    /// Only these items (any, when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<ItemId>,
}

impl Filter {
    /// Every item.
    pub fn all() -> Self {
        Self::default()
    }

    /// The items of `kind`.
    pub fn kind(kind: impl Into<String>) -> Self {
        Self {
            kind: Some(kind.into()),
            ..Self::default()
        }
    }

    /// These items, of one trip only.
    pub fn trip(self, trip: u64) -> Self {
        Self {
            trip: Some(trip),
            ..self
        }
    }

    /// These items, only those numbered `ids`.
    pub fn ids(self, ids: impl IntoIterator<Item = ItemId>) -> Self {
        Self {
            ids: ids.into_iter().collect(),
            ..self
        }
    }

    /// Whether `item` is meant.
    pub fn matches(&self, item: &Item) -> bool {
        self.kind.as_deref().is_none_or(|kind| kind == item.kind)
            && self.trip.is_none_or(|trip| trip == item.trip)
            && (self.ids.is_empty() || self.ids.contains(&item.id))
    }

    /// An operator's action (discard, release) must name a kind.
    pub(crate) fn for_action(&self) -> Result<&str, String> {
        self.kind
            .as_deref()
            .filter(|kind| !kind.is_empty())
            .ok_or_else(|| "a release or discard must name a kind (and may name a trip)".to_owned())
    }
}

/// A page of items: those matching `filter` (and `state`, if given) with ids above `after`,
/// oldest first, at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Which kind or trip.
    pub filter: Filter,
    /// Only items in this state.
    pub state: Option<ItemState>,
    /// Only items numbered above this one (the last id of the page before).
    pub after: Option<ItemId>,
    /// At most this many.
    pub limit: usize,
    /// Whether to read the notifications too (a summary needs only the figures).
    pub notifications: bool,
}

impl Query {
    /// The first `limit` items matching `filter`, with their notifications.
    pub fn new(filter: Filter, limit: usize) -> Self {
        Self {
            filter,
            state: None,
            after: None,
            limit,
            notifications: true,
        }
    }

    /// This query, for items in `state` only.
    pub fn in_state(self, state: ItemState) -> Self {
        Self {
            state: Some(state),
            ..self
        }
    }

    /// Whether `item` belongs on this query's pages (ignoring `limit`).
    pub fn matches(&self, item: &Item) -> bool {
        self.filter.matches(item)
            && self.state.is_none_or(|state| state == item.state)
            && self.after.is_none_or(|after| item.id > after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_deliveries_read_back_from_their_names() {
        for state in ItemState::ALL {
            assert_eq!(state.as_str().parse::<ItemState>(), Ok(state));
        }
        assert!("parked".parse::<ItemState>().is_err());
        for delivery in [Delivery::AtLeastOnce, Delivery::AtMostOnce] {
            assert_eq!(delivery.as_str().parse::<Delivery>(), Ok(delivery));
        }
    }

    #[test]
    fn a_release_order_needs_a_positive_finite_pace() {
        let order = |rate| ReleaseOrder {
            per_minute: Some(rate),
            ..ReleaseOrder::default()
        };
        assert!(order(0.5).validate().is_ok());
        assert!(ReleaseOrder::default().validate().is_ok());
        assert!(order(1.0 / 60.0).validate().is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-6, 0.01] {
            assert!(order(bad).validate().unwrap_err().contains("per_minute"), "{bad}");
        }
    }

    #[test]
    fn a_filter_matches_its_kind_trip_and_items() {
        let item = |id, kind: &str, trip| Item {
            kind: kind.to_owned(),
            trip,
            ..Item::held(
                id,
                NewItem {
                    kind: String::new(),
                    trip: 0,
                    reason: Reason::Spike,
                    held_at_ms: 0,
                    recipient: None,
                    slice: None,
                    notification: RawValue::from_string("{}".to_owned()).unwrap(),
                },
            )
        };
        let filter = Filter::kind("sms.otp").trip(7);
        assert!(filter.matches(&item(1, "sms.otp", 7)));
        assert!(!filter.matches(&item(1, "sms.otp", 8)));
        assert!(!filter.matches(&item(1, "email.welcome", 7)));
        assert!(Filter::all().matches(&item(1, "anything", 1)));
        let named = filter.ids([2, 3]);
        assert!(named.matches(&item(3, "sms.otp", 7)));
        assert!(!named.matches(&item(1, "sms.otp", 7)));
        assert!(Filter::all().for_action().is_err());
    }
}
