//! Snapshots across a restart: what was learned is carried over, and a snapshot that is corrupt,
//! of another version or partly bad is refused whole, the breaker running on what it had (a
//! learned baseline, or the defaults of a fresh start). No input makes the snapshot reader panic.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use spikebreaker::{Breaker, Config, KindHandle, ManualClock, Snapshot};

use crate::snapshots::{a_learned_week, kinds};

#[test]
fn a_snapshot_carries_what_was_learned_across_a_restart() {
    let clock = ManualClock::new();
    let first = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    teach(&first, &clock);
    let saved = first.snapshot().to_json();

    // A restart without the snapshot holds the busy kind to the warm-up ceiling...
    let cold = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    assert!(!(0..1_200).all(|_| cold.check("sms.login_code").is_allowed()));
    // ...with it, the kind carries on at its learned rate.
    let restarted = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    restarted.restore(&Snapshot::from_json(&saved).unwrap()).unwrap();
    assert!((0..1_200).all(|_| restarted.check("sms.login_code").is_allowed()));
    assert_eq!(
        kinds(&restarted.snapshot())["sms.login_code"],
        kinds(&first.snapshot())["sms.login_code"],
        "what was learned is carried over exactly"
    );
}

#[test]
fn a_corrupt_snapshot_is_refused_and_the_breaker_keeps_what_it_had() {
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    let kind = breaker.kind("email.welcome");
    let before = kind.status();
    // A snapshot's contents are private: a corrupt one is met as JSON, and refused there.
    let mut snapshot: Value = serde_json::from_str(&breaker.snapshot().to_json()).unwrap();
    snapshot["kinds"]["email.welcome"]["recent_per_minute"] = json!(-1.0);
    let error = Snapshot::from_json(&snapshot.to_string()).unwrap_err();
    assert!(
        error.is_snapshot() && error.to_string().contains("recent_per_minute"),
        "{error}"
    );
    snapshot["version"] = json!(99);
    assert!(
        Snapshot::from_json(&snapshot.to_string())
            .unwrap_err()
            .to_string()
            .contains("version 99")
    );
    assert_eq!(kind.status(), before);
    assert!(kind.check().is_allowed());
}

// Corrupt, foreign and partly bad snapshots, refused whole.

/// A breaker whose kind "a" has learned 200 sends a minute over two hours.
fn warm() -> (Breaker<ManualClock>, ManualClock, KindHandle<ManualClock>) {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    let a = breaker.kind("a");
    for _ in 0..120 * 200 {
        clock.advance(Duration::from_millis(300));
        assert!(a.check().is_allowed());
    }
    (breaker, clock, a)
}

/// How a snapshot with nothing stopped ends: its last kind's closing brace, the kinds' and the
/// (empty) stops.
const TAIL: &str = "}},\"stops\":{}}";

