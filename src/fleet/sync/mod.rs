//! One kind's side of a fleet sync: the counts not yet sent, the fleet-wide learned baseline, and
//! what a reply from Redis asks of the local kind. Clock-free: times are passed in.

mod normal;
mod script;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::{KindSettings, Recovery};
use crate::detect::BUCKETS;
use crate::observe::KindStatus;
use crate::state::{Reason, State};
use normal::FleetNormal;
pub(crate) use script::{Keys, Outgoing, Probe, Reply, SCRIPT};

/// How long a fleet trip key lives under manual recovery, from the last sync of an instance that
/// holds the kind open: a week. Such a trip lasts until an operator resets it, and every instance
/// holding it open starts the key's week again at each sync; the week only runs out once none
/// does (their kinds evicted, or the instances gone), so that a key no instance can reset any
/// more does not stay in Redis, and open the kind on every instance that joins, for ever.
pub(crate) const MANUAL_TRIP_TTL_MS: u64 = 7 * 24 * 3_600_000;

/// What a reply asks of the local kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Open (or keep open) for at least this long.
    HoldOpen(u64),
    /// The fleet's operator forced the kind open.
    ForceOpen,
    /// The fleet's operator force was lifted: reset.
    Reset,
}

/// One kind's fleet state on this instance.
#[derive(Debug)]
pub(crate) struct KindSync {
    pub(crate) keys: Arc<Keys>,
    /// The kind's attempted total already recorded as deltas (sent or pending).
    recorded: u64,
    /// Deltas not yet sent: (local time, count, running total), at most one per local bucket.
    pending: VecDeque<(u64, u64, u64)>,
    /// Learned from fleet-wide window totals.
    normal: FleetNormal,
    aligned: Option<u64>,
    /// The aligned window in progress saw no trip, local or fleet-wide.
    clean: bool,
    /// Trips of the local kind already looked at for broadcast.
    trips_seen: u64,
    /// This instance holds the probe for the kind.
    probing: bool,
    /// The fleet's operator forced the kind open here.
    pub(crate) fleet_forced: bool,
    /// Keep syncing the kind until then (local ms), though it sends nothing.
    active_until: u64,
    pub(crate) window: u64,
    pub(crate) threshold: u64,
    pub(crate) last_redis_ms: Option<u64>,
    bucket_ms: u64,
}

impl KindSync {
    /// A kind new to fleet mode: every attempt and trip of it is the fleet's business.
    pub(crate) fn new(keys: Keys, settings: &KindSettings) -> Self {
        Self {
            keys: Arc::new(keys),
            recorded: 0,
            pending: VecDeque::new(),
            normal: FleetNormal::default(),
            aligned: None,
            clean: true,
            trips_seen: 0,
            probing: false,
            fleet_forced: false,
            active_until: 0,
            window: 0,
            threshold: FleetNormal::default().threshold(&settings.policy),
            last_redis_ms: None,
            bucket_ms: settings.policy.bucket_ms,
        }
    }

    /// A kind that was already counting when fleet mode started: its attempts and trips so far
    /// are not the fleet's business.
    pub(crate) fn joined(keys: Keys, status: &KindStatus, settings: &KindSettings) -> Self {
        Self {
            recorded: status.attempted,
            trips_seen: status.trips,
            ..Self::new(keys, settings)
        }
    }

    /// Takes the kind's new attempts as a pending delta, dropping deltas too old to matter to any
    /// window the fleet still reads (the sliding one and the last aligned one).
    pub(crate) fn record(&mut self, status: &KindStatus, settings: &KindSettings, now: u64) {
        let delta = status.attempted.saturating_sub(self.recorded);
        self.recorded = status.attempted;
        let policy = &settings.policy;
        let bucket_ms = policy.bucket_ms;
        self.bucket_ms = bucket_ms;
        if delta > 0 {
            self.active_until = now.saturating_add(2 * policy.window_ms());
            match self.pending.back_mut() {
                Some((at, count, upto)) if now / bucket_ms == *at / bucket_ms => {
                    *count += delta;
                    *upto = status.attempted;
                }
                _ => self.pending.push_back((now, delta, status.attempted)),
            }
        }
        let horizon = now.saturating_sub(2 * policy.window_ms());
        while self.pending.front().is_some_and(|&(at, _, _)| at < horizon) {
            self.pending.pop_front();
        }
    }

    /// Counts recorded and not yet sent.
    pub(crate) fn unsent(&self) -> u64 {
        self.pending.iter().map(|&(_, count, _)| count).sum()
    }

    /// Whether the kind needs this sync: it sent, or it is (or was lately) busy or held.
    pub(crate) fn due(&self, status: &KindStatus, now: u64) -> bool {
        !self.pending.is_empty()
            || now < self.active_until
            || status.state != State::Closed
            || self.probing
            || self.fleet_forced
    }

