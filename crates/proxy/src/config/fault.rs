//! A route's fault rules, typed: whom each applies to, how often, and what it does.
//!
//! Decided at load (the header name parsed, the percentage turned into a threshold, the
//! abort's answer built), so that drawing a fault on the request path parses nothing.

use std::time::Duration;

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
}

/// What a fault does to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Holds the request before its attempts, for a delay drawn from this distribution
    /// (a fixed one for `delay = "200ms"`).
    Delay(Latency),
    /// Answers in the upstream's place, without sending the request.
    Abort(AbortConfig),
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