fn bad_snapshots(good: &str) -> Vec<String> {
    let second = good
        .replace("{\"a\":", "{\"b\":")
        .replace("\"minutes\":", "\"minutes\":-");
    let second = &second[second.find("{\"b\":").unwrap() + 1..second.len() - TAIL.len() + 1];
    vec![
        good.replace("\"version\":4", "\"version\":5"),
        good.replace("\"version\":4", "\"version\":0"),
        good.replace("\"recent_per_minute\":", "\"recent_per_minute\":-"),
        good.replace("\"longrun_per_hour\":", "\"longrun_per_hour\":1e999,\"x\":"),
        good.replace("\"spread_hours\":[", "\"spread_hours\":[-1,"),
        good.replacen("\"week\":[", "\"week\":[1.0,", 1),
        good.replace("\"a\"", "\"\""),
        good[..good.len() / 2].to_string(),
        good.replace("\"kinds\"", "\"kinds_\""),
        String::new(),
        "null".into(),
        "{\"version\":4}".into(),
        // By position, or a kind (or field) given twice: refused, not read or kept last.
        "[]".into(),
        good.replace("{\"version\":4,", "{\"version\":4,\"version\":4,"),
        good.replace("\"kinds\":{", "\"kinds\":{\"a\":{},"),
        good.replace("\"a\"", "\"a\\u001b[2J\""),
        // The first kind is good and the second bad: nothing is restored.
        format!("{},{second}{TAIL}", &good[..good.len() - TAIL.len() + 1]),
        // Stops no kind can be in.
        good.replace(",\"stops\":{}", ",\"stops\":{\"a\":{\"held\":{\"state\":\"half_open\",\"reason\":\"cooldown\",\"since_ms\":0,\"until_ms\":null,\"tripped_on\":null}}}"),
        good.replace(",\"stops\":{}", ",\"stops\":{\"a\":{\"held\":{\"state\":\"open\",\"reason\":\"new\",\"since_ms\":0,\"until_ms\":null,\"tripped_on\":null}}}"),
        good.replace(",\"stops\":{}", ",\"stops\":{\"a\":{\"surge\":{\"sends\":18446744073709551615,\"until_ms\":1}}}"),
        good.replace(",\"stops\":{}", ",\"stops\":{\"\\u202eb\":{\"dry_run\":true}}"),
    ]
}

#[test]
fn a_bad_snapshot_is_refused_and_what_was_learned_stays() {
    let (breaker, _, a) = warm();
    let before = a.status();
    let mut replaced: Value = serde_json::from_str(&breaker.snapshot().to_json()).unwrap();
    let learned = &mut replaced["kinds"]["a"];
    (learned["average_per_minute"], learned["recent_per_minute"]) = (json!(5.0), json!(5.0));
    learned["week"] = json!(vec![Some(300.0); 168]);
    // Read back, so that the text is the snapshot's own, its fields in its order.
    let replaced = Snapshot::from_json(&replaced.to_string()).unwrap();
    let good = replaced.to_json();
    assert!(good.contains("\"version\":4") && good.ends_with(TAIL), "{good}");

    for text in bad_snapshots(&good) {
        let err = Snapshot::from_json(&text).expect_err(&text);
        assert!(err.is_snapshot(), "{text}: {err}");
        // A snapshot that parses but is bad, handed to restore directly, is refused there too.
        if let Ok(snapshot) = serde_json::from_str::<Snapshot>(&text) {
            assert!(breaker.restore(&snapshot).unwrap_err().is_snapshot(), "{text}");
        }
        let after = a.status();
        assert_eq!(after.windows, before.windows, "{text}");
    }
    assert!(
        breaker.kind_status("b").is_none(),
        "a refused snapshot registers nothing"
    );
    // The kind still trips where what it learned says, not where the refused one would.
    let allowed = (0..10_000).take_while(|_| a.check().is_allowed()).count() as u64;
    // (200 a minute learned; the refused 5 a minute would have meant the floor of 50.)
    assert!(allowed > 300, "{allowed} allowed before the trip");
    assert_eq!(a.state(), spikebreaker::status::State::Open);
    // The good one is accepted and applies.
    breaker.restore(&Snapshot::from_json(&good).unwrap()).unwrap();
    breaker.reset("a").unwrap();
    assert!(a.status().minute().threshold < before.minute().threshold);
}

#[test]
fn only_a_json_object_is_read_as_a_snapshot() {
    // serde would read `[1, {}]` by position as version 1 with no kinds.
    for text in ["[1,{}]", " [1, {\"a\": {}}]", "1", "\"snapshot\""] {
        let error = Snapshot::from_json(text).unwrap_err();
        assert!(
            error.is_snapshot() && error.to_string().contains("expected a JSON object"),
            "{text}: {error}"
        );
    }
}

