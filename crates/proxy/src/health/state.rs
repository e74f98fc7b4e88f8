//! What active checks have concluded about one endpoint, with hysteresis.
//!
//! Like pingora's `observe_health`, a known state flips only after a run of consecutive
//! opposite results (`unhealthy_threshold` failures, `healthy_threshold` passes), so one lost
//! packet does not take an endpoint out and one lucky answer does not bring it back.
//!
//! # A new endpoint is `Unknown`
//!
//! An endpoint that has never been checked is [`HealthStatus::Unknown`]: it counts as *not*
//! healthy for routing (as in Envoy, where a new host waits for its first check), so an
//! endpoint added by DNS or a reload takes no traffic before it has answered once. Its first
//! check runs at once, and that first result decides directly, without the thresholds:
//! hysteresis protects a known state from flapping, and there is none yet. At proxy start
//! every endpoint is unknown, so the primary level has no healthy capacity: traffic then
//! goes to all of its endpoints by the panic rule (unless `panic_threshold = 0`) for the few
//! milliseconds until the first round has run, which is what readiness waits for.
//!
//! ## Transitions
//!
//! ```text
//! Unknown   --pass--> Healthy       Unknown   --fail--> Unhealthy
//! Healthy   --`unhealthy_threshold` fails in a row--> Unhealthy
//! Unhealthy --`healthy_threshold` passes in a row---> Healthy
//! ```

use std::fmt;
use std::num::NonZeroU32;

/// What is known of an endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthStatus {
    /// Never checked yet.
    Unknown,
    /// Taking traffic.
    Healthy,
    /// Taken out of rotation.
    Unhealthy,
}

impl HealthStatus {
    /// Whether the endpoint may take traffic outside of panic.
    pub(crate) fn is_healthy(self) -> bool {
        self == HealthStatus::Healthy
    }

    /// A short lowercase name for logs and the admin API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unknown => "unknown",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Results in a row needed to flip a known state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// Passes in a row for an unhealthy endpoint to become healthy.
    pub healthy: NonZeroU32,
    /// Failures in a row for a healthy endpoint to become unhealthy.
    pub unhealthy: NonZeroU32,
}

/// A change of status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    /// Before.
    pub from: HealthStatus,
    /// After.
    pub to: HealthStatus,
}

/// An endpoint's status and the run of results that disagree with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthState {
    status: HealthStatus,
    /// Consecutive results against `status` (failures while healthy, passes while unhealthy).
    against: u32,
}

impl HealthState {
    /// A state with this status and no run of results.
    pub(crate) fn new(status: HealthStatus) -> Self {
        Self { status, against: 0 }
    }

    /// The status now.
    pub(crate) fn status(&self) -> HealthStatus {
        self.status
    }

    /// Takes in one check result; returns the transition if the status changed.
    pub(crate) fn observe(&mut self, passed: bool, thresholds: Thresholds) -> Option<Transition> {
        let from = self.status;
        let to = match (from, passed) {
            // ## Unknown => (Healthy | Unhealthy): the first result decides.
            (HealthStatus::Unknown, true) => HealthStatus::Healthy,
            (HealthStatus::Unknown, false) => HealthStatus::Unhealthy,
            // ## Healthy | Unhealthy, agreeing result => same, run broken.
            (HealthStatus::Healthy, true) | (HealthStatus::Unhealthy, false) => {
                self.against = 0;
                return None;
            }
            // ## Healthy => Unhealthy after enough failures in a row.
            (HealthStatus::Healthy, false) => {
                self.against += 1;
                if self.against < thresholds.unhealthy.get() {
                    return None;
                }
                HealthStatus::Unhealthy
            }
            // ## Unhealthy => Healthy after enough passes in a row.
            (HealthStatus::Unhealthy, true) => {
                self.against += 1;
                if self.against < thresholds.healthy.get() {
                    return None;
                }
                HealthStatus::Healthy
            }
        };
        self.transition_to(to)
    }

    /// Sets the status outright (an operator override, or a config that drops checks).
    pub(crate) fn force(&mut self, status: HealthStatus) -> Option<Transition> {
        if status == self.status {
            self.against = 0;
            return None;
        }
        self.transition_to(status)
    }

    fn transition_to(&mut self, to: HealthStatus) -> Option<Transition> {
        let from = self.status;
        self.status = to;
        self.against = 0;
        Some(Transition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn thresholds(healthy: u32, unhealthy: u32) -> Thresholds {
        Thresholds {
            healthy: NonZeroU32::new(healthy).expect("positive"),
            unhealthy: NonZeroU32::new(unhealthy).expect("positive"),
        }
    }

    #[test]
    fn the_first_result_decides_an_unknown_endpoint() {
        let mut state = HealthState::new(HealthStatus::Unknown);
        assert!(!state.status().is_healthy());
        let transition = state.observe(true, thresholds(3, 3));
        assert_eq!(
            transition,
            Some(Transition {
                from: HealthStatus::Unknown,
                to: HealthStatus::Healthy
            })
        );
        let mut state = HealthState::new(HealthStatus::Unknown);
        state.observe(false, thresholds(3, 3));
        assert_eq!(state.status(), HealthStatus::Unhealthy);
    }

    #[test]
    fn a_healthy_endpoint_flips_only_after_consecutive_failures() {
        let mut state = HealthState::new(HealthStatus::Healthy);
        let limits = thresholds(2, 3);
        assert_eq!(state.observe(false, limits), None);
        assert_eq!(state.observe(false, limits), None);
        assert_eq!(state.observe(true, limits), None, "a pass breaks the run");
        assert_eq!(state.observe(false, limits), None);
        assert_eq!(state.observe(false, limits), None);
        assert!(state.observe(false, limits).is_some());
        assert_eq!(state.status(), HealthStatus::Unhealthy);
    }

    #[test]
    fn an_unhealthy_endpoint_returns_after_consecutive_passes() {
        let mut state = HealthState::new(HealthStatus::Unhealthy);
        let limits = thresholds(2, 3);
        assert_eq!(state.observe(true, limits), None);
        assert_eq!(state.observe(false, limits), None);
        assert_eq!(state.observe(true, limits), None);
        assert!(state.observe(true, limits).is_some());
        assert_eq!(state.status(), HealthStatus::Healthy);
    }

    proptest! {
        #[test]
        fn a_known_state_flips_exactly_when_a_run_reaches_its_threshold(
            results in prop::collection::vec(any::<bool>(), 0..60),
            healthy in 1_u32..5, unhealthy in 1_u32..5,
        ) {
            let limits = thresholds(healthy, unhealthy);
            let mut state = HealthState::new(HealthStatus::Healthy);
            // The naive model: the status is the last value whose run reached its threshold.
            let mut model = true;
            let mut run = 0;
            for passed in results {
                let transition = state.observe(passed, limits);
                if passed == model {
                    run = 0;
                } else {
                    run += 1;
                    let needed = if model { unhealthy } else { healthy };
                    if run >= needed {
                        model = passed;
                        run = 0;
                    }
                }
                prop_assert_eq!(state.status().is_healthy(), model);
                if let Some(transition) = transition {
                    prop_assert_ne!(transition.from, transition.to);
                }
            }
        }
    }
}