    pub(crate) fn outgoing(
        &self,
        status: &KindStatus,
        settings: &KindSettings,
        now: u64,
        interval_ms: u64,
    ) -> Outgoing {
        // A kind in dry-run blocks nothing here, and must not make the fleet block either.
        let new_trip = status.trips > self.trips_seen && status.state == State::Open && !status.dry_run;
        let trip_reason = match status.reason {
            Reason::Spike | Reason::Ceiling | Reason::Warmup | Reason::ProbeFailed if new_trip => {
                status.reason.as_str()
            }
            _ => "",
        };
        let auto = settings.recovery == Recovery::Auto;
        let probe = if status.state == State::Open && !status.forced && auto {
            1
        } else if self.probing && status.state == State::Closed {
            2
        } else {
            0
        };
        Outgoing {
            keys: Arc::clone(&self.keys),
            threshold: if status.forced || status.dry_run {
                0
            } else {
                self.threshold
            },
            trip_ttl_ms: if auto {
                settings.cooldown_ms.max(1)
            } else {
                MANUAL_TRIP_TTL_MS
            },
            keep_trip: !auto && status.state == State::Open && !status.forced && !status.dry_run,
            trip_reason,
            probe,
            probe_ttl_ms: settings.probe_ms.max(4 * interval_ms),
            bucket_ms: settings.policy.bucket_ms,
            aligned: self.aligned.and_then(|a| i64::try_from(a).ok()).unwrap_or(-1),
            deltas: self
                .pending
                .iter()
                .map(|&(at, count, upto)| (now.saturating_sub(at), count, upto))
                .collect(),
        }
    }

    /// The sync went through: forget what was sent, learn, and say what the local kind must do.
    pub(crate) fn apply(
        &mut self,
        status: &KindStatus,
        settings: &KindSettings,
        sent: &Outgoing,
        reply: Reply,
        interval_ms: u64,
    ) -> Vec<Action> {
        self.pending.clear();
        self.trips_seen = status.trips;
        self.last_redis_ms = Some(reply.now_ms);
        if sent.probe == 2 {
            self.probing = false;
        }
        if self.aligned.is_some_and(|seen| reply.aligned > seen) {
            if self.aligned == Some(reply.aligned - 1) && self.clean && settings.policy.learns {
                self.normal.learn(reply.previous, &settings.policy);
            }
            self.clean = true;
        }
        self.aligned = Some(reply.aligned);
        if status.state != State::Closed || status.forced || reply.trip_ms.is_some() {
            self.clean = false;
        }
        self.window = reply.window;
        self.threshold = self.normal.threshold(&settings.policy);

        let mut actions = Vec::new();
        if reply.forced && !self.fleet_forced {
            self.fleet_forced = true;
            actions.push(Action::ForceOpen);
        } else if !reply.forced && self.fleet_forced {
            self.fleet_forced = false;
            actions.push(Action::Reset);
        }
        // Kept open a little past the trip key, so that the first sync after it expires can
        // settle who probes before anyone goes half-open.
        let margin = 2 * interval_ms;
        match (reply.trip_ms, reply.probe) {
            (Some(ms), _) => actions.push(Action::HoldOpen(ms.saturating_add(margin))),
            (None, Probe::Ours) => self.probing = true,
            (None, Probe::Another) if status.state == State::Open => actions.push(Action::HoldOpen(margin)),
            _ => {}
        }
        actions
    }

    /// A pub/sub reset: the fleet's operator lifted everything on the kind.
    pub(crate) fn on_reset(&mut self) {
        self.fleet_forced = false;
        self.probing = false;
        self.clean = false;
    }

