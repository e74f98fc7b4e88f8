//! The alternate-cluster fallback: one attempt against another cluster, through the same
//! [`crate::pipeline::attempt`] as the route's own (rewrites, header edits, the alternate
//! cluster's balancer, breaker and outcome recording).
//!
//! The request's body was given to the attempts that failed, so only a request without a
//! body can be sent again. NOTE: when the pipeline keeps bounded request bodies replayable
//! (for retries), `serve` takes the replay in place of the empty body.

use std::time::Instant;

use http::Response;
use http::request::Parts;

use crate::body;
use crate::body::ProxyBody;
use crate::config::fallback::AlternateCluster;
use crate::pipeline::{self, Context};

/// The alternate cluster's answer, unless it could not give one that is not a failure
/// (see [`super::is_failure_status`]).
pub(super) async fn serve(
    context: &Context<'_>,
    request: &Parts,
    alternate: AlternateCluster,
) -> Option<Response<ProxyBody>> {
    if !context.request_body_empty {
        return None;
    }
    let cluster = context.snapshot.clusters.get(alternate.index)?;
    let mut permit = Some(cluster.admit(Instant::now()).ok()?);
    let (result, outcome) = pipeline::attempt(
        context,
        cluster,
        request.clone(),
        body::full(""),
        &mut permit,
    )
    .await;
    if let Some(permit) = permit {
        permit.record(outcome, Instant::now());
    }
    result
        .ok()
        .filter(|response| !super::is_failure_status(response.status()))
}