#[test]
fn a_fresh_breaker_refusing_a_snapshot_runs_on_the_defaults() {
    let (old, _, _) = warm();
    let good = old.snapshot().to_json();
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock).unwrap();
    for text in bad_snapshots(&good) {
        assert!(Snapshot::from_json(&text).is_err(), "{text}");
    }
    let a = breaker.kind("a");
    let allowed = (0..5_000).filter(|_| a.check().is_allowed()).count() as u64;
    assert_eq!(allowed, Config::default().defaults.warmup_ceiling);
}

/// A version-1 snapshot (spikebreaker 0.1's single-window baseline) is migrated: the kind is
/// warm, judged at least as leniently as before (its old normal is its recent rate), and learns
/// its week from there.
#[test]
fn a_version_one_snapshot_restores_migrated() {
    let v1 = r#"{"version":1,"kinds":{"a":{"window_secs":60,"mean":200.0,"variance":250.0,"peak":240.0,"windows":5000}}}"#;
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    breaker.restore(&Snapshot::from_json(v1).unwrap()).unwrap();
    let a = breaker.kind("a");
    let status = a.status();
    assert!(status.warmed_up);
    assert!((status.minute().expected - 240.0).abs() < 1e-9, "{status:?}");
    // 600 a minute for a minute: far over the warm-up ceiling, well within 3x the old normal.
    for _ in 0..600 {
        clock.advance(Duration::from_millis(100));
        assert!(a.check().is_allowed(), "{:?}", a.status());
    }
}

/// A version-1 snapshot naming a kind twice is refused, as a version-2 one is (before: the last
/// one silently won).
#[test]
fn a_version_1_snapshot_naming_a_kind_twice_is_refused() {
    let kind = r#"{"window_secs":60,"mean":200.0,"variance":150.0,"peak":240.0,"windows":500}"#;
    let twice = format!(r#"{{"version":1,"kinds":{{"a":{kind},"a":{kind}}}}}"#);
    let error = Snapshot::from_json(&twice).unwrap_err().to_string();
    assert!(error.contains("\"a\""), "{error}");
}

/// Found by the mutation fuzzer above: a snapshot claiming `u64::MAX` learned windows made the
/// next learned window overflow (a panic in debug builds, a NaN baseline in release).
#[test]
fn a_snapshot_with_the_most_windows_restores_and_keeps_learning() {
    let text = r#"{"version":1,"kinds":{"a":{"window_secs":60,"mean":200.0,"variance":150.0,"peak":240.0,"windows":18446744073709551615}}}"#;
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    breaker.restore(&Snapshot::from_json(text).unwrap()).unwrap();
    let a = breaker.kind("a");
    for _ in 0..3 * 200 {
        clock.advance(Duration::from_millis(300));
        assert!(a.check().is_allowed());
    }
    let status = a.status();
    assert!(
        status.minute().expected.is_finite() && status.minute().expected > 100.0,
        "{status:?}"
    );
    assert!(
        status.minute().threshold >= 600 && status.minute().threshold < 10_000,
        "{status:?}"
    );
}

/// A figure near the float limit would turn infinite when migrated or learned from, and the
/// breaker's own snapshot would no longer restore. The largest figures accepted stay finite.
#[test]
fn figures_beyond_any_sender_are_refused_and_the_largest_accepted_stay_finite() {
    let huge = r#"{"version":1,"kinds":{"a":{"window_secs":1,"mean":1e308,"variance":0.0,"peak":0.0,"windows":100}}}"#;
    let error = Snapshot::from_json(huge).unwrap_err().to_string();
    assert!(error.contains("kind \"a\"") && error.contains("e"), "{error}");

    let largest = r#"{"version":1,"kinds":{"a":{"window_secs":1,"mean":1e9,"variance":1e18,"peak":1e9,"windows":100}}}"#;
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
    breaker.restore(&Snapshot::from_json(largest).unwrap()).unwrap();
    let a = breaker.kind("a");
    for _ in 0..200 {
        clock.advance(Duration::from_secs(1));
        let _ = a.check();
    }
    assert!(a.status().minute().expected.is_finite());
    let again = breaker.snapshot().to_json();
    assert!(Snapshot::from_json(&again).is_ok(), "{again}");
}

/// `text` with one edit: a run of characters removed, replaced, inserted or repeated.
fn mutate(text: &str, edit: u8, at: usize, len: usize, with: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + len).min(chars.len());
    let kept: String = chars[at..end].iter().collect();
    let middle = match edit % 4 {
        0 => String::new(),
        1 => with.to_string(),
        2 => format!("{with}{kept}"),
        _ => kept.repeat(2),
    };
    chars[..at].iter().collect::<String>() + &middle + &chars[end..].iter().collect::<String>()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics_the_snapshot_reader(text in "\\PC{0,200}") {
        let _ = Snapshot::from_json(&text);
    }

    #[test]
    fn a_mutated_snapshot_is_refused_or_restores_and_runs(
        edits in prop::collection::vec(
            (any::<u8>(), any::<usize>(), 0usize..8, prop_oneof![
                "[ -~]{0,8}".boxed(),
                Just("1e308".to_string()).boxed(),
                Just("-0.0".to_string()).boxed(),
                Just("18446744073709551615".to_string()).boxed(),
            ]),
            1..4,
        )
    ) {
        let v1 = r#"{"version":1,"kinds":{"a":{"window_secs":60,"mean":200.0,"variance":150.0,"peak":240.0,"windows":500},"b":{"window_secs":1,"mean":3.5,"variance":2.0,"peak":9.0,"windows":7}}}"#;
        // A version-2 snapshot to mutate too: the migrated version-1 one.
        let v2 = Snapshot::from_json(v1).unwrap().to_json();
        let mut text = if edits.len() % 2 == 0 { v1.to_string() } else { v2 };
        for (edit, at, len, with) in &edits {
            text = mutate(&text, *edit, *at, *len, with);
        }
        if let Ok(snapshot) = Snapshot::from_json(&text) {
            let clock = ManualClock::new();
            let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
            breaker.restore(&snapshot).unwrap();
            let kinds = kinds(&snapshot);
            for kind in kinds.keys() {
                for _ in 0..3 {
                    clock.advance(Duration::from_secs(13));
                    let _ = breaker.check(kind);
                }
            }
            for kind in kinds.keys() {
                let status = breaker.kind_status(kind).unwrap();
                prop_assert_eq!(status.attempted, 3, "{}", kind);
            }
        }
    }
}

