//! The metrics as a Prometheus server scrapes them: a kind trips on the manual clock and the
//! rendered exposition shows it, with counters that add up; two breakers keep series of their
//! own; a recorder installed after the breaker gets its series.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use spikebreaker::status::metrics::{
    ALLOWED, ATTEMPTED, BLOCKED, EXPECTED_SENDS, KINDS, LEARNING, OVERFLOWED, STATE, THRESHOLD_SENDS, TRIPS,
    WINDOW_SENDS,
};
use spikebreaker::{Breaker, Config, Decision, ManualClock};

/// Runs `f` with a fresh Prometheus recorder as the thread's recorder, so that the breaker and
/// kinds it creates register their series there.
fn with_prometheus(f: impl FnOnce(&PrometheusHandle)) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || f(&handle));
}

/// The value of `name`, for `kind` (or breaker-wide when `None`), in the exposition text.
fn value(exposition: &str, name: &str, kind: Option<&str>) -> Option<f64> {
    let series = match kind {
        Some(kind) => format!("{name}{{breaker=\"default\",kind=\"{kind}\"}} "),
        None => format!("{name}{{breaker=\"default\"}} "),
    };
    find(exposition, &series)
}

/// The value of the per-window series `name` of `kind` on the minute timescale.
fn minute(exposition: &str, name: &str, kind: &str) -> Option<f64> {
    find(
        exposition,
        &format!("{name}{{breaker=\"default\",kind=\"{kind}\",timescale=\"minute\"}} "),
    )
}

fn find(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .map(|value| value.parse().expect("a number"))
}

#[test]
fn a_tripped_kind_shows_open_with_counts_that_add_up() {
    with_prometheus(|prometheus| {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        let runaway = breaker.kind("security.2fa_changed");
        let welcome = breaker.kind("email.welcome");
        let mut blocked = 0;
        for i in 0..1_500 {
            clock.advance(Duration::from_millis(10));
            if runaway.check() != Decision::Allowed {
                blocked += 1;
            }
            if i % 10 == 0 {
                assert!(welcome.check().is_allowed());
            }
        }
        assert_eq!(blocked, 1_000, "the warm-up ceiling lets 500 through");
        breaker.refresh();

        let text = prometheus.render();
        let runaway = |name| value(&text, name, Some("security.2fa_changed"));
        assert_eq!(runaway(STATE), Some(1.0), "{text}");
        assert_eq!(runaway(TRIPS), Some(1.0));
        assert_eq!(runaway(ATTEMPTED), Some(1_500.0));
        assert_eq!(runaway(BLOCKED), Some(1_000.0));
        assert_eq!(runaway(ALLOWED), Some(500.0));
        let runaway_window = |name| minute(&text, name, "security.2fa_changed");
        assert_eq!(runaway_window(THRESHOLD_SENDS), Some(500.0));
        assert_eq!(runaway_window(WINDOW_SENDS), Some(1_500.0));
        assert_eq!(runaway_window(EXPECTED_SENDS), Some(0.0));
        let day = format!(
            "{THRESHOLD_SENDS}{{breaker=\"default\",kind=\"security.2fa_changed\",timescale=\"day\"}} inf"
        );
        assert!(text.contains(&day), "no day limit yet: {text}");
        // Open with nothing learned: what the alert SpikebreakerUnlearnedKindBlocked looks for.
        assert_eq!(runaway(LEARNING), Some(1.0));

        let welcome = |name| value(&text, name, Some("email.welcome"));
        assert_eq!(welcome(STATE), Some(0.0));
        assert_eq!(welcome(TRIPS), Some(0.0));
        assert_eq!(welcome(ATTEMPTED), Some(150.0));
        assert_eq!(welcome(ALLOWED), Some(150.0));
        assert_eq!(value(&text, KINDS, None), Some(2.0));
        assert_eq!(value(&text, OVERFLOWED, None), Some(0.0));
        assert!(text.contains(&format!("# HELP {STATE} ")), "described: {text}");
        assert!(text.contains(&format!("# TYPE {ATTEMPTED} counter")));
    });
}

