//! Fleet mode against a real `redis-server`, one throwaway server per test on a unix socket.
//! The instances are breakers in one process; their local clocks stand still (the fleet's
//! windows run on Redis time), so every local count stays in one local window.

use std::time::{Duration, Instant};

use crate::redis_server::Server;
use spikebreaker::fleet::{Fleet, FleetConfig};
use spikebreaker::status::{Reason, State};
use spikebreaker::{Breaker, Config, Decision, KindHandle, ManualClock, SystemClock};

pub(crate) const KIND: &str = "security.2fa_changed";
const SYNC_MS: u64 = 50;
/// The warm-up ceiling: what one instance lets through before it trips on its own.
const SINGLE_INSTANCE_LEAK: u64 = 500;

pub(crate) fn fleet_config(server: &Server) -> FleetConfig {
    FleetConfig {
        sync_interval_ms: SYNC_MS,
        connect_timeout_ms: 500,
        response_timeout_ms: 500,
        max_backoff_ms: 200,
        ..FleetConfig::new(server.url())
    }
}

pub(crate) struct Instance {
    pub(crate) breaker: Breaker<ManualClock>,
    pub(crate) fleet: Fleet,
    pub(crate) kind: KindHandle<ManualClock>,
}

pub(crate) fn instances(server: &Server, configs: Vec<Config>) -> Vec<Instance> {
    let clock = ManualClock::new();
    configs
        .into_iter()
        .map(|config| {
            let breaker = Breaker::with_clock(config, clock.clone()).unwrap();
            let fleet = Fleet::start(breaker.clone(), fleet_config(server)).unwrap();
            let kind = breaker.kind(KIND);
            Instance { breaker, fleet, kind }
        })
        .collect()
}

/// Polls `done` until it holds, failing the test after a generous bound.
pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) async fn linked(all: &[Instance]) {
    wait_until("every instance syncs", || {
        all.iter().all(|i| {
            let status = i.fleet.status();
            !status.degraded && status.syncs > 0
        })
    })
    .await;
}

pub(crate) fn fleet_window(instance: &Instance) -> Option<(u64, u64)> {
    let status = instance.fleet.status();
    let kind = status.kinds.into_iter().find(|k| k.kind == KIND)?;
    Some((kind.window_count, kind.unsent))
}

