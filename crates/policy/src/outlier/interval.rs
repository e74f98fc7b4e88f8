//! The interval rules: failure percentage and success rate against the cluster.

use super::config::OutlierConfig;
use super::endpoint::Window;
use super::event::{EjectionReason, EndpointId};

/// An endpoint that met an interval rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub id: EndpointId,
    pub reason: EjectionReason,
    /// Its success rate in percent, to eject the worst first when the cap binds.
    pub success_rate: f64,
}

/// Tolerance for comparing success rates, so that endpoints with equal rates are never
/// told apart by rounding in the mean.
const EPSILON: f64 = 1e-9;

/// The endpoints (among `serving`, each with its interval window) that meet the failure
/// percentage or success-rate rule, worst success rate first.
pub(super) fn candidates(
    config: &OutlierConfig,
    serving: &[(EndpointId, Window)],
) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Some(fp) = config.failure_percentage {
        for &(id, w) in serving {
            let failed_enough = u128::from(w.failures) * 100
                >= u128::from(fp.threshold_percent) * u128::from(w.requests);
            if w.requests >= fp.request_volume && failed_enough {
                out.push(Candidate {
                    id,
                    reason: EjectionReason::FailurePercentage {
                        requests: w.requests,
                        failures: w.failures,
                        slow: w.slow,
                        threshold_percent: fp.threshold_percent,
                    },
                    success_rate: success_rate(w),
                });
            }
        }
    }
    if let Some(sr) = config.success_rate {
        let qualifying = || {
            serving
                .iter()
                .filter(|(_, w)| w.requests >= sr.request_volume)
        };
        let n = qualifying().count();
        if n >= sr.minimum_hosts && n > 0 {
            let mean = qualifying().map(|&(_, w)| success_rate(w)).sum::<f64>() / n as f64;
            let variance = qualifying()
                .map(|&(_, w)| (success_rate(w) - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            let stdev = variance.sqrt();
            let threshold = mean - sr.stdev_factor * stdev;
            for &(id, w) in qualifying() {
                let rate = success_rate(w);
                let already = out.iter().any(|c| c.id == id);
                if rate < threshold - EPSILON && !already {
                    out.push(Candidate {
                        id,
                        reason: EjectionReason::SuccessRate {
                            requests: w.requests,
                            failures: w.failures,
                            slow: w.slow,
                            success_rate: rate,
                            cluster_mean: mean,
                            cluster_stdev: stdev,
                            threshold,
                        },
                        success_rate: rate,
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| {
        a.success_rate
            .total_cmp(&b.success_rate)
            .then(a.id.cmp(&b.id))
    });
    out
}

/// Percentage of the window's calls that did not fail; 100 for an empty window.
fn success_rate(w: Window) -> f64 {
    if w.requests == 0 {
        return 100.0;
    }
    100.0 * (w.requests - w.failures) as f64 / w.requests as f64
}
