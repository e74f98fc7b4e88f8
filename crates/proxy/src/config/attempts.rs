//! Typed settings for attempts: deadlines, retries, hedging, retry budgets.

use std::time::Duration;

use blastwall_policy::backoff::BackoffConfig;
use blastwall_policy::hedge::ValidHedgeConfig;
use blastwall_policy::retry::{RetryAfter, RetryConfig, RetryOn, RetryPolicy, StatusSet};
use blastwall_policy::timeout::LearnedTimeoutConfig;

/// How a route's requests are attempted.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAttempts {
    /// The longest a request may take in all.
    pub timeout: Option<Duration>,
    /// The longest one attempt against the route's cluster may wait for a response head:
    /// the route's `per_try_timeout`, or else its cluster's `request_timeout` (resolved at
    /// load; the alternate cluster's attempt has its own, see
    /// [`AlternateCluster`](super::fallback::AlternateCluster)).
    pub per_try_timeout: Duration,
    /// When to retry: the policy itself, built (and so checked by the policy crate) at load.
    pub retry: RetryPolicy,
    /// Request bodies up to this many bytes are kept for another attempt.
    pub buffer_limit: u64,
    /// Hedging, if on; checked by the policy crate.
    pub hedge: Option<ValidHedgeConfig>,
    /// `per_try_timeout = "auto"`: the per-try timeout is learned from the route's attempts,
    /// with [`per_try_timeout`](Self::per_try_timeout) as its ceiling.
    pub learned_per_try: Option<LearnedTimeoutConfig>,
}

impl RouteAttempts {
    /// Whether a request may need its body twice (so it is worth keeping).
    pub fn may_repeat(&self) -> bool {
        self.retry.config().max_attempts > 1 || self.hedge.is_some()
    }
}

impl Default for RouteAttempts {
    /// No overall timeout; one retry elsewhere for a request that never reached the
    /// upstream; no hedging.
    fn default() -> Self {
        Self {
            timeout: None,
            per_try_timeout: super::DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::new(RetryConfig {
                max_attempts: 2,
                backoff: BackoffConfig::default(),
                retry_on: RetryOn {
                    connect_failed: true,
                    refused: true,
                    reset: false,
                    timeout: false,
                    statuses: StatusSet::empty(),
                },
                retry_after: DEFAULT_RETRY_AFTER,
                retry_non_idempotent: false,
            })
            .expect("two attempts with the default backoff are a valid retry config"),
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            hedge: None,
            learned_per_try: None,
        }
    }
}

/// How an upstream's `Retry-After` is treated unless the route says otherwise.
pub(crate) const DEFAULT_RETRY_AFTER: RetryAfter = RetryAfter::Honour {
    max: Duration::from_secs(1),
};

/// Request bodies kept for another attempt unless the route says otherwise.
pub(crate) const DEFAULT_BUFFER_LIMIT: u64 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::RouteAttempts;

    #[test]
    fn the_default_attempts_build() {
        assert_eq!(RouteAttempts::default().retry.config().max_attempts, 2);
    }
}
