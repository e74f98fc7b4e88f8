//! Validation of deadlines, retries, hedging and retry budgets.

use std::ops::Range;
use std::time::Duration;

use blastwall_policy::backoff::{BackoffConfig, BackoffConfigError, Jitter};
use blastwall_policy::budget::{BudgetConfig, ValidBudgetConfig};
use blastwall_policy::hedge::{HedgeConfig, HedgeConfigError, HedgeDelay, ValidHedgeConfig};
use blastwall_policy::retry::{
    RetryAfter, RetryConfig, RetryConfigError, RetryOn, RetryPolicy, StatusSet,
};
use toml::Spanned;

use super::{Checker, duration_or, size_or};
use crate::config::attempts::{DEFAULT_BUFFER_LIMIT, RouteAttempts};
use crate::config::file::{
    HedgeSection, JitterKind, RetryBudgetSection, RetryCondition, RetrySection,
};
use crate::config::values::{DurationValue, Learned, LearnedDurationValue};

const DEFAULT_ATTEMPTS: u32 = 3;
const MAX_ATTEMPTS: u32 = 10;
const MAX_HEDGES: u32 = 5;
const MAX_BUFFER_LIMIT: u64 = 16 * 1024 * 1024;
const DEFAULT_RETRY_AFTER_MAX: Duration = Duration::from_secs(1);
const DEFAULT_HEDGE_MIN_SAMPLES: u32 = 100;
const HEDGE_WINDOW: Duration = Duration::from_secs(10);

/// The route's attempt settings; errors point at the values.
pub(super) fn route_attempts(
    check: &mut Checker<'_>,
    route: &str,
    anchor: Range<usize>,
    timeout: Option<Spanned<DurationValue>>,
    per_try_timeout: Duration,
    retry: Option<RetrySection>,
    hedge: Option<HedgeSection>,
) -> RouteAttempts {
    let mut attempts = RouteAttempts {
        timeout: positive_duration(check, route, "timeout", timeout),
        per_try_timeout,
        ..RouteAttempts::default()
    };
    if let Some(mut section) = retry {
        attempts.buffer_limit = match section.buffer_limit.take() {
            Some(limit) => {
                let span = limit.span();
                let value = size_or(check, Some(limit), DEFAULT_BUFFER_LIMIT);
                if value > MAX_BUFFER_LIMIT {
                    check.error_at(
                        span,
                        format!("route \"{route}\": retry.buffer_limit is at most 16MiB (a kept body is held in memory), got {value} bytes"),
                    );
                }
                value
            }
            None => DEFAULT_BUFFER_LIMIT,
        };
        let (config, base_span) = retry_config(check, route, section);
        match RetryPolicy::new(config) {
            Ok(policy) => attempts.retry = policy,
            // The policy's backoff check, in the file's words, at the base.
            Err(RetryConfigError::Backoff(BackoffConfigError::CapBelowBase { base, cap })) => {
                check.error_at(
                    base_span.unwrap_or_else(|| anchor.clone()),
                    format!("route \"{route}\": retry.backoff.base must be more than zero and at most backoff.max ({cap:?}), got {base:?}"),
                );
            }
            Err(error) => {
                check.error_at(anchor.clone(), format!("route \"{route}\": retry: {error}"))
            }
        }
    }
    attempts.hedge = hedge.and_then(|section| hedge_config(check, route, anchor, section));
    attempts
}

/// A duration that must be more than zero, if written.
/// `per_try_timeout`: a duration more than zero, or `"auto"` (`true`: learned, within the
/// cluster's `request_timeout`); errors at the value.
pub(super) fn per_try_timeout(
    check: &mut Checker<'_>,
    route: &str,
    value: Option<Spanned<LearnedDurationValue>>,
) -> (Option<Duration>, bool) {
    let Some(value) = value else {
        return (None, false);
    };
    let span = value.span();
    match value.into_inner().0 {
        Ok(Learned::Auto) => (None, true),
        Ok(Learned::Fixed(duration)) if !duration.is_zero() => (Some(duration), false),
        Ok(Learned::Fixed(_)) => {
            check.error_at(
                span,
                format!("route \"{route}\": per_try_timeout must be more than zero"),
            );
            (None, false)
        }
        Err(message) => {
            check.error_at(span, message);
            (None, false)
        }
    }
}

