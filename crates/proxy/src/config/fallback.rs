//! A route's fallback, typed: which failures take it, and what answers.
//!
//! Everything the request path needs is decided here at load (the static response's headers
//! and body are built, the alternate cluster is an index), so taking a fallback parses and
//! reads nothing.
//!
//! The reasons a request takes its fallback ([`FallbackReason`]) are defined here, not in
//! the fallback stage: they are what `on = [...]` lists, and the stage, the pipeline and the
//! record all read them, so they belong below all three.

use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// A route's fallback. The default has no fallback and the kill switch off.
#[derive(Debug, Clone, Default)]
pub struct FallbackConfig {
    /// Which reasons take the fallback.
    pub on: FallbackTriggers,
    /// The kill switch as configured.
    pub kill_switch: bool,
    /// The stale-if-error cache, tried first.
    pub stale_if_error: Option<StaleIfErrorConfig>,
    /// An alternate cluster, tried second.
    pub cluster: Option<AlternateCluster>,
    /// A static response, tried last.
    pub static_response: Option<StaticResponse>,
}

impl FallbackConfig {
    /// Whether anything can answer in the route's place.
    pub fn has_fallback(&self) -> bool {
        self.stale_if_error.is_some() || self.cluster.is_some() || self.static_response.is_some()
    }
}

/// Why a request is taking its fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// Every attempt failed.
    Failed,
    /// The attempts ended on the endpoint's own 5xx answer (a 500, not a gateway error nor
    /// overload): the application failed this one request, which a client can provoke with
    /// input the application fails on. Configured as `failed`; it does not open the stale
    /// cache (an application failing every request trips the breaker, which does).
    ServerError,
    /// The cluster's breaker is open (or no endpoint can be tried).
    BreakerOpen,
    /// The route's admission refused the request (its rate limit or its concurrency limit).
    Shed,
    /// The cluster's concurrency limit refused the request: the cluster is saturated (it
    /// answers slower than its load needs). Configured as `shed`; unlike the route's own
    /// limits, it opens the stale cache, which is what a saturated cluster should degrade to.
    Overloaded,
    /// The route's deadline passed, or an attempt's timeout, before the cluster answered.
    Timeout,
    /// The caller's own deadline (its deadline header) passed: the client's doing, which
    /// says nothing about the cluster. Configured as `timeout`.
    CallerDeadline,
    /// The route's kill switch is on.
    KillSwitch,
}

impl FallbackReason {
    /// Whether the cluster itself failed the request (rather than the proxy refusing it or
    /// the client running out of its own time): only then, or with the kill switch on, may
    /// the stale-if-error cache answer, so that no client can read it while the cluster is
    /// answering.
    pub fn cluster_failed(self) -> bool {
        matches!(
            self,
            FallbackReason::Failed
                | FallbackReason::BreakerOpen
                | FallbackReason::Timeout
                | FallbackReason::Overloaded
        )
    }
}

/// The cluster a route's fallback tries when its own failed, and how long its one attempt
/// may wait for a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlternateCluster {
    /// Index into [`super::Config::clusters`].
    pub index: usize,
    /// The route's `per_try_timeout`, or else this cluster's `request_timeout` (resolved
    /// at load, like the route's own attempts').
    pub per_try_timeout: Duration,
}

/// A set of [`FallbackReason`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackTriggers(u8);

impl FallbackTriggers {
    /// No reason.
    pub const NONE: Self = Self(0);
    /// Every reason.
    pub const ALL: Self = Self(0b1_1111);

    fn bit(reason: FallbackReason) -> u8 {
        1 << match reason {
            // `failed` in the config: the endpoint's own 500 is a failed request too.
            FallbackReason::Failed | FallbackReason::ServerError => 0,
            FallbackReason::BreakerOpen => 1,
            // `shed` in the config: by the route's limits or the cluster's.
            FallbackReason::Shed | FallbackReason::Overloaded => 2,
            // `timeout` in the config: the caller's time is time all the same.
            FallbackReason::Timeout | FallbackReason::CallerDeadline => 3,
            FallbackReason::KillSwitch => 4,
        }
    }

    /// The set with `reason` added.
    #[must_use]
    pub fn with(self, reason: FallbackReason) -> Self {
        Self(self.0 | Self::bit(reason))
    }

    /// Whether `reason` is in the set.
    pub fn contains(self, reason: FallbackReason) -> bool {
        self.0 & Self::bit(reason) != 0
    }
}

impl Default for FallbackTriggers {
    fn default() -> Self {
        Self::ALL
    }
}

/// A fixed response, built at load.
#[derive(Debug, Clone)]
pub struct StaticResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// Limits and window of a route's stale-if-error cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleIfErrorConfig {
    /// How long after becoming stale a response without `stale-if-error=N` may be served.
    pub max_age: Duration,
    /// Most responses kept.
    pub max_entries: NonZeroUsize,
    /// Largest body kept, in bytes.
    pub max_body: u64,
    /// Memory the kept responses may take, in bytes (and, separately, the bodies in copy).
    pub max_bytes: u64,
}

impl Default for StaleIfErrorConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_entries: NonZeroUsize::new(1000).expect("1000 is not zero"),
            max_body: 1024 * 1024,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}
