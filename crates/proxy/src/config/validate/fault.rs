//! Checks a route's `[[route.fault]]` rules and builds what the fault stage draws from:
//! whom a rule applies to here, what it does in `fault_action`.

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use super::{Checker, fault_action};
use crate::config::EndpointConfig;
use crate::config::admission::PriorityTrust;
use crate::config::fault::FaultRule;
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
    let action = fault_action::action(check, route, span, section)?;
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
    Some(FaultRule {
        header,
        per_million,
        action,
        at,
        endpoint,
    })
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