pub(super) fn positive_duration(
    check: &mut Checker<'_>,
    route: &str,
    key: &str,
    value: Option<Spanned<DurationValue>>,
) -> Option<Duration> {
    let span = value.as_ref()?.span();
    let duration = duration_or(check, value, Duration::ZERO);
    if duration.is_zero() {
        check.error_at(
            span,
            format!("route \"{route}\": {key} must be more than zero"),
        );
        return None;
    }
    Some(duration)
}

/// The retry settings, and where `backoff.base` was written (for the policy's refusal).
fn retry_config(
    check: &mut Checker<'_>,
    route: &str,
    section: RetrySection,
) -> (RetryConfig, Option<Range<usize>>) {
    let max_attempts = match section.attempts {
        Some(attempts) if !(1..=MAX_ATTEMPTS).contains(attempts.get_ref()) => {
            check.error_at(
                attempts.span(),
                format!(
                    "route \"{route}\": retry.attempts counts the first attempt and must be 1 to {MAX_ATTEMPTS}, got {}",
                    attempts.get_ref()
                ),
            );
            DEFAULT_ATTEMPTS
        }
        Some(attempts) => attempts.into_inner(),
        None => DEFAULT_ATTEMPTS,
    };
    let retry_on = retry_on(check, route, section.on, section.statuses);
    let retry_after_max = match section.retry_after_max {
        Some(value) => duration_or(check, Some(value), DEFAULT_RETRY_AFTER_MAX),
        None => DEFAULT_RETRY_AFTER_MAX,
    };
    let mut base_span = None;
    let backoff = section
        .backoff
        .map_or_else(BackoffConfig::default, |backoff| {
            let defaults = BackoffConfig::default();
            base_span = backoff.base.as_ref().map(Spanned::span);
            let base = duration_or(check, backoff.base, defaults.base);
            let cap = duration_or(check, backoff.max, defaults.cap);
            // NOTE: a zero base is the proxy's own rule (the policy allows it); a base above
            // the cap is the policy's, reported from its refusal.
            if base.is_zero() {
                check.error_at(
                    base_span.clone().unwrap_or(0..0),
                    format!("route \"{route}\": retry.backoff.base must be more than zero and at most backoff.max ({cap:?}), got {base:?}"),
                );
            }
            let jitter = match backoff.jitter.unwrap_or(JitterKind::Full) {
                JitterKind::None => Jitter::None,
                JitterKind::Full => Jitter::Full,
                JitterKind::Equal => Jitter::Equal,
                JitterKind::Decorrelated => Jitter::Decorrelated,
            };
            BackoffConfig::exponential(base, 2.0, cap).with_jitter(jitter)
        });
    let config = RetryConfig {
        max_attempts,
        backoff,
        retry_on,
        retry_after: RetryAfter::Honour {
            max: retry_after_max,
        },
        retry_non_idempotent: section.non_idempotent.unwrap_or(false),
    };
    (config, base_span)
}

/// What a route's attempts are retried on: the conditions `on` names (every one when it is
/// not written) and the `statuses` added to them, each an error status.
fn retry_on(
    check: &mut Checker<'_>,
    route: &str,
    on: Option<Spanned<Vec<RetryCondition>>>,
    statuses: Option<Spanned<Vec<u16>>>,
) -> RetryOn {
    let mut retry_on = RetryOn {
        connect_failed: false,
        refused: false,
        reset: false,
        timeout: false,
        statuses: StatusSet::empty(),
    };
    let conditions = on.map_or_else(
        || {
            vec![
                RetryCondition::ConnectFailure,
                RetryCondition::Refused,
                RetryCondition::Reset,
                RetryCondition::Timeout,
                RetryCondition::GatewayError,
                RetryCondition::Overloaded,
            ]
        },
        Spanned::into_inner,
    );
    let add = |set: &mut StatusSet, codes: &[u16]| {
        for &code in codes {
            // NOTE: these are all valid codes; insert only fails outside 100..=599.
            let _ = set.insert(code);
        }
    };
    for condition in conditions {
        match condition {
            RetryCondition::ConnectFailure => retry_on.connect_failed = true,
            RetryCondition::Refused => retry_on.refused = true,
            RetryCondition::Reset => retry_on.reset = true,
            RetryCondition::Timeout => retry_on.timeout = true,
            RetryCondition::GatewayError => add(&mut retry_on.statuses, &[502, 504]),
            RetryCondition::Overloaded => add(&mut retry_on.statuses, &[429, 503]),
            RetryCondition::ServerError => retry_on.statuses = StatusSet::server_errors(),
        }
    }
    if let Some(statuses) = statuses {
        for &code in statuses.get_ref() {
            if retry_on.statuses.insert(code).is_err() || code < 400 {
                check.error_at(
                    statuses.span(),
                    format!("route \"{route}\": retry.statuses holds {code}, which is not an error status (400 to 599)"),
                );
            }
        }
    }
    retry_on
}

