//! When a failed reward job runs again (SPEC §6.3): exponential backoff with jitter, capped, and
//! a number of attempts after which the job is dead (`failed`) until an operator re-drives it.
//!
//! Pure: the caller supplies the randomness (`jitter_permille`), so the decision is a function of
//! its inputs and tests can pin it.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Claims a job gets in all (`JOB_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The delay after the first failed attempt (`JOB_BACKOFF_BASE_SECONDS`); it doubles after
    /// each further one.
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
}

/// What happens to a job after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Back to `pending`, due after this delay.
    RetryAfter(Duration),
    /// Out of attempts: `failed`.
    Dead,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl RetryPolicy {
    /// Three attempts, 30 s then doubling, at most an hour: the one statement of these defaults
    /// (the environment table's `JOB_MAX_ATTEMPTS` and `JOB_BACKOFF_BASE_SECONDS` name them).
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(30),
        cap: Duration::from_secs(3600),
    };

    /// The decision after attempt number `attempt` (1-based, as counted at claim time) failed
    /// with an error that retrying can fix. `jitter_permille` (0..=1000, clamped) places the delay
    /// between half and all of the exponential step, so that jobs that failed together do not all
    /// come back together.
    pub fn after_failure(&self, attempt: u32, jitter_permille: u32) -> RetryDecision {
        if attempt >= self.max_attempts {
            return RetryDecision::Dead;
        }
        let doublings = attempt.saturating_sub(1).min(30);
        let step = self.base.saturating_mul(1u32 << doublings).min(self.cap);
        let jitter = u128::from(jitter_permille.min(1000));
        let millis = step.as_millis() * (1000 + jitter) / 2000;
        RetryDecision::RetryAfter(Duration::from_millis(
            u64::try_from(millis).unwrap_or(u64::MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn delays_double_between_half_and_all_of_each_step() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: 30 * SECOND,
            cap: 3600 * SECOND,
        };
        assert_eq!(
            policy.after_failure(1, 1000),
            RetryDecision::RetryAfter(30 * SECOND)
        );
        assert_eq!(
            policy.after_failure(1, 0),
            RetryDecision::RetryAfter(15 * SECOND)
        );
        assert_eq!(
            policy.after_failure(2, 1000),
            RetryDecision::RetryAfter(60 * SECOND)
        );
        assert_eq!(
            policy.after_failure(3, 500),
            RetryDecision::RetryAfter(90 * SECOND)
        );
        assert_eq!(
            policy.after_failure(9, 1000),
            RetryDecision::RetryAfter(3600 * SECOND)
        );
    }

    #[test]
    fn the_last_attempt_is_dead() {
        let policy = RetryPolicy::default();
        assert!(matches!(
            policy.after_failure(2, 0),
            RetryDecision::RetryAfter(_)
        ));
        assert_eq!(policy.after_failure(3, 0), RetryDecision::Dead);
        assert_eq!(policy.after_failure(4, 0), RetryDecision::Dead);
    }

    #[test]
    fn huge_attempt_numbers_and_jitter_stay_bounded() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.after_failure(u32::MAX - 1, u32::MAX),
            RetryDecision::RetryAfter(policy.cap)
        );
    }
}