    /// Bucket keys of the last two windows, as of the last sync (for a fleet-wide reset).
    pub(crate) fn recent_bucket_keys(&self) -> Vec<String> {
        let Some(now) = self.last_redis_ms else {
            return Vec::new();
        };
        let current = now / self.bucket_ms;
        (current.saturating_sub(2 * BUCKETS as u64)..=current + 1)
            .map(|b| format!("{}{b}", self.keys.buckets))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KindConfig;

    /// A closed kind that has seen `attempted` sends.
    fn view(attempted: u64) -> KindStatus {
        KindStatus {
            attempted,
            allowed: attempted,
            ..KindStatus::for_tests("k")
        }
    }

    fn defaults() -> KindSettings {
        KindConfig::default().compile("defaults").unwrap()
    }

    #[test]
    fn deltas_coalesce_per_bucket_and_expire_after_two_windows() {
        let settings = defaults();
        let mut sync = KindSync::joined(Keys::new("p", "k"), &view(7), &settings);
        sync.record(&view(10), &settings, 0);
        sync.record(&view(15), &settings, 1_000); // same 5 s bucket
        sync.record(&view(16), &settings, 6_000);
        assert_eq!(sync.unsent(), 9);
        assert_eq!(sync.pending.len(), 2);
        let out = sync.outgoing(&view(16), &settings, 6_500, 250);
        assert_eq!(out.deltas, vec![(6_500, 8, 15), (500, 1, 16)]);
        sync.record(&view(16), &settings, 120_001);
        assert_eq!(sync.unsent(), 1, "the first bucket is older than two windows");
    }

    #[test]
    fn the_fleet_baseline_learns_clean_completed_windows_only() {
        let settings = KindConfig {
            warmup_secs: 180,
            ..KindConfig::default()
        }
        .compile("defaults")
        .unwrap();
        let view = view(0);
        let mut sync = KindSync::new(Keys::new("p", "k"), &settings);
        assert_eq!(
            sync.threshold, 500,
            "warm-up ceiling until three windows are learned"
        );
        let out = sync.outgoing(&view, &settings, 0, 250);
        let reply = |aligned: i64, previous: i64, pttl: i64| {
            Reply::parse(&[0, 0, previous, aligned, pttl, 0, 0]).unwrap()
        };
        sync.apply(&view, &settings, &out, reply(10, 0, -2), 250);
        // A window that saw the fleet tripped is not learned.
        sync.apply(&view, &settings, &out, reply(10, 0, 5_000), 250);
        sync.apply(&view, &settings, &out, reply(11, 10_000, -2), 250);
        assert_eq!(sync.normal.windows, 0);
        for aligned in 12..15 {
            sync.apply(&view, &settings, &out, reply(aligned, 50, -2), 250);
        }
        assert_eq!(sync.normal.windows, 3);
        assert_eq!(sync.threshold, 150, "factor 3 over a learned 50");
    }

    #[test]
    fn a_local_trip_is_broadcast_once_and_never_from_dry_run() {
        let settings = defaults();
        let mut sync = KindSync::new(Keys::new("p", "k"), &settings);
        let tripped = KindStatus {
            state: State::Open,
            reason: Reason::Spike,
            trips: 1,
            ..view(0)
        };
        let out = sync.outgoing(&tripped, &settings, 0, 250);
        assert_eq!(out.trip_reason, "spike");
        let dry = KindStatus {
            dry_run: true,
            ..tripped.clone()
        };
        assert_eq!(sync.outgoing(&dry, &settings, 0, 250).trip_reason, "");
        let reply = Reply::parse(&[0, 0, 0, 0, -2, 0, 0]).unwrap();
        sync.apply(&tripped, &settings, &out, reply, 250);
        assert_eq!(
            sync.outgoing(&tripped, &settings, 0, 250).trip_reason,
            "",
            "already told"
        );
        let by_fleet = KindStatus {
            reason: Reason::Fleet,
            trips: 2,
            ..tripped
        };
        assert_eq!(sync.outgoing(&by_fleet, &settings, 0, 250).trip_reason, "");
    }

    #[test]
    fn keys_share_the_kind_as_hash_tag() {
        let keys = Keys::new("sb", "email.welcome");
        assert_eq!(keys.trip, "sb:{email.welcome}:trip");
        assert_eq!(keys.buckets, "sb:{email.welcome}:w:");
    }

    #[test]
    fn a_reply_with_a_trip_holds_the_kind_open_past_the_key() {
        let settings = defaults();
        let mut sync = KindSync::new(Keys::new("p", "k"), &settings);
        let out = sync.outgoing(&view(0), &settings, 0, 250);
        let reply = Reply::parse(&[1_000, 5, 0, 0, 3_000, 0, 0]).unwrap();
        assert_eq!(
            sync.apply(&view(0), &settings, &out, reply, 250),
            vec![Action::HoldOpen(3_500)]
        );
        let forced = Reply::parse(&[1_000, 5, 0, 0, -2, 0, 1]).unwrap();
        assert_eq!(
            sync.apply(&view(0), &settings, &out, forced, 250),
            vec![Action::ForceOpen]
        );
        let lifted = Reply::parse(&[1_000, 5, 0, 0, -2, 0, 0]).unwrap();
        assert_eq!(
            sync.apply(&view(0), &settings, &out, lifted, 250),
            vec![Action::Reset]
        );
        assert_eq!(Reply::parse(&[1, 2]), None);
    }

    #[test]
    fn a_kind_new_to_fleet_mode_broadcasts_a_trip_it_had_before_its_first_sync() {
        let settings = defaults();
        let tripped = KindStatus {
            state: State::Open,
            reason: Reason::Spike,
            trips: 1,
            ..view(1_500)
        };
        let mut fresh = KindSync::new(Keys::new("p", "k"), &settings);
        fresh.record(&tripped, &settings, 0);
        assert_eq!(fresh.unsent(), 1_500);
        assert_eq!(fresh.outgoing(&tripped, &settings, 0, 250).trip_reason, "spike");
        let mut joined = KindSync::joined(Keys::new("p", "k"), &tripped, &settings);
        joined.record(&tripped, &settings, 0);
        assert_eq!(joined.unsent(), 0, "counted before fleet mode started");
        assert_eq!(joined.outgoing(&tripped, &settings, 0, 250).trip_reason, "");
    }
}
