//! Which behaviours make sense: checked before one is in force, whether it comes from the
//! command line, a `PUT` or a `PATCH`, so a request never meets a behaviour it cannot
//! follow. An error names the field at fault by its path in the JSON (`paths[1].behaviour:
//! ...`), so the client that sent it knows what to change.

use super::Behaviour;
use crate::mock::InvalidLatency;

/// The largest `body_size`: each answer allocates its body, so a size from the network must
/// not be able to exhaust the mock's memory at once.
pub const MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

/// A behaviour that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidBehaviour {
    /// A status outside 100..=599.
    #[error("{field} must be an HTTP status from 100 to 599, got {value}")]
    Status {
        /// Which field.
        field: &'static str,
        /// What it was.
        value: u16,
    },
    /// A failure rate outside 0..=1.
    #[error("failure_rate must be between 0 and 1, got {0}")]
    FailureRate(f64),
    /// A capacity of zero would refuse everything; that is what `mode` or `failure_rate` are for.
    #[error("capacity must be at least 1 (leave it out for unbounded)")]
    ZeroCapacity,
    /// A body too large to allocate for every answer.
    #[error("body_size must be at most {MAX_BODY_SIZE} bytes, got {0}")]
    BodySize(usize),
    /// A latency distribution that cannot be sampled.
    #[error("latency_distribution: {0}")]
    Latency(#[from] InvalidLatency),
    /// A path prefix that no request path can start with.
    #[error("{at}.prefix must start with '/', got {prefix:?}")]
    Prefix {
        /// Which rule, like `paths[0]`.
        at: String,
        /// What it was.
        prefix: String,
    },
    /// A phase that would never be in force.
    #[error("{at}.for must be more than zero")]
    PhaseDuration {
        /// Which phase, like `phases[2]`.
        at: String,
    },
    /// A nested behaviour with paths or phases of its own where they are not allowed.
    #[error("{at}.behaviour cannot have {what} of its own")]
    Nesting {
        /// Where, like `phases[0]`.
        at: String,
        /// `paths` or `phases`.
        what: &'static str,
    },
    /// A nested behaviour that makes no sense.
    #[error("{at}.behaviour: {source}")]
    Nested {
        /// Where, like `paths[1]`.
        at: String,
        /// What is wrong with it.
        source: Box<InvalidBehaviour>,
    },
}

impl Behaviour {
    /// Checks that every field is meaningful.
    pub fn validate(&self) -> Result<(), InvalidBehaviour> {
        for (field, value) in [
            ("status", self.status),
            ("failure_status", self.failure_status),
        ] {
            if !(100..=599).contains(&value) {
                return Err(InvalidBehaviour::Status { field, value });
            }
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(InvalidBehaviour::FailureRate(self.failure_rate));
        }
        if self.capacity == Some(0) {
            return Err(InvalidBehaviour::ZeroCapacity);
        }
        if let Some(size) = self.body_size.filter(|size| *size > MAX_BODY_SIZE) {
            return Err(InvalidBehaviour::BodySize(size));
        }
        if let Some(latency) = &self.latency_distribution {
            latency.validate()?;
        }
        for (index, rule) in self.paths.iter().enumerate() {
            let at = format!("paths[{index}]");
            if !rule.prefix.starts_with('/') {
                let prefix = rule.prefix.clone();
                return Err(InvalidBehaviour::Prefix { at, prefix });
            }
            rule.behaviour.validate_nested(at, false)?;
        }
        for (index, phase) in self.phases.iter().enumerate() {
            let at = format!("phases[{index}]");
            if phase.duration.is_zero() {
                return Err(InvalidBehaviour::PhaseDuration { at });
            }
            phase.behaviour.validate_nested(at, true)?;
        }
        Ok(())
    }

    /// Checks a behaviour nested at `at`: never with phases, with paths only if allowed.
    fn validate_nested(&self, at: String, paths_allowed: bool) -> Result<(), InvalidBehaviour> {
        if !self.phases.is_empty() || (!paths_allowed && !self.paths.is_empty()) {
            let what = if self.phases.is_empty() {
                "paths"
            } else {
                "phases"
            };
            return Err(InvalidBehaviour::Nesting { at, what });
        }
        self.validate().map_err(|source| InvalidBehaviour::Nested {
            at,
            source: Box::new(source),
        })
    }
}
