//! One kind's breaker: the lock-free send path ([`gate`]), and the cold work (roll-over,
//! learning, transitions, operator controls) done under the kind's own lock ([`machine`]).
//!
//! The send path is a clock read, a check that the current bucket still holds that time, one
//! `fetch_add` on the bucket's count and a compare against the `headroom` that cold work left:
//! how many more sends the bucket may take before the window reaches the threshold. Everything
//! else happens only when a send finds its bucket over or the headroom spent; an open kind has
//! no headroom, so its sends take the (still lock-free) refusal path.

mod atomics;
mod controls;
pub(crate) mod decision;
mod detour;
mod family;
mod gate;
mod handle;
mod machine;
mod newcomers;
mod packed;
mod sliced;
mod stop;

use std::sync::{Arc, OnceLock};

use crate::clock::Clock;
use crate::config::KindSettings;
use crate::detect::Learned;
use crate::observe::Subscribers;
use crate::observe::metrics::KindMetrics;
use atomics::Mutex;
use gate::{Counters, Limits, Line};
use machine::Cold;

pub use decision::Decision;
pub(crate) use detour::{Detour, Resolve};
pub(crate) use family::Families;
pub use handle::KindHandle;
pub(crate) use machine::Standing;
pub(crate) use newcomers::Newcomers;
pub(crate) use packed::Packed;
pub(crate) use sliced::Sliced;
pub(crate) use stop::{Held, Stops};

/// What every kind of one breaker shares.
#[derive(Debug)]
pub(crate) struct Shared<C> {
    pub(crate) clock: C,
    pub(crate) subscribers: Subscribers,
    /// The breaker's name: the `breaker` label of every series it exports.
    pub(crate) name: Arc<str>,
    /// The new kinds that arrived lately, by stem of name.
    pub(crate) newcomers: Newcomers,
    /// The families of kinds, by `prefix.*` key.
    pub(crate) families: Families,
}

/// One kind's breaker.
#[derive(Debug)]
pub(crate) struct Kind<C> {
    limits: Line<Limits<C>>,
    counters: Line<Counters<C>>,
    /// With the kind's metrics handles, exported by cold work only, never by the send path.
    cold: Mutex<Cold>,
}

impl<C: Clock> Kind<C> {
    pub(crate) fn new(
        name: Arc<str>,
        settings: Arc<KindSettings>,
        learned: Learned,
        shared: Arc<Shared<C>>,
    ) -> Self {
        let now = shared.clock.now_ms();
        let kind = Self {
            limits: Line(Limits::new(shared.clock.clone())),
            cold: Mutex::new(Cold::new(
                settings,
                learned,
                now,
                KindMetrics::register(&shared.name, &name),
            )),
            counters: Line(Counters {
                count: Default::default(),
                blocked: Default::default(),
                name,
                shared,
                slices: OnceLock::new(),
            }),
        };
        kind.start();
        kind
    }

    /// A kind that is never started: its bucket takes no time at all, so every send through it
    /// leaves the lock-free path at once, for the handle's [`Detour`] to decide. It counts
    /// nothing, exports nothing and is never registered; nothing but that first step of the send
    /// path may run on it.
    pub(crate) fn parked(settings: Arc<KindSettings>, shared: Arc<Shared<C>>) -> Self {
        Self {
            limits: Line(Limits::new(shared.clock.clone())),
            counters: Line(Counters {
                count: Default::default(),
                blocked: Default::default(),
                name: Arc::from(""),
                shared,
                slices: OnceLock::new(),
            }),
            cold: Mutex::new(Cold::new(settings, Learned::default(), 0, KindMetrics::none())),
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.counters.0.name
    }

    /// What the kind shares with every kind of its breaker.
    fn shared(&self) -> &Shared<C> {
        &self.counters.0.shared
    }
}

#[cfg(all(test, spikebreaker_loom))]
mod loom_models;

#[cfg(all(test, not(spikebreaker_loom), target_pointer_width = "64"))]
mod footprint {
    /// A kind is 13 cache lines: the send path's two and the cold side's eleven. The footprint
    /// example measures what the registry adds (987 bytes a kind at 100,000 kinds, of a budget of
    /// 1,024); a field that pushes the cold side onto a twelfth line costs 64 bytes a kind.
    #[test]
    fn a_kind_is_thirteen_cache_lines() {
        use crate::clock::SystemClock;
        let sizes = (
            std::mem::size_of::<super::Kind<SystemClock>>(),
            std::mem::size_of::<super::Cold>(),
            std::mem::size_of::<crate::detect::Detector>(),
            std::mem::size_of::<crate::detect::Learned>(),
        );
        println!("kind, cold side, detector, learned: {sizes:?}");
        assert!(sizes.0 <= 13 * 64, "{sizes:?}");
    }
}
