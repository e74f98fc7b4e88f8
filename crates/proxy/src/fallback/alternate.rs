//! The alternate-cluster fallback: one attempt against another cluster, sent the way the
//! route's own attempts are (rewrites, header edits, the alternate cluster's balancer,
//! breaker and outcome recording).
//!
//! The attempt itself is the pipeline's, handed in as a function (see
//! [`super::RouteFallback::serve`]): this module knows what to send and what to make of the
//! answer, not how a request is sent, nor the pipeline's context or the config in force.
//!
//! The request's body was given to the attempts that failed, so only a request without a
//! body can be sent again. NOTE: when the pipeline keeps bounded request bodies replayable
//! (for retries), `serve` takes the replay in place of the empty body.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::Response;

use super::{Attempt, Attempted, FallbackRequest};
use crate::body;
use crate::body::ProxyBody;
use crate::config::fallback::AlternateCluster;

/// The alternate cluster's answer, unless it could not give one that is not a failure
/// (see [`super::is_failure_status`]).
pub(super) async fn serve<F: Future<Output = Attempted>>(
    request: &FallbackRequest<'_>,
    alternate: AlternateCluster,
    attempt: impl Attempt<F>,
) -> Option<Response<ProxyBody>> {
    if !request.body_empty {
        return None;
    }
    let cluster = request.clusters.get(alternate.index)?;
    let permit = Some(cluster.admit(Instant::now()).ok()?);
    let (result, outcome, permit) = attempt(
        Arc::clone(cluster),
        request.parts.clone(),
        body::full(""),
        permit,
    )
    .await;
    if let Some(permit) = permit {
        permit.record(outcome, Instant::now());
    }
    result
        .ok()
        .filter(|response| !super::is_failure_status(response.status()))
}
