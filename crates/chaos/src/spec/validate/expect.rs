//! Expectations: a metric, the one bound that makes sense for it, a window and a scope.
//! A key that does not apply to its metric is an error, never ignored: a misplaced bound
//! that nothing checks is a spec that passes without proving anything.

use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::spec::file::ExpectSection;
use crate::spec::{Expectation, Metric, Quantile, Scope, Signal, Window};

/// The metrics, by the name a spec writes.
const METRICS: [&str; 10] = [
    "availability",
    "error_rate",
    "p50",
    "p95",
    "p99",
    "fallback_share",
    "statuses",
    "retry_amplification",
    "time_to_detect",
    "time_to_recover",
];

/// The priority classes a `class` scope names.
const CLASSES: [&str; 4] = ["critical", "high", "normal", "low"];

/// The fallback kinds, as the proxy's `x-blastwall-fallback` names them.
const FALLBACK_KINDS: [&str; 3] = ["stale", "cluster", "static"];

/// A `[[steady_state]]` expectation: over the whole load, and not about a fault.
pub(super) fn steady(checker: &mut Checker<'_>, section: ExpectSection) -> Option<Expectation> {
    if let Some(during) = &section.during {
        checker.error(
            during.span(),
            "the steady state is measured over the whole load: no `during`",
        );
    }
    let metric = section.metric.get_ref().as_str();
    if matches!(metric, "time_to_detect" | "time_to_recover") {
        let message = format!("`{metric}` is about a failure: it belongs in a [[failure.expect]]");
        checker.error(section.metric.span(), message);
        return None;
    }
    expectation(checker, section, Window::Run)
}

/// A `[[failure.expect]]` expectation.
pub(super) fn failure(checker: &mut Checker<'_>, section: ExpectSection) -> Option<Expectation> {
    let window = match section
        .during
        .as_ref()
        .map(|during| (during.get_ref().as_str(), during))
    {
        None | Some(("run", _)) => Window::Run,
        Some(("fault", _)) => Window::Fault,
        Some(("recovery", _)) => Window::Recovery,
        Some((_, during)) => {
            checker.error(during.span(), "`during`: `run`, `fault` or `recovery`");
            return None;
        }
    };
    expectation(checker, section, window)
}

fn expectation(
    checker: &mut Checker<'_>,
    section: ExpectSection,
    window: Window,
) -> Option<Expectation> {
    let name = section.metric.get_ref().clone();
    if !METRICS.contains(&name.as_str()) {
        let message = format!(
            "unknown metric {name:?}, expected one of {}",
            METRICS.join(", ")
        );
        checker.error(section.metric.span(), message);
        return None;
    }
    let scope = scope(checker, &section);
    refuse_keys_that_do_not_apply(checker, &section, &name);
    let metric = metric(checker, &section, &name);
    Some(Expectation {
        metric: metric?,
        window,
        scope: scope?,
    })
}

fn scope(checker: &mut Checker<'_>, section: &ExpectSection) -> Option<Scope> {
    match (&section.route, &section.class) {
        (Some(_), Some(class)) => {
            checker.error(class.span(), "give `route` or `class`, not both");
            None
        }
        (Some(route), None) => {
            checker
                .routes_measured
                .push((route.get_ref().clone(), route.span()));
            Some(Scope::Route(route.get_ref().clone()))
        }
        (None, Some(class)) if CLASSES.contains(&class.get_ref().as_str()) => {
            checker
                .classes_measured
                .push((class.get_ref().clone(), class.span()));
            Some(Scope::Class(class.get_ref().clone()))
        }
        (None, Some(class)) => {
            checker.error(
                class.span(),
                format!("`class`: one of {}", CLASSES.join(", ")),
            );
            None
        }
        (None, None) => Some(Scope::All),
    }
}

/// Errors for the bound keys given that `metric` does not read.
fn refuse_keys_that_do_not_apply(checker: &mut Checker<'_>, section: &ExpectSection, metric: &str) {
    let applies: &[&str] = match metric {
        "availability" => &["at_least"],
        "fallback_share" => &["kind", "at_least", "at_most"],
        "statuses" => &["allowed"],
        "time_to_detect" => &["signal", "at_most"],
        _ => &["at_most"],
    };
    let given = [
        ("at_least", section.at_least.as_ref().map(Spanned::span)),
        ("at_most", section.at_most.as_ref().map(Spanned::span)),
        ("kind", section.kind.as_ref().map(Spanned::span)),
        ("allowed", section.allowed.as_ref().map(Spanned::span)),
        ("signal", section.signal.as_ref().map(Spanned::span)),
    ];
    for (key, span) in given {
        if let Some(span) = span
            && !applies.contains(&key)
        {
            let expected = applies
                .iter()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", ");
            checker.error(
                span,
                format!("`{key}` does not apply to `{metric}`, which takes {expected}"),
            );
        }
    }
}

