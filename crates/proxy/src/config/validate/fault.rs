//! Checks a route's `[[route.fault]]` rules and builds what the fault stage draws from.

use std::num::NonZeroU64;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use toml::Spanned;

use super::{Checker, duration_or};
use crate::config::admission::PriorityTrust;
use crate::config::fault::{AbortConfig, FaultAction, FaultRule, FaultWindow};
use crate::config::file::fault::{AbortSection, FaultSection};

/// The route's fault rules, in file order; a rule with an error is left out (the errors
/// fail the load anyway).
pub(super) fn faults(
    check: &mut Checker<'_>,
    route: &str,
    sections: Vec<Spanned<FaultSection>>,
    trust: &PriorityTrust,
) -> Vec<FaultRule> {
    sections
        .into_iter()
        .filter_map(|section| rule(check, route, section, trust))
        .collect()
}

/// One rule: exactly one of `delay` and `abort`, a percentage in 0–100, a valid header
/// (and someone trusted to send it).
fn rule(
    check: &mut Checker<'_>,
    route: &str,
    section: Spanned<FaultSection>,
    trust: &PriorityTrust,
) -> Option<FaultRule> {
    let span = section.span();
    let section = section.into_inner();
    let action = match (section.delay, section.abort) {
        (Some(delay), None) => FaultAction::Delay(super::delay::latency(check, route, delay)?),
        (None, Some(abort)) => FaultAction::Abort(abort_config(check, route, abort)?),
        (Some(_), Some(abort)) => {
            let message = format!(
                "route \"{route}\": a fault gives `delay` or `abort`, not both; write two [[route.fault]] rules"
            );
            check.error_at(abort.span(), message);
            return None;
        }
        (None, None) => {
            let message = format!(
                "route \"{route}\": a fault needs `delay` (a duration) or `abort` (a status)"
            );
            check.error_at(span, message);
            return None;
        }
    };
    let per_million = match section.percent {
        None => 1_000_000,
        Some(percent) => per_million(check, route, &percent)?,
    };
    let header = match section.header {
        None => None,
        Some(header) => {
            // A client that could fault its own requests could trip the cluster's breaker
            // for everyone with a header, so only trusted clients' headers are read; with
            // none trusted, the rule could never match, and saying so beats a silent no-op.
            if trust.trusted.is_empty() {
                let message = format!(
                    "route \"{route}\": fault.header is honoured only from [proxy] trusted_clients, and none is given; add the networks the test traffic comes from (e.g. trusted_clients = [\"127.0.0.1\"])"
                );
                check.error_at(header.span(), message);
            }
            Some(header_condition(check, route, &header)?)
        }
    };
    let first = match section.first {
        None => None,
        Some(first) => {
            let Some(first) = NonZeroU64::new(*first.get_ref()) else {
                let message = format!(
                    "route \"{route}\": fault.first is 0; give at least 1 (or leave it out: no limit)"
                );
                check.error_at(first.span(), message);
                return None;
            };
            Some(first)
        }
    };
    let window = FaultWindow {
        from: time(check, route, "from", section.from.as_ref())?,
        until: time(check, route, "until", section.until.as_ref())?,
    };
    if let (Some(from), Some(until)) = (window.from, window.until)
        && until <= from
    {
        let message = format!("route \"{route}\": fault.until must be after fault.from");
        check.error_at(span, message);
        return None;
    }
    Some(FaultRule {
        header,
        per_million,
        action,
        first,
        window,
    })
}

/// `from` or `until`: an RFC 3339 time (`Ok(None)` when not given).
#[allow(clippy::option_option)]
fn time(
    check: &mut Checker<'_>,
    route: &str,
    key: &str,
    value: Option<&Spanned<String>>,
) -> Option<Option<SystemTime>> {
    let Some(value) = value else {
        return Some(None);
    };
    match humantime::parse_rfc3339_weak(value.get_ref().trim()) {
        Ok(time) => Some(Some(time)),
        Err(_) => {
            let message = format!(
                "route \"{route}\": fault.{key} \"{}\" is not an RFC 3339 time; write e.g. \"2026-12-07T21:00:00Z\"",
                value.get_ref()
            );
            check.error_at(value.span(), message);
            None
        }
    }
}

