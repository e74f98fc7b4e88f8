//! Is this failure worth another attempt, and when?
//!
//! A retry helps when a failure was transient and the next attempt may land elsewhere or
//! later; it harms when it repeats a side effect, arrives too late to matter, or piles load on
//! a struggling upstream. So [`RetryPolicy::decide`] answers only after every reason not to
//! retry has been ruled out, in this order:
//!
//! 1. the failure is of a retryable class ([`RetryOn`]), and repeating it is safe: a request
//!    that is not idempotent is retried only if it never reached the upstream
//!    ([`FailureKind::never_processed`]), unless the config says otherwise;
//! 2. attempts remain (`max_attempts` counts the first one);
//! 3. the wait is acceptable: the backoff's delay, or longer if the server sent
//!    `Retry-After` (honoured up to a maximum, see [`RetryAfter`]);
//! 4. the wait ends before the request's overall deadline, with time to spare for the attempt;
//! 5. the cluster's [`RetryBudget`] has a retry to spend; it is withdrawn last, so a retry
//!    refused for any other reason costs nothing.
//!
//! The policy is immutable and shared; the per-request part is a small [`RetryState`]
//! (attempts so far, the [`Backoff`], the deadline), which ends in a final `GiveUp` that later
//! calls repeat. Like every policy here it is sans-IO: the caller passes `now` and its own
//! random number generator, sleeps for the returned delay itself, and deposits one original
//! request into the budget per request.
//!
//! Behind the `tower` feature, `RetryLayer` does that glue for any `Service` whose requests
//! are `Clone`.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::backoff::{Backoff, BackoffConfig, BackoffConfigError};
use crate::budget::RetryBudget;

mod failure;
#[cfg(feature = "tower")]
mod future;
#[cfg(feature = "tower")]
mod layer;
#[cfg(all(test, feature = "tower"))]
mod layer_tests;
#[cfg(test)]
mod tests;

pub use failure::{Failure, FailureKind, InvalidStatusCode, RetryOn, StatusSet};
#[cfg(feature = "tower")]
pub use future::ResponseFuture;
#[cfg(feature = "tower")]
pub use layer::{Retry, RetryLayer};

/// How to treat a server's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Ignore it; wait the backoff.
    Ignore,
    /// Wait at least what the server asked (and at least the backoff). If it asks for more
    /// than `max`, give up, so the response and its header reach the client, which can wait
    /// itself.
    Honour {
        /// The longest wait the server may ask for.
        max: Duration,
    },
    /// Wait what the server asked, but never more than `max` (retrying sooner than asked).
    HonourCapped {
        /// The longest wait.
        max: Duration,
    },
}

impl Default for RetryAfter {
    /// Honour up to 5 seconds.
    fn default() -> Self {
        RetryAfter::Honour {
            max: Duration::from_secs(5),
        }
    }
}

/// Whether repeating a request is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating it is harmless (GET, HEAD, PUT, DELETE, OPTIONS, or an idempotency key).
    Idempotent,
    /// Repeating it may repeat a side effect (POST, PATCH).
    NonIdempotent,
}

/// How a [`RetryPolicy`] behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Attempts in all, counting the first (1 = never retry).
    pub max_attempts: u32,
    /// The waits between attempts.
    pub backoff: BackoffConfig,
    /// Which failures are retryable.
    pub retry_on: RetryOn,
    /// How to treat the server's `Retry-After`.
    pub retry_after: RetryAfter,
    /// Retry non-idempotent requests even after failures that may have reached the upstream.
    pub retry_non_idempotent: bool,
}

impl Default for RetryConfig {
    /// 3 attempts, Envoy's backoff, transport failures and gateway errors, `Retry-After`
    /// honoured up to 5 s, non-idempotent requests only when they never left.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: BackoffConfig::default(),
            retry_on: RetryOn::default(),
            retry_after: RetryAfter::default(),
            retry_non_idempotent: false,
        }
    }
}

/// A [`RetryConfig`] that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum RetryConfigError {
    /// `max_attempts` is zero: not even the first attempt could go.
    #[error("max_attempts must be at least 1 (the first attempt)")]
    ZeroAttempts,
    /// The backoff is invalid.
    #[error(transparent)]
    Backoff(#[from] BackoffConfigError),
}

/// Why a request will not be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GiveUp {
    /// The failure is not of a retryable class.
    #[error("failure is not retryable")]
    NotRetryable,
    /// The request may have reached the upstream and repeating it is not safe.
    #[error("request is not idempotent and may have been processed")]
    NotIdempotent,
    /// Every allowed attempt has been made.
    #[error("all attempts used")]
    AttemptsExhausted,
    /// The server asked for a longer wait than allowed.
    #[error("server asked to retry after {asked:?}, longer than allowed")]
    RetryAfterTooLong {
        /// What the server asked for.
        asked: Duration,
    },
    /// The wait would end at or past the request's deadline.
    #[error("a retry would end past the deadline")]
    DeadlineExceeded,
    /// The cluster's retry budget is spent.
    #[error("retry budget exhausted")]
    BudgetExhausted,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Retry after this delay (a retry has been withdrawn from the budget).
    RetryAfter(Duration),
    /// Do not retry; return the last outcome.
    GiveUp(GiveUp),
}

