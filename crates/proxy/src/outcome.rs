//! What one attempt came to, in the terms every judge of an endpoint uses.
//!
//! An attempt can also end by the client's doing: its own deadline ran out, it stopped
//! sending its body, or its body failed (it left). Those are classified where they are
//! seen, in the attempt ([`ClientCause`]), and every judge reads them as saying nothing
//! about the endpoint: otherwise any client could open a breaker, eject an endpoint or skew
//! the latency estimate for everyone with a header or a slow upload.
//!
//! An attempt whose head said success is not judged until its body has arrived: an endpoint
//! that starts its answers and never finishes them ([`AttemptOutcome::BodyFailed`]) fails
//! like one answering 502. Only the upstream's own body errors count: a client that stops
//! reading or leaves drops the body, which says nothing.

use std::time::Duration;

use blastwall_policy::retry::FailureKind;
use http::StatusCode;

/// What one attempt against one endpoint came to.
///
/// Breakers, outlier detection, adaptive limits and retries all read this one value, so they
/// cannot disagree on what a response meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    /// A response that shows the endpoint working: 1xx–4xx except 429, and 5xx the
    /// upstream's application chose that are not gateway errors or overload (see
    /// [`AttemptOutcome::ServerError`]).
    Success,
    /// The endpoint said it is saturated (503 or 429, with or without `Retry-After`). Not a
    /// failure of the endpoint: it must never be ejected or tripped for this, only sent less.
    Overloaded {
        /// The endpoint's `Retry-After`, as a delay.
        retry_after: Option<Duration>,
    },
    /// A 503 without `Retry-After` from an endpoint that has served nothing for a while
    /// ([`broken_503`]): not a busy endpoint shedding some of its load but a broken one
    /// refusing all of it. A failure, like a gateway error.
    Unavailable,
    /// A 5xx other than 502, 503 and 504 (the application failed).
    ServerError(StatusCode),
    /// 502 or 504 from the endpoint (something behind it failed).
    GatewayError(StatusCode),
    /// No connection could be made; the request never left.
    ConnectFailed,
    /// The endpoint refused the request before processing it (HTTP/2 `REFUSED_STREAM`).
    Refused,
    /// The connection or stream failed after the request was sent.
    Reset,
    /// No response head within the attempt's timeout.
    Timeout,
    /// The head came, but the body broke off before its end (see [`BodyFailure`]).
    BodyFailed(BodyFailure),
    /// The attempt was abandoned by the proxy (the client left, a hedge won): says nothing
    /// about the endpoint.
    Cancelled,
    /// The client ended the attempt (see [`ClientCause`]): says nothing about the endpoint,
    /// neither its health nor its latency, and is not retried.
    ClientCaused(ClientCause),
}

/// A busy endpoint serves nothing for at least this long before its 503s say broken; and
/// at least [`BROKEN_AFTER_LATENCIES`] times its usual latency.
pub(crate) const BROKEN_AFTER: Duration = Duration::from_millis(250);
/// See [`BROKEN_AFTER`].
pub(crate) const BROKEN_AFTER_LATENCIES: u32 = 4;

/// Whether a 503 says the endpoint is broken (true) rather than busy (false).
///
/// A 503 means "busy" or "broken", and the two call for opposite answers: a busy endpoint
/// must be sent less (ejecting it moves its load onto the others until none is left), a
/// broken one must be stopped and its callers answered by a fallback at once (retrying it
/// only multiplies the load). What tells them apart is whether the endpoint still serves:
/// a busy one refuses the requests beyond its capacity and answers the rest, so successes
/// keep coming between its 503s; a broken one answers nothing well. So a 503 is broken
/// when the endpoint has answered nothing successfully for [`BROKEN_AFTER`] and
/// [`BROKEN_AFTER_LATENCIES`] times its successes' usual latency (a slow service's
/// successes are far apart; failures do not count, which the balancer's estimate
/// penalises), and busy otherwise; a `Retry-After` with a delay always says busy (the
/// endpoint said so).
///
/// The proxy cannot see another proxy's successes: behind many proxies that each send
/// little, a busy endpoint is best told with `Retry-After` (or 429), which never trips.
/// And an endpoint that still answers now and then is busy by this rule, however much it
/// refuses (one success every 200 ms keeps its 503s busy): that is what a small capacity
/// looks like, and a learnt capacity (`cluster::capacity`) then sends it only what it
/// takes.
pub(crate) fn broken_503(
    retry_after: Option<Duration>,
    serving_nothing_for: Duration,
    success_latency: Duration,
) -> bool {
    // A Retry-After of no delay (0, or a date already past) asks for nothing: it does not
    // say busy, or a broken service whose error page always carries one would never trip.
    retry_after.is_none_or(|delay| delay.is_zero())
        && serving_nothing_for >= BROKEN_AFTER
        && serving_nothing_for >= success_latency.saturating_mul(BROKEN_AFTER_LATENCIES)
}

