//! Where time comes from: the [`Clock`] trait, the cheap monotonic [`SystemClock`] used in
//! production, and the [`ManualClock`] used by tests, simulations and the backtest tool.
//!
//! Nothing else in the crate reads the system clock (the wall clock, for records that outlive
//! the process, is read here too).

use std::fmt;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of milliseconds since the Unix epoch (UTC).
///
/// The epoch matters because each kind learns its week hour by hour: a clock with another origin
/// still works (the week is learned relative to it) but a snapshot carried to a clock with a
/// different origin would be out of step. [`ManualClock`] stands wherever it is set (zero is
/// Thursday 1970-01-01 00:00 UTC).
///
/// The breaker reads it on every send, so it must be cheap. A reading that goes backwards is
/// tolerated (the send counts in the newest bucket the kind has seen) but never needed by the
/// clocks this crate ships, except [`ManualClock::set`] used to simulate a faulty clock.
///
/// Every kind keeps a clone of the breaker's clock beside the limits its sends read, so clones
/// must read the same time (as a shared counter's do).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use spikebreaker::{Breaker, Clock, Config};
///
/// /// Time from the service's own event loop, which stamps each batch it handles.
/// #[derive(Clone, Debug, Default)]
/// struct LoopClock(Arc<AtomicU64>);
///
/// impl Clock for LoopClock {
///     fn now_ms(&self) -> u64 {
///         self.0.load(Ordering::Relaxed)
///     }
/// }
///
/// let clock = LoopClock::default();
/// let breaker = Breaker::with_clock(Config::default(), clock.clone())?;
/// clock.0.store(1_000, Ordering::Relaxed);
/// assert!(breaker.check("email.welcome").is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Clock: Clone + Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The production clock: a process-wide millisecond counter that one background thread advances
/// from the operating system's monotonic clock, so that a read is a single relaxed atomic load
/// (the OS clock itself costs ten times a send's whole budget). It starts at the wall-clock time
/// (milliseconds since the Unix epoch) and then follows the monotonic clock, so a wall clock set
/// back or forward while the process runs does not move it.
///
/// The counter only moves forward (`fetch_max`), so readings are monotonic even if the source
/// misbehaves. Its resolution is about a millisecond; if the ticking thread is descheduled the
/// reading lags by as long, which only moves a send into the previous millisecond's bucket.
///
/// ```
/// use spikebreaker::{Clock, SystemClock};
/// let clock = SystemClock::new();
/// let a = clock.now_ms();
/// assert!(clock.now_ms() >= a);
/// ```
#[derive(Clone, Copy)]
pub struct SystemClock {
    /// Only [`SystemClock::new`] makes one, so a reading implies the ticking thread runs.
    _ticking: (),
}

/// How often the ticking thread advances [`SystemClock`].
const TICK: Duration = Duration::from_millis(1);

/// The counter every [`SystemClock`] reads, at a fixed address (a read is one load, no pointer
/// to follow) and alone on its cache line: every send on every core reads it, so nothing written
/// often may share the line, or each write would cost every send a cache miss.
#[repr(align(64))]
struct Ticks(AtomicU64);

static TICKS: Ticks = Ticks(AtomicU64::new(0));

impl SystemClock {
    /// The process-wide clock, starting its ticking thread on first use.
    pub fn new() -> Self {
        static TICKING: Once = Once::new();
        TICKING.call_once(|| {
            let origin = Instant::now();
            let wall_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
            tick(&TICKS.0, wall_ms);
            std::thread::Builder::new()
                .name("spikebreaker-clock".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(TICK);
                        let elapsed = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
                        tick(&TICKS.0, wall_ms.saturating_add(elapsed));
                    }
                })
                .expect("spawning the spikebreaker clock thread");
        });
        Self { _ticking: () }
    }
}

/// Moves the counter to `ms` unless it is already past it: a source that steps back (a clock
/// read on another core, a misbehaving timer) never moves the readings back.
fn tick(ticks: &AtomicU64, ms: u64) {
    ticks.fetch_max(ms, Ordering::Relaxed);
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemClock")
            .field("now_ms", &self.now_ms())
            .finish()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        TICKS.0.load(Ordering::Relaxed)
    }
}

/// A clock that moves only when told to. Clones share the same time, so a test keeps one clone
/// and hands another to the breaker.
///
/// ```
/// use spikebreaker::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// let breaker_side = clock.clone();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(breaker_side.now_ms(), 90_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock standing at `ms` milliseconds.
    pub fn starting_at(ms: u64) -> Self {
        let clock = Self::new();
        clock.set(ms);
        clock
    }

    /// Moves the clock forward by `by` (saturating).
    #[inline]
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self.ms.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ms| {
            Some(ms.saturating_add(by))
        });
    }

    /// Sets the clock to `ms`, backwards too: that is how tests simulate a faulty clock.
    #[inline]
    pub fn set(&self, ms: u64) {
        self.ms.store(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::Relaxed)
    }
}

/// Wall-clock milliseconds since the Unix epoch: the time stamped on what outlives the process
/// (a quarantined notification, a release lease shared with other processes). Never read on the
/// send path, and never used to decide a send: the breaker's windows run on a [`Clock`].
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_advances_and_never_goes_back() {
        let clock = SystemClock::new();
        let start = clock.now_ms();
        let mut last = start;
        // Spin on the clock itself rather than sleeping: it must move on its own. The OS clock
        // bounds the wait, so a dead ticking thread fails the test instead of hanging it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while last < start + 3 {
            let now = clock.now_ms();
            assert!(now >= last, "went back from {last} to {now}");
            assert!(
                Instant::now() < deadline,
                "the clock stood still at {now} for 30 s"
            );
            last = now;
            std::hint::spin_loop();
        }
    }

    #[test]
    fn system_clock_reads_milliseconds_since_the_unix_epoch() {
        let now = SystemClock::new().now_ms();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        // Within a minute: the counter follows the monotonic clock from its first reading.
        assert!(now.abs_diff(wall) < 60_000, "{now} vs the wall clock's {wall}");
    }

    #[test]
    fn a_source_stepping_back_never_moves_the_clock_back() {
        let ticks = AtomicU64::new(0);
        for (source_ms, reading) in [(5, 5), (3, 5), (5, 5), (9, 9), (0, 9), (10, 10)] {
            tick(&ticks, source_ms);
            assert_eq!(
                ticks.load(Ordering::Relaxed),
                reading,
                "after a source reading of {source_ms}"
            );
        }
    }

    #[test]
    fn system_clock_readings_never_go_back_across_threads() {
        // One counter for the process: a reading on another thread that happens after a reading
        // here is never older, as it could be with a per-core source.
        let clock = SystemClock::new();
        for _ in 0..100 {
            let before = clock.now_ms();
            let there = std::thread::spawn(move || clock.now_ms()).join().unwrap();
            let after = clock.now_ms();
            assert!(before <= there && there <= after, "{before} {there} {after}");
        }
    }

    #[test]
    fn manual_clock_advances_saturating_and_can_be_set_back() {
        let clock = ManualClock::starting_at(u64::MAX - 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now_ms(), u64::MAX);
        clock.set(5);
        assert_eq!(clock.now_ms(), 5);
    }
}
