//! The stories of slices below the kind, through the backtest engine with the default
//! configuration: each kind learns two days of its ordinary traffic, every send naming its
//! slices, then a runaway inside one slice begins.

use spikebreaker::Config;
use spikebreaker::backtest::{Backtest, BacktestReport};
use spikebreaker::guard::Slices;
use spikebreaker::status::{Event, Reason};

use crate::support::{
    DAY_MS, HOUR_MS, MINUTE_MS, MONDAY_MS, Profile, Rng, Traffic, WEEK_MS, merge, poisson_sends,
};
use crate::traffic::{Drawer, Values};

/// A send of the ordinary traffic, or of the runaway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Ordinary,
    /// An ordinary send of the slice the runaway sends as: refused with it while it is open.
    CaughtUp,
    Runaway,
}

/// A replay that tells the runaway's sends from the ordinary ones.
struct Replay {
    backtest: Backtest,
    runaway_sent: u64,
    runaway_allowed: u64,
    ordinary_sent: u64,
    ordinary_blocked: u64,
    /// Ordinary sends of the runaway's slice, and how many of them were refused with it.
    caught_up: (u64, u64),
}

impl Replay {
    /// A replay whose `kind` has learned a week at `per_minute` already (a kind that sends 500 a
    /// minute from a cold start would trip its warm-up ceiling: these stories are of its slices).
    fn learned(kind: &str, per_minute: f64) -> Self {
        let replay = Self::new();
        let week = crate::snapshots::a_learned_week(kind, per_minute, [0.0, 0.0]);
        replay.backtest.breaker().restore(&week).unwrap();
        replay
    }

    fn new() -> Self {
        Self {
            backtest: Backtest::new(Config::default()).unwrap(),
            runaway_sent: 0,
            runaway_allowed: 0,
            ordinary_sent: 0,
            ordinary_blocked: 0,
            caught_up: (0, 0),
        }
    }

    fn send(&mut self, t_ms: u64, kind: &str, slices: &Slices<'_>, source: Source) {
        let allowed = self.backtest.check_sliced(t_ms, kind, slices).is_allowed();
        match source {
            Source::Ordinary => {
                self.ordinary_sent += 1;
                self.ordinary_blocked += u64::from(!allowed);
            }
            Source::CaughtUp => {
                self.caught_up.0 += 1;
                self.caught_up.1 += u64::from(!allowed);
            }
            Source::Runaway => {
                self.runaway_sent += 1;
                self.runaway_allowed += u64::from(allowed);
            }
        }
    }

    fn report(&self) -> BacktestReport {
        self.backtest.report()
    }

    /// Every slice event of `kind`.
    fn slice_events(&self, kind: &str) -> Vec<Event> {
        self.report()
            .kinds
            .get(kind)
            .map(|k| k.slice_transitions.clone())
            .unwrap_or_default()
    }

    /// The first slice trip of `kind` at or after `from_ms`.
    fn slice_trip(&self, kind: &str, from_ms: u64) -> Option<Event> {
        self.slice_events(kind)
            .into_iter()
            .find(|e| e.is_trip() && e.at_ms >= from_ms)
    }
}

/// Two days of `kind` at `profile`, every send naming one value of `dimension` drawn from
/// `values`, then `job` (sends of one value) merged in from `start_ms` to `end_ms`.
fn learn_then_run(
    profile: Profile,
    dimension: &str,
    values: Values,
    start_ms: u64,
    end_ms: u64,
    job: impl Iterator<Item = u64>,
    job_value: &str,
) -> Replay {
    let kind = profile.kind;
    let mut drawer = Drawer::new(values);
    let mut rng = Rng::new(7);
    let mut replay = Replay::learned(kind, profile.peak_per_minute);
    let ordinary = Traffic::new(vec![profile], 3, MONDAY_MS, end_ms).map(|(t, _)| (t, Source::Ordinary));
    let job = job.map(|t| (t, Source::Runaway));
    for (t, source) in merge(ordinary, job) {
        let (value, source) = match source {
            Source::Runaway => (job_value.to_owned(), source),
            _ => {
                let value = drawer.name(&mut rng, t).to_owned();
                let caught_up = value == job_value && t >= start_ms;
                (value, if caught_up { Source::CaughtUp } else { source })
            }
        };
        replay.send(t, kind, &Slices::new().with(dimension, &value), source);
        if t < start_ms {
            assert_eq!(
                replay.ordinary_blocked, 0,
                "the learning days blocked a send at {t}"
            );
        }
    }
    assert!(
        replay.slice_events(kind).iter().all(|e| e.at_ms >= start_ms),
        "the learning days tripped a slice: {:?}",
        replay.slice_events(kind)
    );
    replay
}

/// Two days after the first Monday, plus `hours`.
fn day_three(hours: u64) -> u64 {
    MONDAY_MS + 2 * DAY_MS + hours * HOUR_MS
}

