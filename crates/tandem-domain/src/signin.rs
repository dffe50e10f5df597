//! Rules of signing in: how many failures lock an account or an address, and for how long.

use crate::Timestamp;

/// Failed attempts counted against one key (an account name or a network address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Failures in the current window.
    pub failures: i64,
    /// When the window began.
    pub window_start: Timestamp,
    /// Locked until this instant, if locked.
    pub locked_until: Option<Timestamp>,
}

/// How strict throttling is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed within the window before locking.
    pub max_failures: i64,
    /// The window, in seconds.
    pub window_secs: i64,
    /// How long a lock lasts, in seconds.
    pub lock_secs: i64,
}

impl ThrottlePolicy {
    /// Per account: five failures in fifteen minutes lock it for fifteen minutes.
    pub const ACCOUNT: ThrottlePolicy = ThrottlePolicy {
        max_failures: 5,
        window_secs: 15 * 60,
        lock_secs: 15 * 60,
    };
    /// Per network address: thirty failures in fifteen minutes, across any accounts.
    pub const ADDRESS: ThrottlePolicy = ThrottlePolicy {
        max_failures: 30,
        window_secs: 15 * 60,
        lock_secs: 15 * 60,
    };

    /// Whether the key is locked at `now`.
    pub fn locked(&self, a: &Attempts, now: Timestamp) -> Option<Timestamp> {
        a.locked_until.filter(|u| *u > now)
    }

    /// The state after one more failure at `now`, and whether this failure caused a lock.
    pub fn fail(&self, a: &Attempts, now: Timestamp) -> (Attempts, bool) {
        let fresh = now.0 - a.window_start.0 >= self.window_secs * Timestamp::SECOND
            || a.locked_until.is_some_and(|u| u <= now);
        let (failures, window_start) = if fresh {
            (1, now)
        } else {
            (a.failures + 1, a.window_start)
        };
        let lock = failures >= self.max_failures;
        let next = Attempts {
            failures,
            window_start,
            locked_until: if lock {
                Some(now.plus_seconds(self.lock_secs))
            } else {
                None
            },
        };
        (next, lock && self.locked(a, now).is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifth_failure_locks_and_the_window_resets() {
        let p = ThrottlePolicy::ACCOUNT;
        let mut a = Attempts::default();
        let t0 = Timestamp(1_000 * Timestamp::SECOND);
        for i in 1..=4 {
            let (n, locked) = p.fail(&a, t0.plus_seconds(i));
            assert!(!locked);
            a = n;
        }
        let (a5, locked) = p.fail(&a, t0.plus_seconds(5));
        assert!(locked);
        assert!(p.locked(&a5, t0.plus_seconds(6)).is_some());
        assert!(p.locked(&a5, t0.plus_seconds(5 + 15 * 60)).is_none());
        // After the lock ends, counting starts again.
        let (after, _) = p.fail(&a5, t0.plus_seconds(5 + 15 * 60));
        assert_eq!(after.failures, 1);
    }
}
