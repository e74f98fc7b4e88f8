//! What traffic may say about endpoints, typed: the cluster's breaker, the endpoints'
//! breakers and outlier detection, as the policy crate's own configs (validated at load, so
//! building the live breakers and detector from them cannot fail).

use blastwall_policy::breaker::BreakerConfig;
use blastwall_policy::outlier::OutlierConfig;

/// A cluster's passive checks; each is off when `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassiveConfig {
    /// The breaker of the cluster as a whole.
    pub circuit_breaker: Option<BreakerConfig>,
    /// The breaker every endpoint gets.
    pub endpoint_circuit_breaker: Option<BreakerConfig>,
    /// Passive outlier detection.
    pub outlier_detection: Option<OutlierConfig>,
}