fn hedge_config(
    check: &mut Checker<'_>,
    route: &str,
    anchor: Range<usize>,
    section: HedgeSection,
) -> Option<ValidHedgeConfig> {
    let max_hedges = match section.max {
        Some(max) if !(1..=MAX_HEDGES).contains(max.get_ref()) => {
            check.error_at(
                max.span(),
                format!(
                    "route \"{route}\": hedge.max must be 1 to {MAX_HEDGES}, got {}",
                    max.get_ref()
                ),
            );
            1
        }
        Some(max) => max.into_inner(),
        None => 1,
    };
    let mut percentile_written = None;
    let delay = match (section.after, section.percentile) {
        (Some(after), None) => {
            let span = after.span();
            let after = duration_or(check, Some(after), Duration::ZERO);
            if after.is_zero() {
                check.error_at(
                    span,
                    format!("route \"{route}\": hedge.after must be more than zero"),
                );
                return None;
            }
            HedgeDelay::Fixed(after)
        }
        (None, Some(percentile)) => {
            let value = *percentile.get_ref();
            percentile_written = Some((percentile.span(), value));
            HedgeDelay::Percentile {
                quantile: value / 100.0,
                min_samples: section.min_samples.unwrap_or(DEFAULT_HEDGE_MIN_SAMPLES),
                fallback: None,
            }
        }
        (Some(after), Some(_)) => {
            check.error_at(
                after.span(),
                format!("route \"{route}\": give hedge.after or hedge.percentile, not both"),
            );
            return None;
        }
        (None, None) => {
            check.error_at(
                anchor,
                format!("route \"{route}\": [route.hedge] needs `after` (a delay) or `percentile`"),
            );
            return None;
        }
    };
    let config = HedgeConfig {
        delay,
        max_hedges,
        window: HEDGE_WINDOW,
    };
    match (config.validated(), percentile_written) {
        (Ok(valid), _) => Some(valid),
        // The policy's quantile, in the file's words: a percentile.
        (Err(HedgeConfigError::Quantile(_)), Some((span, value))) => {
            check.error_at(
                span,
                format!("route \"{route}\": hedge.percentile must be above 0 and at most 100, got {value}"),
            );
            None
        }
        (Err(error), _) => {
            check.error_at(anchor, format!("route \"{route}\": hedge: {error}"));
            None
        }
    }
}