/// How a client, not the endpoint, ended an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientCause {
    /// The caller's own deadline (its deadline header, shorter than the route's time) ran
    /// out before the endpoint answered.
    Deadline,
    /// The client had not sent its request body when the attempt's time ran out: the
    /// endpoint was waiting for the client.
    SlowBody,
    /// The client's request body failed while it was being sent (the client left, or sent
    /// more than it may).
    BodyFailed,
}

/// How an endpoint's response body failed after a head that said success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFailure {
    /// Nothing more came for the cluster's `body_read_timeout` while the proxy waited on it
    /// (`upstream::BodyStalled`).
    Stalled,
    /// It ended short: the connection closed before the length promised or the last chunk,
    /// the chunked framing was malformed, or the HTTP/2 stream or connection was reset.
    Broken,
}

impl AttemptOutcome {
    /// The outcome of a response with this status.
    pub(crate) fn of_status(status: StatusCode, retry_after: Option<Duration>) -> Self {
        match status.as_u16() {
            429 | 503 => AttemptOutcome::Overloaded { retry_after },
            502 | 504 => AttemptOutcome::GatewayError(status),
            500..=599 => AttemptOutcome::ServerError(status),
            _ => AttemptOutcome::Success,
        }
    }

    /// A 503's outcome, busy or broken (see [`broken_503`]).
    pub(crate) fn of_503(
        retry_after: Option<Duration>,
        serving_nothing_for: Duration,
        success_latency: Duration,
    ) -> Self {
        if broken_503(retry_after, serving_nothing_for, success_latency) {
            AttemptOutcome::Unavailable
        } else {
            AttemptOutcome::Overloaded { retry_after }
        }
    }

    /// The outcome of a send that failed with `kind`.
    pub(crate) fn of_failure(kind: FailureKind) -> Self {
        match kind {
            FailureKind::ConnectFailed => AttemptOutcome::ConnectFailed,
            FailureKind::Refused => AttemptOutcome::Refused,
            FailureKind::Timeout => AttemptOutcome::Timeout,
            FailureKind::Reset | FailureKind::Status(_) | FailureKind::Other => {
                AttemptOutcome::Reset
            }
        }
    }

    /// Whether the endpoint failed (counts against it in breakers and outlier detection).
    /// Overload, cancellation and what the client caused do not.
    pub(crate) fn is_failure(self) -> bool {
        !matches!(
            self,
            AttemptOutcome::Success
                | AttemptOutcome::Overloaded { .. }
                | AttemptOutcome::Cancelled
                | AttemptOutcome::ClientCaused(_)
        )
    }

    /// Whether it tells nothing about the endpoint: it must not be recorded as the
    /// endpoint's failure, success or latency.
    pub(crate) fn says_nothing(self) -> bool {
        matches!(
            self,
            AttemptOutcome::Cancelled | AttemptOutcome::ClientCaused(_)
        )
    }

