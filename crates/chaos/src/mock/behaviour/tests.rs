use super::*;
use crate::mock::body::{Cut, Keep, Shape};

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