/// SMS pumping: `sms.login_code` sends 500 a minute to 40 destination prefixes; fraudsters pump
/// one that carries 3 a minute (0.6%) to 200 a minute for half an hour. Stopped within 300
/// pumped sends; no other prefix blocked.
#[test]
fn pumping_one_prefix_is_stopped_within_300_sends_and_no_other_prefix_is_blocked() {
    const KIND: &str = "sms.login_code";
    let prefixes = Values::zipf("+44", 40, 1.0);
    let pumped = prefixes.names[prefixes.nearest(0.006)].clone();
    let share = prefixes.share(prefixes.nearest(0.006));
    let profile = Profile {
        burst_cv: 0.1,
        ..Profile::steady(KIND, 500.0)
    };
    let start = day_three(3);
    let end = start + 30 * MINUTE_MS;
    let pump = poisson_sends(|_| 200.0, 11, start, end);
    let replay = learn_then_run(profile, "prefix", prefixes, start, end, pump, &pumped);
    let trip = replay.slice_trip(KIND, start).expect("the pumped prefix tripped");
    println!(
        "pumping prefix {pumped} ({:.1}% of 500/min) at 200/min: {} of {} pumped sends let through, {} of {} sends to other prefixes blocked ({} of the prefix's own {} with it); {trip}",
        share * 100.0,
        replay.runaway_allowed,
        replay.runaway_sent,
        replay.ordinary_blocked,
        replay.ordinary_sent,
        replay.caught_up.1,
        replay.caught_up.0,
    );
    assert!(
        replay.runaway_allowed <= 300,
        "{} let through",
        replay.runaway_allowed
    );
    assert!(replay.runaway_sent > 5_000);
    assert_eq!(replay.ordinary_blocked, 0, "no other prefix is blocked");
    assert_eq!(trip.reason, Reason::Slice);
    assert_eq!(
        trip.slice.as_ref().map(|s| s.to_string()),
        Some(format!("prefix={pumped}"))
    );
    assert!(trip.to_string().contains("expected share"), "{trip}");
    let report = replay.report();
    let kind = &report.kinds[KIND];
    assert_eq!(kind.trips, 0, "the kind itself never tripped");
    assert_eq!(kind.slice_blocked, kind.blocked);
    assert_eq!(
        kind.blocked,
        replay.runaway_sent - replay.runaway_allowed + replay.caught_up.1
    );
}

/// Traffic to a country never sent to before: `sms.login_code` sends 500 a minute to 20
/// countries, then 50 a minute go to a 21st. Stopped within 100 of its sends.
#[test]
fn a_first_ever_country_at_50_a_minute_is_stopped_within_100_sends() {
    const KIND: &str = "sms.login_code";
    let countries = Values::zipf("C", 20, 1.0);
    let profile = Profile {
        burst_cv: 0.1,
        ..Profile::steady(KIND, 500.0)
    };
    let start = day_three(14);
    let end = start + 30 * MINUTE_MS;
    let new = poisson_sends(|_| 50.0, 12, start, end);
    let replay = learn_then_run(profile, "country", countries, start, end, new, "XX");
    let trip = replay.slice_trip(KIND, start).expect("the new country tripped");
    println!(
        "first-ever country at 50/min: {} of {} let through, {} of {} sends to other countries blocked; {trip}",
        replay.runaway_allowed, replay.runaway_sent, replay.ordinary_blocked, replay.ordinary_sent
    );
    assert!(
        replay.runaway_allowed <= 100,
        "{} let through",
        replay.runaway_allowed
    );
    assert_eq!(replay.ordinary_blocked, 0);
}

/// One tenant's runaway in a multi-tenant sender: 1,000 tenants send 1,000 a minute between
/// them; one that carries 0.1% goes to 40% of the kind (667 a minute). Stopped within 500 of its
/// sends; no other tenant blocked.
#[test]
fn one_tenant_going_from_a_tenth_of_a_percent_to_40_percent_is_stopped_within_500_sends() {
    const KIND: &str = "email.invoice";
    let tenants = Values::zipf("tenant-", 1_000, 1.0);
    let runaway = tenants.nearest(0.001);
    let (name, share) = (tenants.names[runaway].clone(), tenants.share(runaway));
    let profile = Profile {
        burst_cv: 0.1,
        ..Profile::steady(KIND, 1_000.0)
    };
    let start = day_three(10);
    let end = start + 30 * MINUTE_MS;
    let job = poisson_sends(|_| 667.0, 13, start, end);
    let replay = learn_then_run(profile, "tenant", tenants, start, end, job, &name);
    let trip = replay.slice_trip(KIND, start).expect("the tenant tripped");
    println!(
        "tenant {name} from {:.2}% to 40% of 1,000/min: {} of {} let through, {} of {} other tenants' sends blocked ({} of its own ordinary {} with it); {trip}",
        share * 100.0,
        replay.runaway_allowed,
        replay.runaway_sent,
        replay.ordinary_blocked,
        replay.ordinary_sent,
        replay.caught_up.1,
        replay.caught_up.0,
    );
    assert!(
        replay.runaway_allowed <= 500,
        "{} let through",
        replay.runaway_allowed
    );
    assert_eq!(replay.ordinary_blocked, 0, "no other tenant is blocked");
}

