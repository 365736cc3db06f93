//! Any text: `Config::from_json` refuses it or returns a config a breaker runs on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spikebreaker::{Breaker, Config, ManualClock};

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::from_json(text) {
        let breaker = Breaker::with_clock(config, ManualClock::new()).expect("a parsed config is valid");
        let _ = breaker.check("fuzz");
    }
});
