//! How fast a release sends a kind: by default no faster than the kind's learned normal rate.

use crate::breaker::Breaker;
use crate::clock::Clock;

/// The slowest default pace, in sends a minute: a kind that learned it sends almost nothing still
/// gets its held notices out within the hour.
const MIN_PER_MINUTE: f64 = 1.0;

/// The kind's learned normal rate in sends a minute: what its minute window expects now (its
/// learned week at this hour, or its recent rate), the pace a release keeps unless the operator's
/// order names one. A kind the breaker has not learned (unknown here, or still warming up) is
/// paced at its minute `floor` per window, the rate at which the breaker never trips any kind.
///
/// The one place a release reads the detector's figures.
pub(crate) fn normal_per_minute<C: Clock>(breaker: &Breaker<C>, kind: &str) -> f64 {
    let config = breaker.config().kind_config(kind);
    let per_window = match breaker.kind_status(kind) {
        Some(status) if status.warmed_up => status.minute().expected,
        _ => config.minute.floor as f64,
    };
    (per_window * 60.0 / config.window_secs as f64).max(MIN_PER_MINUTE)
}

/// The slowest pace an order may set, in sends a minute: one an hour. A slower one (an order
/// stored by an older version) is released at this pace.
pub(crate) const SLOWEST_PER_MINUTE: f64 = 1.0 / 60.0;

/// Milliseconds between two sends at `per_minute`: never more than an hour.
pub(crate) fn interval_ms(per_minute: f64) -> u64 {
    (60_000.0 / per_minute.max(SLOWEST_PER_MINUTE)).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;

    #[test]
    fn an_unlearned_kind_is_paced_at_its_floor_and_never_below_the_minimum() {
        let breaker = Breaker::with_clock(Config::default(), ManualClock::new()).unwrap();
        assert_eq!(normal_per_minute(&breaker, "email.welcome"), 50.0);
        let mut config = Config::default();
        config.defaults.minute.floor = 0;
        breaker.reload(config).unwrap();
        assert_eq!(normal_per_minute(&breaker, "email.welcome"), MIN_PER_MINUTE);
    }

    #[test]
    fn intervals_round_up_and_never_pass_an_hour() {
        assert_eq!(interval_ms(60.0), 1_000);
        assert_eq!(interval_ms(7.0), 8_572);
        assert_eq!(interval_ms(SLOWEST_PER_MINUTE), 3_600_000);
        // An order stored before the slowest pace was enforced.
        assert_eq!(interval_ms(1e-6), 3_600_000);
        assert_eq!(interval_ms(f64::MAX), 1);
    }
}
