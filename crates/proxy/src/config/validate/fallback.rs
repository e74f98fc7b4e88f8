//! Checks a route's `[route.fallback]` and builds what the request path serves from it.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use toml::Spanned;

use super::headers::header_pair;
use super::{Checker, duration_or, resolve_file, size_or};
use crate::config::fallback::{
    AlternateCluster, FallbackConfig, FallbackReason, FallbackTriggers, StaleIfErrorConfig,
    StaticResponse,
};
use crate::config::file::fallback::{
    FallbackOn, FallbackSection, StaleIfErrorSection, StaticSection,
};

/// Largest static body, from `body` or `body_file`: it is held in memory for the route.
const MAX_STATIC_BODY: u64 = 1024 * 1024;

/// The route's fallback; the default (none) when the section is absent. `per_try_timeout`
/// is the route's resolved for a cluster (by index).
pub(super) fn fallback(
    check: &mut Checker<'_>,
    route: &str,
    route_cluster: Option<usize>,
    section: Option<Spanned<FallbackSection>>,
    clusters: &HashMap<String, usize>,
    per_try_timeout: impl Fn(usize) -> Duration,
) -> FallbackConfig {
    let Some(section) = section else {
        return FallbackConfig::default();
    };
    let span = section.span();
    let section = section.into_inner();
    let given = section.static_response.is_some()
        || section.cluster.is_some()
        || section.stale_if_error.is_some();
    let on = match section.on {
        None => FallbackTriggers::ALL,
        Some(on) => {
            if on.get_ref().is_empty() {
                check.error_at(
                    on.span(),
                    format!(
                        "route \"{route}\": fallback.on is empty, so the fallback would never be taken; remove the key to take it on every failure"
                    ),
                );
            }
            on.get_ref()
                .iter()
                .fold(FallbackTriggers::NONE, |set, on| set.with(reason(*on)))
        }
    };
    let cluster = section.cluster.and_then(|name| {
        let Some(&index) = clusters.get(name.get_ref()) else {
            check.error_at(
                name.span(),
                format!(
                    "route \"{route}\": fallback cluster \"{}\" does not exist",
                    name.get_ref()
                ),
            );
            return None;
        };
        if Some(index) == route_cluster {
            check.error_at(
                name.span(),
                format!(
                    "route \"{route}\": the fallback cluster must not be the route's own cluster \"{}\"; it would fail with it",
                    name.get_ref()
                ),
            );
            return None;
        }
        Some(AlternateCluster {
            index,
            per_try_timeout: per_try_timeout(index),
        })
    });
    let static_response = section
        .static_response
        .and_then(|section| static_response(check, route, section));
    let stale_if_error = section
        .stale_if_error
        .map(|section| stale_if_error(check, route, section));
    let config = FallbackConfig {
        on,
        kill_switch: section.kill_switch.unwrap_or(false),
        stale_if_error,
        cluster,
        static_response,
    };
    if !given && section.kill_switch.is_none() {
        check.error_at(
            span,
            format!(
                "route \"{route}\": fallback has nothing to serve; give static, cluster or stale_if_error (or kill_switch alone, which answers 503)"
            ),
        );
    }
    config
}

fn reason(on: FallbackOn) -> FallbackReason {
    match on {
        FallbackOn::Failed => FallbackReason::Failed,
        FallbackOn::BreakerOpen => FallbackReason::BreakerOpen,
        FallbackOn::Shed => FallbackReason::Shed,
        FallbackOn::Timeout => FallbackReason::Timeout,
        FallbackOn::KillSwitch => FallbackReason::KillSwitch,
    }
}

/// Headers a static response may not set: the body's framing is the proxy's, and
/// hop-by-hop headers describe a connection, not a response.
const REFUSED_HEADERS: [header::HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::TRAILER,
    header::HeaderName::from_static("keep-alive"),
];

