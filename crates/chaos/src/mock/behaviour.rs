//! What a mock answers, and the decision it takes for one request.
//!
//! A behaviour is plain data (JSON over the control API, flags on the command line), so a
//! test changes it at run time with one call and reads back exactly what is in force.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::body::Cut;

/// How a mock answers every request that is not for its control API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Time to wait before answering.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Up to this much more, uniformly at random, on top of `latency`.
    #[serde(with = "humantime_serde")]
    pub latency_jitter: Duration,
    /// Status of a normal answer.
    pub status: u16,
    /// Body of a normal answer.
    pub body: String,
    /// Share of requests, from 0 to 1, answered with `failure_status` instead.
    pub failure_rate: f64,
    /// Status of a failed answer.
    pub failure_status: u16,
    /// Requests served at once before the mock answers `503` with `Retry-After`, as a
    /// saturated service does. `None` means unbounded.
    pub capacity: Option<u32>,
    /// Whether to answer at all.
    pub mode: Mode,
    /// Answer with a JSON description of the request received instead of `body`.
    pub echo: bool,
    /// Answer with this many bytes (`x`) instead of `body`: a large answer, for tests of
    /// clients that read slowly, without sending it in the behaviour.
    pub body_size: Option<usize>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            status: 200,
            body: "ok\n".to_owned(),
            failure_rate: 0.0,
            failure_status: 500,
            capacity: None,
            mode: Mode::Serve,
            echo: false,
            body_size: None,
        }
    }
}

/// Whether and how a mock answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Answer as configured.
    Serve,
    /// Reset the connection (TCP RST) instead of answering.
    Reset,
    /// Accept the request and never answer, like a stuck dependency.
    Hang,
    /// Answer, but break the body off half-way: the connection is closed (HTTP/1.1) or the
    /// stream reset (HTTP/2) before the `Content-Length` promised is sent.
    CutBody,
    /// Answer, but stop sending half-way through the body and never send the rest.
    StallBody,
}

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
        Ok(())
    }

    /// Decides what to do with one request, given how many are in flight counting this one
    /// and two uniform random numbers in `[0, 1)` (for failure and jitter).
    pub fn decide(&self, in_flight: u64, failure_draw: f64, jitter_draw: f64) -> Action {
        let cut = match self.mode {
            Mode::Reset => return Action::Reset,
            Mode::Hang => return Action::Hang,
            Mode::Serve => None,
            Mode::CutBody => Some(Cut::Fail),
            Mode::StallBody => Some(Cut::Stall),
        };
        if self
            .capacity
            .is_some_and(|capacity| in_flight > u64::from(capacity))
        {
            return Action::Overloaded;
        }
        let delay = self.latency + self.latency_jitter.mul_f64(jitter_draw);
        let status = if failure_draw < self.failure_rate {
            self.failure_status
        } else {
            self.status
        };
        Action::Respond { delay, status, cut }
    }
}

/// What a mock does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Wait `delay`, then answer with `status`.
    Respond {
        /// How long to wait first.
        delay: Duration,
        /// The status to answer with.
        status: u16,
        /// How the body is broken off, if it is.
        cut: Option<Cut>,
    },
    /// Over capacity: answer `503` with `Retry-After` at once.
    Overloaded,
    /// Reset the connection.
    Reset,
    /// Never answer.
    Hang,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_behaviour_answers_200_at_once() {
        let action = Behaviour::default().decide(1, 0.5, 0.5);
        assert_eq!(
            action,
            Action::Respond {
                delay: Duration::ZERO,
                status: 200,
                cut: None,
            }
        );
    }

    #[test]
    fn failure_rate_picks_failure_status_below_the_draw() {
        let behaviour = Behaviour {
            failure_rate: 0.25,
            failure_status: 503,
            ..Behaviour::default()
        };
        assert!(matches!(
            behaviour.decide(1, 0.2, 0.0),
            Action::Respond { status: 503, .. }
        ));
        assert!(matches!(
            behaviour.decide(1, 0.3, 0.0),
            Action::Respond { status: 200, .. }
        ));
    }

    #[test]
    fn body_modes_answer_with_their_body_broken_off() {
        for (mode, cut) in [(Mode::CutBody, Cut::Fail), (Mode::StallBody, Cut::Stall)] {
            let behaviour = Behaviour {
                mode,
                ..Behaviour::default()
            };
            assert!(matches!(
                behaviour.decide(1, 0.5, 0.0),
                Action::Respond { status: 200, cut: Some(found), .. } if found == cut
            ));
            let json = serde_json::to_string(&behaviour).expect("serializes");
            let back: Behaviour = serde_json::from_str(&json).expect("parses");
            assert_eq!(back.mode, mode);
        }
    }

    #[test]
    fn jitter_adds_its_share_of_the_range() {
        let behaviour = Behaviour {
            latency: Duration::from_millis(100),
            latency_jitter: Duration::from_millis(50),
            ..Behaviour::default()
        };
        assert_eq!(
            behaviour.decide(1, 1.0, 0.5),
            Action::Respond {
                delay: Duration::from_millis(125),
                status: 200,
                cut: None,
            }
        );
    }

    #[test]
    fn over_capacity_is_overloaded_at_capacity_is_served() {
        let behaviour = Behaviour {
            capacity: Some(2),
            ..Behaviour::default()
        };
        assert!(matches!(
            behaviour.decide(2, 1.0, 0.0),
            Action::Respond { .. }
        ));
        assert_eq!(behaviour.decide(3, 1.0, 0.0), Action::Overloaded);
    }

    #[test]
    fn modes_override_everything_else() {
        let reset = Behaviour {
            mode: Mode::Reset,
            ..Behaviour::default()
        };
        let hang = Behaviour {
            mode: Mode::Hang,
            ..Behaviour::default()
        };
        assert_eq!(reset.decide(1, 0.0, 0.0), Action::Reset);
        assert_eq!(hang.decide(1, 0.0, 0.0), Action::Hang);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let bad = Behaviour {
            failure_status: 42,
            ..Behaviour::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "failure_status must be an HTTP status from 100 to 599, got 42"
        );
        let bad = Behaviour {
            failure_rate: 1.5,
            ..Behaviour::default()
        };
        assert!(bad.validate().is_err());
        assert!(Behaviour::default().validate().is_ok());
    }

    #[test]
    fn json_uses_human_durations_and_rejects_unknown_keys() {
        let behaviour: Behaviour =
            serde_json::from_str(r#"{"latency":"250ms","mode":"hang"}"#).expect("valid json");
        assert_eq!(behaviour.latency, Duration::from_millis(250));
        assert_eq!(behaviour.mode, Mode::Hang);
        assert_eq!(behaviour.status, 200, "missing fields take defaults");
        let err = serde_json::from_str::<Behaviour>(r#"{"latncy":"1s"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `latncy`"), "{err}");
    }
}
