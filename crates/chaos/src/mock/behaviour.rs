//! What a mock answers, and the decision it takes for one request.
//!
//! A behaviour is plain data (JSON over the control API, flags on the command line), so a
//! test changes it at run time with one call and reads back exactly what is in force.
//!
//! One behaviour can hold others: `paths` answer some paths their own way (the longest
//! matching prefix wins, the rest take the behaviour itself), and `phases` replace it on a
//! timetable (see [`super::phases`]). [`Behaviour::resolve`] picks the one that answers a
//! request, then [`Behaviour::decide`] takes that one's decision. Fields added since the
//! first version are left out of the JSON while unset, so what older clients read is unchanged.

use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::body::{Cut, Keep, Shape};
use super::phases::{AfterPhases, Phase, phase_at};
use super::{InvalidLatency, Latency};

/// The largest `body_size`: each answer allocates its body, so a size from the network must
/// not be able to exhaust the mock's memory at once.
pub const MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

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
    /// Delays drawn from this distribution instead of `latency` plus `latency_jitter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_distribution: Option<Latency>,
    /// Send the body at this many bytes a second instead of all at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_rate: Option<NonZeroU64>,
    /// Break the body off after this many bytes, its `Content-Length` still promising all of
    /// them: the connection is closed (or, in `stall_body` mode, nothing more is sent). In
    /// `cut_body` and `stall_body` modes it replaces the half-way point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_after: Option<usize>,
    /// Behaviours of their own for some paths; the rest take this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBehaviour>,
    /// A timetable of behaviours, from when this one is set; while it runs, the rest of this
    /// behaviour is not used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// What happens after the last phase: `hold` it (the default) or `loop`.
    #[serde(skip_serializing_if = "AfterPhases::is_hold")]
    pub after_phases: AfterPhases,
}

/// A behaviour for the requests whose path starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathBehaviour {
    /// The start of the paths it answers, like `/api/slow`; starts with `/`.
    pub prefix: String,
    /// How it answers them; missing fields take their defaults, not the outer behaviour's.
    pub behaviour: Behaviour,
}