#[test]
fn every_kind_counts_add_up_after_recovery() {
    with_prometheus(|prometheus| {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        let kind = breaker.kind("push.promo");
        for _ in 0..2_000 {
            clock.advance(Duration::from_millis(5));
            let _ = kind.check();
        }
        // Quiet through the cool-down (300 s) and the probe (60 s): the kind recovers without a send.
        clock.advance(Duration::from_secs(300));
        breaker.refresh();
        clock.advance(Duration::from_secs(61));
        breaker.refresh();

        let text = prometheus.render();
        let get = |name| value(&text, name, Some("push.promo")).unwrap();
        assert_eq!(get(STATE), 0.0, "{text}");
        assert_eq!(get(TRIPS), 1.0);
        assert_eq!(get(LEARNING), 1.0, "a minute of sends teaches nothing");
        assert_eq!(get(ATTEMPTED), get(ALLOWED) + get(BLOCKED));
        assert_eq!(get(ATTEMPTED), 2_000.0);
        assert_eq!(
            minute(&text, WINDOW_SENDS, "push.promo"),
            Some(0.0),
            "the spike has left the window"
        );
    });
}

#[test]
fn a_declared_kind_is_not_learning_from_its_first_send() {
    with_prometheus(|prometheus| {
        let config = Config::from_toml("[kinds.\"email.migration\"]\nexpected_per_minute = 1100\n").unwrap();
        let breaker = Breaker::with_clock(config, ManualClock::new()).unwrap();
        for _ in 0..1_000 {
            assert!(breaker.check("email.migration").is_allowed());
        }
        assert!(breaker.check("email.new").is_allowed());
        breaker.refresh();
        let text = prometheus.render();
        assert_eq!(
            value(&text, LEARNING, Some("email.migration")),
            Some(0.0),
            "{text}"
        );
        assert_eq!(value(&text, LEARNING, Some("email.new")), Some(1.0));
    });
}

#[test]
fn kinds_beyond_max_kinds_share_the_overflow_series() {
    with_prometheus(|prometheus| {
        let config = Config {
            max_kinds: 2,
            ..Config::default()
        };
        let breaker = Breaker::with_clock(config, ManualClock::new()).unwrap();
        for kind in [
            "email.welcome",
            "sms.login",
            "user-1",
            "user-2",
            "user-3",
            "user-3",
        ] {
            assert!(breaker.check(kind).is_allowed());
        }

        let text = prometheus.render();
        assert_eq!(value(&text, KINDS, None), Some(2.0), "{text}");
        // Overflowed names are counted on the send path's slow branch and exported by refresh,
        // so that a flood of them does not call the recorder on every send.
        breaker.refresh();
        let text = prometheus.render();
        assert_eq!(value(&text, OVERFLOWED, None), Some(4.0));
        assert_eq!(
            value(&text, ATTEMPTED, Some(Breaker::OVERFLOW_KIND)),
            Some(4.0),
            "{text}"
        );
        assert_eq!(value(&text, ATTEMPTED, Some("sms.login")), Some(1.0));
        assert!(!text.contains("user-"), "no series per overflowed name: {text}");
    });
}

#[test]
fn counters_from_many_threads_are_exact_but_for_sends_refused_during_an_export() {
    const THREADS: u64 = 4;
    with_prometheus(|prometheus| {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        let kind = breaker.kind("push.promo");
        let blocked: u64 = std::thread::scope(|scope| {
            let senders: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        (0..2_000)
                            .filter(|_| {
                                clock.advance(Duration::from_millis(1));
                                !kind.check().is_allowed()
                            })
                            .count() as u64
                    })
                })
                .collect();
            senders.into_iter().map(|sender| sender.join().unwrap()).sum()
        });
        breaker.refresh();

        let text = prometheus.render();
        let get = |name| value(&text, name, Some("push.promo")).unwrap() as u64;
        assert_eq!(get(ATTEMPTED), THREADS * 2_000);
        assert_eq!(get(BLOCKED), blocked);
        assert_eq!(get(TRIPS), 1);
        // A send another thread was refusing while a roll-over or trip exported shows as
        // allowed until allowed sends pass it: at most one per other thread.
        let allowed = THREADS * 2_000 - blocked;
        assert!((allowed..allowed + THREADS).contains(&get(ALLOWED)), "{text}");
    });
}