/// A breaker on `clock` keeping its snapshot in `path`, saving only when told (or dropped).
fn keeping(path: &std::path::Path, clock: &ManualClock) -> Breaker<ManualClock> {
    Breaker::builder()
        .clock(clock.clone())
        .snapshot_file(path)
        .save_every(Duration::from_secs(86_400))
        .build()
        .unwrap()
}

/// Two hours of 350 sends a minute: the kind is warm, and allows three times that in a minute,
/// where a fresh start would block it at 500.
fn teach(breaker: &Breaker<ManualClock>, clock: &ManualClock) {
    let kind = breaker.kind("sms.login_code");
    for _ in 0..120 {
        for _ in 0..350 {
            let _ = kind.check();
        }
        clock.advance(Duration::from_secs(60));
    }
    assert!(kind.status().warmed_up);
}

/// Whether the kind may send 900 in a minute, as it learned it may (a fresh start blocks it at
/// 500).
fn carries_on(breaker: &Breaker<ManualClock>) -> bool {
    (0..900).all(|_| breaker.check("sms.login_code").is_allowed())
}

#[test]
fn a_snapshot_file_keeps_what_was_learned_across_a_restart_with_one_line_of_setup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    let clock = ManualClock::new();
    let first = keeping(&path, &clock);
    teach(&first, &clock);
    // (The kind's warm-up trips on the way saved the file already: a stop is saved at once.)
    let clone = first.clone();
    drop(first);
    assert!(carries_on(&clone), "a clone is the same breaker");
    drop(clone);
    let saved = Snapshot::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(kinds(&saved).contains_key("sms.login_code"));

    let restarted = keeping(&path, &ManualClock::new());
    assert!(carries_on(&restarted));
    // An explicit save writes the file in place, atomically: no temporary file is left.
    restarted.save_snapshot().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("spikebreaker.json")]);
}

