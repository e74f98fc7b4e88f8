//! What each attempt says of its endpoint, recorded once: the counters and the latency
//! estimate when its head comes, then the verdict (outlier detection, the endpoint's
//! breaker), at once or, for a success whose body still streams, when the body ends.
//!
//! A head that says success is not yet a success: the body may still break off (see
//! `forward::answer`). Judging at the body's end is what lets outlier detection and the
//! breakers see an endpoint that starts every answer and finishes none.

use std::time::{Duration, Instant};

use super::Cluster;
use super::breakers::breaker_outcome;
use super::outliers::outlier_outcome;
use crate::endpoint::EndpointGuard;
use crate::outcome::{AttemptOutcome, BodyFailure};

impl Cluster {
    /// Records one attempt's outcome against its endpoint: latency estimate, counters, the
    /// endpoint's breaker (on the permit the pick took) and outlier detection.
    pub(crate) fn record_outcome(
        &self,
        guard: &EndpointGuard,
        outcome: AttemptOutcome,
        latency: Duration,
        now: Instant,
    ) {
        self.record_head(guard, outcome, latency, now);
        self.judge(guard, outcome, latency, now);
    }

    /// Records an attempt whose head said success and whose body is still coming: its
    /// counters and latency now, and what it says of the endpoint only when the body has
    /// ended ([`Cluster::record_body_end`]). The endpoint's breaker permit stays with the
    /// guard until then: the attempt has not succeeded before its body arrived.
    pub(crate) fn record_streaming_head(
        &self,
        guard: &EndpointGuard,
        latency: Duration,
        now: Instant,
    ) {
        self.record_head(guard, AttemptOutcome::Success, latency, now);
    }

    /// Judges an attempt recorded with [`Cluster::record_streaming_head`] once its body
    /// ended: whole, or failed by the endpoint (`latency` is still the time to the head).
    /// A body the client dropped is never recorded (the permit's drop ignores it). Returns
    /// the attempt's outcome, for the cluster's breaker.
    pub(crate) fn record_body_end(
        &self,
        guard: &EndpointGuard,
        ended: Result<(), BodyFailure>,
        latency: Duration,
        now: Instant,
    ) -> AttemptOutcome {
        let outcome = match ended {
            Ok(()) => AttemptOutcome::Success,
            Err(failure) => {
                self.stats.attempt_failures.increment();
                self.stats.attempt_body_failures.increment();
                AttemptOutcome::BodyFailed(failure)
            }
        };
        self.judge(guard, outcome, latency, now);
        outcome
    }

    /// The counters and the latency estimate of an attempt whose head came (or that failed).
    fn record_head(
        &self,
        guard: &EndpointGuard,
        outcome: AttemptOutcome,
        latency: Duration,
        now: Instant,
    ) {
        let endpoint = guard.endpoint();
        if endpoint.watches_stalls() && super::stalls::answered(outcome) {
            self.heard_from(endpoint, Some(latency), now);
        }
        self.stats.attempts.increment();
        self.stats.attempt_duration.observe(latency);
        if outcome.is_failure() {
            self.stats.attempt_failures.increment();
            endpoint.latency().observe_failure(latency, now);
        } else if let AttemptOutcome::Overloaded { .. } = outcome {
            self.stats.overloaded.increment();
            endpoint.latency().observe(latency, now);
        } else if !outcome.says_nothing() {
            endpoint.latency().observe(latency, now);
            if outcome == AttemptOutcome::Success {
                endpoint.note_success(latency, now);
            }
        }
    }

    /// What the attempt says of its endpoint: outlier detection, and its breaker's permit.
    fn judge(
        &self,
        guard: &EndpointGuard,
        outcome: AttemptOutcome,
        latency: Duration,
        now: Instant,
    ) {
        let endpoint = guard.endpoint();
        // Outlier detection first: the cap it judges by counts this endpoint as serving,
        // as it was when the attempt was sent, even if this outcome trips its breaker.
        if let Some(outliers) = &self.passive.outliers
            && let Some(outcome) = outlier_outcome(outcome)
            && !self.is_retired()
        {
            // Brings the cap up to date if health or breakers changed since the last pick.
            drop(self.routing());
            outliers.record(endpoint.address(), outcome, latency, now, |ids, event| {
                self.apply_outlier_event(ids, event);
            });
        }
        if let Some(permit) = guard.take_permit() {
            let tripped = endpoint.is_tripped();
            permit.record(breaker_outcome(outcome), now);
            if endpoint.is_tripped() != tripped {
                // Less capacity: outlier detection may have to let others back at once.
                self.fit_ejection_cap(now);
            }
        }
    }
}
