//! A restart keeps every stop: a kind open under `recovery = "manual"`, one forced open, one
//! forced closed, one in dry-run by an operator's hand and a planned surge come back as they were,
//! through the snapshot file. What a restart must not keep is left behind: a half-open probe, and
//! an automatic trip whose cool-down ended while the process was down.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spikebreaker::status::{Reason, State};
use spikebreaker::{Breaker, Config, ManualClock, Snapshot};

const CONFIG: &str = r#"
[kinds."security.2fa_changed"]
minute = { floor = 10, ceiling = 100 }
recovery = "manual"
"#;

/// A service's breaker on `clock`, keeping its snapshot file at `path`.
fn service(clock: &ManualClock, path: &Path) -> Breaker<ManualClock> {
    Breaker::builder()
        .config(Config::from_toml(CONFIG).unwrap())
        .clock(clock.clone())
        .name("restart-test")
        .snapshot_file(path)
        .save_every(Duration::from_secs(3_600))
        .build()
        .unwrap()
}

/// A directory for the snapshot file (gone when dropped), its path, and a clock.
fn fresh() -> (tempfile::TempDir, PathBuf, ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    (dir, path, ManualClock::starting_at(1_700_000_000_000))
}

/// Sends `sends` of `kind`, 100 a second; how many went through.
fn runaway(breaker: &Breaker<ManualClock>, clock: &ManualClock, kind: &str, sends: u64) -> u64 {
    let handle = breaker.kind(kind);
    (0..sends)
        .filter(|_| {
            clock.advance(Duration::from_millis(10));
            handle.check().is_allowed()
        })
        .count() as u64
}

/// Before: every stop came back closed; the second runaway of the manual kind got 100 of 500
/// through again, the forced-open kind 500 of 500; the forced-closed and the dry-run kinds were
/// blocked after 500 of 1,000, and the campaign, its surge forgotten, after 500 of its 3,000 left.
#[test]
fn a_restart_keeps_every_stop_and_a_second_runaway_gets_nothing_through() {
    let (_dir, path, clock) = fresh();
    let first = service(&clock, &path);
    // A runaway trips the manual kind at its ceiling; an operator forces one kind open and one
    // closed, puts one in dry-run, and announces a campaign of 5,000, of which 2,000 go out.
    assert_eq!(runaway(&first, &clock, "security.2fa_changed", 500), 100);
    let tripped = first.kind_status("security.2fa_changed").unwrap();
    assert_eq!((tripped.state, tripped.reason), (State::Open, Reason::Warmup));
    for kind in ["sms.promo", "push.news", "email.digest"] {
        assert!(first.check(kind).is_allowed());
    }
    first.force_open("sms.promo").unwrap();
    first.force_close("push.news").unwrap();
    first.set_dry_run("email.digest", true).unwrap();
    first
        .plan_surge("email.campaign", 5_000, Duration::from_secs(2 * 3_600))
        .unwrap();
    assert_eq!(runaway(&first, &clock, "email.campaign", 2_000), 2_000);
    // The deploy: the last clone's drop saves the file before it returns.
    drop(first);

    clock.advance(Duration::from_secs(60));
    let second = service(&clock, &path);
    let kept = |kind: &str| second.kind_status(kind).unwrap();
    let manual = kept("security.2fa_changed");
    assert_eq!(
        (manual.state, manual.reason, manual.since_ms),
        (State::Open, Reason::Warmup, tripped.since_ms),
        "the same trip, for an operator to reset"
    );
    assert_eq!(manual.tripped_on, tripped.tripped_on);
    assert_eq!(
        (kept("sms.promo").state, kept("sms.promo").forced),
        (State::Open, true)
    );
    assert_eq!(
        (kept("push.news").reason, kept("push.news").forced),
        (Reason::ForcedClosed, true)
    );
    assert!(kept("email.digest").dry_run);
    let surge = kept("email.campaign").surge.expect("the surge in force");
    assert_eq!(surge.sends, 3_000);

    // The second runaway of each stopped kind gets nothing through.
    assert_eq!(runaway(&second, &clock, "security.2fa_changed", 500), 0);
    assert_eq!(runaway(&second, &clock, "sms.promo", 500), 0);
    // The forced-closed kind flows, the dry-run kind only reports, the campaign sends what it
    // has left of its surge (not a new 5,000), then its limits judge it.
    assert_eq!(runaway(&second, &clock, "push.news", 1_000), 1_000);
    assert_eq!(runaway(&second, &clock, "email.digest", 1_000), 1_000);
    assert!(kept("email.digest").trips >= 1, "a would-trip, reported");
    let campaign = runaway(&second, &clock, "email.campaign", 5_000);
    assert!((3_000..3_500).contains(&campaign), "{campaign}");
    assert_eq!(kept("email.campaign").state, State::Open);

    // Reset, the manual kind flows again, and the next restart keeps that too.
    second.reset("security.2fa_changed").unwrap();
    drop(second);
    let third = service(&clock, &path);
    assert_eq!(
        third.kind_status("security.2fa_changed").unwrap().state,
        State::Closed
    );
    assert_eq!(third.kind_status("sms.promo").unwrap().state, State::Open);
}

