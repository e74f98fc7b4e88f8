//! One endpoint's counters and its ejection state, with the one function that changes it.

use std::time::{Duration, Instant};

use super::config::OutlierConfig;
use super::event::{Ejection, EjectionReason, EndpointId, Event, Outcome};

/// Whether an endpoint takes traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Health {
    /// In rotation; `unejected_at` is when its last ejection ended, if it had one.
    Serving { unejected_at: Option<Instant> },
    /// Out of rotation until `ejection.until` (and until a `tick` notices).
    Ejected(Ejection),
}

/// A change asked of [`Endpoint::transition`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Eject(EjectionReason),
    Uneject,
}

/// Calls recorded in the current interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Window {
    pub requests: u64,
    pub failures: u64,
    pub slow: u64,
}

/// A run of failures of any kind, and how many of them were slow calls.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    count: u32,
    slow: u32,
}

#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub health: Health,
    pub window: Window,
    /// Envoy's ejection-time backoff: +1 per ejection (while `base × multiplier < max`),
    /// −1 per interval spent healthy.
    pub multiplier: u32,
    pub times_ejected: u64,
    errors: Run,
    gateway_errors: u32,
}

impl Endpoint {
    pub fn new() -> Self {
        Self {
            health: Health::Serving { unejected_at: None },
            window: Window::default(),
            multiplier: 0,
            times_ejected: 0,
            errors: Run::default(),
            gateway_errors: 0,
        }
    }

    /// The ejection in force at `now`.
    pub fn ejection(&self, now: Instant) -> Option<Ejection> {
        match self.health {
            Health::Ejected(e) if now < e.until => Some(e),
            _ => None,
        }
    }

    pub fn consecutive_errors(&self) -> u32 {
        self.errors.count
    }

    pub fn consecutive_gateway_errors(&self) -> u32 {
        self.gateway_errors
    }

    /// Counts one call; returns the consecutive-error rule it completed, if any.
    ///
    /// Calls that complete while the endpoint is ejected (sent before the ejection, or
    /// completing before a `tick` ends it) count in the interval's window but not in the
    /// runs, so that an ejected endpoint is not judged twice for the same burst.
    pub fn record(
        &mut self,
        config: &OutlierConfig,
        outcome: Outcome,
        latency: Duration,
    ) -> Option<EjectionReason> {
        let slow = config.slow_call_threshold.is_some_and(|t| latency > t);
        let failed = slow || outcome != Outcome::Success;
        self.window.requests += 1;
        self.window.failures += u64::from(failed);
        self.window.slow += u64::from(slow);
        if matches!(self.health, Health::Ejected(_)) {
            return None;
        }
        self.gateway_errors = match outcome {
            Outcome::GatewayError => self.gateway_errors.saturating_add(1),
            Outcome::Success | Outcome::ServerError => 0,
        };
        self.errors = if failed {
            Run {
                count: self.errors.count.saturating_add(1),
                slow: self.errors.slow.saturating_add(u32::from(slow)),
            }
        } else {
            Run::default()
        };
        // Gateway errors first: when both complete at once, it is the more specific reason.
        let reason = if config
            .consecutive_gateway_errors
            .is_some_and(|n| self.gateway_errors >= n)
        {
            EjectionReason::ConsecutiveGatewayErrors {
                count: self.gateway_errors,
            }
        } else if config
            .consecutive_errors
            .is_some_and(|n| self.errors.count >= n)
        {
            EjectionReason::ConsecutiveErrors {
                count: self.errors.count,
                slow: self.errors.slow,
            }
        } else {
            return None;
        };
        // A run that met a rule is spent whether or not the ejection happens: a suppressed
        // endpoint must fail a whole run again before the next attempt (as Envoy does).
        self.reset_runs();
        Some(reason)
    }

    /// The one place `health` changes. Returns the event, or `None` when the change does
    /// not apply (ejecting an ejected endpoint, un-ejecting a serving one).
    pub fn transition(
        &mut self,
        id: EndpointId,
        change: Change,
        config: &OutlierConfig,
        now: Instant,
    ) -> Option<Event> {
        match (self.health, change) {
            // ## Serving => Ejected
            (Health::Serving { .. }, Change::Eject(reason)) => {
                let base = config.base_ejection_time;
                let max = config.max_ejection_time;
                if base.saturating_mul(self.multiplier) < max {
                    self.multiplier += 1;
                }
                let duration = base.saturating_mul(self.multiplier).min(max);
                let ejection = Ejection {
                    id,
                    reason,
                    at: now,
                    // NOTE: validation bounds max_ejection_time to a week, so this cannot
                    // overflow an `Instant`.
                    until: now + duration,
                    multiplier: self.multiplier,
                };
                self.health = Health::Ejected(ejection);
                self.times_ejected += 1;
                self.reset_runs();
                Some(Event::Ejected(ejection))
            }
            // ## Ejected => Serving
            (Health::Ejected(ejection), Change::Uneject) => {
                self.health = Health::Serving {
                    unejected_at: Some(now),
                };
                // Runs that grew from stragglers would otherwise re-eject on very few new
                // errors.
                self.reset_runs();
                Some(Event::Unejected(ejection))
            }
            // ## Ejected => Ejected, Serving => Serving: nothing to do.
            (Health::Ejected(_), Change::Eject(_)) | (Health::Serving { .. }, Change::Uneject) => {
                None
            }
        }
    }

    /// Lowers the backoff multiplier by one if the endpoint has served for at least an
    /// interval since its last ejection ended (called once per evaluation).
    pub fn decay_multiplier(&mut self, interval: Duration, now: Instant) {
        if let Health::Serving {
            unejected_at: Some(at),
        } = self.health
            && now.saturating_duration_since(at) >= interval
        {
            self.multiplier = self.multiplier.saturating_sub(1);
        }
    }

    fn reset_runs(&mut self) {
        self.errors = Run::default();
        self.gateway_errors = 0;
    }
}
