//! Stall detection for one cluster: each endpoint's silence (kept on the endpoint, see
//! `Endpoint::stall_transition`), judged on the cluster's tick, ended by any answer, and
//! the cap that keeps it from taking the last endpoints out.
//!
//! The rule is the policy's (`outlier::stall`): busy and silent since the last answer for
//! `stall_after`. What is the cluster's is what it can afford: a stall is refused when it
//! would put more endpoints out (stalled or ejected) than `max_ejection_percent` allows (at
//! least one, never the last), or leave fewer than `max(1, ceil(panic_threshold × n))`
//! endpoints serving, the same bound outlier ejection keeps.
//!
//! A stalled endpoint's requests already out are left to their per-try timeouts; only new
//! requests go elsewhere. It takes traffic again on its first answer (a response head of
//! any status, to a request it had, or a passing health check).

use std::time::{Duration, Instant};

use blastwall_policy::outlier::OutlierConfig;
use blastwall_policy::outlier::stall::{StallEvent, StallInput};

use super::Cluster;
use crate::config::StallConfig;
use crate::endpoint::Endpoint;
use crate::events::{Event, EventKind};
use crate::outcome::AttemptOutcome;

impl Cluster {
    /// Stalls the endpoints silent for too long, as far as the cap allows. Called by the
    /// cluster's tick.
    pub(super) fn check_stalls(&self, config: &StallConfig, now: Instant) {
        let endpoints = self.endpoints();
        for endpoint in endpoints.iter().filter(|endpoint| !endpoint.is_stalled()) {
            let may_stall = may_stall(&endpoints, endpoint, config, self.config.panic_threshold);
            let input = StallInput::Check {
                after: config.after,
                may_stall,
            };
            if let Some(event) = endpoint.stall_transition(input, now) {
                self.apply_stall_event(endpoint, event);
            }
        }
    }

    /// The endpoint answered: a response head after `latency`, or a passing health check
    /// (`None`). A stalled endpoint takes traffic again.
    pub(crate) fn heard_from(&self, endpoint: &Endpoint, latency: Option<Duration>, now: Instant) {
        if !endpoint.watches_stalls() {
            return;
        }
        if let Some(event) = endpoint.stall_transition(StallInput::Answered(latency), now) {
            self.apply_stall_event(endpoint, event);
        }
    }

    /// Puts a stall event in force: the routing flag, a log line, a counter, an event.
    fn apply_stall_event(&self, endpoint: &Endpoint, event: StallEvent) {
        let cluster = self.name();
        let address = endpoint.address();
        let (kind, detail) = match event {
            StallEvent::Stalled { silent, threshold } => {
                endpoint.set_stalled(true);
                self.stats.stalls.increment();
                tracing::warn!(
                    cluster, endpoint = %address, ?silent, ?threshold,
                    "endpoint stalled: requests out and nothing answered"
                );
                (
                    EventKind::EndpointStalled,
                    format!("stalled: busy {silent:?} without an answer (threshold {threshold:?})"),
                )
            }
            StallEvent::AnsweredAgain { stalled_for } => {
                endpoint.set_stalled(false);
                self.stats.stalls_ended.increment();
                tracing::info!(
                    cluster, endpoint = %address, after = ?stalled_for,
                    "stalled endpoint answered again"
                );
                (
                    EventKind::EndpointAnsweredAgain,
                    format!("answered again after {stalled_for:?} stalled"),
                )
            }
            StallEvent::Suppressed { silent } => {
                self.stats.stalls_suppressed.increment();
                tracing::warn!(
                    cluster, endpoint = %address, ?silent,
                    "stall refused: the cap is reached (is the whole cluster hanging?)"
                );
                return;
            }
        };
        let event = Event::now(kind, detail).in_cluster(cluster, Some(address));
        self.stats.events.push(event);
        // Fewer endpoints serve (or more): outlier detection's cap follows.
        self.fit_ejection_cap(Instant::now());
    }
}

/// Whether an attempt with this outcome had an answer (a response head) from its endpoint.
pub(super) fn answered(outcome: AttemptOutcome) -> bool {
    matches!(
        outcome,
        AttemptOutcome::Success
            | AttemptOutcome::Overloaded { .. }
            | AttemptOutcome::ServerError(_)
            | AttemptOutcome::GatewayError(_)
    )
}

/// Whether the cluster can afford to stall `candidate` now: the endpoints out (stalled or
/// ejected) stay within `max_ejection_percent` (at least one, never the last), and at least
/// `max(1, ceil(panic_threshold × n))` endpoints still serve (healthy and routable).
pub(super) fn may_stall(
    endpoints: &[std::sync::Arc<Endpoint>],
    candidate: &Endpoint,
    config: &StallConfig,
    panic_threshold: f64,
) -> bool {
    let total = endpoints.len();
    let cap = OutlierConfig {
        max_ejection_percent: config.max_ejection_percent,
        ..OutlierConfig::default()
    }
    .max_ejected(total);
    let out = endpoints
        .iter()
        .filter(|endpoint| endpoint.is_stalled() || endpoint.is_ejected())
        .count();
    let serving = endpoints
        .iter()
        .filter(|endpoint| endpoint.is_healthy() && endpoint.is_routable())
        .count();
    let candidate_serves = candidate.is_healthy() && candidate.is_routable();
    let keep = ((panic_threshold * total as f64).ceil() as usize).max(1);
    let out_after = out + usize::from(!candidate.is_ejected());
    out_after <= cap && serving - usize::from(candidate_serves) >= keep
}