#[test]
fn a_write_a_crash_interrupted_leaves_the_last_complete_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    let clock = ManualClock::new();
    let first = keeping(&path, &clock);
    teach(&first, &clock);
    first.save_snapshot().unwrap();
    std::mem::forget(first); // a crash: no save at shutdown
    // The crash came during the next save, an hour ago: half a snapshot in its temporary file.
    let good = std::fs::read_to_string(&path).unwrap();
    let temporary = dir.path().join("spikebreaker.json.tmp.4000001");
    std::fs::write(&temporary, &good[..good.len() / 2]).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3_600);
    std::fs::File::options()
        .write(true)
        .open(&temporary)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    // Another process is saving to the same file right now: its write is left alone.
    let saving_now = dir.path().join("spikebreaker.json.tmp.4000002");
    std::fs::write(&saving_now, &good[..good.len() / 3]).unwrap();

    let restarted = keeping(&path, &ManualClock::new());
    assert!(carries_on(&restarted), "the last complete snapshot is restored");
    assert!(!temporary.exists(), "the unfinished write is removed");
    assert!(saving_now.exists(), "a write in progress is not");
}

#[test]
fn a_corrupt_or_foreign_snapshot_file_is_set_aside_and_the_breaker_starts_afresh() {
    let good = {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        teach(&breaker, &clock);
        breaker.snapshot().to_json()
    };
    let cases: [(&str, Vec<u8>); 5] = [
        ("truncated", good.as_bytes()[..good.len() - 7].to_vec()),
        ("empty", Vec::new()),
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x7b]),
        ("another program's", b"[defaults]\nwindow_secs = 60\n".to_vec()),
        (
            "a newer version's",
            good.replacen("\"version\":4", "\"version\":9", 1).into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spikebreaker.json");
        std::fs::write(&path, &bytes).unwrap();
        let breaker = keeping(&path, &ManualClock::new());
        assert!(!carries_on(&breaker), "{what}: nothing learned restored");
        let aside = dir.path().join("spikebreaker.json.corrupt");
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            bytes,
            "{what}: set aside untouched"
        );
        assert!(!path.exists(), "{what}");
        // The next save starts a good file.
        breaker.save_snapshot().unwrap();
        Snapshot::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    }
}

#[test]
fn a_snapshot_file_is_saved_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    let clock = ManualClock::new();
    let breaker = Breaker::builder()
        .clock(clock.clone())
        .snapshot_file(&path)
        .save_every(Duration::from_millis(20))
        .build()
        .unwrap();
    let _ = breaker.check("sms.login_code");
    // The saving thread runs on real time: wait for its first save (a deadline, not a guess).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let saved = loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            break Snapshot::from_json(&text).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no save within 30 s");
        std::thread::yield_now();
    };
    assert!(kinds(&saved).contains_key("sms.login_code"));
}

#[test]
fn a_snapshot_file_that_cannot_be_written_is_an_error_naming_it_never_a_panic() {
    // Where no save can ever go: refused when the breaker is built, not warned of at each save.
    let error = Breaker::builder()
        .clock(ManualClock::new())
        .snapshot_file("/nonexistent-spikebreaker-dir/spikebreaker.json")
        .build()
        .unwrap_err();
    assert!(error.is_file(), "{error}");
    assert!(
        error
            .to_string()
            .contains("/nonexistent-spikebreaker-dir/spikebreaker.json"),
        "{error}"
    );

    // A path that cannot be read (a directory) is left where it is, never set aside; saves
    // over it fail with an error naming it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    std::fs::create_dir(&path).unwrap();
    let breaker = keeping(&path, &ManualClock::new());
    assert!(path.is_dir(), "left in place");
    assert!(!dir.path().join("spikebreaker.json.corrupt").exists());
    let error = breaker.save_snapshot().unwrap_err();
    assert!(error.to_string().contains("spikebreaker.json"), "{error}");
    drop(breaker); // logs the failed save at shutdown
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("spikebreaker.json")],
        "no temporary file left"
    );
}