/// A cron bug sends the same notice to each of 3 users 148 times, every 30 seconds, among a kind's
/// ordinary traffic to other users: at most `repeats.max` (10) through to each.
#[test]
fn a_notice_sent_148_times_to_each_of_3_users_gets_at_most_10_through_to_each() {
    const KIND: &str = "email.billing_notice";
    let mut replay = Replay::new();
    let start = day_three(9);
    let ordinary = Traffic::new(
        vec![Profile::steady(KIND, 50.0)],
        5,
        MONDAY_MS,
        start + 2 * HOUR_MS,
    )
    .enumerate()
    .map(|(i, (t, _))| (t, (Source::Ordinary, i)));
    let bug = (0..148u64)
        .flat_map(|round| (0..3).map(move |user| (start + round * 30_000, (Source::Runaway, user))));
    let mut through = [0u64; 3];
    for (t, (source, i)) in merge(ordinary, bug) {
        let recipient = match source {
            Source::Ordinary | Source::CaughtUp => format!("user{i}@example.com"),
            Source::Runaway => format!("victim{i}@example.com"),
        };
        let content = match source {
            Source::Ordinary | Source::CaughtUp => format!("receipt {i}"),
            Source::Runaway => "your invoice is overdue".to_owned(),
        };
        let slices = Slices::new().recipient(&recipient).content_of(&content);
        let before = replay.runaway_allowed;
        replay.send(t, KIND, &slices, source);
        if source == Source::Runaway {
            through[i] += replay.runaway_allowed - before;
        }
    }
    let events = replay.slice_events(KIND);
    let repeat = events
        .iter()
        .find(|e| e.reason == Reason::Repeat)
        .expect("reported");
    println!(
        "148 identical notices to each of 3 users: {through:?} through, {} of {} other sends blocked; {repeat}",
        replay.ordinary_blocked, replay.ordinary_sent
    );
    assert_eq!(through, [10, 10, 10]);
    assert_eq!(replay.ordinary_blocked, 0);
    assert_eq!(replay.runaway_sent, 444);
}

/// Four weeks of rich traffic on two kinds: daily cycles (4x), weekends, 30% growth, bursts;
/// 200 destination prefixes and 5,000 tenants whose shares drift with the hour of the day; every
/// send naming its prefix and tenant, to one of a million recipients. Not one slice trips and no
/// send is blocked.
#[test]
fn four_weeks_of_rich_traffic_trip_no_slice() {
    let mut rng = Rng::new(21);
    let mut prefixes = Drawer::new(Values::zipf("+", 200, 1.0).swinging(0.4, &mut rng));
    let mut tenants = Drawer::new(Values::zipf("tenant-", 5_000, 1.1).swinging(0.3, &mut rng));
    let profiles = vec![
        Profile {
            growth: 1.3,
            growth_days: 28.0,
            weekend: 0.6,
            ..Profile::daily("sms.login_code", 120.0, 4.0)
        },
        Profile {
            growth: 1.3,
            growth_days: 28.0,
            ..Profile::daily("email.receipt", 60.0, 4.0)
        },
    ];
    let kinds: Vec<&str> = profiles.iter().map(|p| p.kind).collect();
    let mut replay = Replay::new();
    let end = MONDAY_MS + 4 * WEEK_MS;
    for (t, kind) in Traffic::new(profiles, 17, MONDAY_MS, end) {
        let prefix = prefixes.name(&mut rng, t).to_owned();
        let tenant = tenants.name(&mut rng, t).to_owned();
        let recipient = format!("+{}", rng.below(1_000_000));
        let slices = Slices::new()
            .with("prefix", &prefix)
            .with("tenant", &tenant)
            .recipient(&recipient);
        replay.send(t, kinds[kind], &slices, Source::Ordinary);
    }
    let trips: Vec<String> = kinds
        .iter()
        .flat_map(|kind| replay.slice_events(kind))
        .map(|e| e.to_string())
        .collect();
    println!(
        "four weeks of rich traffic: {} sends, 200 prefixes, 5,000 tenants: {} slice trips, {} sends blocked",
        replay.ordinary_sent,
        trips.len(),
        replay.ordinary_blocked
    );
    assert!(trips.is_empty(), "slices tripped: {trips:#?}");
    assert_eq!(replay.ordinary_blocked, 0);
    assert!(replay.ordinary_sent > 4_000_000, "{}", replay.ordinary_sent);
}
