//! What one attempt came to, in the terms every judge of an endpoint uses.

use std::time::Duration;

use blastwall_policy::retry::FailureKind;
use http::StatusCode;

/// What one attempt against one endpoint came to.
///
/// Breakers, outlier detection, adaptive limits and retries all read this one value, so they
/// cannot disagree on what a response meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
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
    /// The attempt was abandoned by the proxy (the client left, a hedge won): says nothing
    /// about the endpoint.
    Cancelled,
}

impl AttemptOutcome {
    /// The outcome of a response with this status.
    pub fn of_status(status: StatusCode, retry_after: Option<Duration>) -> Self {
        match status.as_u16() {
            429 | 503 => AttemptOutcome::Overloaded { retry_after },
            502 | 504 => AttemptOutcome::GatewayError(status),
            500..=599 => AttemptOutcome::ServerError(status),
            _ => AttemptOutcome::Success,
        }
    }

    /// The outcome of a send that failed with `kind`.
    pub fn of_failure(kind: FailureKind) -> Self {
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
    /// Overload and cancellation do not.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            AttemptOutcome::Success | AttemptOutcome::Overloaded { .. } | AttemptOutcome::Cancelled
        )
    }

    /// The same outcome as the retry policy's failure kind, `None` for success.
    pub fn failure_kind(self) -> Option<FailureKind> {
        match self {
            AttemptOutcome::Success | AttemptOutcome::Cancelled => None,
            AttemptOutcome::Overloaded { .. } => Some(FailureKind::Status(503)),
            AttemptOutcome::ServerError(status) | AttemptOutcome::GatewayError(status) => {
                Some(FailureKind::Status(status.as_u16()))
            }
            AttemptOutcome::ConnectFailed => Some(FailureKind::ConnectFailed),
            AttemptOutcome::Refused => Some(FailureKind::Refused),
            AttemptOutcome::Reset => Some(FailureKind::Reset),
            AttemptOutcome::Timeout => Some(FailureKind::Timeout),
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

    #[test]
    fn gateway_and_server_errors_are_failures_client_errors_are_not() {
        assert!(AttemptOutcome::of_status(StatusCode::BAD_GATEWAY, None).is_failure());
        assert!(AttemptOutcome::of_status(StatusCode::INTERNAL_SERVER_ERROR, None).is_failure());
        assert!(!AttemptOutcome::of_status(StatusCode::NOT_FOUND, None).is_failure());
        assert!(!AttemptOutcome::Cancelled.is_failure());
    }
}