fn static_response(
    check: &mut Checker<'_>,
    route: &str,
    section: Spanned<StaticSection>,
) -> Option<StaticResponse> {
    let span = section.span();
    let section = section.into_inner();
    let errors_before = check.errors.len();
    let status = match &section.status {
        None => StatusCode::SERVICE_UNAVAILABLE,
        Some(status) => match StatusCode::from_u16(*status.get_ref()) {
            Ok(code) if (200..=599).contains(&code.as_u16()) => code,
            _ => {
                check.error_at(
                    status.span(),
                    format!(
                        "route \"{route}\": fallback static status must be from 200 to 599, got {}",
                        status.get_ref()
                    ),
                );
                StatusCode::SERVICE_UNAVAILABLE
            }
        },
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &section.headers {
        let Some((name_parsed, value)) = header_pair(check, name, value) else {
            continue;
        };
        if REFUSED_HEADERS.contains(&name_parsed) {
            check.error_at(
                name.span(),
                format!(
                    "route \"{route}\": fallback static header \"{name_parsed}\" is set by the proxy, not the config"
                ),
            );
            continue;
        }
        headers.append(name_parsed, value);
    }
    let body = match (section.body, section.body_file) {
        (Some(_), Some(file)) => {
            check.error_at(
                file.span(),
                format!("route \"{route}\": give fallback static body or body_file, not both"),
            );
            Bytes::new()
        }
        (Some(body), None) => Bytes::from(body),
        (None, Some(file)) => body_file(check, route, &file),
        (None, None) => Bytes::new(),
    };
    if body.len() as u64 > MAX_STATIC_BODY {
        check.error_at(
            span,
            format!(
                "route \"{route}\": fallback static body is {} bytes; at most 1MiB is kept in memory",
                body.len()
            ),
        );
    }
    (check.errors.len() == errors_before).then_some(StaticResponse {
        status,
        headers,
        body,
    })
}

fn body_file(check: &mut Checker<'_>, route: &str, file: &Spanned<String>) -> Bytes {
    let errors_before = check.errors.len();
    let path = resolve_file(check, file, "fallback body");
    if check.errors.len() > errors_before {
        return Bytes::new();
    }
    match std::fs::read(&path) {
        Ok(body) => Bytes::from(body),
        Err(error) => {
            check.error_at(
                file.span(),
                format!(
                    "route \"{route}\": cannot read the fallback body file \"{}\": {error}",
                    path.display()
                ),
            );
            Bytes::new()
        }
    }
}

fn stale_if_error(
    check: &mut Checker<'_>,
    route: &str,
    section: Spanned<StaleIfErrorSection>,
) -> StaleIfErrorConfig {
    let span = section.span();
    let section = section.into_inner();
    let defaults = StaleIfErrorConfig::default();
    let max_entries = match &section.max_entries {
        None => defaults.max_entries,
        Some(value) => NonZeroUsize::new(*value.get_ref() as usize).unwrap_or_else(|| {
            check.error_at(
                value.span(),
                format!("route \"{route}\": stale_if_error.max_entries must be at least 1"),
            );
            defaults.max_entries
        }),
    };
    let config = StaleIfErrorConfig {
        max_age: duration_or(check, section.max_age, defaults.max_age),
        max_entries,
        max_body: size_or(check, section.max_body, defaults.max_body),
        max_bytes: size_or(check, section.max_bytes, defaults.max_bytes),
    };
    if config.max_bytes < config.max_body {
        check.error_at(
            span,
            format!(
                "route \"{route}\": stale_if_error.max_bytes ({}) must be at least max_body ({}), or no body that may be kept would fit",
                config.max_bytes, config.max_body
            ),
        );
    }
    config
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::fallback::FallbackReason;
    use crate::config::{Config, ConfigErrors};

    fn config(fallback: &str) -> String {
        format!(
            r#"
[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[route]]
name = "shop"
cluster = "api"
[route.fallback]
{fallback}

[cluster.api]
endpoints = [{{ address = "127.0.0.1:9001" }}]

[cluster.backup]
endpoints = [{{ address = "127.0.0.1:9002" }}]
"#
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, Path::new("blastwall.toml"))
    }

    fn first_error(fallback: &str) -> String {
        match parse(&config(fallback)) {
            Ok(_) => panic!("expected an error for {fallback}"),
            Err(errors) => errors.0[0].to_string().lines().next().unwrap().to_owned(),
        }
    }

    #[test]
    fn each_clusters_attempts_wait_for_its_own_request_timeout_unless_the_route_says() {
        let timeouts = |text: &str| {
            let config = parse(text).expect("valid");
            let route = &config.routes[0];
            let alternate = route.fallback.cluster.expect("an alternate cluster");
            (route.attempts.per_try_timeout, alternate.per_try_timeout)
        };
        let text = config("cluster = \"backup\"")
            .replace(
                "[cluster.api]\n",
                "[cluster.api]\nrequest_timeout = \"2s\"\n",
            )
            .replace(
                "[cluster.backup]\n",
                "[cluster.backup]\nrequest_timeout = \"3s\"\n",
            );
        assert_eq!(
            timeouts(&text),
            (Duration::from_secs(2), Duration::from_secs(3))
        );
        let text = text.replace(
            "cluster = \"api\"\n",
            "cluster = \"api\"\nper_try_timeout = \"250ms\"\n",
        );
        assert_eq!(
            timeouts(&text),
            (Duration::from_millis(250), Duration::from_millis(250))
        );
    }

    #[test]
    fn every_key_becomes_a_typed_value() {
        let config = parse(&config(
            r#"on = ["failed", "breaker_open"]
kill_switch = true
cluster = "backup"
static = { status = 200, headers = { "content-type" = "application/json" }, body = "{}" }
stale_if_error = { max_age = "30s", max_entries = 5, max_body = "4KiB", max_bytes = "1MiB" }"#,
        ))
        .unwrap_or_else(|errors| panic!("{errors}"));
        let fallback = &config.routes[0].fallback;
        assert!(fallback.on.contains(FallbackReason::Failed));
        assert!(fallback.on.contains(FallbackReason::BreakerOpen));
        assert!(!fallback.on.contains(FallbackReason::Shed));
        assert!(fallback.kill_switch);
        assert_eq!(fallback.cluster.map(|alternate| alternate.index), Some(1));
        let response = fallback.static_response.as_ref().unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.headers["content-type"], "application/json");
        assert_eq!(&response.body[..], b"{}");
        let stale = fallback.stale_if_error.unwrap();
        assert_eq!(stale.max_age, Duration::from_secs(30));
        assert_eq!(stale.max_entries.get(), 5);
        assert_eq!((stale.max_body, stale.max_bytes), (4096, 1024 * 1024));
    }

    #[test]
    fn defaults_take_every_reason_and_a_503_static_response() {
        let config = parse(&config("static = {}\nstale_if_error = {}")).unwrap();
        let fallback = &config.routes[0].fallback;
        assert!(fallback.on.contains(FallbackReason::KillSwitch));
        assert!(!fallback.kill_switch);
        assert_eq!(fallback.static_response.as_ref().unwrap().status, 503);
        let stale = fallback.stale_if_error.unwrap();
        assert_eq!(stale.max_age, Duration::from_secs(300));
        assert_eq!(stale.max_entries.get(), 1000);
    }

    #[test]
    fn an_alternate_cluster_must_exist_and_not_be_the_routes_own() {
        assert_eq!(
            first_error("cluster = \"nowhere\""),
            "blastwall.toml:10:11: route \"shop\": fallback cluster \"nowhere\" does not exist"
        );
        assert!(
            first_error("cluster = \"api\"").contains("must not be the route's own cluster"),
            "{}",
            first_error("cluster = \"api\"")
        );
    }

    #[test]
    fn static_responses_are_checked_where_they_are_written() {
        let both = first_error("static = { body = \"a\", body_file = \"b.json\" }");
        assert!(both.starts_with("blastwall.toml:10:"), "{both}");
        assert!(both.contains("body or body_file, not both"), "{both}");
        let status = first_error("static = { status = 99 }");
        assert!(status.contains("from 200 to 599, got 99"), "{status}");
        let length = first_error("static = { headers = { \"content-length\" = \"3\" } }");
        assert!(length.contains("set by the proxy"), "{length}");
        let missing = first_error("static = { body_file = \"missing.json\" }");
        assert!(
            missing.contains("cannot find the fallback body file"),
            "{missing}"
        );
    }

    #[test]
    fn a_body_file_is_read_at_load_relative_to_the_config() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("sorry.json"), "{\"sorry\":true}").unwrap();
        let path = folder.path().join("blastwall.toml");
        let text = config("static = { body_file = \"sorry.json\" }");
        let config = Config::parse(&text, &path).unwrap_or_else(|errors| panic!("{errors}"));
        let response = config.routes[0].fallback.static_response.as_ref().unwrap();
        assert_eq!(&response.body[..], b"{\"sorry\":true}");
    }

    #[test]
    fn a_fallback_that_could_never_answer_is_refused() {
        assert!(first_error("on = [\"failed\"]").contains("nothing to serve"));
        assert!(first_error("on = []\nstatic = {}").contains("fallback.on is empty"));
        assert!(first_error("on = [\"sometimes\"]\nstatic = {}").contains("unknown variant"));
        let sizes = first_error("stale_if_error = { max_body = \"2MiB\", max_bytes = \"1MiB\" }");
        assert!(sizes.contains("must be at least max_body"), "{sizes}");
        let entries = first_error("stale_if_error = { max_entries = 0 }");
        assert!(
            entries.contains("max_entries must be at least 1"),
            "{entries}"
        );
    }

    #[test]
    fn a_kill_switch_alone_is_a_valid_fallback() {
        let config = parse(&config("kill_switch = true")).unwrap();
        assert!(config.routes[0].fallback.kill_switch);
        assert!(!config.routes[0].fallback.has_fallback());
    }
}