/// An automatic trip keeps the rest of its cool-down across a restart, and no more: one whose
/// cool-down ended while the process was down comes back closed, and so does a half-open probe.
#[test]
fn a_restart_keeps_what_is_left_of_a_cool_down_and_no_probe() {
    let (_dir, path, clock) = fresh();
    let first = service(&clock, &path);
    // Two new kinds run away past the warm-up ceiling; the first's cool-down (300 s) ends sooner.
    assert_eq!(runaway(&first, &clock, "email.welcome", 600), 500);
    clock.advance(Duration::from_secs(120));
    assert_eq!(runaway(&first, &clock, "sms.login", 600), 500);
    first.save_snapshot().unwrap();
    drop(first);

    // Down for 4 minutes: the first's cool-down is over, the second's has a minute left.
    clock.advance(Duration::from_secs(240));
    let second = service(&clock, &path);
    assert_eq!(second.kind_status("email.welcome").unwrap().state, State::Closed);
    let login = second.kind_status("sms.login").unwrap();
    assert_eq!((login.state, login.reason), (State::Open, Reason::Warmup));
    assert_eq!(runaway(&second, &clock, "sms.login", 100), 0);
    // Its cool-down over, it probes (half-open) and that probe is not kept by a restart.
    clock.advance(Duration::from_secs(600));
    second.refresh();
    assert_eq!(second.kind_status("sms.login").unwrap().state, State::HalfOpen);
    drop(second);
    let third = service(&clock, &path);
    assert_eq!(third.kind_status("sms.login").unwrap().state, State::Closed);
}

/// A trip reaches the snapshot file without waiting for the periodic save (an hour here), so a
/// crash soon after it does not re-arm the runaway; so does an operator's dry-run, which sends no
/// event.
#[test]
fn a_trip_and_a_control_reach_the_snapshot_file_without_waiting_for_the_periodic_save() {
    let (_dir, path, clock) = fresh();
    let breaker = service(&clock, &path);
    let saved = |kind: &str| {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        Snapshot::from_json(&text).is_ok_and(|_| text.contains(&format!("\"{kind}\":{{\"held\"")))
    };
    assert_eq!(runaway(&breaker, &clock, "security.2fa_changed", 200), 100);
    assert!(
        eventually(|| saved("security.2fa_changed")),
        "the trip was not saved"
    );
    assert!(breaker.check("email.digest").is_allowed());
    breaker.set_dry_run("email.digest", true).unwrap();
    let dry_run = || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("\"dry_run\":true")
    };
    assert!(eventually(dry_run), "the dry-run was not saved");
}

/// Whether `done` holds within 30 seconds, looked at every 10 ms: the file is written by the
/// breaker's saving thread.
fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A version-2 snapshot (0.2's, with no stops) restores what was learned, every kind closed.
#[test]
fn a_version_two_snapshot_restores_with_every_kind_closed() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    assert_eq!(runaway(&breaker, &clock, "email.welcome", 600), 500);
    breaker.force_open("email.welcome").unwrap();
    let v3: serde_json::Value = serde_json::from_str(&breaker.snapshot().to_json()).unwrap();
    assert!(v3["stops"]["email.welcome"]["held"].is_object(), "{v3}");
    let v2 = serde_json::json!({"version": 2, "kinds": v3["kinds"]});
    let restarted = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    restarted
        .restore(&Snapshot::from_json(&v2.to_string()).unwrap())
        .unwrap();
    let status = restarted.kind_status("email.welcome").unwrap();
    assert_eq!((status.state, status.forced), (State::Closed, false));
    assert_eq!(
        serde_json::to_value(restarted.snapshot()).unwrap()["kinds"],
        v3["kinds"],
        "what was learned, as it was"
    );
}