#[test]
fn sends_export_counters_at_each_bucket_edge_and_refresh_exports_the_gauges() {
    with_prometheus(|prometheus| {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        let kind = breaker.kind("email.receipt");
        for _ in 0..10 {
            assert!(kind.check().is_allowed());
        }
        let attempted = || value(&prometheus.render(), ATTEMPTED, Some("email.receipt"));
        assert_eq!(
            attempted(),
            Some(0.0),
            "inside a bucket the send path exports nothing"
        );
        // The next bucket (a twelfth of the 60 s window) starts: its first send rolls over and exports.
        clock.advance(Duration::from_secs(5));
        assert!(kind.check().is_allowed());
        assert_eq!(attempted(), Some(10.0));
        // The gauges are exported with news and on refresh, not at every roll-over.
        let window = || minute(&prometheus.render(), WINDOW_SENDS, "email.receipt");
        assert_eq!(window(), Some(0.0), "as exported when the kind was made");
        breaker.refresh();
        assert_eq!(window(), Some(11.0));
    });
}

/// How often the churn below refreshes (and so what the recorder built for it takes for idle:
/// ten of these), shrunk for the test: in a service, seconds to a minute.
#[cfg(feature = "prometheus")]
const REFRESH: Duration = Duration::from_millis(10);

/// Series sampled in the exposition (description lines left out).
#[cfg(feature = "prometheus")]
fn series(exposition: &str) -> usize {
    exposition
        .lines()
        .filter(|line| line.starts_with("spikebreaker_"))
        .count()
}

/// A bug's churn through `recorder`: `rounds` of a thousand user ids put into the kind, each sent
/// once and then forgotten (evicted), beside one steady kind; scraped after a refresh every
/// `every` rounds, each scrape's series and bytes returned.
#[cfg(feature = "prometheus")]
fn churn(
    recorder: &metrics_exporter_prometheus::PrometheusRecorder,
    rounds: u32,
    every: u32,
) -> Vec<(usize, usize)> {
    let prometheus = recorder.handle();
    metrics::with_local_recorder(recorder, || {
        let clock = ManualClock::new();
        let config = Config {
            max_kinds: 2_000,
            ..Config::default()
        };
        let breaker = Breaker::builder()
            .config(config)
            .clock(clock.clone())
            .name("churn")
            .build()
            .unwrap();
        let steady = breaker.kind("email.steady");
        let mut scrapes = Vec::new();
        for round in 0..rounds {
            for user in 0..1_000 {
                let _ = breaker.check(&format!("user.{round}.{user}"));
            }
            assert!(steady.check().is_allowed());
            clock.advance(Duration::from_secs(2 * 3600));
            assert_eq!(breaker.evict_idle(), 1_000);
            if round % every == every - 1 {
                // Scrapes (each after a refresh, as a service does) further apart than the
                // recorder's idle timeout, if it has one: the first sees the forgotten kinds'
                // series as they were left, the next finds them idle and drops them.
                breaker.refresh();
                let _ = prometheus.render();
                std::thread::sleep(15 * REFRESH);
                breaker.refresh();
                let text = prometheus.render();
                scrapes.push((series(&text), text.len()));
                let attempted = format!("{ATTEMPTED}{{breaker=\"churn\",kind=\"email.steady\"}} ");
                assert_eq!(find(&text, &attempted), Some(f64::from(round) + 1.0));
            }
        }
        assert_eq!(breaker.status().evicted, u64::from(rounds) * 1_000);
        scrapes
    })
}

