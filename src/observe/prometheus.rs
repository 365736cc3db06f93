//! The Prometheus exporter set up for a breaker (feature `prometheus`): see [`prometheus`].

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::MetricKindMask;

/// How many refresh intervals a series may go without an update before the exporter drops it.
const REFRESHES_BEFORE_IDLE: u32 = 10;

/// The builder of the Prometheus recorder (`metrics-exporter-prometheus`), set up for a breaker:
/// finish it as the exporter's own builder (`.install_recorder()`, `.with_http_listener(..)`,
/// `.install()`), before the breaker is made.
///
/// It drops a series nobody has updated for ten refresh intervals. The `metrics` facade cannot
/// unregister a series, so without this every kind the breaker forgets (evicted for being idle)
/// leaves its 16 series in the exporter for the life of the process: a bug that keeps putting
/// new user ids into the kind name grew one to 917 MB after 77,824 evicted kinds. The breaker
/// updates every series of every kind it still has at each [`Breaker::refresh`], so call that
/// at least every `refresh_every` (before each scrape, or on a timer): then only the forgotten
/// kinds' series go idle.
///
/// ```
/// use std::time::Duration;
/// use spikebreaker::Breaker;
/// use spikebreaker::status::metrics;
///
/// // Scraped (and refreshed first) every 15 seconds: a forgotten kind's series go after 150.
/// let recorder = metrics::prometheus(Duration::from_secs(15)).build_recorder();
/// let handle = recorder.handle();
/// ::metrics::with_local_recorder(&recorder, || -> Result<(), spikebreaker::Error> {
///     let breaker = Breaker::new(Default::default())?;
///     let _ = breaker.check("email.welcome");
///     breaker.refresh(); // before each scrape
///     Ok(())
/// })?;
/// assert!(handle.render().contains("spikebreaker_attempted_total"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Breaker::refresh`]: crate::Breaker::refresh
pub fn prometheus(refresh_every: Duration) -> PrometheusBuilder {
    let idle = refresh_every.saturating_mul(REFRESHES_BEFORE_IDLE);
    PrometheusBuilder::new().idle_timeout(MetricKindMask::ALL, Some(idle))
}
