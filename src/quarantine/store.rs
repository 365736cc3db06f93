//! The [`Store`] trait a quarantine is kept in, and what its calls answer.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::item::{Filter, Item, ItemId, NewItem, Query, ReleaseOrder};
use super::summary::Summary;

/// Where quarantined notifications are kept: an embedded file (`SqliteStore`, feature
/// `quarantine`), Redis Streams shared by a fleet (`RedisStore`, feature `redis`), memory
/// ([`MemoryStore`](super::MemoryStore)), or your own.
///
/// A store keeps notifications as JSON, so that the operator's tools (the admin router, the
/// command line) read any store without knowing the notification type. Every call is cold: it
/// runs when a send was refused or an operator acts, never on an allowed send.
///
/// What a store must do:
/// - [`hold`](Self::hold) writes the item before it returns `Ok` (durably, for a store that
///   claims durability), or refuses it whole: the sender then hands the notification back.
/// - [`claim`](Self::claim) gives each approved item to one releaser at a time, under a lease;
///   an item whose lease ran out is claimable again if its order is
///   [`AtLeastOnce`](super::Delivery::AtLeastOnce), and goes back to `Held`, `in_doubt`, if it is
///   [`AtMostOnce`](super::Delivery::AtMostOnce).
/// - [`settle`](Self::settle) records a claimed item's send as done (`Released`, whoever holds
///   the lease now) or failed (`Held` again, with the error as its note, but only while the
///   claim is still this one: once its lease ran out the item is another claim's to settle).
///   [`Claimed::receipt`] is the store's own: it names the claim (and its releaser).
pub trait Store: Send + Sync + fmt::Debug {
    /// A name for this store, unique among stores (random, kept with the data): the prefix of
    /// every idempotency key, so that keys from two stores never meet at a provider.
    fn id(&self) -> &str;

    /// Writes a blocked notification; its number, or why it was refused.
    fn hold(&self, item: NewItem) -> Result<ItemId, StoreError>;

    /// A page of items (see [`Query`]), oldest first.
    fn items(&self, query: &Query) -> Result<Vec<Item>, StoreError>;

    /// Counts, a sample and the distinct recipients per kind and trip. The default pages through
    /// [`items`](Self::items); a store may answer it more cheaply.
    fn summary(&self, filter: &Filter) -> Result<Summary, StoreError> {
        Summary::collect(self, filter)
    }

    /// Discards the held items `filter` names (it names a kind), keeping `reason` with each for
    /// audit; how many. Approved and claimed items are left to their releasers.
    fn discard(&self, filter: &Filter, reason: &str) -> Result<u64, StoreError>;

    /// Approves the held items `filter` names (it names a kind) for release under `order`; how
    /// many.
    fn approve(&self, filter: &Filter, order: &ReleaseOrder) -> Result<u64, StoreError>;

    /// The kinds with items approved or being sent.
    fn releasing(&self) -> Result<Vec<String>, StoreError>;

    /// The oldest approved item of `kind`, leased to `owner` for `lease`.
    fn claim(&self, kind: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError>;

    /// Records how the send of a claimed item went.
    fn settle(&self, claimed: &Claimed, outcome: &Outcome) -> Result<(), StoreError>;
}

/// What [`Store::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// An item to send, leased to the caller.
    Item(Claimed),
    /// Items remain, all leased to other releasers: look again later.
    Busy,
    /// Nothing approved for the kind.
    Empty,
}

/// An item leased to a releaser.
#[derive(Debug)]
pub struct Claimed {
    /// The item.
    pub item: Item,
    /// The store's own handle on the claim, for [`Store::settle`].
    pub receipt: String,
}

/// How a claimed item's send went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sender accepted it.
    Sent,
    /// The sender refused it, or it could not be decoded: held again, with this note.
    Failed(String),
}

/// Why a store refused a call. A refused [`hold`](Store::hold) hands the notification back to
/// the caller, as a blocked send without a quarantine does.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store holds as many live items (or bytes) as it may: new items are refused, never
    /// dropped, until an operator releases or discards some. The text names the bound.
    #[error("quarantine full: {0}")]
    Full(String),
    /// The store's file is damaged or is not a quarantine store. Nothing was changed: move it
    /// aside (`SqliteStore::set_aside`) to start afresh and keep it for recovery.
    #[error("quarantine store {path} is unreadable: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The store could not be reached or written (I/O, a lock held too long, a lost
    /// connection).
    #[error("quarantine store unavailable: {0}")]
    Unavailable(String),
    /// The call asked for something the store cannot do (a bad pace, no kind named).
    #[error("invalid quarantine request: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the store is full.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the store's file is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. })
    }
}