    /// The same outcome as the retry policy's failure kind, `None` for success.
    #[cfg(test)]
    pub(crate) fn failure_kind(self) -> Option<FailureKind> {
        match self {
            AttemptOutcome::Success
            | AttemptOutcome::Cancelled
            | AttemptOutcome::ClientCaused(_) => None,
            AttemptOutcome::Overloaded { .. } | AttemptOutcome::Unavailable => {
                Some(FailureKind::Status(503))
            }
            AttemptOutcome::ServerError(status) | AttemptOutcome::GatewayError(status) => {
                Some(FailureKind::Status(status.as_u16()))
            }
            AttemptOutcome::ConnectFailed => Some(FailureKind::ConnectFailed),
            AttemptOutcome::Refused => Some(FailureKind::Refused),
            AttemptOutcome::Reset => Some(FailureKind::Reset),
            AttemptOutcome::Timeout | AttemptOutcome::BodyFailed(BodyFailure::Stalled) => {
                Some(FailureKind::Timeout)
            }
            AttemptOutcome::BodyFailed(BodyFailure::Broken) => Some(FailureKind::Reset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_is_not_a_failure_of_the_endpoint() {
        for status in [429, 503] {
            let outcome = AttemptOutcome::of_status(StatusCode::from_u16(status).unwrap(), None);
            assert!(matches!(outcome, AttemptOutcome::Overloaded { .. }));
            assert!(!outcome.is_failure());
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_503_from_an_endpoint_that_still_serves_is_busy() {
        // Its last success was 10 ms ago: it sheds some load and serves the rest.
        let outcome = AttemptOutcome::of_503(None, ms(10), ms(3));
        assert_eq!(outcome, AttemptOutcome::Overloaded { retry_after: None });
        assert!(!outcome.is_failure());
    }

    #[test]
    fn a_503_from_an_endpoint_that_serves_nothing_is_broken() {
        let outcome = AttemptOutcome::of_503(None, BROKEN_AFTER, ms(3));
        assert_eq!(outcome, AttemptOutcome::Unavailable);
        assert!(outcome.is_failure());
        assert_eq!(outcome.failure_kind(), Some(FailureKind::Status(503)));
    }

    #[test]
    fn a_slow_service_gets_four_of_its_latencies_before_its_503s_say_broken() {
        // Successes 1 s apart are normal for a service answering in 1 s.
        let latency = Duration::from_secs(1);
        assert!(!broken_503(None, Duration::from_secs(3), latency));
        assert!(broken_503(None, Duration::from_secs(4), latency));
    }

    #[test]
    fn a_retry_after_of_no_delay_does_not_say_busy() {
        let outcome = AttemptOutcome::of_503(Some(Duration::ZERO), BROKEN_AFTER, ms(3));
        assert_eq!(outcome, AttemptOutcome::Unavailable);
    }

    #[test]
    fn a_503_with_retry_after_is_always_busy() {
        let outcome = AttemptOutcome::of_503(Some(ms(100)), Duration::from_secs(3600), ms(3));
        assert_eq!(
            outcome,
            AttemptOutcome::Overloaded {
                retry_after: Some(ms(100))
            }
        );
    }

    #[test]
    fn gateway_and_server_errors_are_failures_client_errors_are_not() {
        assert!(AttemptOutcome::of_status(StatusCode::BAD_GATEWAY, None).is_failure());
        assert!(AttemptOutcome::of_status(StatusCode::INTERNAL_SERVER_ERROR, None).is_failure());
        assert!(!AttemptOutcome::of_status(StatusCode::NOT_FOUND, None).is_failure());
        assert!(!AttemptOutcome::Cancelled.is_failure());
    }

    #[test]
    fn what_a_client_caused_is_neither_a_failure_nor_retried() {
        for cause in [
            ClientCause::Deadline,
            ClientCause::SlowBody,
            ClientCause::BodyFailed,
        ] {
            let outcome = AttemptOutcome::ClientCaused(cause);
            assert!(!outcome.is_failure());
            assert!(outcome.says_nothing());
            assert_eq!(outcome.failure_kind(), None);
        }
        assert!(!AttemptOutcome::Success.says_nothing());
        assert!(!AttemptOutcome::Timeout.says_nothing());
    }

    #[test]
    fn a_body_that_breaks_off_is_a_failure_of_the_endpoint() {
        for failure in [BodyFailure::Stalled, BodyFailure::Broken] {
            let outcome = AttemptOutcome::BodyFailed(failure);
            assert!(outcome.is_failure());
            assert!(!outcome.says_nothing());
        }
        assert_eq!(
            AttemptOutcome::BodyFailed(BodyFailure::Stalled).failure_kind(),
            Some(FailureKind::Timeout)
        );
        assert_eq!(
            AttemptOutcome::BodyFailed(BodyFailure::Broken).failure_kind(),
            Some(FailureKind::Reset)
        );
    }
}
