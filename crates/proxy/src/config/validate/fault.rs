//! Checks a route's `[[route.fault]]` rules and builds what the fault stage draws from:
//! whom a rule applies to here, what it does in `fault_action`.

use std::num::NonZeroU64;
use std::path::Path;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::{Checker, fault_action};
use crate::config::EndpointConfig;
use crate::config::admission::PriorityTrust;
use crate::config::fault::{FaultRule, FaultWindow};
use crate::config::file::fault::FaultSection;

/// The route's fault rules, in file order; a rule with an error is left out (the errors
/// fail the load anyway).
pub(super) fn faults(
    check: &mut Checker<'_>,
    route: &str,
    sections: Vec<Spanned<FaultSection>>,
    trust: &PriorityTrust,
    endpoints: &[EndpointConfig],
) -> Vec<FaultRule> {
    sections
        .into_iter()
        .filter_map(|section| rule(check, route, section, trust, endpoints))
        .collect()
}

/// One rule: exactly one action (see `fault_action`), where it is done, a percentage in
/// 0–100, a valid header (and someone trusted to send it).
fn rule(
    check: &mut Checker<'_>,
    route: &str,
    section: Spanned<FaultSection>,
    trust: &PriorityTrust,
    endpoints: &[EndpointConfig],
) -> Option<FaultRule> {
    let span = section.span();
    let mut section = section.into_inner();
    let at = section.at.take();
    let per_million = section.percent.take();
    let header = section.header.take();
    let endpoint = section.endpoint.take();
    let down = section.down.as_ref().map(Spanned::span);
    let first = section.first.take();
    let (from, until) = (section.from.take(), section.until.take());
    let action = fault_action::action(check, route, span.clone(), section)?;
    let endpoint = match endpoint {
        None => None,
        Some(endpoint) => Some(fault_action::endpoint(check, route, &endpoint, endpoints)?),
    };
    if let (Some(down), None) = (down, endpoint) {
        let message = format!(
            "route \"{route}\": fault.down needs `endpoint`: one of the cluster's endpoints (\"ip:port\") or \"random\""
        );
        check.error_at(down, message);
        return None;
    }
    let at = fault_action::stage(check, route, at, endpoint.is_some())?;
    let per_million = match per_million {
        None => 1_000_000,
        Some(percent) => self::per_million(check, route, &percent)?,
    };
    let header = match header {
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
    let first = match first {
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
        from: time(check, route, "from", from.as_ref())?,
        until: time(check, route, "until", until.as_ref())?,
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
        at,
        endpoint,
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
/// `endpoints` are the target's cluster's, which `endpoint` names (or picks from, for
/// `"random"`: picked here, once, as a config's is at load).
pub(crate) fn runtime_rule(
    keys: toml::Table,
    label: &str,
    trust: &PriorityTrust,
    endpoints: &[EndpointConfig],
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
    let rule = rule(&mut check, label, parsed.fault, trust, endpoints);
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