fn metric(checker: &mut Checker<'_>, section: &ExpectSection, name: &str) -> Option<Metric> {
    let span = section.metric.span();
    let required = |checker: &mut Checker<'_>, value: &Option<Spanned<toml::Value>>, key: &str| {
        if value.is_none() {
            checker.error(span.clone(), format!("`{name}` needs `{key}`"));
        }
        value.clone()
    };
    match name {
        "availability" => {
            let at_least = required(checker, &section.at_least, "at_least")?;
            Some(Metric::Availability {
                at_least: checker.share(&at_least, "`at_least`")?,
            })
        }
        "error_rate" => {
            let at_most = required(checker, &section.at_most, "at_most")?;
            Some(Metric::ErrorRate {
                at_most: checker.share(&at_most, "`at_most`")?,
            })
        }
        "p50" | "p95" | "p99" => {
            let quantile = match name {
                "p50" => Quantile::P50,
                "p95" => Quantile::P95,
                _ => Quantile::P99,
            };
            let at_most = required(checker, &section.at_most, "at_most")?;
            let at_most = duration(checker, &at_most)?;
            Some(Metric::Latency { quantile, at_most })
        }
        "fallback_share" => fallback_share(checker, section),
        "statuses" => statuses(checker, section),
        "retry_amplification" => {
            let at_most = required(checker, &section.at_most, "at_most")?;
            Some(Metric::RetryAmplification {
                at_most: factor(checker, &at_most)?,
            })
        }
        "time_to_detect" => {
            let signal = signal(checker, section);
            let at_most = required(checker, &section.at_most, "at_most")?;
            let at_most = duration(checker, &at_most)?;
            Some(Metric::TimeToDetect {
                signal: signal?,
                at_most,
            })
        }
        _ => {
            let at_most = required(checker, &section.at_most, "at_most")?;
            Some(Metric::TimeToRecover {
                at_most: duration(checker, &at_most)?,
            })
        }
    }
}

fn statuses(checker: &mut Checker<'_>, section: &ExpectSection) -> Option<Metric> {
    let Some(allowed) = &section.allowed else {
        checker.error(
            section.metric.span(),
            "`statuses` needs `allowed`: the status codes allowed, e.g. [200, 503]",
        );
        return None;
    };
    if let Some(bad) = allowed
        .get_ref()
        .iter()
        .find(|status| !(100..=599).contains(*status))
    {
        checker.error(
            allowed.span(),
            format!("`allowed`: {bad} is not an HTTP status (100 to 599)"),
        );
        return None;
    }
    Some(Metric::Statuses {
        allowed: allowed.get_ref().clone(),
    })
}

/// Retry amplification's bound: attempts per request, at least 1.
fn factor(checker: &mut Checker<'_>, at_most: &Spanned<toml::Value>) -> Option<f64> {
    let factor = match at_most.get_ref() {
        toml::Value::Float(factor) => Some(*factor),
        toml::Value::Integer(factor) => Some(*factor as f64),
        _ => None,
    }
    .filter(|factor| *factor >= 1.0);
    if factor.is_none() {
        checker.error(
            at_most.span(),
            "`at_most`: attempts per request, a number of at least 1 (e.g. 1.2)",
        );
    }
    factor
}

/// What `time_to_detect` waits for.
fn signal(checker: &mut Checker<'_>, section: &ExpectSection) -> Option<Signal> {
    match section
        .signal
        .as_ref()
        .map(|signal| (signal.get_ref().as_str(), signal))
    {
        Some(("breaker_open", _)) => Some(Signal::BreakerOpen),
        Some(("endpoint_ejected", _)) => Some(Signal::EndpointEjected),
        Some((_, signal)) => {
            checker.error(
                signal.span(),
                "`signal`: `breaker_open` or `endpoint_ejected`",
            );
            None
        }
        None => {
            checker.error(
                section.metric.span(),
                "`time_to_detect` needs `signal`: `breaker_open` or `endpoint_ejected`",
            );
            None
        }
    }
}

fn fallback_share(checker: &mut Checker<'_>, section: &ExpectSection) -> Option<Metric> {
    let kind = match &section.kind {
        Some(kind) if !FALLBACK_KINDS.contains(&kind.get_ref().as_str()) => {
            let message = format!("`kind`: one of {}", FALLBACK_KINDS.join(", "));
            checker.error(kind.span(), message);
            return None;
        }
        kind => kind.as_ref().map(|kind| kind.get_ref().clone()),
    };
    if section.at_least.is_none() && section.at_most.is_none() {
        checker.error(
            section.metric.span(),
            "`fallback_share` needs a bound: `at_least`, `at_most` or both",
        );
        return None;
    }
    let at_least = section
        .at_least
        .as_ref()
        .map(|value| checker.share(value, "`at_least`"));
    let at_most = section
        .at_most
        .as_ref()
        .map(|value| checker.share(value, "`at_most`"));
    Some(Metric::FallbackShare {
        kind,
        at_least: at_least.map_or(Some(None), |share| share.map(Some))?,
        at_most: at_most.map_or(Some(None), |share| share.map(Some))?,
    })
}

/// A bound written as a duration.
fn duration(checker: &mut Checker<'_>, value: &Spanned<toml::Value>) -> Option<Duration> {
    let text = match value.get_ref() {
        toml::Value::String(text) => text.clone(),
        _ => String::new(),
    };
    checker.duration(&Spanned::new(value.span(), text), "`at_most`")
}
