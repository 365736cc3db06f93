//! Synthetic send traffic for tests and examples: deterministic, seeded, and shaped like real
//! notification traffic (daily swing, weekend dip, growth, Poisson noise with bursts).
//!
//! Not part of the library's API: tests use it with
//! `#[path = "../support/mod.rs"] mod support;` in their `main.rs`, examples with
//! `#[path = "../tests/support/mod.rs"] mod support;`.
#![allow(dead_code, unreachable_pub)]

use std::f64::consts::TAU;

pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
pub const DAY_MS: u64 = 24 * HOUR_MS;
pub const WEEK_MS: u64 = 7 * DAY_MS;
/// Monday 1970-01-05 00:00 UTC: the clocks count from the Unix epoch, a Thursday.
pub const MONDAY_MS: u64 = 4 * DAY_MS;

/// A small, fast, seeded generator (splitmix64): the same seed gives the same traffic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (TAU * self.unit()).cos()
    }

    /// A Poisson count with mean `lambda`.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 50.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let limit = (-lambda).exp();
        let mut product = self.unit();
        let mut count = 0;
        while product > limit {
            product *= self.unit();
            count += 1;
        }
        count
    }

    /// A burst factor with mean about 1 and coefficient of variation `cv`, at most 2.5: the most a
    /// kind's ordinary traffic bursts in these tests. Three times what is expected is the least a
    /// minute window trips at (the default `minute.factor`); a burst of 2.5 leaves room for the
    /// counts' own noise, and a kind that bursts further is a kind whose spread is learned wider
    /// (or a spike).
    pub fn burst_factor(&mut self, cv: f64) -> f64 {
        if cv <= 0.0 {
            return 1.0;
        }
        // Log-normal with the same mean and spread: simple and heavy enough on the right.
        let sigma2 = (1.0 + cv * cv).ln();
        (self.normal() * sigma2.sqrt() - sigma2 / 2.0).exp().min(2.5)
    }
}

/// How one kind's normal rate moves over time.
#[derive(Clone, Debug)]
pub struct Profile {
    pub kind: &'static str,
    /// Mean sends a minute at the daily peak, on a weekday, before growth.
    pub peak_per_minute: f64,
    /// Peak over trough of the daily cycle (10.0: a 10x swing).
    pub daily_swing: f64,
    /// Weekend rate as a share of the weekday rate (1.0: no dip).
    pub weekend: f64,
    /// Total growth over `growth_days` (1.5: +50%), compounding smoothly.
    pub growth: f64,
    pub growth_days: f64,
    /// Spread of the 5-minute burst factor (0: plain Poisson).
    pub burst_cv: f64,
    /// A weekly job: (hour of the week from Monday 00:00, minutes it runs, sends a minute).
    pub weekly: Option<(u64, u64, f64)>,
    /// A daily batch: (hour of the day, minutes it runs, sends a minute); not on a holiday.
    pub batch: Option<(u64, u64, f64)>,
    /// A holiday (the day starting at this time): traffic at 0.3x.
    pub holiday_ms: Option<u64>,
    /// From this time on, the users' clocks are an hour ahead (daylight saving): every pattern
    /// comes an hour earlier.
    pub daylight_saving_ms: Option<u64>,
}

impl Profile {
    pub fn steady(kind: &'static str, per_minute: f64) -> Self {
        Self {
            kind,
            peak_per_minute: per_minute,
            daily_swing: 1.0,
            weekend: 1.0,
            growth: 1.0,
            growth_days: 14.0,
            burst_cv: 0.0,
            weekly: None,
            batch: None,
            holiday_ms: None,
            daylight_saving_ms: None,
        }
    }

    pub fn daily(kind: &'static str, peak_per_minute: f64, swing: f64) -> Self {
        Self {
            daily_swing: swing,
            weekend: 0.5,
            burst_cv: 0.3,
            ..Self::steady(kind, peak_per_minute)
        }
    }

    /// Mean sends a minute at `t_ms` (milliseconds since the Unix epoch, in the users' local
    /// time, which is UTC until daylight saving; the daily trough is at 04:00, the peak at 16:00).
    pub fn rate_per_minute(&self, t_ms: u64) -> f64 {
        let local = match self.daylight_saving_ms {
            Some(from) if t_ms >= from => t_ms + HOUR_MS,
            _ => t_ms,
        };
        let weekday = (local / DAY_MS + 3) % 7; // 0: Monday
        let hour = (local % DAY_MS) as f64 / HOUR_MS as f64;
        // log-sinusoid: trough at 04:00, peak at 16:00, peak/trough = daily_swing.
        let phase = ((hour - 4.0) / 24.0 * TAU).cos(); // 1 at the trough, -1 at the peak
        let daily = self.daily_swing.powf(-(phase + 1.0) / 2.0);
        let weekend = if weekday >= 5 { self.weekend } else { 1.0 };
        let growth = self.growth.powf(t_ms as f64 / DAY_MS as f64 / self.growth_days);
        let holiday = self
            .holiday_ms
            .is_some_and(|day| (day..day + DAY_MS).contains(&local));
        let mut rate = self.peak_per_minute * daily * weekend * growth;
        if holiday {
            rate *= 0.3;
        }
        let minute_of_week = (weekday * DAY_MS + local % DAY_MS) / MINUTE_MS;
        if let Some((hour, minutes, per_minute)) = self.weekly {
            if (hour * 60..hour * 60 + minutes).contains(&minute_of_week) {
                rate += per_minute;
            }
        }
        let minute_of_day = (local % DAY_MS) / MINUTE_MS;
        if let Some((hour, minutes, per_minute)) = self.batch {
            if (hour * 60..hour * 60 + minutes).contains(&minute_of_day) && !holiday {
                rate += per_minute;
            }
        }
        rate
    }
}

