//! Admission sections into typed values: priorities, trusted clients, concurrency and rate
//! limits, each error at its place.

use std::sync::Arc;
use std::time::Duration;

use blastwall_policy::bulkhead::{self, BulkheadConfig};
use blastwall_policy::concurrency::{self as adaptive, AimdConfig, Gradient2Config};
use http::HeaderName;
use toml::Spanned;

use super::{Checker, duration_or};
use crate::config::admission::{
    Cidr, ConcurrencyConfig, LimitConfig, Priority, PriorityTrust, RateLimitConfig, RateLimitKey,
    RouteAdmissionConfig,
};
use crate::config::file::{
    AdaptiveAlgorithm, ConcurrencySection, PrioritySection, RateLimitKeySection, RateLimitSection,
};

const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_millis(100);
const DEFAULT_ADAPTIVE_MIN: u32 = 1;
const DEFAULT_ADAPTIVE_MAX: u32 = 1000;
const DEFAULT_ADAPTIVE_INITIAL: u32 = 20;
const DEFAULT_RATE_PERIOD: Duration = Duration::from_secs(1);
const DEFAULT_MAX_KEYS: u32 = 10_000;

/// `[proxy] priority_header` and `trusted_clients`.
pub(super) fn trust(
    check: &mut Checker<'_>,
    header: Option<Spanned<String>>,
    trusted: Vec<Spanned<String>>,
) -> Arc<PriorityTrust> {
    let mut trust = PriorityTrust::default();
    if let Some(header) = header {
        match HeaderName::from_bytes(header.get_ref().as_bytes()) {
            Ok(name) => trust.header = name,
            Err(_) => check.error_at(
                header.span(),
                format!(
                    "priority_header \"{}\" is not a valid header name",
                    header.get_ref()
                ),
            ),
        }
    }
    for network in trusted {
        match Cidr::parse(network.get_ref().trim()) {
            Some(cidr) => trust.trusted.push(cidr),
            None => check.error_at(
                network.span(),
                format!(
                    "trusted_clients entry \"{}\" is not a network: expected an address or a CIDR like \"10.0.0.0/8\" or \"::1/128\"",
                    network.get_ref()
                ),
            ),
        }
    }
    Arc::new(trust)
}

/// A route's priority, concurrency and rate limit.
pub(super) fn route(
    check: &mut Checker<'_>,
    route: &str,
    priority: PrioritySection,
    concurrency: Option<Spanned<ConcurrencySection>>,
    rate_limit: Option<Spanned<RateLimitSection>>,
    trust: &Arc<PriorityTrust>,
) -> RouteAdmissionConfig {
    let owner = format!("route \"{route}\"");
    RouteAdmissionConfig {
        priority: match priority {
            PrioritySection::Critical => Priority::Critical,
            PrioritySection::High => Priority::High,
            PrioritySection::Normal => Priority::Normal,
            PrioritySection::Low => Priority::Low,
        },
        trust: trust.clone(),
        concurrency: concurrency
            .and_then(|section| self::concurrency(check, &owner, section, false)),
        rate_limit: rate_limit.and_then(|section| self::rate_limit(check, &owner, section)),
    }
}

/// A `concurrency` section of a route or cluster (`owner` names it in errors).
/// A route's or (`on_cluster`) a cluster's concurrency limit.
pub(super) fn concurrency(
    check: &mut Checker<'_>,
    owner: &str,
    section: Spanned<ConcurrencySection>,
    on_cluster: bool,
) -> Option<ConcurrencyConfig> {
    let span = section.span();
    let mut section = section.into_inner();
    let queue_timeout = duration_or(check, section.queue_timeout.take(), DEFAULT_QUEUE_TIMEOUT);
    let queue = section.queue.unwrap_or(0) as usize;
    let queue_from = match section.queue_from.as_deref() {
        None => Priority::Low,
        Some(name) => match Priority::from_header(name.as_bytes()) {
            Some(priority) => priority,
            None => {
                check.error_at(
                    span.clone(),
                    format!("{owner}: concurrency queue_from \"{name}\" is not a priority: expected \"low\", \"normal\", \"high\" or \"critical\""),
                );
                return None;
            }
        },
    };
    let mut ok = true;
    if queue > 0 && queue_timeout.is_zero() {
        check.error_at(
            span.clone(),
            format!(
                "{owner}: concurrency queue_timeout must be more than zero when queue is above 0"
            ),
        );
        ok = false;
    }
    let limit = match (section.limit, section.adaptive) {
        (Some(_), Some(_)) => {
            check.error_at(
                span,
                format!("{owner}: concurrency has both limit and adaptive; give one (limit = N for a fixed bulkhead, adaptive = \"gradient2\" | \"aimd\" for a moving one)"),
            );
            return None;
        }
        (None, None) => {
            check.error_at(
                span,
                format!("{owner}: concurrency needs limit = N (a fixed bulkhead) or adaptive = \"gradient2\" | \"aimd\""),
            );
            return None;
        }
        (Some(limit), None) => {
            if section.min.is_some() || section.max.is_some() || section.initial.is_some() {
                check.error_at(
                    span.clone(),
                    format!("{owner}: concurrency min, max and initial apply only to an adaptive limit; a fixed limit is just limit = N"),
                );
                ok = false;
            }
            // The policy's bulkhead counts the slots; the proxy's queue, in front of it,
            // orders the waiters by priority, so the bulkhead has none of its own.
            let bulkhead = BulkheadConfig {
                max_concurrent: limit,
                max_queue: 0,
                queue_timeout: Duration::ZERO,
            };
            match bulkhead.validated() {
                Ok(bulkhead) => LimitConfig::Fixed(bulkhead),
                Err(error) => {
                    let message = match error {
                        bulkhead::ConfigError::ZeroConcurrency => {
                            "concurrency limit must be at least 1 (0 would refuse every request)"
                                .to_owned()
                        }
                        other => format!("concurrency: {other}"),
                    };
                    check.error_at(span, format!("{owner}: {message}"));
                    return None;
                }
            }
        }
        (None, Some(AdaptiveAlgorithm::Capacity)) => {
            capacity_limit(check, owner, span, &section, on_cluster)?
        }
        (None, Some(algorithm)) => adaptive_limit(check, owner, span, &section, algorithm)?,
    };
    ok.then_some(ConcurrencyConfig {
        limit,
        queue,
        queue_timeout,
        queue_from,
    })
}

