//! When an email that could not be sent is tried again.

use std::time::Duration;

/// What happens to a delivery after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryIn(Duration),
    /// No more attempts: a permanent refusal, or the last allowed attempt failed.
    GiveUp,
}

/// `attempts` counts the attempt that just failed. Retries back off exponentially from `base`, capped at
/// `max`, so a relay that is down is not hammered and one that is back soon gets the mail soon.
pub fn after_failure(
    attempts: u32,
    max_attempts: u32,
    permanent: bool,
    base: Duration,
    max: Duration,
) -> AfterFailure {
    if permanent || attempts >= max_attempts {
        return AfterFailure::GiveUp;
    }
    let exponent = attempts.saturating_sub(1).min(20);
    let delay = base.saturating_mul(1u32 << exponent).min(max);
    AfterFailure::RetryIn(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn backs_off_exponentially_up_to_the_cap() {
        assert_eq!(
            after_failure(1, 5, false, BASE, MAX),
            AfterFailure::RetryIn(Duration::from_secs(1))
        );
        assert_eq!(
            after_failure(2, 5, false, BASE, MAX),
            AfterFailure::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(
            after_failure(4, 5, false, BASE, MAX),
            AfterFailure::RetryIn(Duration::from_secs(8))
        );
        assert_eq!(
            after_failure(4, 50, false, BASE, Duration::from_secs(5)),
            AfterFailure::RetryIn(Duration::from_secs(5))
        );
        assert_eq!(
            after_failure(40, 50, false, BASE, MAX),
            AfterFailure::RetryIn(MAX)
        );
    }

    #[test]
    fn gives_up_on_the_last_attempt_or_a_permanent_refusal() {
        assert_eq!(after_failure(5, 5, false, BASE, MAX), AfterFailure::GiveUp);
        assert_eq!(after_failure(1, 5, true, BASE, MAX), AfterFailure::GiveUp);
        assert_eq!(after_failure(1, 0, false, BASE, MAX), AfterFailure::GiveUp);
    }
}
