//! One request on a worker's connection: open the connection if it has to, send, read the
//! whole answer, and classify what happened where it happened.
//!
//! What the run keeps of the answer is read here, before its body: the status, and what
//! the proxy's decision headers say ([`Source`], attempts), parsed at once so no header
//! value outlives the exchange.

use http::{Request, Version};
use http_body_util::{BodyExt, Full};

use bytes::Bytes;

use super::connection::{Sender, connect};
use super::plan::Plan;
use super::sample::{Source, attempts_of};
use super::stats::{ErrorKind, Outcome};

/// What a request came to, with what its answer's headers said.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answer {
    pub(super) outcome: Outcome,
    pub(super) source: Source,
    pub(super) attempts: u16,
    /// The HTTP version of a whole answer.
    pub(super) version: Option<Version>,
}

impl Answer {
    /// No answer: the request failed this way.
    pub(super) fn none(kind: ErrorKind) -> Self {
        Self {
            outcome: Outcome::Error(kind),
            source: Source::NoAnswer,
            attempts: 0,
            version: None,
        }
    }
}

/// Sends `request` on the worker's connection, opening one first if it has none or the one
/// it has is closed; a connection that failed is dropped.
pub(super) async fn exchange(
    connection: &mut Option<Sender>,
    plan: &Plan,
    request: Request<Full<Bytes>>,
) -> Answer {
    if let Some(sender) = connection.as_mut()
        && sender.ready().await.is_err()
    {
        *connection = None;
    }
    let sender = match connection {
        Some(sender) => sender,
        None => match connect(plan.addr, plan.protocol, plan.tls.as_ref()).await {
            Ok(Ok(sender)) => connection.insert(sender),
            Ok(Err(_)) => return Answer::none(ErrorKind::Protocol),
            Err(_) => return Answer::none(ErrorKind::Connect),
        },
    };
    let answer = match sender.send(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let version = response.version();
            let source = Source::of(response.headers());
            let attempts = attempts_of(response.headers());
            match response.into_body().collect().await {
                Ok(_) => Answer {
                    outcome: Outcome::Status(status),
                    source,
                    attempts,
                    version: Some(version),
                },
                Err(error) => Answer::none(classify(&error)),
            }
        }
        Err(error) => Answer::none(classify(&error)),
    };
    if matches!(answer.outcome, Outcome::Error(_)) {
        *connection = None;
    }
    answer
}

/// What a failed exchange on an open connection means to the client.
fn classify(error: &hyper::Error) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_parse() || error.is_user() {
        ErrorKind::Protocol
    } else {
        // Closed, canceled, incomplete message, or an I/O error (reset, broken pipe).
        ErrorKind::Reset
    }
}