/// Sends of several kinds, minute by minute, in time order: `(t_ms, kind index)`.
pub struct Traffic {
    profiles: Vec<Profile>,
    rng: Rng,
    bursts: Vec<f64>,
    next_minute: u64,
    end_minute: u64,
    pending: std::vec::IntoIter<(u64, usize)>,
}

impl Traffic {
    pub fn new(profiles: Vec<Profile>, seed: u64, from_ms: u64, to_ms: u64) -> Self {
        let bursts = vec![1.0; profiles.len()];
        Self {
            profiles,
            rng: Rng::new(seed),
            bursts,
            next_minute: from_ms / MINUTE_MS,
            end_minute: to_ms / MINUTE_MS,
            pending: Vec::new().into_iter(),
        }
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    fn fill_minute(&mut self) -> bool {
        if self.next_minute >= self.end_minute {
            return false;
        }
        let start = self.next_minute * MINUTE_MS;
        let mut sends = Vec::new();
        for (index, profile) in self.profiles.iter().enumerate() {
            if self.next_minute % 5 == 0 {
                self.bursts[index] = self.rng.burst_factor(profile.burst_cv);
            }
            let lambda = profile.rate_per_minute(start) * self.bursts[index];
            for _ in 0..self.rng.poisson(lambda) {
                sends.push((start + self.rng.below(MINUTE_MS), index));
            }
        }
        sends.sort_unstable();
        self.pending = sends.into_iter();
        self.next_minute += 1;
        true
    }
}

impl Iterator for Traffic {
    type Item = (u64, usize);

    fn next(&mut self) -> Option<(u64, usize)> {
        loop {
            if let Some(send) = self.pending.next() {
                return Some(send);
            }
            if !self.fill_minute() {
                return None;
            }
        }
    }
}

/// The incident's runaway kind: `examples/incident.rs` and its replay over the wire
/// (`tests/serve/python.rs`) send the same traffic.
pub const INCIDENT_RUNAWAY: &str = "security.2fa_changed";

/// The incident's six kinds, the runaway's ordinary traffic among them.
pub fn incident_profiles() -> Vec<Profile> {
    vec![
        Profile::daily("email.welcome", 300.0, 10.0),
        Profile::daily("sms.login_code", 200.0, 10.0),
        Profile::daily("email.receipt", 120.0, 8.0),
        Profile::daily("push.promo", 40.0, 5.0),
        Profile::daily(INCIDENT_RUNAWAY, 3.0, 6.0),
        Profile::daily("security.password_reset", 1.0, 4.0),
    ]
}

/// `count` sends spaced evenly at `per_second`, from `start_ms`.
pub fn burst(start_ms: u64, count: u64, per_second: f64) -> impl Iterator<Item = u64> {
    (0..count).map(move |i| start_ms + (i as f64 * 1000.0 / per_second) as u64)
}

/// Merges two time-ordered streams of `(t_ms, item)`.
pub fn merge<T>(
    a: impl Iterator<Item = (u64, T)>,
    b: impl Iterator<Item = (u64, T)>,
) -> impl Iterator<Item = (u64, T)> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => {
            if x.0 <= y.0 {
                a.next()
            } else {
                b.next()
            }
        }
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// The send times of one minute at a Poisson `rate` a minute, sorted.
pub fn minute_of_sends(rng: &mut Rng, minute: u64, rate: f64) -> Vec<u64> {
    let mut times: Vec<u64> = (0..rng.poisson(rate))
        .map(|_| minute * MINUTE_MS + rng.below(MINUTE_MS))
        .collect();
    times.sort_unstable();
    times
}

/// Poisson sends at a rate that follows `per_minute(t_ms)`, minute by minute from `from_ms` to
/// `to_ms`, in time order: a new kind appearing (a constant rate from its first minute), a slow
/// ramp (an exponential rate), or any other curve.
pub fn poisson_sends(
    per_minute: impl Fn(u64) -> f64,
    seed: u64,
    from_ms: u64,
    to_ms: u64,
) -> impl Iterator<Item = u64> {
    let mut rng = Rng::new(seed);
    let mut minute_start = from_ms;
    let mut pending: Vec<u64> = Vec::new();
    std::iter::from_fn(move || {
        while pending.is_empty() {
            if minute_start >= to_ms {
                return None;
            }
            let span = MINUTE_MS.min(to_ms - minute_start);
            let lambda = per_minute(minute_start) * span as f64 / MINUTE_MS as f64;
            pending.extend((0..rng.poisson(lambda)).map(|_| minute_start + rng.below(span)));
            // Newest last, taken from the back: sorted descending.
            pending.sort_unstable_by(|a, b| b.cmp(a));
            minute_start += span;
        }
        pending.pop()
    })
}

/// A slow ramp: `normal_per_minute` at `start_ms`, multiplied by `growth` every `every_ms`.
pub fn ramp_rate(start_ms: u64, normal_per_minute: f64, growth: f64, every_ms: u64) -> impl Fn(u64) -> f64 {
    move |t_ms| normal_per_minute * growth.powf(t_ms.saturating_sub(start_ms) as f64 / every_ms as f64)
}

/// Tags each item of a time-ordered stream with `tag`, for [`merge`].
pub fn tagged<T: Copy>(times: impl Iterator<Item = u64>, tag: T) -> impl Iterator<Item = (u64, T)> {
    times.map(move |t| (t, tag))
}