/// A limit that follows what the cluster's endpoints showed they take (`adaptive =
/// "capacity"`): only on a cluster (a route does not see endpoints), bounded by `max`.
fn capacity_limit(
    check: &mut Checker<'_>,
    owner: &str,
    span: std::ops::Range<usize>,
    section: &ConcurrencySection,
    on_cluster: bool,
) -> Option<LimitConfig> {
    if !on_cluster {
        check.error_at(
            span,
            format!("{owner}: adaptive = \"capacity\" is learnt from a cluster's endpoints: give it in [cluster.NAME.concurrency], or use \"gradient2\" or \"aimd\" here"),
        );
        return None;
    }
    if section.min.is_some() || section.initial.is_some() {
        check.error_at(
            span,
            format!("{owner}: adaptive = \"capacity\" takes only max (the limit is the sum of what the endpoints showed they take, unbounded until one refuses)"),
        );
        return None;
    }
    let max = section.max.unwrap_or(DEFAULT_ADAPTIVE_MAX);
    let bulkhead = BulkheadConfig {
        max_concurrent: max,
        max_queue: 0,
        queue_timeout: Duration::ZERO,
    };
    match bulkhead.validated() {
        Ok(bulkhead) => Some(LimitConfig::Capacity(bulkhead)),
        Err(_) => {
            check.error_at(span, format!("{owner}: concurrency max must be at least 1"));
            None
        }
    }
}

/// An adaptive limit: the bounds the section gives (or their defaults), checked by the
/// policy's algorithm, its refusal reported in the file's words.
fn adaptive_limit(
    check: &mut Checker<'_>,
    owner: &str,
    span: std::ops::Range<usize>,
    section: &ConcurrencySection,
    algorithm: AdaptiveAlgorithm,
) -> Option<LimitConfig> {
    let min = section.min.unwrap_or(DEFAULT_ADAPTIVE_MIN);
    let max = section.max.unwrap_or(DEFAULT_ADAPTIVE_MAX.max(min));
    let initial = section
        .initial
        .unwrap_or(DEFAULT_ADAPTIVE_INITIAL.clamp(min, max.max(min)));
    let checked = match algorithm {
        AdaptiveAlgorithm::Capacity => unreachable!("handled by capacity_limit"),
        AdaptiveAlgorithm::Gradient2 => Gradient2Config {
            initial_limit: initial,
            min_limit: min,
            max_limit: max,
            ..Gradient2Config::default()
        }
        .validated()
        .map(LimitConfig::Gradient2),
        AdaptiveAlgorithm::Aimd => AimdConfig {
            initial_limit: initial,
            min_limit: min,
            max_limit: max,
            ..AimdConfig::default()
        }
        .validated()
        .map(LimitConfig::Aimd),
    };
    let message = match checked {
        Ok(limit) => return Some(limit),
        Err(adaptive::ConfigError::ZeroMinLimit) => {
            "concurrency min must be at least 1 (a limit of 0 would shut the route for good)"
                .to_owned()
        }
        Err(adaptive::ConfigError::LimitsOutOfOrder { min, initial, max }) => {
            format!("concurrency must have min ({min}) <= initial ({initial}) <= max ({max})")
        }
        Err(other) => format!("concurrency: {other}"),
    };
    check.error_at(span, format!("{owner}: {message}"));
    None
}

