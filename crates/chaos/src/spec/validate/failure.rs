//! `[[failure]]`: a row of the table, its window within the load, and how it is caused.

use std::collections::BTreeSet;
use std::ops::Range;

use serde_json::{Map, Value};
use toml::Spanned;

use super::{Checker, expect};
use crate::spec::file::{CauseSection, FailureSection};
use crate::spec::{Cause, FailureMode, Load, Metric, System, Window};
use crate::toxiproxy::toxic::Toxic;

/// The fault rule keys that do something; a rule needs one.
const FAULT_ACTIONS: [&str; 6] = ["delay", "abort", "reset", "close", "throttle", "down"];

/// The earliest a fault may start: the load before it is the steady state's evidence.
const MIN_START: std::time::Duration = std::time::Duration::from_secs(1);

/// Every `[[failure]]`, names unique.
pub(super) fn failures(
    checker: &mut Checker<'_>,
    sections: Vec<FailureSection>,
    system: Option<&System>,
    load: Option<&Load>,
) -> Vec<FailureMode> {
    if sections.is_empty() {
        checker.errors.push(crate::spec::SpecError::whole_file(
            checker.path,
            "a spec needs at least one [[failure]]: the failure modes it proves",
        ));
    }
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for section in sections {
        if !names.insert(section.name.get_ref().clone()) {
            let message = format!("a second failure named {:?}", section.name.get_ref());
            checker.error(section.name.span(), message);
        }
        if let Some(failure) = failure(checker, section, system, load) {
            failures.push(failure);
        }
    }
    failures
}

fn failure(
    checker: &mut Checker<'_>,
    section: FailureSection,
    system: Option<&System>,
    load: Option<&Load>,
) -> Option<FailureMode> {
    let start = checker.duration(&section.start, "`start`");
    if start.is_some_and(|start| start < MIN_START) {
        checker.error(
            section.start.span(),
            "`start`: at least 1s: the steady state is judged on the load before the fault, which needs requests that ended",
        );
    }
    let start = start.filter(|start| *start >= MIN_START);
    let duration = checker.duration(&section.duration, "`duration`");
    if duration.is_some_and(|duration| duration.is_zero()) {
        checker.error(section.duration.span(), "`duration`: more than 0");
    }
    let recovery = match (start, duration, load) {
        (Some(start), Some(duration), Some(load)) => {
            // Saturating: durations as long as "584942417355years" parse, and an end past
            // the load is the error, not an overflow.
            let end = start.saturating_add(duration);
            if end > load.duration {
                let message = format!(
                    "the fault ends at {}, after the load's {}: it must end within the load",
                    humantime::format_duration(end),
                    humantime::format_duration(load.duration)
                );
                checker.error(section.duration.span(), message);
            }
            Some(load.duration.saturating_sub(end))
        }
        _ => None,
    };
    let cause = cause(checker, section.cause, system);
    let mut expectations = Vec::new();
    for expect in section.expectations {
        let span = expect.metric.span();
        let Some(expectation) = expect::failure(checker, expect) else {
            continue;
        };
        let needs_recovery = expectation.window == Window::Recovery
            || matches!(expectation.metric, Metric::TimeToRecover { .. });
        if needs_recovery && recovery.is_some_and(|left| left.is_zero()) {
            checker.error(
                span,
                "nothing is left of the load after the fault: a recovery cannot be measured (end the fault earlier or run the load longer)",
            );
        }
        expectations.push(expectation);
    }
    Some(FailureMode {
        name: section.name.into_inner(),
        failure: section.failure,
        required_behaviour: section.required_behaviour,
        acceptable_degradation: section.acceptable_degradation,
        design: section.design,
        start: start?,
        duration: duration.filter(|duration| !duration.is_zero())?,
        cause: cause?,
        expectations,
    })
}

/// `cause`: exactly one of its keys, each checked against the system it acts on.
fn cause(
    checker: &mut Checker<'_>,
    section: Spanned<CauseSection>,
    system: Option<&System>,
) -> Option<Cause> {
    let span = section.span();
    let CauseSection {
        fault,
        toxic,
        kill,
        stop,
        behaviour,
    } = section.into_inner();
    let given = [
        fault.is_some(),
        toxic.is_some(),
        kill.is_some(),
        stop.is_some(),
        behaviour.is_some(),
    ];
    if given.iter().filter(|given| **given).count() != 1 {
        checker.error(
            span,
            "`cause`: exactly one of `fault`, `toxic`, `kill`, `stop` or `behaviour`",
        );
        return None;
    }
    if let Some(fault) = fault {
        return fault_rule(checker, fault, system);
    }
    if let Some(toxic) = toxic {
        return self::toxic(checker, toxic, system);
    }
    if let Some(name) = kill {
        return started_service(checker, &name, system, "kill").map(Cause::Kill);
    }
    if let Some(name) = stop {
        return started_service(checker, &name, system, "stop").map(Cause::Stop);
    }
    let behaviour = behaviour.expect("exactly one cause is given");
    behaviour_change(checker, behaviour, system)
}