pub(crate) fn send(instance: &Instance, n: u64) -> u64 {
    (0..n).filter(|_| instance.kind.check().is_allowed()).count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_each_seeing_a_quarter_trip_fleet_wide_within_one_sync() {
    let server = Server::start();
    let all = instances(&server, vec![Config::default(); 4]);
    linked(&all).await;

    // The runaway job, spread evenly: one send per instance per round, about a millisecond apart.
    let mut allowed = 0;
    let mut syncs_at_first_block: Option<Vec<u64>> = None;
    // Per instance, its completed syncs when it was first seen blocked.
    let mut syncs_when_blocked: Vec<Option<u64>> = vec![None; all.len()];
    let mut rounds = 0u64;
    for _ in 0..20_000 {
        rounds += 1;
        for instance in &all {
            allowed += send(instance, 1);
        }
        for (instance, seen) in all.iter().zip(&mut syncs_when_blocked) {
            if seen.is_none() && instance.kind.state() == State::Open {
                *seen = Some(instance.fleet.status().syncs);
            }
        }
        if syncs_at_first_block.is_none() && syncs_when_blocked.iter().any(Option::is_some) {
            syncs_at_first_block = Some(all.iter().map(|i| i.fleet.status().syncs).collect());
        }
        if syncs_when_blocked.iter().all(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let syncs_at_first_block = syncs_at_first_block.expect("the fleet never tripped");
    // Each instance blocked before finishing a second sync after the first block.
    for ((before, when), i) in syncs_at_first_block.iter().zip(&syncs_when_blocked).zip(0..) {
        let when = when.unwrap_or_else(|| panic!("instance {i} never blocked"));
        assert!(
            when <= before + 1,
            "instance {i} blocked after sync {when}, the first block came at {before}"
        );
    }
    // Alone, each instance would have let its full leak through: four times as much.
    assert!(
        allowed <= SINGLE_INSTANCE_LEAK * 3 / 2,
        "the fleet let {allowed} through"
    );
    assert!(
        allowed >= SINGLE_INSTANCE_LEAK,
        "tripped below the threshold: {allowed}"
    );
    for instance in &all {
        let status = instance.kind.status();
        assert_eq!(
            status.reason,
            Reason::Fleet,
            "no instance reached its own threshold"
        );
        assert_eq!(status.attempted, rounds, "every send counted where it was made");
        assert!(instance.kind.check() == Decision::Blocked(Reason::Fleet));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_on_one_instance_blocks_the_others() {
    let server = Server::start();
    // Only the first instance is strict about this kind, so only its own detection can trip.
    let strict = Config::from_toml(&format!(
        "[kinds.\"{KIND}\"]\nminute.floor = 10\nwarmup_ceiling = 50\n"
    ))
    .unwrap();
    let all = instances(
        &server,
        vec![strict, Config::default(), Config::default(), Config::default()],
    );
    linked(&all).await;

    assert_eq!(send(&all[0], 60), 50);
    assert_eq!(all[0].kind.status().reason, Reason::Warmup);
    wait_until("the others block", || {
        all[1..].iter().all(|i| i.kind.state() == State::Open)
    })
    .await;
    for instance in &all[1..] {
        assert_eq!(instance.kind.check(), Decision::Blocked(Reason::Fleet));
        assert_eq!(instance.kind.status().trips, 1);
    }
    // Other kinds keep flowing everywhere.
    assert!(all.iter().all(|i| i.breaker.check("email.welcome").is_allowed()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_force_open_and_reset_apply_fleet_wide() {
    let server = Server::start();
    let all = instances(&server, vec![Config::default(); 3]);
    linked(&all).await;

    all[0].fleet.force_open(KIND).unwrap();
    assert_eq!(
        all[0].kind.check(),
        Decision::Blocked(Reason::ForcedOpen),
        "applies here at once"
    );
    wait_until("every instance is forced open", || {
        all.iter().all(|i| i.kind.status().reason == Reason::ForcedOpen)
    })
    .await;
    all[2].fleet.reset(KIND).unwrap();
    wait_until("every instance is reset", || {
        all.iter().all(|i| {
            let status = i.kind.status();
            status.state == State::Closed && !status.forced
        })
    })
    .await;
    assert!(all.iter().all(|i| i.kind.check().is_allowed()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_leaves_local_detection_and_loses_no_count_and_a_restart_resumes() {
    let mut server = Server::start();
    let all = instances(&server, vec![Config::default(); 4]);
    linked(&all).await;
    for instance in &all {
        assert_eq!(send(instance, 100), 100);
    }
    wait_until("the fleet counts 400", || {
        all.iter().all(|i| fleet_window(i) == Some((400, 0)))
    })
    .await;

    server.kill();
    wait_until("every instance degrades", || {
        all.iter().all(|i| i.fleet.status().degraded)
    })
    .await;
    // Detection goes on locally: the first instance reaches its own threshold and trips.
    assert_eq!(send(&all[0], 1_100), SINGLE_INSTANCE_LEAK - 100);
    assert_eq!(all[0].kind.status().reason, Reason::Warmup);
    for instance in &all[1..] {
        assert_eq!(send(instance, 200), 200);
    }
    // Counted locally, exactly, and kept for the fleet.
    wait_until("the outage's counts are recorded", || {
        fleet_window(&all[0]).map(|w| w.1) == Some(1_100)
            && all[1..].iter().all(|i| fleet_window(i).map(|w| w.1) == Some(200))
    })
    .await;
    for (instance, sent) in all.iter().zip([1_200, 300, 300, 300]) {
        let status = instance.kind.status();
        assert_eq!(status.attempted, sent);
        assert_eq!(status.allowed + status.blocked, sent);
    }

    server.spawn();
    // The restarted server lost the 400 from before; the outage's 1,700 arrive, and the local
    // trip is broadcast.
    wait_until("the fleet resumes with every count", || {
        all.iter()
            .all(|i| !i.fleet.status().degraded && fleet_window(i) == Some((1_700, 0)))
    })
    .await;
    wait_until("the others block", || {
        all.iter().all(|i| i.kind.state() == State::Open)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_redis_times_out_to_local_detection_and_counts_each_send_once_when_back() {
    let server = Server::start();
    let all = instances(&server, vec![Config::default(); 2]);
    linked(&all).await;
    for instance in &all {
        assert_eq!(send(instance, 100), 100);
    }
    wait_until("the fleet counts 200", || {
        all.iter().all(|i| fleet_window(i) == Some((200, 0)))
    })
    .await;

    server.signal("STOP");
    // A sync in flight now reaches the server, but its reply will come too late to count.
    for instance in &all {
        assert_eq!(send(instance, 50), 50);
    }
    wait_until("every instance degrades", || {
        all.iter().all(|i| i.fleet.status().degraded)
    })
    .await;
    for instance in &all {
        assert_eq!(send(instance, 50), 50);
    }
    server.signal("CONT");
    // Deltas whose reply was lost are sent again; the server counts each send once.
    wait_until("the fleet resumes with each count once", || {
        all.iter()
            .all(|i| !i.fleet.status().degraded && fleet_window(i) == Some((400, 0)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_fleet_trip_one_instance_probes_while_the_others_hold() {
    let server = Server::start();
    // Short enough to watch a whole recovery on the real clock.
    let config = Config::from_toml(
        "[defaults]\nwindow_secs = 1\ncooldown_secs = 1\nprobe_secs = 1\nminute.floor = 10\nwarmup_ceiling = 50\n",
    )
    .unwrap();
    let mut fleets = Vec::new();
    let mut kinds: Vec<KindHandle<SystemClock>> = Vec::new();
    for _ in 0..3 {
        let breaker = Breaker::new(config.clone()).unwrap();
        fleets.push(Fleet::start(breaker.clone(), fleet_config(&server)).unwrap());
        kinds.push(breaker.kind(KIND));
    }
    wait_until("every instance syncs", || {
        fleets.iter().all(|f| f.status().syncs > 0)
    })
    .await;

    assert_eq!((0..60).filter(|_| kinds[0].check().is_allowed()).count(), 50);
    wait_until("the fleet trips", || {
        kinds.iter().all(|k| k.state() == State::Open)
    })
    .await;
    let (mut first_close_seen, mut most_half_open) = (false, 0);
    wait_until("every instance recovers", || {
        // A status read also makes the transitions that are due.
        let states: Vec<State> = kinds.iter().map(|k| k.status().state).collect();
        first_close_seen |= states.contains(&State::Closed);
        if !first_close_seen {
            most_half_open = most_half_open.max(states.iter().filter(|s| **s == State::HalfOpen).count());
        }
        states.iter().all(|s| *s == State::Closed)
    })
    .await;
    assert_eq!(most_half_open, 1, "exactly one instance probed first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_degrades_without_touching_the_send_path() {
    let dir = tempfile::tempdir().unwrap();
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    let url = format!("unix://{}", dir.path().join("nothing.sock").display());
    let fleet = Fleet::start(breaker.clone(), FleetConfig::new(url)).unwrap();
    let kind = breaker.kind(KIND);
    assert_eq!(
        (0..1_500).filter(|_| kind.check().is_allowed()).count() as u64,
        SINGLE_INSTANCE_LEAK
    );
    wait_until("a failed connection is counted", || fleet.status().failures > 0).await;
    assert!(fleet.status().degraded);
    fleet.shutdown().await;
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let breaker = Breaker::new(Config::default()).unwrap();
    let err = Fleet::start(breaker, FleetConfig::default()).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    let err = FleetConfig::new("http://x").validate().unwrap_err();
    assert!(err.is_config());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_ids_never_collide_when_redis_restarts_empty_with_instances_live() {
    let mut server = Server::start();
    let first = instances(&server, vec![Config::default()]);
    linked(&first).await;
    server.kill();
    wait_until("the instance degrades", || first[0].fleet.status().degraded).await;
    server.spawn();
    let syncs = first[0].fleet.status().syncs;
    wait_until("the instance relinks", || {
        let status = first[0].fleet.status();
        !status.degraded && status.syncs > syncs
    })
    .await;
    // A new instance joins the emptied Redis, which remembers no instance at all.
    let second = instances(&server, vec![Config::default()]);
    linked(&second).await;

    assert_eq!(send(&first[0], 500), 500);
    assert_eq!(send(&second[0], 10), 10);
    wait_until("the fleet counts both instances' sends", || {
        fleet_window(&first[0]) == Some((510, 0)) && fleet_window(&second[0]) == Some((510, 0))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_thousand_busy_kinds_and_a_huge_name_do_not_stop_the_syncs() {
    const KINDS: usize = 16_384;
    let server = Server::start();
    let roomy = Config {
        max_kinds: 2 * KINDS,
        ..Config::default()
    };
    let all = instances(&server, vec![roomy]);
    linked(&all).await;
    let breaker = &all[0].breaker;
    assert_eq!(
        breaker.check(&"x".repeat(10 << 20)),
        Decision::Blocked(Reason::InvalidKind),
        "a 10 MB name never becomes a kind, nor a key"
    );
    for k in 0..KINDS {
        assert!(breaker.check(&format!("bulk.{k}")).is_allowed());
    }
    // One round trip for every kind would outlast the response timeout at every sync.
    wait_until("every kind is synced", || {
        let status = all[0].fleet.status();
        !status.degraded
            && status.unsynced == 0
            && status
                .kinds
                .iter()
                .filter(|kind| kind.kind.starts_with("bulk.") && kind.window_count == 1 && kind.unsent == 0)
                .count()
                == KINDS
    })
    .await;
    // And they go on. (Not "no sync ever failed": on two busy cores, in a debug build, a sync
    // of every kind outlasted the 500 ms response timeout in the first of 30 runs of the whole
    // suite, and the next sync recovered. A sync costing a round trip a kind would time out
    // every time, and never get every kind synced above.)
    let syncs = all[0].fleet.status().syncs;
    wait_until("the syncs go on", || {
        let status = all[0].fleet.status();
        status.syncs > syncs + 2 && !status.degraded
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_of_a_kind_an_instance_never_registered_leaves_its_overflow_kind_alone() {
    let server = Server::start();
    let strict = Config::from_toml(&format!(
        "[kinds.\"{KIND}\"]\nminute.floor = 10\nwarmup_ceiling = 50\n"
    ))
    .unwrap();
    let all = instances(&server, vec![strict, Config::default()]);
    // An instance with room for one kind, which never sends the tripping kind.
    let crowded = Breaker::with_clock(
        Config {
            max_kinds: 1,
            ..Config::default()
        },
        ManualClock::new(),
    )
    .unwrap();
    let crowded_fleet = Fleet::start(crowded.clone(), fleet_config(&server)).unwrap();
    assert!(crowded.check("email.welcome").is_allowed());
    assert!(crowded.check("user.4711").is_allowed());
    linked(&all).await;
    wait_until("the crowded instance syncs", || crowded_fleet.status().syncs > 0).await;

    assert_eq!(send(&all[0], 60), 50);
    wait_until("the other instance blocks", || all[1].kind.state() == State::Open).await;
    let syncs = crowded_fleet.status().syncs;
    wait_until("the crowded instance syncs again", || {
        crowded_fleet.status().syncs > syncs + 2
    })
    .await;
    let overflow = crowded.kind_status(Breaker::OVERFLOW_KIND).unwrap();
    assert_eq!(
        (overflow.state, overflow.trips),
        (State::Closed, 0),
        "{overflow:?}"
    );
    assert!(crowded.check("user.4712").is_allowed());
    assert!(crowded.kind_status(KIND).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instances_overflow_kind_is_its_own() {
    let server = Server::start();
    let crowded = || {
        Breaker::with_clock(
            Config {
                max_kinds: 1,
                ..Config::default()
            },
            ManualClock::new(),
        )
        .unwrap()
    };
    let (a, b) = (crowded(), crowded());
    let fleet_a = Fleet::start(a.clone(), fleet_config(&server)).unwrap();
    let fleet_b = Fleet::start(b.clone(), fleet_config(&server)).unwrap();
    assert!(a.check("email.welcome").is_allowed());
    assert!(b.check("email.welcome").is_allowed());
    assert!(b.check("user.b1").is_allowed(), "on B's overflow kind");
    wait_until("both sync", || {
        fleet_a.status().syncs > 0 && fleet_b.status().syncs > 0
    })
    .await;
    // Junk names on A fill its registry and trip its overflow kind.
    let blocked = (0..2_000)
        .filter(|i| !a.check(&format!("user.{i}")).is_allowed())
        .count();
    assert_eq!(blocked, 1_500);
    assert_eq!(a.kind_status(Breaker::OVERFLOW_KIND).unwrap().state, State::Open);
    let (syncs_a, syncs_b) = (fleet_a.status().syncs, fleet_b.status().syncs);
    wait_until("both sync again", || {
        fleet_a.status().syncs > syncs_a + 2 && fleet_b.status().syncs > syncs_b + 2
    })
    .await;
    // Before: B's overflow kind went open (reason fleet) and refused B's new kinds.
    let overflow = b.kind_status(Breaker::OVERFLOW_KIND);
    assert!(
        overflow
            .as_ref()
            .is_none_or(|o| o.state == State::Closed && o.trips == 0),
        "{overflow:?}"
    );
    assert!(b.check("email.new_feature").is_allowed());
    // Nor can an operator act on it fleet-wide: it is refused by name.
    for refused in [
        fleet_b.force_open(Breaker::OVERFLOW_KIND),
        fleet_b.reset(Breaker::OVERFLOW_KIND),
    ] {
        let error = refused.unwrap_err();
        assert!(error.is_invalid_kind_name(), "{error}");
        assert!(error.to_string().contains("each instance's own"), "{error}");
    }
}
