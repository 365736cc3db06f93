//! The sync script's side of the wire: the script itself (`sync.lua`), the keys of a kind, what a
//! sync sends for it ([`Outgoing`]) and the reply ([`Reply`]).

use std::sync::Arc;

use crate::detect::BUCKETS;

/// The sync script (see `sync.lua` for its arguments and reply).
pub(crate) const SCRIPT: &str = include_str!("sync.lua");

/// Names of one kind's keys; the kind is the hash tag, so a cluster keeps them on one node.
#[derive(Debug)]
pub(crate) struct Keys {
    pub(crate) trip: String,
    pub(crate) probe: String,
    pub(crate) force: String,
    /// Followed by a bucket id (Redis time / bucket length).
    pub(crate) buckets: String,
    /// Followed by an instance id: the instance's running total already counted.
    pub(crate) high_water: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, kind: &str) -> Self {
        let base = format!("{prefix}:{{{kind}}}");
        Self {
            trip: format!("{base}:trip"),
            probe: format!("{base}:probe"),
            force: format!("{base}:force"),
            buckets: format!("{base}:w:"),
            high_water: format!("{base}:hw:"),
        }
    }
}

/// The script's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) now_ms: u64,
    pub(crate) window: u64,
    pub(crate) previous: u64,
    pub(crate) aligned: u64,
    /// Milliseconds the trip key has left: `None` absent, `Some(u64::MAX)` no expiry.
    pub(crate) trip_ms: Option<u64>,
    pub(crate) probe: Probe,
    pub(crate) forced: bool,
}

/// Who may probe a kind whose fleet trip has expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    None,
    Ours,
    Another,
    Done,
}

impl Reply {
    pub(crate) fn parse(values: &[i64]) -> Option<Self> {
        let &[now, window, previous, aligned, pttl, probe, forced] = values else {
            return None;
        };
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Some(Self {
            now_ms: count(now),
            window: count(window),
            previous: count(previous),
            aligned: count(aligned),
            trip_ms: match pttl {
                -2 => None,
                -1 => Some(u64::MAX),
                ms => Some(count(ms)),
            },
            probe: match probe {
                1 => Probe::Ours,
                2 => Probe::Another,
                3 => Probe::Done,
                _ => Probe::None,
            },
            forced: forced == 1,
        })
    }
}

/// What one sync sends for a kind.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The kind's keys: the script call is built from this alone.
    pub(crate) keys: Arc<Keys>,
    pub(crate) threshold: u64,
    /// How long the trip key lives: the cooldown, or, under manual recovery,
    /// [`MANUAL_TRIP_TTL_MS`](super::MANUAL_TRIP_TTL_MS).
    pub(crate) trip_ttl_ms: u64,
    /// The kind is held open here until an operator resets it: the trip key's life starts again.
    pub(crate) keep_trip: bool,
    pub(crate) trip_reason: &'static str,
    pub(crate) probe: u8,
    pub(crate) probe_ttl_ms: u64,
    pub(crate) bucket_ms: u64,
    /// The aligned window of the last sync (-1: none): the script totals the one before the
    /// current only when it is new.
    pub(crate) aligned: i64,
    /// (age in ms, count, running total) triples.
    pub(crate) deltas: Vec<(u64, u64, u64)>,
}

impl Outgoing {
    /// The script's invocation sending this (arguments in the order `sync.lua` reads them).
    pub(crate) fn script_call(&self, hash: &str, id: &str, channel: &str, kind: &str) -> redis::Cmd {
        let mut call = redis::cmd("EVALSHA");
        call.arg(hash)
            .arg(4)
            .arg(&self.keys.trip)
            .arg(&self.keys.probe)
            .arg(&self.keys.force)
            .arg(format!("{}{id}", self.keys.high_water))
            .arg(&self.keys.buckets)
            .arg(self.bucket_ms)
            .arg(BUCKETS)
            .arg(self.threshold)
            .arg(self.trip_ttl_ms)
            .arg(self.trip_reason)
            .arg(self.probe)
            .arg(self.probe_ttl_ms)
            .arg(id)
            .arg(channel)
            .arg(kind)
            .arg(self.aligned)
            .arg(u8::from(self.keep_trip));
        for &(age, count, upto) in &self.deltas {
            call.arg(age).arg(count).arg(upto);
        }
        call
    }
}