/// The cluster's retry budget, checked by the policy crate (a refusal is reported at the
/// cluster's name).
pub(super) fn retry_budget(
    check: &mut Checker<'_>,
    cluster: &str,
    cluster_span: Range<usize>,
    section: Option<RetryBudgetSection>,
) -> ValidBudgetConfig {
    let mut budget = BudgetConfig::default();
    let Some(section) = section else {
        return ValidBudgetConfig::default();
    };
    if let Some(ratio) = section.ratio {
        let value = *ratio.get_ref();
        if !(0.0..=1.0).contains(&value) {
            check.error_at(
                ratio.span(),
                format!("cluster \"{cluster}\": retry_budget.ratio is retries per request, 0 to 1, got {value}"),
            );
        } else {
            budget.retry_ratio = value;
        }
    }
    if let Some(floor) = section.min_per_second {
        budget.min_retries_per_second = floor;
    }
    budget.validated().unwrap_or_else(|error| {
        check.error_at(
            cluster_span,
            format!("cluster \"{cluster}\": retry_budget: {error}"),
        );
        ValidBudgetConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use blastwall_policy::retry::FailureKind;

    use super::*;
    use crate::config::Config;

    const BASE: &str = r#"
[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[cluster.api]
endpoints = [{ address = "127.0.0.1:9001" }]

[[route]]
name = "api"
cluster = "api"
"#;

    fn parse(extra: &str) -> Result<Config, Vec<String>> {
        Config::parse(&format!("{BASE}{extra}"), Path::new("blastwall.toml"))
            .map_err(|errors| errors.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn without_a_retry_section_only_requests_that_never_left_are_retried_once() {
        let config = parse("").unwrap();
        let attempts = &config.routes[0].attempts;
        assert_eq!(attempts.retry.config().max_attempts, 2);
        assert!(
            attempts
                .retry
                .config()
                .retry_on
                .covers(FailureKind::ConnectFailed)
        );
        assert!(
            attempts
                .retry
                .config()
                .retry_on
                .covers(FailureKind::Refused)
        );
        assert!(!attempts.retry.config().retry_on.covers(FailureKind::Reset));
        assert!(
            !attempts
                .retry
                .config()
                .retry_on
                .covers(FailureKind::Status(503))
        );
        assert_eq!(attempts.timeout, None);
        assert!(attempts.hedge.is_none());
        assert_eq!(*config.clusters[0].retry_budget, BudgetConfig::default());
        assert_eq!(config.proxy.deadline_header, "x-blastwall-timeout-ms");
    }

    #[test]
    fn a_retry_section_takes_the_safe_defaults_and_the_conditions_given() {
        let config = parse(
            r#"timeout = "2s"
per_try_timeout = "300ms"
[route.retry]
attempts = 4
on = ["reset", "overloaded"]
statuses = [500]
backoff = { base = "10ms", max = "80ms", jitter = "equal" }
"#,
        )
        .unwrap();
        let attempts = &config.routes[0].attempts;
        assert_eq!(attempts.timeout, Some(Duration::from_secs(2)));
        assert_eq!(attempts.per_try_timeout, Duration::from_millis(300));
        let retry = attempts.retry.config();
        assert_eq!(retry.max_attempts, 4);
        assert!(retry.retry_on.covers(FailureKind::Reset));
        assert!(!retry.retry_on.covers(FailureKind::ConnectFailed));
        for code in [429, 503, 500] {
            assert!(retry.retry_on.covers(FailureKind::Status(code)), "{code}");
        }
        assert!(!retry.retry_on.covers(FailureKind::Status(502)));
        assert_eq!(retry.backoff.base, Duration::from_millis(10));
        assert_eq!(retry.backoff.cap, Duration::from_millis(80));
        assert_eq!(retry.backoff.jitter, Jitter::Equal);
        assert!(!retry.retry_non_idempotent);
        assert_eq!(attempts.buffer_limit, DEFAULT_BUFFER_LIMIT);
    }

    #[test]
    fn an_auto_per_try_timeout_is_learned_within_the_clusters_request_timeout() {
        let config = parse("per_try_timeout = \"auto\"\n").unwrap();
        let attempts = &config.routes[0].attempts;
        let learned = attempts.learned_per_try.expect("learned");
        assert_eq!(learned.ceiling, attempts.per_try_timeout);
        assert_eq!(attempts.per_try_timeout, config.clusters[0].request_timeout);
        assert_eq!(learned.floor, Duration::from_millis(50));
        assert!(
            parse("").unwrap().routes[0]
                .attempts
                .learned_per_try
                .is_none()
        );
        for (value, expected) in [
            ("\"soon\"", "expected \"auto\" or a number and a unit"),
            ("\"0ms\"", "per_try_timeout must be more than zero"),
        ] {
            let errors = parse(&format!("per_try_timeout = {value}\n")).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:#?}");
            assert!(errors[0].contains(expected), "{errors:#?}");
        }
    }

    #[test]
    fn nonsense_attempt_settings_are_each_reported_at_their_place() {
        let errors = parse(
            r#"per_try_timeout = "0s"
[route.retry]
attempts = 0
statuses = [200]
buffer_limit = "1GiB"
backoff = { base = "1s", max = "10ms" }
[route.hedge]
percentile = 120.0
"#,
        )
        .unwrap_err();
        let joined = errors.join("\n");
        for expected in [
            "per_try_timeout must be more than zero",
            "retry.attempts counts the first attempt and must be 1 to 10, got 0",
            "retry.statuses holds 200",
            "retry.buffer_limit is at most 16MiB",
            "retry.backoff.base must be more than zero and at most backoff.max",
            "hedge.percentile must be above 0 and at most 100, got 120",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in:\n{joined}"
            );
        }
        assert!(
            errors
                .iter()
                .all(|error| error.starts_with("blastwall.toml:"))
        );
    }

    #[test]
    fn a_backoff_base_above_its_max_is_refused_by_the_policy_at_the_base() {
        let errors =
            parse("[route.retry]\nbackoff = { base = \"1s\", max = \"10ms\" }\n").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with("blastwall.toml:13:20: route \"api\": retry.backoff.base must be more than zero and at most backoff.max (10ms), got 1s"),
            "{errors:#?}"
        );
        let errors =
            parse("[route.retry]\nbackoff = { base = \"0s\", max = \"0s\" }\n").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains("retry.backoff.base must be more than zero"),
            "{errors:#?}"
        );
        let config = parse("[route.retry]\nbackoff = { base = \"10ms\", max = \"10ms\" }\n")
            .expect("a base equal to the max is fine");
        assert_eq!(
            config.routes[0].attempts.retry.config().backoff.cap,
            Duration::from_millis(10)
        );
    }

    #[test]
    fn a_percentile_the_hedge_policy_refuses_is_located_at_its_key() {
        for (value, shown) in [("0.0", "0"), ("nan", "NaN"), ("100.5", "100.5")] {
            let errors = parse(&format!("[route.hedge]\npercentile = {value}\n")).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:#?}");
            assert!(
                errors[0].starts_with(&format!(
                    "blastwall.toml:13:14: route \"api\": hedge.percentile must be above 0 and at most 100, got {shown}"
                )),
                "{errors:#?}"
            );
        }
        let config = parse("[route.hedge]\npercentile = 100.0\n").unwrap();
        assert!(config.routes[0].attempts.hedge.is_some());
    }

    #[test]
    fn hedging_needs_exactly_one_delay() {
        let errors = parse("[route.hedge]\nmax = 2\n").unwrap_err();
        assert!(
            errors[0].contains("needs `after` (a delay) or `percentile`"),
            "{errors:?}"
        );
        let errors = parse("[route.hedge]\nafter = \"10ms\"\npercentile = 90.0\n").unwrap_err();
        assert!(errors[0].contains("not both"), "{errors:?}");
        let config = parse("[route.hedge]\npercentile = 95.0\n").unwrap();
        let hedge = config.routes[0].attempts.hedge.unwrap();
        assert_eq!(
            hedge.delay,
            HedgeDelay::Percentile {
                quantile: 0.95,
                min_samples: 100,
                fallback: None
            }
        );
    }

    #[test]
    fn a_retry_budget_ratio_outside_zero_to_one_is_refused() {
        let text = BASE.replace(
            "[cluster.api]\n",
            "[cluster.api]\nretry_budget = { ratio = 1.5 }\n",
        );
        let errors = Config::parse(&text, Path::new("blastwall.toml")).unwrap_err();
        assert!(
            errors.0[0].to_string().contains("retry_budget.ratio"),
            "{errors}"
        );
        let text = BASE.replace(
            "[cluster.api]\n",
            "[cluster.api]\nretry_budget = { ratio = 0.1, min_per_second = 3 }\n",
        );
        let config = Config::parse(&text, Path::new("blastwall.toml")).unwrap();
        assert_eq!(config.clusters[0].retry_budget.retry_ratio, 0.1);
        assert_eq!(config.clusters[0].retry_budget.min_retries_per_second, 3);
    }

    #[test]
    fn a_bad_deadline_header_name_is_refused() {
        let text = format!("[proxy]\ndeadline_header = \"bad header\"\n{BASE}");
        let errors = Config::parse(&text, Path::new("blastwall.toml")).unwrap_err();
        assert!(
            errors.0[0].to_string().contains("not a valid header name"),
            "{errors}"
        );
    }
}
