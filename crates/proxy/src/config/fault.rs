//! A route's fault rules, typed: whom each applies to, how often, and what it does.
//!
//! Decided at load (the header name parsed, the percentage turned into a threshold, the
//! abort's answer built, the endpoint to take down chosen), so that drawing a fault on the
//! request path parses nothing.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::{Duration, SystemTime};

use blastwall_policy::latency::Latency;
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
    /// Faults only the first this many requests it draws, then is spent (`first`).
    pub first: Option<NonZeroU64>,
    /// When it applies: wall-clock times, so that a reload neither restarts nor stretches
    /// the window (`from`, `until`).
    pub window: FaultWindow,
    /// Where in the pipeline it is drawn and done: once per request, before the attempts,
    /// or in each attempt.
    pub at: FaultStage,
    /// Only attempts that pick this endpoint (an attempt-level rule's, and always an
    /// endpoint down's).
    pub endpoint: Option<FaultEndpoint>,
}

/// When a config rule applies: from `from` (inclusive) until `until` (exclusive), either
/// open. Wall-clock times rather than durations from the config's load: a reload (one an
/// operator did not even mean for this rule, or a file watcher's) must not restart a
/// window, and "until 14:30 UTC" reads the same in the file, the log and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultWindow {
    /// Not before this time.
    pub from: Option<SystemTime>,
    /// Not from this time on.
    pub until: Option<SystemTime>,
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
    /// Holds the request before its attempts, for a delay drawn from this distribution
    /// (a fixed one for `delay = "200ms"`).
    Delay(Latency),
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
