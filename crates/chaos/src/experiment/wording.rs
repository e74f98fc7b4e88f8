//! How a check reads to people: its label, its bound, its unit, and figures written as a
//! reader expects them ("99.95%", "23 ms"). The names are the spec's.

use std::time::Duration;

use crate::load::FallbackKind;
use crate::spec::{Expectation, Metric, Quantile, Scope, Signal, Window};

/// A share as people read it: one decimal, two between 99% and 100% (where 99.95% and
/// 99.9% must not both read 99.9%).
pub(super) fn percent(value: f64) -> String {
    let percent = value * 100.0;
    if percent > 99.0 && percent < 100.0 {
        format!("{percent:.2}%")
    } else {
        format!("{percent:.1}%")
    }
}

pub(super) fn milliseconds(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

pub(super) fn window_name(window: Window) -> &'static str {
    match window {
        Window::Run => "run",
        Window::Fault => "fault",
        Window::Recovery => "recovery",
    }
}

pub(super) fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::All => "all".into(),
        Scope::Route(route) => format!("route {route}"),
        Scope::Class(class) => format!("class {class}"),
    }
}

/// The metric's name as the spec writes it.
pub(super) fn metric_name(metric: &Metric) -> String {
    match metric {
        Metric::Availability { .. } => "availability".into(),
        Metric::ErrorRate { .. } => "error_rate".into(),
        Metric::Latency { quantile, .. } => match quantile {
            Quantile::P50 => "p50",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
        .into(),
        Metric::FallbackShare { .. } => "fallback_share".into(),
        Metric::Statuses { .. } => "statuses".into(),
        Metric::RetryAmplification { .. } => "retry_amplification".into(),
        Metric::TimeToDetect { .. } => "time_to_detect".into(),
        Metric::TimeToRecover { .. } => "time_to_recover".into(),
    }
}

pub(super) fn unit(metric: &Metric) -> &'static str {
    match metric {
        Metric::Availability { .. }
        | Metric::ErrorRate { .. }
        | Metric::FallbackShare { .. }
        | Metric::Statuses { .. } => "ratio",
        Metric::Latency { .. } => "ms",
        Metric::RetryAmplification { .. } => "factor",
        Metric::TimeToDetect { .. } | Metric::TimeToRecover { .. } => "s",
    }
}

pub(super) fn bound(metric: &Metric) -> String {
    match metric {
        Metric::Availability { at_least } => format!("≥ {}", percent(*at_least)),
        Metric::ErrorRate { at_most } => format!("≤ {}", percent(*at_most)),
        Metric::Latency { at_most, .. } => format!("≤ {}", milliseconds(*at_most)),
        Metric::FallbackShare {
            at_least, at_most, ..
        } => match (at_least, at_most) {
            (Some(floor), Some(ceiling)) => format!("{} to {}", percent(*floor), percent(*ceiling)),
            (Some(floor), None) => format!("≥ {}", percent(*floor)),
            (None, Some(ceiling)) => format!("≤ {}", percent(*ceiling)),
            (None, None) => "any".into(),
        },
        Metric::Statuses { allowed } => {
            let allowed: Vec<String> = allowed.iter().map(u16::to_string).collect();
            format!("only {}", allowed.join(", "))
        }
        Metric::RetryAmplification { at_most } => format!("≤ {at_most:.2}×"),
        Metric::TimeToDetect { at_most, .. } | Metric::TimeToRecover { at_most } => {
            format!("≤ {:.1} s", at_most.as_secs_f64())
        }
    }
}

pub(super) fn label(expectation: &Expectation, window: &str) -> String {
    let what = match &expectation.metric {
        Metric::Availability { .. } => "availability".to_string(),
        Metric::ErrorRate { .. } => "error rate".into(),
        Metric::Latency { quantile, .. } => format!(
            "{} latency",
            match quantile {
                Quantile::P50 => "p50",
                Quantile::P95 => "p95",
                Quantile::P99 => "p99",
            }
        ),
        Metric::FallbackShare { kind, .. } => match kind {
            Some(kind) => format!("answers from the {kind} fallback"),
            None => "answers from a fallback".into(),
        },
        Metric::Statuses { .. } => "statuses".into(),
        Metric::RetryAmplification { .. } => "retry amplification".into(),
        Metric::TimeToDetect { signal, .. } => match signal {
            Signal::BreakerOpen => "time to detect (breaker open)".into(),
            Signal::EndpointEjected => "time to detect (endpoint ejected)".into(),
        },
        Metric::TimeToRecover { .. } => return "time to recover".into(),
    };
    if matches!(expectation.metric, Metric::TimeToDetect { .. }) {
        return what;
    }
    let when = match window {
        "fault" => "during the fault",
        "recovery" => "after the fault",
        "before" => "before the fault",
        "after" => "after recovery",
        _ => "over the run",
    };
    match &expectation.scope {
        Scope::All => format!("{what} {when}"),
        Scope::Route(route) => format!("{what} {when}, route {route}"),
        Scope::Class(class) => format!("{what} {when}, class {class}"),
    }
}

pub(super) fn fallback_name(kind: FallbackKind) -> &'static str {
    match kind {
        FallbackKind::Static => "static",
        FallbackKind::Cluster => "cluster",
        FallbackKind::Stale => "stale",
        FallbackKind::Other => "other",
    }
}
