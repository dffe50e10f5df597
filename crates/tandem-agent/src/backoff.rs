//! Retry timing: exponential backoff with full jitter, and jittered intervals.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter: after the n-th consecutive failure, wait a
/// random time between zero and `min(cap, base × 2ⁿ)`. A server's `Retry-After` is a
/// floor.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// The agent's delivery backoff: 1 s doubling to a 5 minute cap.
    pub fn delivery() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }

    /// A backoff between `base` and `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The longest wait this backoff gives.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let jittered = ceiling.mul_f64(rand::thread_rng().gen_range(0.0..=1.0));
        retry_after.map_or(jittered, |floor| jittered.max(floor))
    }

    /// The upper bound of the next wait.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Records a success: the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `interval` moved randomly by up to ±`fraction` (0.1 for ±10 %), so that agents started
/// together drift apart.
pub fn jittered(interval: Duration, fraction: f64) -> Duration {
    let factor = rand::thread_rng().gen_range((1.0 - fraction)..=(1.0 + fraction));
    interval.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_to_the_cap_and_resets() {
        let mut backoff = Backoff::delivery();
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            ceilings.push(backoff.ceiling().as_secs());
            let delay = backoff.next_delay(None);
            assert!(delay <= Duration::from_secs(300));
        }
        assert_eq!(&ceilings[..10], [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_secs(1));
        for _ in 0..100 {
            backoff.next_delay(None);
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(300), "no overflow");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut backoff = Backoff::delivery();
        let delay = backoff.next_delay(Some(Duration::from_secs(120)));
        assert!(delay >= Duration::from_secs(120));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(60), 0.1);
            assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66));
        }
    }
}
