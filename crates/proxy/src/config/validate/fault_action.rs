//! What a `[[route.fault]]` rule does: exactly one action (delay, abort, reset, close,
//! throttle, endpoint down), checked and built, and where in the pipeline it is done.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rand::Rng;
use toml::Spanned;

use super::{Checker, duration_or, size_or};
use crate::config::fault::{AbortConfig, FaultAction, FaultEndpoint, FaultStage};
use crate::config::file::fault::{AbortSection, CloseAt, FaultAt, FaultSection};
use crate::config::values::parse_size;
use crate::config::{EndpointAddress, EndpointConfig};

/// The keys that say what a fault does; a rule gives exactly one.
const ACTIONS: &str = "`delay`, `abort`, `reset`, `close`, `throttle` or `down`";

/// The rule's action: exactly one of the action keys, each checked; `truncate_after` only
/// with the close it goes with.
pub(super) fn action(
    check: &mut Checker<'_>,
    route: &str,
    span: Range<usize>,
    section: FaultSection,
) -> Option<FaultAction> {
    if !one_action(check, route, span, &section) {
        return None;
    }
    if let (Some(truncate), false) = (
        &section.truncate_after,
        matches!(
            section.close.as_ref().map(|close| *close.get_ref()),
            Some(CloseAt::AfterHead)
        ),
    ) {
        let message = format!(
            "route \"{route}\": fault.truncate_after goes with close = \"after_head\" only"
        );
        check.error_at(truncate.span(), message);
        return None;
    }
    if let Some(delay) = section.delay {
        return super::delay::latency(check, route, delay).map(FaultAction::Delay);
    }
    if let Some(abort) = section.abort {
        return abort_config(check, route, abort).map(FaultAction::Abort);
    }
    if let Some(reset) = section.reset {
        return set(check, route, "reset", &reset).then_some(FaultAction::Reset);
    }
    if let Some(close) = section.close {
        return Some(match close.into_inner() {
            CloseAt::BeforeHead => FaultAction::CloseBeforeHead,
            CloseAt::AfterHead => FaultAction::CloseAfterHead {
                truncate_after: size_or(check, section.truncate_after, 0),
            },
        });
    }
    if let Some(throttle) = section.throttle {
        return throttle_rate(check, route, &throttle).map(FaultAction::Throttle);
    }
    let down = section.down?;
    set(check, route, "down", &down).then_some(FaultAction::EndpointDown)
}

/// Whether the section gives exactly one action; an error at the rule, or at the second
/// action given, otherwise.
fn one_action(
    check: &mut Checker<'_>,
    route: &str,
    span: Range<usize>,
    section: &FaultSection,
) -> bool {
    let given: Vec<(&str, Range<usize>)> = [
        ("delay", section.delay.as_ref().map(Spanned::span)),
        ("abort", section.abort.as_ref().map(Spanned::span)),
        ("reset", section.reset.as_ref().map(Spanned::span)),
        ("close", section.close.as_ref().map(Spanned::span)),
        ("throttle", section.throttle.as_ref().map(Spanned::span)),
        ("down", section.down.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(key, span)| Some((key, span?)))
    .collect();
    match given.as_slice() {
        [_] => true,
        [] => {
            let message = format!(
                "route \"{route}\": a fault needs `delay` (a duration) or `abort` (a status), or one of `reset`, `close`, `throttle`, `down`"
            );
            check.error_at(span, message);
            false
        }
        [(first, _), (second, span), ..] => {
            let message = format!(
                "route \"{route}\": a fault gives one of {ACTIONS}, not both `{first}` and `{second}`; write two [[route.fault]] rules"
            );
            check.error_at(span.clone(), message);
            false
        }
    }
}

/// Whether a switch (`reset`, `down`) is on; `false` is an error, as it would do nothing.
fn set(check: &mut Checker<'_>, route: &str, key: &str, value: &Spanned<bool>) -> bool {
    if !*value.get_ref() {
        let message = format!(
            "route \"{route}\": fault.{key} = false does nothing; write {key} = true, or leave the rule out"
        );
        check.error_at(value.span(), message);
    }
    *value.get_ref()
}

/// `throttle`: a size per second, "10KiB" or "10KiB/s", more than zero.
fn throttle_rate(
    check: &mut Checker<'_>,
    route: &str,
    value: &Spanned<String>,
) -> Option<NonZeroU64> {
    let text = value.get_ref().trim();
    let size = text.strip_suffix("/s").unwrap_or(text).trim();
    let invalid = || {
        format!(
            "\"{text}\" is not a rate; give a size a second above zero, like \"10KiB\" or \"1MiB/s\""
        )
    };
    let problem = match parse_size(size, invalid).map(NonZeroU64::new) {
        Ok(Some(rate)) => return Some(rate),
        Ok(None) => invalid(),
        Err(problem) => problem,
    };
    let message = format!("route \"{route}\": fault.throttle: {problem}");
    check.error_at(value.span(), message);
    None
}

/// The endpoint a rule is limited to (or takes down): one the cluster lists by address, or
/// one of those picked at random (`"random"`) now, when the rule is built.
pub(super) fn endpoint(
    check: &mut Checker<'_>,
    route: &str,
    value: &Spanned<String>,
    endpoints: &[EndpointConfig],
) -> Option<FaultEndpoint> {
    let addresses: Vec<SocketAddr> = endpoints
        .iter()
        .filter_map(|endpoint| match endpoint.address {
            EndpointAddress::Socket(address) => Some(address),
            EndpointAddress::Dns { .. } => None,
        })
        .collect();
    let text = value.get_ref().trim();
    let listed = || {
        let listed: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        if listed.is_empty() {
            "the cluster lists no endpoint by IP address".to_owned()
        } else {
            format!("its endpoints: {}", listed.join(", "))
        }
    };
    if text == "random" {
        if addresses.is_empty() {
            let message = format!(
                "route \"{route}\": fault.endpoint = \"random\" has nothing to pick from: {}",
                listed()
            );
            check.error_at(value.span(), message);
            return None;
        }
        let index = crate::rng::with_rng(|rng| rng.random_range(0..addresses.len()));
        return Some(FaultEndpoint {
            address: addresses[index],
            random: true,
        });
    }
    match text.parse::<SocketAddr>() {
        Ok(address) if addresses.contains(&address) => Some(FaultEndpoint {
            address,
            random: false,
        }),
        _ => {
            let message = format!(
                "route \"{route}\": fault.endpoint \"{text}\" is not an endpoint of the route's cluster; give \"random\" or one of {}",
                listed()
            );
            check.error_at(value.span(), message);
            None
        }
    }
}

/// Where the rule is done: `at`, by default once per request; a rule limited to an
/// endpoint (an endpoint down always is) acts on the attempts that pick it, so it cannot be
/// done per request.
pub(super) fn stage(
    check: &mut Checker<'_>,
    route: &str,
    at: Option<Spanned<FaultAt>>,
    per_endpoint: bool,
) -> Option<FaultStage> {
    match at.as_ref().map(|at| (*at.get_ref(), at.span())) {
        None if per_endpoint => Some(FaultStage::Attempt),
        None => Some(FaultStage::Request),
        Some((FaultAt::Request, span)) if per_endpoint => {
            let message = format!(
                "route \"{route}\": a rule with `endpoint` acts on the attempts that pick it; leave `at` out or write at = \"attempt\""
            );
            check.error_at(span, message);
            None
        }
        Some((FaultAt::Request, _)) => Some(FaultStage::Request),
        Some((FaultAt::Attempt, _)) => Some(FaultStage::Attempt),
    }
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
