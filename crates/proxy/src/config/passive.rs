//! What traffic may say about endpoints, typed: the cluster's breaker, the endpoints'
//! breakers and outlier detection, as the policy crate's own configs, checked by the policy
//! crate at load and kept in their checked form, so building the live breakers and detector
//! from them has no failure path.

use blastwall_policy::breaker::ValidBreakerConfig;
use blastwall_policy::outlier::ValidOutlierConfig;

/// A cluster's passive checks; each is off when `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassiveConfig {
    /// The breaker of the cluster as a whole.
    pub circuit_breaker: Option<ValidBreakerConfig>,
    /// The breaker every endpoint gets.
    pub endpoint_circuit_breaker: Option<ValidBreakerConfig>,
    /// Passive outlier detection.
    pub outlier_detection: Option<ValidOutlierConfig>,
}
