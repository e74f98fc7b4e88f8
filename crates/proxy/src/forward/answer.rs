//! An endpoint's response body on its way to the client: it keeps the endpoint counted in
//! flight until it ends, and it settles what the attempt says of the endpoint when the head
//! alone could not.
//!
//! # Why the verdict waits for the body
//!
//! A head that says 200 is not yet a success: an endpoint that starts its answers and never
//! finishes them (closes before its `Content-Length`, breaks its chunked framing, resets its
//! HTTP/2 stream, stalls past `body_read_timeout`) fails every client it serves, and would
//! never be ejected or tripped if the attempt were judged by its head. So a successful
//! attempt whose body is still to come is judged here, once, when the body ends:
//!
//! - it ends whole: a success;
//! - the endpoint's body fails: [`AttemptOutcome::BodyFailed`], a failure of the endpoint;
//! - it is dropped before either (the client left, stopped reading until its connection
//!   was closed, or a wrapper such as the stale-if-error capture stopped early): nothing.
//!   Only the upstream body's own errors are seen here, below every wrapper, so no
//!   client's doing can be charged to the endpoint.
//!
//! The endpoint's breaker permit stays with the guard until then, and the cluster breaker's
//! permit with the body, so a half-open breaker's probe is judged by the whole answer too
//! (dropped unjudged, each permit counts as ignored). A body already whole with its head (most small
//! answers) is judged at once, as before, and costs nothing more here.
//!
//! [`AttemptOutcome::BodyFailed`]: crate::outcome::AttemptOutcome::BodyFailed

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::body::{BoxError, End, Guard, Guarded};
use crate::cluster::{Cluster, ClusterPermit};
use crate::endpoint::EndpointGuard;
use crate::upstream::UpstreamBody;
use crate::upstream::body_failure;

/// An attempt not judged yet: it is judged when its body ends.
#[derive(Debug)]
pub(crate) struct Unjudged {
    /// Where the verdict is recorded.
    pub(crate) cluster: Arc<Cluster>,
    /// The attempt's time to its head.
    pub(crate) latency: Duration,
    /// The cluster breaker's permit, when this attempt's answer is the request's.
    pub(crate) permit: Option<ClusterPermit>,
}

/// A response body that keeps its endpoint counted in flight until the body ends or is
/// dropped, and records the attempt's verdict when it ends (see the module doc).
pub(crate) type HoldingEndpoint = Guarded<UpstreamBody, HeldEndpoint>;

/// `body` holding its endpoint, and the attempt's verdict when that is still to be given.
pub(crate) fn holding_endpoint(
    body: UpstreamBody,
    guard: EndpointGuard,
    unjudged: Option<Unjudged>,
) -> HoldingEndpoint {
    Guarded::new(body, HeldEndpoint { guard, unjudged })
}

/// What an endpoint's answer holds until it ends.
#[derive(Debug)]
pub(crate) struct HeldEndpoint {
    guard: EndpointGuard,
    unjudged: Option<Unjudged>,
}

impl Guard<UpstreamBody> for HeldEndpoint {
    /// Records the verdict; the endpoint stops counting in flight as the guard is dropped.
    fn ended(&mut self, end: End<'_, BoxError>) {
        let Some(Unjudged {
            cluster,
            latency,
            permit,
        }) = self.unjudged.take()
        else {
            return;
        };
        let ended = match end {
            End::Whole => Ok(()),
            End::Failed(error) => {
                let failure = body_failure(&**error);
                tracing::debug!(
                    cluster = cluster.name(), endpoint = %self.guard.endpoint().address(),
                    ?failure, %error, "upstream response body failed"
                );
                Err(failure)
            }
            // Only the upstream body's own errors are its endpoint's (see the module doc).
            End::Dropped => return,
        };
        let now = Instant::now();
        let outcome = cluster.record_body_end(&self.guard, ended, latency, now);
        if let Some(permit) = permit {
            permit.record(outcome, now);
        }
    }
}
