//! The fault stage's place in the pipeline: between the gates and the attempts, a fault a
//! route's rule drew (see [`crate::fault`], which decides whom and what) is done here, and
//! what it causes is handed on as the attempts' result would be, so the breaker, the
//! admission limits, the record and the fallback read it as they read a real failure.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use super::attempts::{self, Attempted};
use super::{Context, deadline};
use crate::config::fault::FaultAction;
use crate::error::{ProxyError, error_response};
use crate::fault::Drawn;
use crate::outcome::AttemptOutcome;
use crate::record::Record;

/// A fault a rule drew for this request, done: a delay is waited out (within the deadline
/// and its rule's life; `Some` answer of the deadline when it passed meanwhile, `None` to
/// go on to the attempts), an abort, a reset or a close is the answer in the attempts'
/// place, a fault on the answer (`None`) is done by the attempts on theirs. Counted and
/// recorded.
// NOTE: boxed, as `fall_back` is: inline, its timer would make every request's future
// larger, faulted or not; a faulted request pays one allocation.
pub(super) fn inject<'a>(
    context: &'a Context<'_>,
    drawn: &'a Drawn<'_>,
    deadline: Option<deadline::Deadline>,
    record: &'a mut Record,
) -> Pin<Box<dyn Future<Output = Option<Attempted>> + Send + 'a>> {
    let fault: &FaultAction = drawn;
    record.fault = Some(fault.kind());
    let stats = &context.live.stats;
    stats.fault(fault.kind()).increment();
    match fault {
        FaultAction::Delay(latency) => {
            let at = deadline.map(|deadline| deadline.at);
            let delay = crate::fault::draw_delay(latency);
            let ended = context.live.fault.ending(drawn).ended();
            Box::pin(async move {
                crate::fault::delay(delay, Instant::now(), at, ended).await;
                let now = Instant::now();
                at.is_some_and(|at| now >= at).then(|| {
                    stats.deadline_exceeded.increment();
                    attempts::timed_out(context.cluster, 0, deadline, now)
                })
            })
        }
        FaultAction::Abort(abort) => Box::pin(std::future::ready(Some(Attempted {
            outcome: AttemptOutcome::of_status(abort.status, abort.retry_after),
            result: Err(crate::fault::abort_response(abort)),
            error: None,
            sent: 0,
            timed_out: false,
            upstream: None,
        }))),
        FaultAction::Reset | FaultAction::CloseBeforeHead => {
            Box::pin(std::future::ready(Some(reset(context, fault))))
        }
        // Done by the attempts, on each answer; an endpoint down is refused per request
        // at load, and would be theirs too.
        FaultAction::CloseAfterHead { .. }
        | FaultAction::Throttle(_)
        | FaultAction::EndpointDown => Box::pin(std::future::ready(None)),
    }
}

/// The attempts' answer when the upstream connection was reset or closed before an answer:
/// the proxy's 502, as for a real one after the request was sent.
fn reset(context: &Context<'_>, fault: &FaultAction) -> Attempted {
    let what = match fault {
        FaultAction::CloseBeforeHead => "closed the connection without answering",
        _ => "reset the connection",
    };
    let detail = format!(
        "an endpoint of cluster \"{}\" {what} (injected by a fault rule)",
        context.cluster.name()
    );
    Attempted {
        result: Err(error_response(ProxyError::UpstreamReset, &detail)),
        error: Some(ProxyError::UpstreamReset),
        outcome: AttemptOutcome::Reset,
        sent: 0,
        timed_out: false,
        upstream: None,
    }
}
