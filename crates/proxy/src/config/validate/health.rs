//! A cluster's `health_check`: what is probed (TCP, or an HTTP path and the statuses that
//! count as healthy), how often, and how many results in a row flip an endpoint.

use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use http::HeaderValue;

use super::{Checker, duration_or};
use crate::config::file::{self, HealthCheckSection, StatusOrRange};
use crate::config::{HealthCheck, HealthCheckConfig};

const DEFAULT_HEALTH_PATH: &str = "/healthz";
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;

/// A cluster's active health check; errors point at the cluster.
pub(super) fn health_check(
    check: &mut Checker<'_>,
    cluster: &str,
    cluster_span: Range<usize>,
    section: HealthCheckSection,
) -> Option<HealthCheckConfig> {
    let kind = match section.kind {
        file::HealthCheckKind::Tcp => HealthCheck::Tcp,
        file::HealthCheckKind::Http => {
            let path = section
                .path
                .unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_owned());
            if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
                check.error_at(
                    cluster_span.clone(),
                    format!(
                        "cluster \"{cluster}\": health_check.path must be a path starting with /, like \"/healthz\", got \"{path}\""
                    ),
                );
            }
            if let Some(host) = &section.host
                && (host.is_empty() || HeaderValue::from_str(host).is_err())
            {
                check.error_at(
                    cluster_span.clone(),
                    format!(
                        "cluster \"{cluster}\": health_check.host must be a host name, got \"{host}\""
                    ),
                );
            }
            let expected_statuses = match section.expected_statuses {
                None => vec![(200, 299)],
                Some(statuses) => {
                    let span = statuses.span();
                    let mut ranges = Vec::new();
                    for status in statuses.into_inner() {
                        match status_range(&status) {
                            Some(range) => ranges.push(range),
                            None => check.error_at(
                                span.clone(),
                                format!(
                                    "invalid expected status {status:?}: expected a code from 100 to 599 or a range like \"200-299\""
                                ),
                            ),
                        }
                    }
                    ranges
                }
            };
            HealthCheck::Http {
                path,
                host: section.host,
                expected_statuses,
            }
        }
    };
    let interval = duration_or(check, section.interval, DEFAULT_HEALTH_INTERVAL);
    let timeout = duration_or(check, section.timeout, DEFAULT_HEALTH_TIMEOUT);
    if interval.is_zero() || timeout.is_zero() {
        check.error_at(
            cluster_span.clone(),
            format!(
                "cluster \"{cluster}\": health_check interval and timeout must be more than zero"
            ),
        );
    }
    let threshold = |check: &mut Checker<'_>, value: Option<u32>, default: u32, key: &str| {
        NonZeroU32::new(value.unwrap_or(default)).unwrap_or_else(|| {
            check.error_at(
                cluster_span.clone(),
                format!("cluster \"{cluster}\": health_check.{key} must be at least 1"),
            );
            NonZeroU32::MIN
        })
    };
    let healthy_threshold = threshold(
        check,
        section.healthy_threshold,
        DEFAULT_HEALTHY_THRESHOLD,
        "healthy_threshold",
    );
    let unhealthy_threshold = threshold(
        check,
        section.unhealthy_threshold,
        DEFAULT_UNHEALTHY_THRESHOLD,
        "unhealthy_threshold",
    );
    Some(HealthCheckConfig {
        kind,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
        jitter: duration_or(check, section.jitter, Duration::ZERO),
    })
}

fn status_range(status: &StatusOrRange) -> Option<(u16, u16)> {
    let valid = |code: u16| (100..=599).contains(&code);
    match status {
        StatusOrRange::Code(code) if valid(*code) => Some((*code, *code)),
        StatusOrRange::Code(_) => None,
        StatusOrRange::Range(text) => {
            let (low, high) = text.split_once('-')?;
            let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
            (valid(low) && valid(high) && low <= high).then_some((low, high))
        }
    }
}
