//! A fault done inside one attempt: what the attempt's send becomes when an attempt-level
//! rule was drawn for it (or a request-level rule acts on its answer). The caller times the
//! result exactly as it times a real send, so a delay meets the per-try timeout, and a
//! failure or an answer made here is judged as the endpoint's own. A delay or a throttle
//! ends early when its rule does (`end`, see [`super::ending`]).

use std::future::Future;

use http::Response;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::RuleEnd;
use super::body::{Throttled, Truncated};
use crate::config::fault::FaultAction;
use crate::upstream::{UpstreamBody, UpstreamError};

/// The attempt's result with `fault` done in it: `send` is the real send (not polled when
/// the fault takes its place), `expires` the end of the attempt's time, `end` what ends
/// the fault's rule: a delay cut short by it sends the attempt then, a throttled body
/// hands the rest on at full speed.
pub(crate) async fn attempt<S>(
    fault: &FaultAction,
    end: RuleEnd,
    expires: Instant,
    send: S,
) -> Result<Response<UpstreamBody>, UpstreamError>
where
    S: Future<Output = Result<Response<UpstreamBody>, UpstreamError>>,
{
    match fault {
        FaultAction::Delay(delay) => {
            let until = Instant::now()
                .checked_add(super::draw_delay(delay))
                .map_or(expires, |until| until.min(expires));
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = end.ended() => {}
            }
            if Instant::now() >= expires {
                return Err(UpstreamError::timed_out());
            }
            send.await
        }
        FaultAction::Abort(abort) => Ok(super::abort_response(abort).map(UpstreamBody::Altered)),
        FaultAction::Reset => Err(UpstreamError::injected_reset()),
        FaultAction::CloseBeforeHead => Err(UpstreamError::injected_closed()),
        FaultAction::EndpointDown => Err(UpstreamError::injected_refused()),
        FaultAction::CloseAfterHead { truncate_after } => {
            let response = send.await?;
            Ok(response
                .map(|body| UpstreamBody::Altered(Truncated::new(body, *truncate_after).boxed())))
        }
        FaultAction::Throttle(rate) => {
            let response = send.await?;
            let throttled = |body| Throttled::new(body, *rate).until(end.ended());
            Ok(response.map(|body| UpstreamBody::Altered(throttled(body).boxed())))
        }
    }
}
