//! The guide: how spikebreaker decides, and how to run it in a service.
//!
//! The README is the front door (what it is, a quick start, one whole service); these pages are
//! the manual. Each page is a markdown file beside this one (`src/guide/*.md`, readable on GitHub
//! as well), compiled into these docs with its Rust examples run as doctests, so a page is
//! versioned and tested with the code it describes.
//!
//! | Page | What it holds |
//! |---|---|
//! | [`architecture`] | The source tree by concept, which way the imports run, and what the public modules hold |
//! | [`detection`] | How a kind is judged (three windows, the learned week, limits from the spread of counts), the detection scenarios and their figures, and the replay of real data (NAB) |
//! | [`recovery`] | States and recovery, a lasting change, planned surges; the operator's status, events and controls, in code and over HTTP (the admin router) |
//! | [`configuration`] | Kind names and who gets a slot (the overflow kind); every configuration field, override keys and patterns, the warm-up |
//! | [`persistence`] | The snapshot file: what it keeps, when it is written, what a crash or a bad file does |
//! | [`metrics`] | Every metric and its labels, what exporting costs, the recorder to install first; the operator's alerting rules and dashboard |
//! | [`slices`] | Slices below the kind (a runaway to one prefix, tenant or country inside a kind that looks normal) and the repeat check: naming them, how each is judged, configuration, what knows them, the scenarios' figures |
//! | [`fleet`] | Fleet mode: one breaker across many sender instances, synced through Redis |
//! | [`quarantine`] | Where blocked notifications wait: stores, the operator's tools, releasing, what a crash does, speed |
//! | [`serve`] | `spikebreaker serve`: the breaker as a sidecar for senders in any language (Envoy's rate-limit protocol, HTTP JSON, the quarantine over the wire), its operation, tests and speed |
//! | [`backtest`] | Replaying a send log against a configuration (the command, the report page, speed), and the tuner that suggests settings from a history |
//! | [`performance`] | What a send costs, measured against an atomic add and governor, and what an allowed send does, instruction by instruction |
//! | [`evidence`] | The guarantees, and for each its test, the kind of test, the figures and the command that reproduces them |
//! | [`limits`] | What spikebreaker does not do, or does imperfectly |

#[doc = include_str!("architecture.md")]
pub mod architecture {}

#[doc = include_str!("detection.md")]
pub mod detection {}

#[doc = include_str!("recovery.md")]
pub mod recovery {}

#[doc = include_str!("configuration.md")]
pub mod configuration {}

#[doc = include_str!("persistence.md")]
pub mod persistence {}

#[doc = include_str!("metrics.md")]
pub mod metrics {}

#[doc = include_str!("slices.md")]
pub mod slices {}

#[doc = include_str!("fleet.md")]
pub mod fleet {}

#[doc = include_str!("quarantine.md")]
pub mod quarantine {}

#[doc = include_str!("serve.md")]
pub mod serve {}

#[doc = include_str!("backtest.md")]
pub mod backtest {}

#[doc = include_str!("performance.md")]
pub mod performance {}

#[doc = include_str!("evidence.md")]
pub mod evidence {}

#[doc = include_str!("limits.md")]
pub mod limits {}

#[cfg(test)]
mod tests {
    /// The README's "One whole service" shows `examples/service.rs`'s wiring, which CI compiles
    /// and runs: the block must be the example's code, line for line.
    #[test]
    fn the_readmes_service_is_the_examples_own_code() {
        let readme = include_str!("../../README.md");
        let example = include_str!("../../examples/service.rs");
        let block = readme
            .split("\n## One whole service\n")
            .nth(1)
            .and_then(|section| section.split("```rust,ignore\n").nth(1))
            .and_then(|rest| rest.split("\n```\n").next())
            .expect("the README has a `rust,ignore` block under \"One whole service\"");
        assert!(block.contains("fn start("), "the block shows `start`:\n{block}");
        assert!(
            example.contains(block),
            "the README's service block is not in examples/service.rs as it stands:\n{block}"
        );
    }
}
