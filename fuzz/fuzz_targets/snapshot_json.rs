//! Any text: `Snapshot::from_json` refuses it, or the snapshot restores and its kinds run.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spikebreaker::{Breaker, Config, ManualClock, Snapshot};

fuzz_target!(|text: &str| {
    if let Ok(snapshot) = Snapshot::from_json(text) {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(Config::default(), clock.clone()).unwrap();
        breaker.restore(&snapshot).expect("a read snapshot restores");
        for kind in snapshot.kinds.keys() {
            for _ in 0..3 {
                clock.advance(Duration::from_secs(13));
                let _ = breaker.check(kind);
            }
        }
        for status in breaker.status() {
            assert_eq!(status.allowed + status.blocked, status.attempted);
        }
    }
});