/// The random numbers one request's decision uses, each uniform in `[0, 1)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Draws {
    /// Compared with `failure_rate`.
    pub failure: f64,
    /// Sample the delay (the first alone is the share of `latency_jitter`).
    pub latency: [f64; 2],
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
            latency_distribution: None,
            body_rate: None,
            truncate_after: None,
            paths: Vec::new(),
            phases: Vec::new(),
            after_phases: AfterPhases::Hold,
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

    /// The behaviour that answers a request for `path`, `elapsed` after this one was set:
    /// the phase in force, if there are phases, then its behaviour for the path.
    pub fn resolve(&self, elapsed: Duration, path: &str) -> &Behaviour {
        let scripted = phase_at(&self.phases, self.after_phases, elapsed)
            .and_then(|index| self.phases.get(index))
            .map_or(self, |phase| &phase.behaviour);
        scripted
            .paths
            .iter()
            .filter(|rule| path.starts_with(&rule.prefix))
            .max_by_key(|rule| rule.prefix.len())
            .map_or(scripted, |rule| &rule.behaviour)
    }

    /// How the body of an answer is sent.
    fn shape(&self) -> Shape {
        let keep = self.truncate_after.map_or(Keep::Half, Keep::Bytes);
        let cut = match (self.mode, self.truncate_after) {
            (Mode::CutBody, _) => Some((keep, Cut::Fail)),
            (Mode::StallBody, _) => Some((keep, Cut::Stall)),
            (_, Some(count)) => Some((Keep::Bytes(count), Cut::Fail)),
            (_, None) => None,
        };
        Shape {
            rate: self.body_rate,
            cut,
        }
    }

    /// Decides what to do with one request, given how many are in flight counting this one
    /// and the random numbers it may use.
    pub fn decide(&self, in_flight: u64, draws: Draws) -> Action {
        match self.mode {
            Mode::Reset => return Action::Reset,
            Mode::Hang => return Action::Hang,
            Mode::Serve | Mode::CutBody | Mode::StallBody => {}
        }
        if self
            .capacity
            .is_some_and(|capacity| in_flight > u64::from(capacity))
        {
            return Action::Overloaded;
        }
        let delay = match &self.latency_distribution {
            Some(latency) => latency.sample(draws.latency),
            None => self
                .latency
                .saturating_add(self.latency_jitter.mul_f64(draws.latency[0])),
        };
        let status = if draws.failure < self.failure_rate {
            self.failure_status
        } else {
            self.status
        };
        Action::Respond {
            delay,
            status,
            body: self.shape(),
        }
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
        /// How the body is sent: its pace, and where it is broken off, if it is.
        body: Shape,
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

    fn draws(failure: f64, jitter: f64) -> Draws {
        Draws {
            failure,
            latency: [jitter, 0.5],
        }
    }

    #[test]
    fn default_behaviour_answers_200_at_once() {
        let action = Behaviour::default().decide(1, draws(0.5, 0.5));
        assert_eq!(
            action,
            Action::Respond {
                delay: Duration::ZERO,
                status: 200,
                body: Shape::default(),
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
            behaviour.decide(1, draws(0.2, 0.0)),
            Action::Respond { status: 503, .. }
        ));
        assert!(matches!(
            behaviour.decide(1, draws(0.3, 0.0)),
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
                behaviour.decide(1, draws(0.5, 0.0)),
                Action::Respond { status: 200, body: Shape { cut: Some((Keep::Half, found)), .. }, .. } if found == cut
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
            behaviour.decide(1, draws(1.0, 0.5)),
            Action::Respond {
                delay: Duration::from_millis(125),
                status: 200,
                body: Shape::default(),
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
            behaviour.decide(2, draws(1.0, 0.0)),
            Action::Respond { .. }
        ));
        assert_eq!(behaviour.decide(3, draws(1.0, 0.0)), Action::Overloaded);
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
        assert_eq!(reset.decide(1, draws(0.0, 0.0)), Action::Reset);
        assert_eq!(hang.decide(1, draws(0.0, 0.0)), Action::Hang);
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

    fn status(status: u16) -> Behaviour {
        Behaviour {
            status,
            ..Behaviour::default()
        }
    }

    fn on(prefix: &str, behaviour: Behaviour) -> PathBehaviour {
        PathBehaviour {
            prefix: prefix.into(),
            behaviour,
        }
    }

    #[test]
    fn the_longest_matching_prefix_answers_and_the_rest_take_the_default() {
        let behaviour = Behaviour {
            paths: vec![on("/api", status(201)), on("/api/slow", status(202))],
            ..Behaviour::default()
        };
        let at = |path| behaviour.resolve(Duration::ZERO, path).status;
        assert_eq!(at("/api/slow/1"), 202);
        assert_eq!(at("/api/users"), 201);
        assert_eq!(at("/health"), 200);
    }

    #[test]
    fn phases_replace_the_behaviour_and_may_have_paths() {
        let failing = Behaviour {
            paths: vec![on("/health", status(200))],
            ..status(503)
        };
        let behaviour = Behaviour {
            phases: vec![
                Phase {
                    behaviour: status(200),
                    duration: Duration::from_secs(10),
                },
                Phase {
                    behaviour: failing,
                    duration: Duration::from_secs(10),
                },
            ],
            ..status(418)
        };
        let at = |seconds, path| behaviour.resolve(Duration::from_secs(seconds), path).status;
        assert_eq!(at(0, "/"), 200);
        assert_eq!(at(12, "/"), 503);
        assert_eq!(at(12, "/health"), 200);
        assert_eq!(at(60, "/"), 503, "the last phase holds");
    }

    #[test]
    fn a_distribution_replaces_latency_and_jitter() {
        let behaviour = Behaviour {
            latency: Duration::from_secs(9),
            latency_distribution: Some(Latency::Uniform {
                min: Duration::from_millis(10),
                max: Duration::from_millis(30),
            }),
            ..Behaviour::default()
        };
        assert!(matches!(
            behaviour.decide(1, draws(1.0, 0.5)),
            Action::Respond { delay, .. } if delay == Duration::from_millis(20)
        ));
    }

    #[test]
    fn a_distribution_is_json_that_names_its_kind_and_takes_human_durations() {
        let behaviour: Behaviour = serde_json::from_str(
            r#"{"latency_distribution":{"kind":"log_normal","p50":"20ms","p99":"1s"}}"#,
        )
        .expect("valid");
        assert_eq!(
            behaviour.latency_distribution,
            Some(Latency::LogNormal {
                p50: Duration::from_millis(20),
                p99: Duration::from_secs(1)
            })
        );
        let json = serde_json::to_value(&behaviour).expect("serializes");
        assert_eq!(
            json["latency_distribution"],
            serde_json::json!({"kind": "log_normal", "p50": "20ms", "p99": "1s"})
        );
        let err = serde_json::from_str::<Latency>(r#"{"kind":"normal","mean":"1s","stddev":"1s"}"#)
            .expect_err("a misspelt field");
        assert!(err.to_string().contains("stddev"), "{err}");
    }

    #[test]
    fn an_unfittable_distribution_is_refused_under_its_field_name() {
        let upside_down = Behaviour {
            latency_distribution: Some(Latency::Uniform {
                min: Duration::from_millis(20),
                max: Duration::from_millis(10),
            }),
            ..Behaviour::default()
        };
        assert_eq!(
            upside_down.validate().unwrap_err().to_string(),
            "latency_distribution: uniform min (20ms) is more than max (10ms)"
        );
    }

    #[test]
    fn truncate_after_cuts_a_served_body_and_moves_a_stall() {
        let truncated = Behaviour {
            truncate_after: Some(3),
            body_rate: NonZeroU64::new(100),
            ..Behaviour::default()
        };
        let expected = Shape {
            rate: NonZeroU64::new(100),
            cut: Some((Keep::Bytes(3), Cut::Fail)),
        };
        assert!(matches!(
            truncated.decide(1, draws(1.0, 0.0)),
            Action::Respond { body, .. } if body == expected
        ));
        let stalled = Behaviour {
            mode: Mode::StallBody,
            ..truncated
        };
        assert!(matches!(
            stalled.decide(1, draws(1.0, 0.0)),
            Action::Respond {
                body: Shape {
                    cut: Some((Keep::Bytes(3), Cut::Stall)),
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn nested_behaviours_are_validated_where_they_are() {
        let bad_path = Behaviour {
            paths: vec![on("/api", status(42))],
            ..Behaviour::default()
        };
        assert_eq!(
            bad_path.validate().unwrap_err().to_string(),
            "paths[0].behaviour: status must be an HTTP status from 100 to 599, got 42"
        );
        let no_slash = Behaviour {
            paths: vec![on("api", status(200))],
            ..Behaviour::default()
        };
        assert_eq!(
            no_slash.validate().unwrap_err().to_string(),
            "paths[0].prefix must start with '/', got \"api\""
        );
        let nested_phases = Behaviour {
            phases: vec![Phase {
                behaviour: Behaviour {
                    phases: vec![Phase {
                        behaviour: status(200),
                        duration: Duration::from_secs(1),
                    }],
                    ..Behaviour::default()
                },
                duration: Duration::from_secs(1),
            }],
            ..Behaviour::default()
        };
        assert_eq!(
            nested_phases.validate().unwrap_err().to_string(),
            "phases[0].behaviour cannot have phases of its own"
        );
        let huge = Behaviour {
            body_size: Some(usize::MAX),
            ..Behaviour::default()
        };
        assert!(matches!(
            huge.validate(),
            Err(InvalidBehaviour::BodySize(_))
        ));
        let instant_phase = Behaviour {
            phases: vec![Phase {
                behaviour: status(200),
                duration: Duration::ZERO,
            }],
            ..Behaviour::default()
        };
        assert_eq!(
            instant_phase.validate().unwrap_err().to_string(),
            "phases[0].for must be more than zero"
        );
    }

    #[test]
    fn unset_new_fields_are_left_out_of_the_json() {
        let json = serde_json::to_value(Behaviour::default()).expect("serializes");
        for field in [
            "latency_distribution",
            "body_rate",
            "truncate_after",
            "paths",
            "phases",
            "after_phases",
        ] {
            assert!(json.get(field).is_none(), "{field} in {json}");
        }
    }
}