/// The widest bursts a snapshot may claim still leave the minute window a limit: a restored
/// snapshot cannot switch it off.
#[test]
fn the_widest_bursts_a_snapshot_may_claim_leave_the_minute_window_a_limit() {
    let snapshot = a_learned_week("a", 10.0, [100.0, 100.0]);
    snapshot.validate().unwrap();
    let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
    breaker.restore(&snapshot).unwrap();
    let status = breaker.kind_status("a").unwrap();
    assert!(status.minute().threshold < 100_000, "{:?}", status.minute());
}

/// A family's sum (the kinds of a `prefix.*` override, judged together) learns its own week, and
/// a snapshot keeps it under the override's key, so a restart does not make the family new.
#[test]
fn a_familys_sum_is_kept_under_its_key_and_restored() {
    let config = Config::from_toml("[kinds.\"security.*\"]\nrecovery = \"auto\"\n").unwrap();
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(config.clone(), clock.clone()).unwrap();
    // Two days of two members at a send every 20 seconds each.
    for _ in 0..2 * 24 * 180 {
        assert!(breaker.check("security.login").is_allowed());
        assert!(breaker.check("security.reset").is_allowed());
        clock.advance(Duration::from_secs(20));
    }
    let saved = breaker.snapshot();
    let family = &kinds(&saved)["security.*"];
    assert!(family["hours"].as_u64().unwrap() >= 24, "{family}");
    assert!(
        (family["longrun_per_hour"].as_f64().unwrap() / 360.0 - 1.0).abs() < 0.1,
        "{family}"
    );

    let restarted = Breaker::with_clock(config, clock).unwrap();
    restarted.restore(&saved).unwrap();
    assert!(
        restarted.status().kinds.iter().all(|k| &*k.kind != "security.*"),
        "not a kind"
    );
    assert_eq!(kinds(&restarted.snapshot())["security.*"], *family);
}

/// Before: `build()` opened the FIFO to read it and waited for a writer for ever.
#[cfg(unix)]
#[test]
fn a_fifo_at_the_snapshot_path_does_not_hold_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success());
    let (built, building) = std::sync::mpsc::channel();
    let at = path.clone();
    std::thread::spawn(move || built.send(keeping(&at, &ManualClock::new())).unwrap());
    let breaker = building
        .recv_timeout(Duration::from_secs(30))
        .expect("build() returned");
    // Fresh, the FIFO left in place (never renamed or replaced), and a save refused naming it.
    assert!(breaker.status().kinds.is_empty());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
    let error = breaker.save_snapshot().unwrap_err().to_string();
    assert!(
        error.contains("spikebreaker.json") && error.contains("not a regular file"),
        "{error}"
    );
    assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
}

/// Before: a save's temporary file was `<file>.tmp.<pid>.<n>`, so whoever could write the
/// directory could create the next names in advance: `build()` failed after 64 of them.
#[test]
fn temporary_names_taken_in_advance_do_not_stop_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spikebreaker.json");
    for n in 0..10_000 {
        let taken = dir
            .path()
            .join(format!("spikebreaker.json.tmp.{}.{n}", std::process::id()));
        std::fs::File::create(taken).unwrap();
    }
    let breaker = Breaker::builder()
        .clock(ManualClock::new())
        .snapshot_file(&path)
        .build()
        .expect("built");
    assert!(breaker.check("email.welcome").is_allowed());
    breaker.save_snapshot().unwrap();
    let saved = Snapshot::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(kinds(&saved).contains_key("email.welcome"));
}
