//! Capped exponential backoff with jitter, for retries and reconnects.

use std::time::Duration;

/// Retry delays: `initial * 2^n`, capped at `max`, each multiplied by a random factor in
/// `[1 - jitter, 1]` so that many clients do not retry in lockstep.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The first delay. Default 100 ms.
    pub initial: Duration,
    /// The largest delay. Default 5 s.
    pub max: Duration,
    /// Fraction of each delay that is randomised, 0..=1. Default 0.5.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2f64.powi(attempt.min(30) as i32);
        let base = self.initial.as_secs_f64() * factor;
        let capped = base.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * (1.0 - jitter * fastrand::f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_is_capped_and_jittered_within_bounds() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            jitter: 0.5,
        };
        for attempt in 0..40 {
            let expected = (0.1 * 2f64.powi(attempt.min(30) as i32)).min(2.0);
            for _ in 0..20 {
                let d = b.delay(attempt).as_secs_f64();
                assert!(
                    d <= expected + 1e-9 && d >= expected * 0.5 - 1e-9,
                    "attempt {attempt}: {d}"
                );
            }
        }
        let fixed = Backoff { jitter: 0.0, ..b };
        assert_eq!(fixed.delay(0), Duration::from_millis(100));
        assert_eq!(fixed.delay(3), Duration::from_millis(800));
        assert_eq!(fixed.delay(10), Duration::from_secs(2));
    }
}
