//! Why the proxy answered a request itself, and the answer it makes.
//!
//! One enum, one status mapping, one response shape: every stage that refuses or fails a
//! request names a [`ProxyError`] where the failure is born (the listener's checks, admission,
//! the attempts, the deadline), and the status the client gets is decided in
//! [`ProxyError::status`] and nowhere else. The same value travels on in the request's record
//! ([`crate::record`]), so the access log, the span and the counters learn the kind from the
//! value, never from the `x-blastwall-error` header the client reads.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{ProxyBody, full};
use crate::headers::ERROR_HEADER;

/// Why the proxy answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// No route matched.
    NoRoute,
    /// The cluster had no endpoint that could take the request.
    NoHealthyEndpoint,
    /// The endpoint refused or could not be reached.
    ConnectFailed,
    /// The endpoint did not answer within the cluster's request timeout.
    UpstreamTimeout,
    /// The connection to the endpoint failed after the request was sent.
    UpstreamReset,
    /// The request is malformed or ambiguous (framing, Host) and was not forwarded.
    BadRequest,
    /// The client did not send a complete request head in time.
    HeaderReadTimeout,
    /// The request body is larger than the listener allows.
    RequestBodyTooLarge,
    /// The request head is larger, or has more headers, than the listener allows.
    RequestHeadersTooLarge,
    /// Shed under overload (its priority, or its bulkhead is full).
    Shed,
    /// Over the route's rate limit.
    RateLimited,
    /// The cluster's circuit breaker is open.
    BreakerOpen,
    /// The request's deadline passed before an answer came.
    DeadlineExceeded,
    /// The route's kill switch is on and it has no fallback.
    KillSwitch,
    /// The client did not send the request body in time (it is read whole before the first
    /// attempt when a retry may need it again).
    BodyReadTimeout,
    /// The request uses a transfer coding other than `chunked` alone, which the proxy
    /// does not decode and so cannot pass on intact (RFC 9112 §6.1: 501).
    UnsupportedTransferCoding,
    /// A method the proxy does not forward: CONNECT (it tunnels nothing), RFC 9110 §9.1: 501.
    UnsupportedMethod,
}

impl ProxyError {
    /// The status the client gets, decided here and nowhere else.
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoHealthyEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::ConnectFailed | ProxyError::UpstreamReset => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest => StatusCode::BAD_REQUEST,
            ProxyError::HeaderReadTimeout | ProxyError::BodyReadTimeout => {
                StatusCode::REQUEST_TIMEOUT
            }
            ProxyError::RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::RequestHeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::Shed | ProxyError::BreakerOpen | ProxyError::KillSwitch => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::UnsupportedTransferCoding | ProxyError::UnsupportedMethod => {
                StatusCode::NOT_IMPLEMENTED
            }
        }
    }

    /// A short name, sent in `x-blastwall-error` and used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::NoHealthyEndpoint => "no_healthy_endpoint",
            ProxyError::ConnectFailed => "connect_failed",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::UpstreamReset => "upstream_reset",
            ProxyError::BadRequest => "bad_request",
            ProxyError::HeaderReadTimeout => "header_read_timeout",
            ProxyError::RequestBodyTooLarge => "request_body_too_large",
            ProxyError::RequestHeadersTooLarge => "request_headers_too_large",
            ProxyError::Shed => "shed",
            ProxyError::RateLimited => "rate_limited",
            ProxyError::BreakerOpen => "breaker_open",
            ProxyError::DeadlineExceeded => "deadline_exceeded",
            ProxyError::KillSwitch => "kill_switch",
            ProxyError::BodyReadTimeout => "body_read_timeout",
            ProxyError::UnsupportedTransferCoding => "unsupported_transfer_coding",
            ProxyError::UnsupportedMethod => "unsupported_method",
        }
    }
}

/// A response the proxy makes itself: the status of `error`, its name in a header, and a
/// one-line explanation.
pub(crate) fn error_response(error: ProxyError, detail: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("{}: {detail}\n", error.as_str())));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(ERROR_HEADER, HeaderValue::from_static(error.as_str()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_proxy_error_maps_to_one_status() {
        assert_eq!(
            ProxyError::NoHealthyEndpoint.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ProxyError::UpstreamTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(ProxyError::ConnectFailed.status(), StatusCode::BAD_GATEWAY);
        let response = error_response(ProxyError::NoRoute, "nothing here");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[ERROR_HEADER], "no_route");
    }
}
