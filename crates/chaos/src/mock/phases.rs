//! Scripted phases: a behaviour that changes on a timetable by itself.
//!
//! An experiment often needs a dependency that is healthy, then slow, then failing, then
//! healthy again, and a test that drives each change by hand races its own timing. A
//! behaviour with `phases` carries the whole timetable; the mock picks the phase in force
//! from the time since the behaviour was set, so the script restarts whenever a new one is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Behaviour;

/// One step of a script: a behaviour, for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// How the mock answers during this phase (it may have `paths`, not `phases`).
    pub behaviour: Behaviour,
    /// How long the phase lasts; more than zero.
    #[serde(rename = "for", with = "humantime_serde")]
    pub duration: Duration,
}

/// What a script does after its last phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterPhases {
    /// The last phase stays in force.
    #[default]
    Hold,
    /// The script starts again from its first phase.
    Loop,
}

impl AfterPhases {
    /// Whether this is the default, left out of the JSON.
    pub fn is_hold(&self) -> bool {
        *self == Self::Hold
    }
}

/// The index of the phase in force `elapsed` after a script of `phases` started; `None`
/// for an empty script.
pub fn phase_at(phases: &[Phase], after: AfterPhases, elapsed: Duration) -> Option<usize> {
    // NOTE: durations come from the network; saturating keeps absurd ones from panicking.
    let total = phases.iter().fold(Duration::ZERO, |sum, phase| {
        sum.saturating_add(phase.duration)
    });
    let last = phases.len().checked_sub(1)?;
    let mut into = match after {
        AfterPhases::Hold if elapsed >= total => return Some(last),
        AfterPhases::Loop if !total.is_zero() => {
            let nanos = elapsed.as_nanos() % total.as_nanos();
            // Less than `total`, so the seconds fit as a `Duration`'s do.
            Duration::new(
                (nanos / 1_000_000_000) as u64,
                (nanos % 1_000_000_000) as u32,
            )
        }
        _ => elapsed,
    };
    for (index, phase) in phases.iter().enumerate() {
        if into < phase.duration {
            return Some(index);
        }
        into -= phase.duration;
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn script() -> Vec<Phase> {
        [(200, 10), (503, 5), (200, 20)]
            .into_iter()
            .map(|(status, seconds)| Phase {
                behaviour: Behaviour {
                    status,
                    ..Behaviour::default()
                },
                duration: seconds * S,
            })
            .collect()
    }

    #[test]
    fn each_phase_holds_for_its_duration_in_order() {
        let phases = script();
        let at = |seconds: u32| phase_at(&phases, AfterPhases::Hold, seconds * S);
        assert_eq!(at(0), Some(0));
        assert_eq!(at(9), Some(0));
        assert_eq!(at(10), Some(1));
        assert_eq!(at(14), Some(1));
        assert_eq!(at(15), Some(2));
    }

    #[test]
    fn a_held_script_keeps_its_last_phase() {
        assert_eq!(phase_at(&script(), AfterPhases::Hold, 3600 * S), Some(2));
    }

    #[test]
    fn a_looping_script_starts_again() {
        let phases = script();
        assert_eq!(phase_at(&phases, AfterPhases::Loop, 35 * S), Some(0));
        assert_eq!(phase_at(&phases, AfterPhases::Loop, 46 * S), Some(1));
    }

    #[test]
    fn no_phases_means_no_script() {
        assert_eq!(phase_at(&[], AfterPhases::Loop, S), None);
    }

    #[test]
    fn json_names_the_duration_for() {
        let phase: Phase =
            serde_json::from_str(r#"{"behaviour":{"status":503},"for":"30s"}"#).expect("valid");
        assert_eq!(phase.duration, 30 * S);
        assert_eq!(phase.behaviour.status, 503);
    }

    #[test]
    fn the_readme_script_is_a_valid_behaviour() {
        let behaviour: Behaviour = serde_json::from_str(
            r#"{"phases": [
                {"behaviour": {}, "for": "30s"},
                {"behaviour": {"latency": "300ms"}, "for": "30s"},
                {"behaviour": {"failure_rate": 1, "paths": [{"prefix": "/health", "behaviour": {}}]}, "for": "30s"},
                {"behaviour": {}, "for": "1h"}]}"#,
        )
        .expect("the README's example parses");
        assert_eq!(behaviour.validate(), Ok(()));
        assert_eq!(behaviour.resolve(65 * S, "/").failure_rate, 1.0);
        assert_eq!(behaviour.resolve(65 * S, "/health/live").failure_rate, 0.0);
    }

    #[test]
    fn absurdly_long_phases_do_not_overflow() {
        let endless = |status| Phase {
            behaviour: Behaviour {
                status,
                ..Behaviour::default()
            },
            duration: Duration::MAX,
        };
        let phases = [endless(200), endless(503)];
        for after in [AfterPhases::Hold, AfterPhases::Loop] {
            assert_eq!(phase_at(&phases, after, 3600 * S), Some(0));
        }
    }
}
