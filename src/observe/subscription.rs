//! The breaker's event subscribers, and the [`Subscription`] that keeps one subscribed: dropped,
//! it unsubscribes. With the `tokio` feature, [`Events`] receives them on a channel.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use super::event::{Event, trace};

type Subscriber = Arc<dyn Fn(&Event) + Send + Sync>;
/// Every subscriber with its number, replaced whole when one comes or goes, so that an event
/// clones one `Arc` to read them.
type List = RwLock<Arc<[(u64, Subscriber)]>>;

/// The breaker's subscribers.
pub(crate) struct Subscribers {
    list: Arc<List>,
    next: AtomicU64,
}

impl Default for Subscribers {
    fn default() -> Self {
        Self {
            list: Arc::new(RwLock::new(Arc::from(Vec::new()))),
            next: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribers")
            .field("count", &self.list.read().len())
            .finish()
    }
}

impl Subscribers {
    pub(crate) fn add(&self, subscriber: Subscriber) -> Subscription {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut list = self.list.write();
        let mut grown = list.to_vec();
        grown.push((id, subscriber));
        *list = Arc::from(grown);
        Subscription {
            list: Arc::downgrade(&self.list),
            id,
        }
    }

    /// Hands each event to `tracing` and to every subscriber. A subscriber that panics is
    /// reported and skipped: it cannot take the breaker, or the send, down with it.
    pub(crate) fn emit(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let list = Arc::clone(&self.list.read());
        for event in events {
            trace(event);
            for (_, subscriber) in list.iter() {
                if catch_unwind(AssertUnwindSafe(|| subscriber(event))).is_err() {
                    tracing::error!(kind = %event.kind, "a spikebreaker event subscriber panicked");
                }
            }
        }
    }
}

/// A subscriber's place in the breaker's list ([`Breaker::subscribe`](crate::Breaker::subscribe)):
/// dropped, it unsubscribes; [`detach`](Self::detach) keeps the subscriber for as long as the
/// breaker lives.
#[must_use = "dropping a Subscription unsubscribes at once: keep it, or call `detach()`"]
pub struct Subscription {
    list: Weak<List>,
    id: u64,
}

impl Subscription {
    /// Keeps the subscriber subscribed for as long as the breaker lives.
    pub fn detach(mut self) {
        // Dropped without its list, it unsubscribes nothing (and holds no reference to it).
        self.list = Weak::new();
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("id", &self.id).finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(list) = self.list.upgrade() {
            let mut list = list.write();
            let kept: Vec<_> = list.iter().filter(|(id, _)| *id != self.id).cloned().collect();
            *list = Arc::from(kept);
        }
    }
}

/// A breaker's events on a tokio channel ([`Breaker::events`](crate::Breaker::events)): receive
/// them with [`recv`](Self::recv) in a task; dropped, it unsubscribes. The channel is bounded: a
/// subscriber never blocks the send that caused an event, so while the channel is full, further
/// events are dropped and counted ([`missed`](Self::missed)); they still go to `tracing`.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug)]
pub struct Events {
    receiver: tokio::sync::mpsc::Receiver<Event>,
    missed: Arc<AtomicU64>,
    _subscription: Subscription,
}

#[cfg(feature = "tokio")]
impl Events {
    pub(crate) fn new(subscribers: &Subscribers, capacity: usize) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&missed);
        let subscription = subscribers.add(Arc::new(move |event: &Event| {
            if sender.try_send(event.clone()).is_err() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }));
        Self {
            receiver,
            missed,
            _subscription: subscription,
        }
    }

    /// The next event, waiting for one; `None` once the breaker is gone: every clone of it, and
    /// every [`KindHandle`](crate::KindHandle) and guarded sender holding one of its kinds.
    pub async fn recv(&mut self) -> Option<Event> {
        self.receiver.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }

    /// Events dropped because the channel was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::detect::{Bound, Timescale};
    use crate::observe::Window;
    use crate::state::{Reason, State};

    fn event() -> Event {
        Event {
            kind: "a".into(),
            at_ms: 0,
            from: State::Closed,
            to: State::Open,
            reason: Reason::Spike,
            window: Window {
                timescale: Timescale::Minute,
                window_count: 51,
                threshold: 50,
                expected: 0.0,
                bound: Bound::Floor,
            },
            dry_run: false,
            slice: None,
            expected_share: None,
        }
    }

    #[test]
    fn a_dropped_subscription_unsubscribes_and_a_detached_one_stays() {
        let subscribers = Subscribers::default();
        let (kept, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counter = |count: &Arc<AtomicUsize>| {
            let count = Arc::clone(count);
            Arc::new(move |_: &Event| {
                count.fetch_add(1, Ordering::Relaxed);
            })
        };
        subscribers.add(counter(&kept)).detach();
        let subscription = subscribers.add(counter(&dropped));
        subscribers.emit(&[event()]);
        drop(subscription);
        subscribers.emit(&[event(), event()]);
        assert_eq!(
            (kept.load(Ordering::Relaxed), dropped.load(Ordering::Relaxed)),
            (3, 1)
        );
        assert_eq!(subscribers.list.read().len(), 1);
        // Neither the detached nor the dropped subscription keeps a reference to the list: a
        // breaker that detaches one per replay (the tuner) leaks nothing.
        assert_eq!(Arc::weak_count(&subscribers.list), 0);
    }
}
