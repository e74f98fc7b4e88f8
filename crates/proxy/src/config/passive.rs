//! What traffic may say about endpoints, typed: the cluster's breaker, the endpoints'
//! breakers and outlier detection, as the policy crate's own configs, checked by the policy
//! crate at load and kept in their checked form, so building the live breakers and detector
//! from them has no failure path.

use blastwall_policy::breaker::ValidBreakerConfig;
use blastwall_policy::outlier::ValidOutlierConfig;
use blastwall_policy::outlier::stall::StallAfter;

/// A cluster's passive checks; each is off when `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassiveConfig {
    /// The breaker of the cluster as a whole.
    pub circuit_breaker: Option<ValidBreakerConfig>,
    /// The breaker every endpoint gets.
    pub endpoint_circuit_breaker: Option<ValidBreakerConfig>,
    /// Passive outlier detection.
    pub outlier_detection: Option<ValidOutlierConfig>,
    /// Stall detection (`outlier_detection.stall_after`).
    pub stall: Option<StallConfig>,
}

/// Stall detection: when an endpoint that is busy and silent is taken out of routing, and how
/// many may be at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallConfig {
    /// The silence that stalls an endpoint.
    pub after: StallAfter,
    /// At most this percentage of the endpoints out at once (stalled or ejected), at least
    /// one and never the last: outlier detection's `max_ejection_percent`.
    pub max_ejection_percent: u8,
}
