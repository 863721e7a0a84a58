//! Retry delays: exponential in the attempt number with jitter, so a burst of
//! failures does not come back as a burst. The delay is added to the database's
//! clock when the retry is stored, so it survives restarts.

use std::time::Duration;

/// Base of the exponential.
const BASE_SECONDS: f64 = 1.0;
/// Longest delay between attempts.
const CAP_SECONDS: f64 = 6.0 * 3600.0;

/// The nominal delay after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s, … capped at 6 h.
pub fn nominal(attempt: i32) -> Duration {
    let exp = (attempt.max(1) - 1).min(30);
    Duration::from_secs_f64((BASE_SECONDS * 2f64.powi(exp)).min(CAP_SECONDS))
}

/// The delay actually used: the nominal delay plus up to 10% jitter.
/// `unit` is a uniform sample in `[0, 1)`.
pub fn with_jitter(attempt: i32, unit: f64) -> Duration {
    let nominal = nominal(attempt);
    nominal + nominal.mul_f64(0.1 * unit.clamp(0.0, 1.0))
}

/// Bounds a stored delay must fall in, for tests and operators: `[nominal, nominal × 1.1]`.
pub fn bounds(attempt: i32) -> (Duration, Duration) {
    let nominal = nominal(attempt);
    (nominal, nominal.mul_f64(1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_are_capped() {
        assert_eq!(nominal(1), Duration::from_secs(1));
        assert_eq!(nominal(2), Duration::from_secs(2));
        assert_eq!(nominal(5), Duration::from_secs(16));
        assert_eq!(nominal(40), Duration::from_secs(6 * 3600));
        let (lo, hi) = bounds(3);
        assert!(with_jitter(3, 0.0) >= lo && with_jitter(3, 0.999) <= hi);
    }
}