fn rate_limit(
    check: &mut Checker<'_>,
    owner: &str,
    section: Spanned<RateLimitSection>,
) -> Option<RateLimitConfig> {
    let span = section.span();
    let section = section.into_inner();
    let per = duration_or(check, section.per, DEFAULT_RATE_PERIOD);
    let burst = section.burst.unwrap_or(section.rate);
    let key = match section.key {
        None => RateLimitKey::Route,
        Some(RateLimitKeySection::Named(name)) if name == "client_ip" => RateLimitKey::ClientIp,
        Some(RateLimitKeySection::Named(name)) => {
            check.error_at(
                span,
                format!(
                    "{owner}: rate_limit key \"{name}\" is unknown: expected \"client_ip\" or {{ header = \"NAME\" }}"
                ),
            );
            return None;
        }
        Some(RateLimitKeySection::Header { header }) => {
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(name) => RateLimitKey::Header(name),
                Err(_) => {
                    check.error_at(
                        span,
                        format!(
                            "{owner}: rate_limit key header \"{header}\" is not a valid header name"
                        ),
                    );
                    return None;
                }
            }
        }
    };
    let max_keys = section.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
    if max_keys == 0 {
        check.error_at(
            span.clone(),
            format!("{owner}: rate_limit max_keys must be at least 1"),
        );
        return None;
    }
    let policy = blastwall_policy::ratelimit::RateLimitConfig {
        rate: section.rate,
        period: per,
        burst,
    };
    let limit = match policy.validated() {
        Ok(limit) => limit,
        Err(error) => {
            check.error_at(span, format!("{owner}: {error}"));
            return None;
        }
    };
    Some(RateLimitConfig {
        rate: section.rate,
        per,
        burst,
        key,
        max_keys: max_keys as usize,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::config::admission::{LimitConfig, Priority, RateLimitKey};

    fn config(route: &str, cluster: &str) -> String {
        format!(
            "[proxy]\ntrusted_clients = [\"10.0.0.0/8\", \"::1\"]\n\n[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:8080\"\n\n[[route]]\ncluster = \"api\"\n{route}\n\n[cluster.api]\nendpoints = [{{ address = \"127.0.0.1:9001\" }}]\n{cluster}\n"
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text, Path::new("blastwall.toml")) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn admission_sections_become_typed_values() {
        let text = config(
            "priority = \"high\"\n[route.concurrency]\nadaptive = \"aimd\"\nmax = 50\nqueue = 10\n[route.rate_limit]\nrate = 5\nkey = { header = \"x-api-key\" }",
            "[cluster.api.concurrency]\nlimit = 64",
        );
        let config = Config::parse(&text, Path::new("blastwall.toml")).expect("valid");
        let admission = &config.routes[0].admission;
        assert_eq!(admission.priority, Priority::High);
        assert_eq!(admission.trust.trusted.len(), 2);
        assert!(
            admission
                .trust
                .trusts("10.9.8.7".parse().expect("an address"))
        );
        let concurrency = admission.concurrency.as_ref().expect("concurrency");
        assert!(
            matches!(&concurrency.limit, LimitConfig::Aimd(aimd) if aimd.config().min_limit == 1 && aimd.config().max_limit == 50 && aimd.config().initial_limit == 20)
        );
        assert_eq!(concurrency.queue, 10);
        let rate_limit = admission.rate_limit.as_ref().expect("rate limit");
        assert_eq!(rate_limit.burst, 5, "burst defaults to the rate");
        assert!(matches!(rate_limit.key, RateLimitKey::Header(_)));
        assert!(matches!(
            &config.clusters[0].concurrency.as_ref().expect("cluster limit").limit,
            LimitConfig::Fixed(bulkhead) if bulkhead.config().max_concurrent == 64
        ));
    }

    #[test]
    fn nonsense_admission_settings_are_refused_at_their_place() {
        let text = config(
            "[route.concurrency]\nlimit = 5\nadaptive = \"gradient2\"\n[route.rate_limit]\nrate = 0\nkey = \"client_port\"",
            "[cluster.api.concurrency]\nadaptive = \"aimd\"\nmin = 10\nmax = 5",
        )
        .replace("\"::1\"]", "\"10.0.0.0/33\"]");
        let errors = errors(&text);
        let all = errors.join("\n");
        assert!(all.contains("blastwall.toml:2:"), "{all}");
        assert!(all.contains("is not a network"), "{all}");
        assert!(all.contains("both limit and adaptive"), "{all}");
        assert!(
            all.contains("rate_limit key \"client_port\" is unknown"),
            "{all}"
        );
        assert!(all.contains("min (10) <= initial (10) <= max (5)"), "{all}");
    }
}
