//! Bounded memory: a kind's slice tracker and repeat check hold what their settings allow,
//! however many distinct tenants and recipients stream through.

use std::time::Duration;

use spikebreaker::guard::Slices;
use spikebreaker::{Breaker, Config, ManualClock};

use crate::support::MONDAY_MS;

/// Room enough that the kind itself never trips: these sends are about its slices' memory.
fn config(capacity: usize) -> Config {
    Config::from_toml(&format!(
        r#"
        [defaults]
        warmup_ceiling = 100000000
        minute = {{ floor = 100000000 }}
        hour = {{ floor = 100000000 }}
        day = {{ floor = 100000000 }}
        [defaults.repeats]
        capacity = {capacity}
        "#
    ))
    .unwrap()
}

/// Streams `n` sends of `kind`, each naming a tenant and a recipient never named before, 1,000
/// a second.
fn stream(breaker: &Breaker<ManualClock>, clock: &ManualClock, kind: &str, n: u64) {
    let (mut tenant, mut recipient) = (String::new(), String::new());
    for i in 0..n {
        use std::fmt::Write;
        tenant.clear();
        recipient.clear();
        write!(tenant, "tenant-{i}").unwrap();
        write!(recipient, "+44{i:010}").unwrap();
        let slices = Slices::new().with("tenant", &tenant).recipient(&recipient);
        assert!(breaker.check_sliced(kind, &slices).is_ok(), "send {i} refused");
        clock.advance(Duration::from_millis(1));
    }
}

#[test]
fn distinct_tenants_and_recipients_are_held_within_the_settings() {
    let clock = ManualClock::starting_at(MONDAY_MS);
    let breaker = Breaker::with_clock(config(1_024), clock.clone()).unwrap();
    stream(&breaker, &clock, "email.invoice", 100_000);
    let status = breaker.kind_status("email.invoice").unwrap();
    assert_eq!(
        status.slices[0].slices.len(),
        64,
        "the 64 busiest tracked, no more"
    );
    assert_eq!(status.slices[0].attempted, 100_000);
    let repeats = status.repeats.unwrap();
    assert!(
        repeats.remembered <= 1_024 && repeats.remembered > 512,
        "{repeats:?}"
    );
}

/// Resident memory of this process, in bytes.
#[cfg(target_os = "linux")]
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4_096
}

/// A million distinct tenants, each to a recipient of its own, through one kind: the resident
/// growth, at the default repeat capacity (65,536 recipients) and at the largest (1,048,576).
#[cfg(target_os = "linux")]
#[test]
#[ignore = "measures the process's resident memory, which tests running beside it move: \
            run alone (`cargo test --release --test slices memory -- --ignored --nocapture`)"]
fn a_million_tenants_and_recipients_through_one_kind_grow_memory_within_the_bound() {
    const MIB: f64 = 1_048_576.0;
    for (capacity, bound_mib) in [(65_536, 4.0), (1_048_576, 20.0)] {
        let clock = ManualClock::starting_at(MONDAY_MS);
        let breaker = Breaker::with_clock(config(capacity), clock.clone()).unwrap();
        let before = resident();
        stream(&breaker, &clock, "email.invoice", 1_000_000);
        let grown = resident().saturating_sub(before) as f64 / MIB;
        let status = breaker.kind_status("email.invoice").unwrap();
        let remembered = status.repeats.unwrap().remembered;
        println!(
            "1,000,000 tenants and recipients through one kind, repeat capacity {capacity}: \
             resident grew {grown:.1} MiB ({} values tracked, {remembered} recipients remembered)",
            status.slices[0].slices.len()
        );
        assert!(grown < bound_mib, "{grown:.1} MiB");
    }
}