/// Through the recorder `status::metrics::prometheus` builds, 100,000 evictions leave the steady
/// kind's 17 series (4 counters; state, open seconds, surge, learning; 3 per timescale) and the
/// breaker's 7 (kinds, overflowed, 5 problems), at 25,000 evictions as at 100,000, in under 5 KB. Through the
/// exporter's default builder (what the README installed before), every forgotten kind's 17
/// series stay: 5,000 evictions leave 85,024 series.
#[cfg(feature = "prometheus")]
#[test]
fn evicted_kinds_leave_no_series_behind() {
    let recorder = spikebreaker::status::metrics::prometheus(REFRESH).build_recorder();
    let scrapes = churn(&recorder, 100, 25);
    assert!(
        scrapes.iter().all(|&(count, bytes)| count == 24 && bytes < 5_120),
        "{scrapes:?}"
    );
    let before = churn(&PrometheusBuilder::new().build_recorder(), 5, 5);
    assert_eq!(before.len(), 1);
    let (count, bytes) = before[0];
    assert_eq!(count, 5_000 * 17 + 24, "{bytes} bytes");
    eprintln!("5,000 evictions: {count} series, {bytes} bytes without the idle timeout; {scrapes:?} with it");
}

#[cfg(not(feature = "prometheus"))]
#[test]
#[ignore = "needs --features prometheus"]
fn evicted_kinds_leave_no_series_behind() {}

#[test]
fn two_breakers_in_one_process_keep_series_of_their_own() {
    with_prometheus(|prometheus| {
        let clock = ManualClock::new();
        let named = |name: &str| {
            Breaker::builder()
                .clock(clock.clone())
                .name(name)
                .build()
                .unwrap()
        };
        let (a, b) = (named("a"), named("b"));
        for _ in 0..10 {
            assert!(a.check("email.welcome").is_allowed());
        }
        assert!(b.check("email.welcome").is_allowed());
        a.refresh();
        b.refresh();
        let text = prometheus.render();
        let attempted = |breaker: &str| {
            find(
                &text,
                &format!("{ATTEMPTED}{{breaker=\"{breaker}\",kind=\"email.welcome\"}} "),
            )
        };
        assert_eq!(
            (attempted("a"), attempted("b")),
            (Some(10.0), Some(1.0)),
            "{text}"
        );
        assert_eq!(find(&text, &format!("{KINDS}{{breaker=\"b\"}} ")), Some(1.0));
    });
}

#[test]
fn a_recorder_installed_after_the_breaker_gets_every_series_at_the_next_refresh() {
    // No recorder yet: the breaker and its kind register their handles with the no-op one.
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let kind = breaker.kind("email.receipt");
    for _ in 0..10 {
        assert!(kind.check().is_allowed());
    }
    with_prometheus(|prometheus| {
        clock.advance(Duration::from_secs(5));
        assert!(
            kind.check().is_allowed(),
            "a roll-over: exports to the handles it has"
        );
        assert!(!prometheus.render().contains("email.receipt"));
        breaker.refresh();
        let text = prometheus.render();
        assert_eq!(
            value(&text, ATTEMPTED, Some("email.receipt")),
            Some(11.0),
            "{text}"
        );
        assert_eq!(value(&text, STATE, Some("email.receipt")), Some(0.0), "{text}");
        assert_eq!(value(&text, KINDS, None), Some(1.0), "{text}");
        // From then on, roll-overs export to it.
        clock.advance(Duration::from_secs(5));
        assert!(kind.check().is_allowed());
        clock.advance(Duration::from_secs(5));
        assert!(kind.check().is_allowed());
        assert_eq!(
            value(&prometheus.render(), ATTEMPTED, Some("email.receipt")),
            Some(12.0),
            "a roll-over exports what was rolled: the send of each edge counts after"
        );
    });
}