/// A table as JSON, as the APIs the causes go to take it.
fn json(table: toml::Table) -> Map<String, Value> {
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn fault_rule(
    checker: &mut Checker<'_>,
    fault: Spanned<toml::Table>,
    system: Option<&System>,
) -> Option<Cause> {
    let span = fault.span();
    let table = fault.into_inner();
    if let Some(System::Running(running)) = system
        && running.admin.is_none()
    {
        checker.error(
            span.clone(),
            "a fault rule needs the system's Blastwall admin API: [system] admin",
        );
    }
    let targets = ["route", "cluster"]
        .into_iter()
        .filter(|key| table.get(*key).is_some_and(toml::Value::is_str))
        .count();
    if targets != 1 {
        checker.error(span, "a fault rule names exactly one `route` or `cluster` (a string), as POST /admin/faults takes it");
        return None;
    }
    if let Some(key) = ["ttl", "after"]
        .into_iter()
        .find(|key| table.contains_key(*key))
    {
        let message = format!(
            "a fault rule here has no `{key}`: the failure's `start` and `duration` set when it is in force"
        );
        checker.error(span, message);
        return None;
    }
    if !FAULT_ACTIONS.iter().any(|key| table.contains_key(*key)) {
        let message = format!(
            "a fault rule does something: one of {}",
            FAULT_ACTIONS.map(|key| format!("`{key}`")).join(", ")
        );
        checker.error(span, message);
        return None;
    }
    Some(Cause::Fault(json(table)))
}

fn toxic(
    checker: &mut Checker<'_>,
    toxic: Spanned<toml::Table>,
    system: Option<&System>,
) -> Option<Cause> {
    let span = toxic.span();
    let has_toxiproxy =
        matches!(system, Some(System::Running(running)) if running.toxiproxy.is_some());
    if system.is_some() && !has_toxiproxy {
        checker.error(span.clone(), "a toxic needs a running system's Toxiproxy API: [system] toxiproxy (a topology's TCP proxies are not built yet)");
    }
    let mut toxic = json(toxic.into_inner());
    let proxy = match toxic.remove("proxy") {
        Some(Value::String(proxy)) => proxy,
        _ => {
            checker.error(
                span,
                "a toxic names its Toxiproxy proxy: `proxy` (a string)",
            );
            return None;
        }
    };
    if let Err(error) = Toxic::from_create(&Value::Object(toxic.clone())) {
        checker.error(span, format!("not a Toxiproxy toxic: {}", error.message));
        return None;
    }
    Some(Cause::Toxic { proxy, toxic })
}

/// A service `verify` starts: only a topology has them.
fn started_service(
    checker: &mut Checker<'_>,
    name: &Spanned<String>,
    system: Option<&System>,
    what: &str,
) -> Option<String> {
    check_started(checker, name.get_ref(), name.span(), system, what)?;
    Some(name.get_ref().clone())
}

fn check_started(
    checker: &mut Checker<'_>,
    name: &str,
    span: Range<usize>,
    system: Option<&System>,
    what: &str,
) -> Option<()> {
    match system {
        None => None,
        Some(System::Running(_)) => {
            let message = format!(
                "`{what}` acts on a service verify started: only a topology ([[system.service]]) has them"
            );
            checker.error(span, message);
            None
        }
        Some(System::Topology(topology)) => {
            if topology.services.iter().any(|service| service.name == name) {
                Some(())
            } else {
                checker.error(
                    span,
                    format!("`{what}`: no [[system.service]] named {name:?}"),
                );
                None
            }
        }
    }
}

fn behaviour_change(
    checker: &mut Checker<'_>,
    behaviour: Spanned<toml::Table>,
    system: Option<&System>,
) -> Option<Cause> {
    let span = behaviour.span();
    let mut table = behaviour.into_inner();
    let Some(toml::Value::String(service)) = table.remove("service") else {
        checker.error(
            span,
            "a behaviour change names its mock: `service` (a string)",
        );
        return None;
    };
    check_started(checker, &service, span.clone(), system, "behaviour")?;
    let new = super::system::behaviour(checker, &Spanned::new(span, table), "behaviour")?;
    Some(Cause::Behaviour {
        service,
        behaviour: Box::new(new),
    })
}
