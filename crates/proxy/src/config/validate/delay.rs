//! Checks a fault's `delay` and builds the distribution the fault stage draws from.
//!
//! The table's keys name the distribution: exactly one pair, `p50`/`p99`, `min`/`max` or
//! `mean`/`stddev`, both of it, nothing else. Whether the values fit (`p50 <= p99`,
//! `min <= max`) is the policy crate's [`Latency::validate`], not a copy of it here; its
//! error is reported at the value that breaks it.

use std::ops::Range;
use std::time::Duration;

use blastwall_policy::latency::{InvalidLatency, Latency, MAX_DELAY};
use toml::Spanned;

use super::{Checker, duration_or};
use crate::config::file::delay::{DelayTable, DelayValue};
use crate::config::values::DurationValue;

/// The shapes a table may have, for the errors that name them.
const SHAPES: &str =
    "{ p50, p99 } (log-normal), { min, max } (uniform) or { mean, stddev } (normal)";

/// The delay's distribution (a duration is a fixed one); `None` after an error.
pub(super) fn latency(
    check: &mut Checker<'_>,
    route: &str,
    delay: Spanned<DelayValue>,
) -> Option<Latency> {
    let span = delay.span();
    let latency = match delay.into_inner() {
        DelayValue::Fixed(fixed) => Latency::Fixed {
            value: value(check, route, Spanned::new(span.clone(), fixed))?,
        },
        DelayValue::Distribution(table) => distribution(check, route, span.clone(), *table)?,
    };
    if latency.is_always_zero() {
        check.error_at(
            span,
            format!("route \"{route}\": fault.delay must be more than 0"),
        );
        return None;
    }
    Some(latency)
}

/// Which two keys of the table are given, and the distribution they name.
enum Pair {
    LogNormal,
    Uniform,
    Normal,
}

/// A table's distribution: one complete pair, values that fit.
fn distribution(
    check: &mut Checker<'_>,
    route: &str,
    span: Range<usize>,
    table: DelayTable,
) -> Option<Latency> {
    let DelayTable {
        p50,
        p99,
        min,
        max,
        mean,
        stddev,
    } = table;
    let pairs = [
        (Pair::LogNormal, ["p50", "p99"], p50, p99),
        (Pair::Uniform, ["min", "max"], min, max),
        (Pair::Normal, ["mean", "stddev"], mean, stddev),
    ];
    let mut given = pairs
        .into_iter()
        .filter(|(_, _, first, second)| first.is_some() || second.is_some());
    let (Some((pair, names, first, second)), None) = (given.next(), given.next()) else {
        let message = format!(
            "route \"{route}\": fault.delay is a duration (\"200ms\") or one distribution: {SHAPES}"
        );
        check.error_at(span, message);
        return None;
    };
    let (Some(first), Some(second)) = (first, second) else {
        let [a, b] = names;
        let message = format!("route \"{route}\": fault.delay needs both {a} and {b}");
        check.error_at(span, message);
        return None;
    };
    let spans = (first.span(), second.span());
    let (first, second) = (value(check, route, first), value(check, route, second));
    let latency = match pair {
        Pair::LogNormal => Latency::LogNormal {
            p50: first?,
            p99: second?,
        },
        Pair::Uniform => Latency::Uniform {
            min: first?,
            max: second?,
        },
        Pair::Normal => Latency::Normal {
            mean: first?,
            std_dev: second?,
        },
    };
    if let Err(error) = latency.validate() {
        // At the value to change: a zero median at itself, a range upside down at its end.
        let at = match error {
            InvalidLatency::LogNormal { p50, .. } if p50.is_zero() => spans.0,
            _ => spans.1,
        };
        check.error_at(at, format!("route \"{route}\": fault.delay: {error}"));
        return None;
    }
    Some(latency)
}

/// One of the table's durations; `None` after reporting one that does not parse, or one
/// past [`MAX_DELAY`] (no draw waits longer, so a longer value would be listed as what it
/// does not do).
fn value(check: &mut Checker<'_>, route: &str, value: Spanned<DurationValue>) -> Option<Duration> {
    let parsed = value.get_ref().0.is_ok();
    let span = value.span();
    let duration = duration_or(check, Some(value), Duration::ZERO);
    if parsed && duration > MAX_DELAY {
        let message = format!(
            "route \"{route}\": fault.delay {duration:?} is longer than any delay is drawn: at most {}s (1h)",
            MAX_DELAY.as_secs()
        );
        check.error_at(span, message);
        return None;
    }
    parsed.then_some(duration)
}