/// The per-request part of retrying. Make one per request with [`RetryPolicy::start`].
#[derive(Debug, Clone)]
pub struct RetryState {
    /// Attempts made so far, counting the first.
    attempts: u32,
    backoff: Backoff,
    idempotency: Idempotency,
    deadline: Option<Instant>,
    /// Set once: a request that gave up stays given up.
    gave_up: Option<GiveUp>,
}

impl RetryState {
    /// Attempts made (or decided) so far, counting the first.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The request's overall deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Why the request gave up, once it has.
    pub fn gave_up(&self) -> Option<GiveUp> {
        self.gave_up
    }
}

/// Decides whether and when to retry. Immutable and cheap to share (`Arc` it or clone it).
///
/// Made only from a checked [`RetryConfig`], so a caller that builds it once at load (the
/// proxy's config) and clones it afterwards has no failure path left.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    config: RetryConfig,
}

impl RetryPolicy {
    /// A policy, once its config is checked.
    pub fn new(config: RetryConfig) -> Result<Self, RetryConfigError> {
        if config.max_attempts == 0 {
            return Err(RetryConfigError::ZeroAttempts);
        }
        config.backoff.validate()?;
        Ok(Self { config })
    }

    /// The config in force.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The state of a request whose first attempt is going now.
    pub fn start(&self, idempotency: Idempotency, deadline: Option<Instant>) -> RetryState {
        RetryState {
            attempts: 1,
            backoff: Backoff::from_valid(self.config.backoff),
            idempotency,
            deadline,
            gave_up: None,
        }
    }

    /// Whether a failure of this kind may be retried for such a request, attempts, time and
    /// budget aside.
    pub fn classify(&self, kind: FailureKind, idempotency: Idempotency) -> Result<(), GiveUp> {
        if !self.config.retry_on.covers(kind) {
            return Err(GiveUp::NotRetryable);
        }
        let unsafe_to_repeat = idempotency == Idempotency::NonIdempotent
            && !kind.never_processed()
            && !self.config.retry_non_idempotent;
        if unsafe_to_repeat {
            return Err(GiveUp::NotIdempotent);
        }
        Ok(())
    }

    /// After a failed attempt: retry after a delay (withdrawing from `budget`), or give up.
    /// See the module docs for the order of the checks.
    pub fn decide<R: Rng + ?Sized>(
        &self,
        state: &mut RetryState,
        failure: &Failure,
        now: Instant,
        rng: &mut R,
        budget: &RetryBudget,
    ) -> RetryDecision {
        // ## GaveUp => GaveUp
        if let Some(reason) = state.gave_up {
            return RetryDecision::GiveUp(reason);
        }
        match self.evaluate(state, failure, now, rng, budget) {
            // ## Trying => Trying (one more attempt)
            Ok(wait) => {
                state.attempts = state.attempts.saturating_add(1);
                RetryDecision::RetryAfter(wait)
            }
            // ## Trying => GaveUp
            Err(reason) => {
                state.gave_up = Some(reason);
                RetryDecision::GiveUp(reason)
            }
        }
    }

    fn evaluate<R: Rng + ?Sized>(
        &self,
        state: &mut RetryState,
        failure: &Failure,
        now: Instant,
        rng: &mut R,
        budget: &RetryBudget,
    ) -> Result<Duration, GiveUp> {
        self.classify(failure.kind, state.idempotency)?;
        if state.attempts >= self.config.max_attempts {
            return Err(GiveUp::AttemptsExhausted);
        }
        let wait = self.wait(state.backoff.next_delay(rng), failure.retry_after)?;
        if let Some(deadline) = state.deadline {
            // NOTE: a retry that would start at the deadline has no time left to succeed.
            let starts = now.checked_add(wait);
            if starts.is_none_or(|starts| starts >= deadline) {
                return Err(GiveUp::DeadlineExceeded);
            }
        }
        budget
            .withdraw(now)
            .map_err(|_exhausted| GiveUp::BudgetExhausted)?;
        Ok(wait)
    }

    /// The wait before the next attempt, given the backoff's delay and the server's request.
    fn wait(&self, backoff: Duration, asked: Option<Duration>) -> Result<Duration, GiveUp> {
        let Some(asked) = asked else {
            return Ok(backoff);
        };
        match self.config.retry_after {
            RetryAfter::Ignore => Ok(backoff),
            RetryAfter::Honour { max } if asked > max => Err(GiveUp::RetryAfterTooLong { asked }),
            RetryAfter::Honour { .. } => Ok(asked.max(backoff)),
            RetryAfter::HonourCapped { max } => Ok(asked.min(max).max(backoff)),
        }
    }
}
