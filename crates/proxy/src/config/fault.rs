//! A route's fault rules, typed: whom each applies to, how often, and what it does.
//!
//! Decided at load (the header name parsed, the percentage turned into a threshold, the
//! abort's answer built, the endpoint to take down chosen), so that drawing a fault on the
//! request path parses nothing.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

/// One fault rule of a route (`[[route.fault]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Only requests carrying this header (with this value, when one is given).
    pub header: Option<(HeaderName, Option<HeaderValue>)>,
    /// Out of a million matching requests, how many are faulted (`percent` × 10,000).
    pub per_million: u32,
    /// What the fault does.
    pub action: FaultAction,
    /// Where in the pipeline it is drawn and done: once per request, before the attempts,
    /// or in each attempt.
    pub at: FaultStage,
    /// Only attempts that pick this endpoint (an attempt-level rule's, and always an
    /// endpoint down's).
    pub endpoint: Option<FaultEndpoint>,
}

/// Where in the pipeline a fault rule is drawn and done (`at`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FaultStage {
    /// Once per request, between the gates and the attempts (`at = "request"`).
    #[default]
    Request,
    /// In each attempt, retries and hedges included, within its per-try timeout
    /// (`at = "attempt"`).
    Attempt,
}

/// What a fault does to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Holds the request this long before its attempts.
    Delay(Duration),
    /// Answers in the upstream's place, without sending the request.
    Abort(AbortConfig),
    /// The upstream connection is reset before an answer (`reset = true`).
    Reset,
    /// The upstream closes the connection without answering (`close = "before_head"`).
    CloseBeforeHead,
    /// The upstream's answer comes, and its body breaks off after this many bytes
    /// (`close = "after_head"`, `truncate_after`).
    CloseAfterHead {
        /// Bytes of the body passed on before it fails.
        truncate_after: u64,
    },
    /// The upstream's answer's body comes at this many bytes a second (`throttle`).
    Throttle(NonZeroU64),
    /// Attempts that pick the rule's endpoint fail as refused connections (`down = true`).
    EndpointDown,
}

/// The endpoint a rule is limited to (`endpoint`), the one an endpoint down takes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultEndpoint {
    /// Its address, as the cluster lists it.
    pub address: SocketAddr,
    /// Whether it was picked at random (`endpoint = "random"`) when the config was loaded.
    pub random: bool,
}

/// The answer of an abort fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortConfig {
    /// Its status.
    pub status: StatusCode,
    /// Its body (empty by default).
    pub body: Bytes,
    /// Its `Retry-After`, in whole seconds.
    pub retry_after: Option<Duration>,
}
