//! The [`Store`] trait a quarantine is kept in, what its calls answer, and the stores: `memory`;
//! `sqlite`, an embedded file (feature `quarantine`); `redis`, Redis Streams shared by a fleet
//! (feature `redis`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::item::{Filter, Item, ItemId, ItemState, NewItem, Query, ReleaseOrder};
use super::summary::{Gather, SAMPLE, Summary};
use crate::clock::unix_ms;

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "quarantine")]
pub(crate) mod sqlite;

/// Items read a page when a summary pages through a store.
pub(crate) const PAGE: usize = 1_000;

/// Finished items (released, discarded) a store keeps for audit, the newest; older ones are
/// forgotten (the embedded store lets up to a thousand more gather before it forgets, so that it
/// deletes in bulk). They carry no notification, only its figures and the discard's reason.
pub const FINISHED_KEPT: usize = 100_000;

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
    /// The item is larger than the store takes (its `max_item_bytes`): refused whole, and the
    /// store is none the worse for it (a hold's notification goes back to its caller). The text
    /// names the kind, the size and the bound.
    #[error("quarantine item too large: {0}")]
    TooLarge(String),
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

    /// Whether the item was larger than the store takes.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge(_))
    }
}

/// The largest item a store takes by default (`max_item_bytes`): 1 MiB of notification JSON,
/// kind and recipient. A notification larger is not one to hold (a runaway's attachment, say),
/// and writing it would stall the store for every other hold.
pub const DEFAULT_MAX_ITEM_BYTES: u64 = 1 << 20;

/// Refuses `item` if its notification, kind and recipient come to more than `max` bytes, naming
/// the kind, the size and the bound: before it is written anywhere, so that a store never stalls
/// on it (nor takes itself for unreachable when it times out).
#[cfg(any(feature = "quarantine", feature = "redis"))]
pub(crate) fn check_size(item: &NewItem, max: u64) -> Result<(), StoreError> {
    let bytes =
        item.notification.get().len() + item.kind.len() + item.recipient.as_ref().map_or(0, String::len);
    if bytes as u64 > max {
        return Err(StoreError::TooLarge(format!(
            "a notification of kind {:?} comes to {bytes} bytes, over the store's bound of {max} (`max_item_bytes`)",
            item.kind
        )));
    }
    Ok(())
}

// Defined beside the trait it pages through, so that the figures (`summary`) need nothing of a
// store.
impl Summary {
    /// Gathers a summary by paging through `store`'s items: what [`Store::summary`] does unless a
    /// store answers it itself.
    pub fn collect<S: Store + ?Sized>(store: &S, filter: &Filter) -> Result<Self, StoreError> {
        let mut gather = Gather::default();
        let mut query = Query {
            notifications: false,
            ..Query::new(filter.clone(), PAGE)
        };
        loop {
            let page = store.items(&query)?;
            let Some(last) = page.last() else { break };
            query.after = Some(last.id);
            page.iter().for_each(|item| gather.add(item));
        }
        gather.finish(|kind, trip| sample(store, kind, trip))
    }
}

/// A trip's oldest live items: held first, else approved.
pub(crate) fn sample<S: Store + ?Sized>(store: &S, kind: &str, trip: u64) -> Result<Vec<Item>, StoreError> {
    let mut sample = Vec::new();
    for state in [ItemState::Held, ItemState::Approved] {
        let query = Query::new(Filter::kind(kind).trip(trip), SAMPLE - sample.len()).in_state(state);
        sample.extend(store.items(&query)?);
        if sample.len() == SAMPLE {
            break;
        }
    }
    Ok(sample)
}

/// A random name (for a store, a releaser): 64 bits from the standard library's randomly keyed
/// hasher, mixed with the time and the process id.
pub(crate) fn new_store_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(unix_ms());
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}
