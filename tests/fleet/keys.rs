//! The fleet's keys in Redis as an attacker or an accident leaves them: a bucket that is not a
//! count skips its own kind only; a manual-recovery trip key expires, and lives while the trip
//! does.

use crate::fleet::{KIND, fleet_window, instances, linked, send, wait_until};
use crate::redis_server::Server;
use spikebreaker::Config;
use spikebreaker::status::{Reason, State};

const OTHER: &str = "email.receipt";

fn connection(server: &Server) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Sets every bucket of `kind` around Redis's now (a bucket is 5 s) to `value`.
fn tamper(server: &Server, kind: &str, value: &str) {
    let mut redis = connection(server);
    let (seconds, _): (u64, u64) = redis::cmd("TIME").query(&mut redis).unwrap();
    let now = seconds * 1_000 / 5_000;
    for bucket in now - 30..=now + 30 {
        let _: () = redis::cmd("SET")
            .arg(format!("spikebreaker:{{{kind}}}:w:{bucket}"))
            .arg(value)
            .query(&mut redis)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_bucket_skips_its_own_kind_and_the_others_sync() {
    for value in ["not a count", "9223372036854775807", "-5"] {
        let server = Server::start();
        let all = instances(&server, vec![Config::default()]);
        linked(&all).await;
        let instance = &all[0];
        let other = instance.breaker.kind(OTHER);
        tamper(&server, KIND, value);
        assert_eq!(send(instance, 10), 10);
        for _ in 0..7 {
            assert!(other.check().is_allowed());
        }
        // Before: the tampered kind's error failed the whole round trip; every kind went
        // unsynced and the instance called itself degraded.
        wait_until(
            &format!("the other kind syncs beside a bucket of {value:?}"),
            || {
                let status = instance.fleet.status();
                let other = status.kinds.iter().find(|k| k.kind == OTHER);
                !status.degraded
                    && status.unsynced > 0
                    && other.is_some_and(|k| (k.window_count, k.unsent) == (7, 0))
            },
        )
        .await;
        // The tampered kind keeps its counts for a later sync, and is not tripped by the value.
        let (_, unsent) = fleet_window(instance).unwrap();
        assert_eq!(unsent, 10, "{value}");
        assert_eq!(instance.kind.state(), State::Closed, "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_trip_key_expires_and_lives_while_the_trip_does() {
    let server = Server::start();
    let manual = Config::from_toml(&format!(
        "[kinds.\"{KIND}\"]\nrecovery = \"manual\"\nminute.floor = 10\nwarmup_ceiling = 50\n"
    ))
    .unwrap();
    let all = instances(&server, vec![manual]);
    linked(&all).await;
    assert_eq!(send(&all[0], 60), 50);
    assert_eq!(all[0].kind.status().reason, Reason::Warmup);
    let mut redis = connection(&server);
    let trip_key = format!("spikebreaker:{{{KIND}}}:trip");
    let ttl =
        |redis: &mut redis::Connection| -> i64 { redis::cmd("PTTL").arg(&trip_key).query(redis).unwrap() };
    wait_until("the trip key is set", || ttl(&mut redis) != -2).await;
    // Before: -1, a key that outlives every instance that could reset it.
    let first = ttl(&mut redis);
    assert!(first > 0, "the manual trip key has no expiry: {first}");
    // Refreshed while the kind is held open: cut it short, and the next syncs put it back.
    let _: () = redis::cmd("PEXPIRE")
        .arg(&trip_key)
        .arg(60_000)
        .query(&mut redis)
        .unwrap();
    wait_until("the trip key is refreshed", || ttl(&mut redis) > 60_000).await;
    assert!(ttl(&mut redis) <= first + 1_000);
    // A reset ends it.
    all[0].fleet.reset(KIND).unwrap();
    wait_until("the trip key is gone", || ttl(&mut redis) == -2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_forgot_the_sync_script_is_given_it_again() {
    let server = Server::start();
    let all = instances(&server, vec![Config::default()]);
    linked(&all).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut connection(&server))
        .unwrap();
    // Every kind's reply is then NOSCRIPT: a new link loads the script again.
    assert_eq!(send(&all[0], 10), 10);
    wait_until("the kind syncs again", || fleet_window(&all[0]) == Some((10, 0))).await;
}
