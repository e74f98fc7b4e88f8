//! What a failed send means, decided where it failed.
//!
//! Only the pool knows whether a request provably never reached the endpoint: the connect
//! failed, hyper handed the request back unsent, or an HTTP/2 endpoint refused the stream.
//! Those are the failures after which even a POST may be retried; everything else may have
//! been processed and is a [`FailureKind::Reset`].

use std::time::Duration;

use blastwall_policy::retry::FailureKind;

use crate::outcome::BodyFailure;

/// A send that failed, with what it means for a retry.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub(crate) struct UpstreamError {
    kind: FailureKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// An endpoint's response body stopped coming for the cluster's `body_read_timeout`: the
/// endpoint's fault (never the client's), and its connection is dropped, never pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the endpoint sent no more of the response body for {timeout:?}")]
pub struct BodyStalled {
    /// The cluster's `body_read_timeout`.
    pub timeout: Duration,
}

/// Why a connection to an endpoint could not be made.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("the request URI names no endpoint")]
    NoEndpoint,
    #[error("connect failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("connect timed out after {0:?}")]
    TimedOut(Duration),
    #[error("connection handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
}

/// A failure a fault rule made in the endpoint's place (see `crate::fault`).
#[derive(Debug, thiserror::Error)]
#[error("{0} (injected by a fault rule)")]
struct Injected(#[source] Box<dyn std::error::Error + Send + Sync>);

/// A request of which not a byte was written.
#[derive(Debug, thiserror::Error)]
#[error("request not sent, the connection closed first: {0}")]
struct NotSent(#[source] Box<dyn std::error::Error + Send + Sync>);

impl UpstreamError {
    /// How the send failed: [`FailureKind::ConnectFailed`] or [`FailureKind::Refused`] when
    /// the endpoint cannot have processed the request, [`FailureKind::Reset`] when it may
    /// have.
    pub(crate) fn kind(&self) -> FailureKind {
        self.kind
    }

    pub(super) fn no_endpoint() -> Self {
        Self::connect(ConnectError::NoEndpoint)
    }

    pub(super) fn connect_io(error: std::io::Error) -> Self {
        Self::connect(ConnectError::Io(error))
    }

    pub(super) fn connect_timed_out(after: Duration) -> Self {
        Self::connect(ConnectError::TimedOut(after))
    }

    pub(super) fn handshake(error: hyper::Error) -> Self {
        Self::connect(ConnectError::Handshake(error))
    }

    /// No answer came within the attempt's timeout.
    pub(crate) fn timed_out() -> Self {
        Self {
            kind: FailureKind::Timeout,
            source: Box::new(super::h1::Error::TimedOut),
        }
    }

    fn connect(error: ConnectError) -> Self {
        Self {
            kind: FailureKind::ConnectFailed,
            source: Box::new(error),
        }
    }

    /// hyper handed the request back: none of it was written.
    pub(super) fn not_sent(error: hyper::Error) -> Self {
        Self {
            kind: FailureKind::Refused,
            source: Box::new(NotSent(Box::new(error))),
        }
    }

    /// An HTTP/1.1 request that got no answer: refused when not a byte of it was written,
    /// reset when the endpoint may have seen it.
    pub(super) fn from_http1(failure: super::h1::Failure) -> Self {
        match failure {
            super::h1::Failure::Sent(super::h1::Error::TimedOut) => Self::timed_out(),
            super::h1::Failure::NotSent(_, error) => Self {
                kind: FailureKind::Refused,
                source: Box::new(NotSent(Box::new(error))),
            },
            super::h1::Failure::Sent(error) => Self {
                kind: FailureKind::Reset,
                source: Box::new(error),
            },
        }
    }

    /// A refused connection, as a fault rule's endpoint down makes it without connecting:
    /// the same kind and text as a real one, marked as injected.
    pub(crate) fn injected_refused() -> Self {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        Self {
            kind: FailureKind::ConnectFailed,
            source: Box::new(Injected(Box::new(ConnectError::Io(refused)))),
        }
    }

    /// A connection reset after the request was sent, as a fault rule makes it: what the
    /// HTTP/1.1 client reports for a real one, marked as injected.
    pub(crate) fn injected_reset() -> Self {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        Self::injected_sent(super::h1::Error::Read(reset))
    }

    /// A connection closed without an answer after the request was sent, as a fault rule
    /// makes it: what the HTTP/1.1 client reports for a real one, marked as injected.
    pub(crate) fn injected_closed() -> Self {
        Self::injected_sent(super::h1::Error::ClosedBeforeAnswer)
    }

    fn injected_sent(error: super::h1::Error) -> Self {
        Self {
            kind: FailureKind::Reset,
            source: Box::new(Injected(Box::new(error))),
        }
    }

    /// The request was handed to the connection and may have been (partly) sent.
    pub(super) fn sent(error: hyper::Error) -> Self {
        let kind = if refused_stream(&error) {
            FailureKind::Refused
        } else {
            FailureKind::Reset
        };
        Self {
            kind,
            source: Box::new(error),
        }
    }
}

/// Whether an HTTP/2 endpoint refused the stream (`REFUSED_STREAM`, or a `GOAWAY` that
/// excluded it): RFC 9113 §8.7 guarantees such a request was not processed.
fn refused_stream(error: &(dyn std::error::Error + 'static)) -> bool {
    h2_error(error).is_some_and(|h2| h2.reason() == Some(h2::Reason::REFUSED_STREAM))
}

/// Whether the error ends the whole HTTP/2 connection (a `GOAWAY`, an I/O error), so that
/// no later request should be sent on it. A connection that closed is noticed anyway
/// (`is_closed`); this catches the one that is still draining after a `GOAWAY`.
pub(super) fn ends_http2_connection(error: &(dyn std::error::Error + 'static)) -> bool {
    h2_error(error).is_some_and(|h2| h2.is_go_away() || h2.is_io())
}

fn h2_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a h2::Error> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return Some(h2);
        }
        source = cause.source();
    }
    None
}

/// What an error of an endpoint's response body means. Every error such a body fails with
/// is the endpoint's (the client's side never reaches it: a client that leaves or stops
/// reading drops or stops polling the body, which then fails with nothing).
pub(crate) fn body_failure(error: &(dyn std::error::Error + 'static)) -> BodyFailure {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<BodyStalled>() {
            return BodyFailure::Stalled;
        }
        cause = error.source();
    }
    BodyFailure::Broken
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_stall_is_told_from_other_body_errors_even_wrapped() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] BodyStalled);
        let stalled = BodyStalled {
            timeout: Duration::from_secs(1),
        };
        assert_eq!(body_failure(&stalled), BodyFailure::Stalled);
        assert_eq!(body_failure(&Wrapped(stalled)), BodyFailure::Stalled);
        let closed = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(body_failure(&closed), BodyFailure::Broken);
    }
}