/// A rule given at run time (the admin API's JSON without its target and timing keys, as
/// TOML values), checked by the very code that checks a `[[route.fault]]` section, so both
/// refuse the same input with the same words. `label` names the target, as the route's
/// name does in the file's messages; the message comes without it and without a place.
pub(crate) fn runtime_rule(
    keys: toml::Table,
    label: &str,
    trust: &PriorityTrust,
) -> Result<FaultRule, String> {
    #[derive(Deserialize)]
    struct Document {
        fault: Spanned<FaultSection>,
    }
    let mut document = toml::Table::new();
    document.insert("fault".into(), toml::Value::Table(keys));
    let text = toml::to_string(&document).map_err(|error| error.to_string())?;
    let parsed: Document = toml::from_str(&text).map_err(|error| error.message().to_owned())?;
    let section = parsed.fault.get_ref();
    if section.from.is_some() || section.until.is_some() {
        return Err(
            "`from` and `until` are for rules in the config file; a rule made at run time takes `after` and `ttl` (durations from its creation)"
                .into(),
        );
    }
    let mut check = Checker {
        text: &text,
        path: Path::new("(admin API)"),
        errors: Vec::new(),
    };
    let rule = rule(&mut check, label, parsed.fault, trust);
    let prefix = format!("route \"{label}\": ");
    match (rule, check.errors.into_iter().next()) {
        (Some(rule), None) => Ok(rule),
        (_, Some(error)) => Err(error
            .message
            .strip_prefix(&prefix)
            .unwrap_or(&error.message)
            .to_owned()),
        (None, None) => Err("the fault rule is not valid".into()),
    }
}

/// `percent`, 0 to 100, as a share of a million.
fn per_million(check: &mut Checker<'_>, route: &str, percent: &Spanned<f64>) -> Option<u32> {
    let value = *percent.get_ref();
    if !(0.0..=100.0).contains(&value) {
        let message = format!("route \"{route}\": fault.percent is {value}; give 0 to 100");
        check.error_at(percent.span(), message);
        return None;
    }
    // In range, so the product is within 0..=1_000_000.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((value * 10_000.0).round() as u32)
}

/// `"name"` or `"name=value"`.
fn header_condition(
    check: &mut Checker<'_>,
    route: &str,
    header: &Spanned<String>,
) -> Option<(HeaderName, Option<HeaderValue>)> {
    let text = header.get_ref();
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (text.trim(), None),
    };
    let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
        let message = format!(
            "route \"{route}\": fault.header \"{text}\" is not a valid header name; write \"name\" or \"name=value\""
        );
        check.error_at(header.span(), message);
        return None;
    };
    let value = match value.map(HeaderValue::from_str) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => {
            let message = format!(
                "route \"{route}\": fault.header \"{text}\" has a value a header cannot carry"
            );
            check.error_at(header.span(), message);
            return None;
        }
    };
    Some((name, value))
}

/// The abort's answer: a status 400 to 599, its body, a whole-second `Retry-After`.
fn abort_config(
    check: &mut Checker<'_>,
    route: &str,
    abort: Spanned<AbortSection>,
) -> Option<AbortConfig> {
    let abort = abort.into_inner();
    let status = *abort.status.get_ref();
    let Some(status) = StatusCode::from_u16(status)
        .ok()
        .filter(|_| (400..=599).contains(&status))
    else {
        let message = format!("route \"{route}\": fault.abort.status is {status}; give 400 to 599");
        check.error_at(abort.status.span(), message);
        return None;
    };
    let retry_after = match abort.retry_after {
        None => None,
        Some(value) => {
            let span = value.span();
            let duration = duration_or(check, Some(value), Duration::ZERO);
            if duration.is_zero() || duration.subsec_nanos() != 0 {
                let message = format!(
                    "route \"{route}\": fault.abort.retry_after must be whole seconds, at least 1s"
                );
                check.error_at(span, message);
                return None;
            }
            Some(duration)
        }
    };
    Some(AbortConfig {
        status,
        body: Bytes::from(abort.body.unwrap_or_default()),
        retry_after,
    })
}
