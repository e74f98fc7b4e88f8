//! `[[route]]` sections: which requests a route takes and where it sends them, with the
//! settings of each stage (attempts, admission, fallback) checked in their own files.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use blastwall_policy::timeout::LearnedTimeoutConfig;
use toml::Spanned;

use super::headers::header_edits;
use super::matcher::route_match;
use super::{Checker, admission, attempts, fallback, fault};
use crate::config::admission::PriorityTrust;
use crate::config::file::RouteSection;
use crate::config::{ClusterConfig, DEFAULT_REQUEST_TIMEOUT, PathMatch, RouteConfig, RouteMatch};

/// One `[[route]]`: its cluster and listeners by index, its match, and (each in its own
/// file) its attempts, admission and fallback. `None` when its cluster does not exist.
pub(super) fn route(
    check: &mut Checker<'_>,
    index: usize,
    section: RouteSection,
    (clusters, cluster_configs): (&HashMap<String, usize>, &[ClusterConfig]),
    listeners: &HashMap<&str, usize>,
    trust: &Arc<PriorityTrust>,
) -> Option<RouteConfig> {
    let name = section
        .name
        .unwrap_or_else(|| format!("route-{}", index + 1));
    let cluster = route_cluster(check, &name, &section.cluster, clusters);
    let route_listeners = section
        .listeners
        .map(|names| route_listeners(check, &name, &names, listeners));
    let matcher = route_match(check, section.matcher);
    if let Some(prefix) = &section.rewrite_prefix {
        rewrite_prefix(check, &name, prefix, &matcher, section.cluster.span());
    }
    let request_headers = header_edits(check, section.request_headers);
    let response_headers = header_edits(check, section.response_headers);
    // Resolved here, once: an attempt reads a `Duration`, never an `Option` to fall back
    // from. Unset, each cluster's attempts wait as long as that cluster's
    // `request_timeout`, the alternate's as well as the route's own.
    let (per_try_timeout, learn_per_try) =
        attempts::per_try_timeout(check, &name, section.per_try_timeout);
    let per_try_timeout = |cluster: usize| {
        per_try_timeout.unwrap_or_else(|| {
            cluster_configs
                .get(cluster)
                .map_or(DEFAULT_REQUEST_TIMEOUT, |cluster| cluster.request_timeout)
        })
    };
    let mut attempts = attempts::route_attempts(
        check,
        &name,
        section.cluster.span(),
        section.timeout,
        cluster.map_or(DEFAULT_REQUEST_TIMEOUT, per_try_timeout),
        section.retry,
        section.hedge,
    );
    if learn_per_try {
        // Learned within the cluster's request_timeout, which it is until it knows.
        attempts.learned_per_try =
            Some(LearnedTimeoutConfig::with_ceiling(attempts.per_try_timeout));
    }
    let admission = admission::route(
        check,
        &name,
        section.priority,
        section.concurrency,
        section.rate_limit,
        trust,
    );
    let fallback = fallback::fallback(
        check,
        &name,
        cluster,
        section.fallback,
        clusters,
        per_try_timeout,
    );
    let endpoints = cluster
        .and_then(|cluster| cluster_configs.get(cluster))
        .map_or(&[][..], |cluster| &cluster.endpoints[..]);
    let faults = fault::faults(check, &name, section.fault, trust, endpoints);
    Some(RouteConfig {
        name,
        listeners: route_listeners,
        matcher,
        cluster: cluster?,
        rewrite_prefix: section.rewrite_prefix,
        request_headers,
        response_headers,
        attempts,
        admission,
        fallback,
        faults,
    })
}

/// The index of the cluster a route names; a name that does not exist is an error listing
/// those that do.
fn route_cluster(
    check: &mut Checker<'_>,
    name: &str,
    cluster: &Spanned<String>,
    clusters: &HashMap<String, usize>,
) -> Option<usize> {
    match clusters.get(cluster.get_ref()) {
        Some(&cluster) => Some(cluster),
        None => {
            let mut known: Vec<&str> = clusters.keys().map(String::as_str).collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "no cluster is defined; add a [cluster.NAME] section".to_owned()
            } else {
                format!("defined clusters: {}", known.join(", "))
            };
            check.error_at(
                cluster.span(),
                format!(
                    "route \"{name}\" names cluster \"{}\", which does not exist ({known})",
                    cluster.get_ref()
                ),
            );
            None
        }
    }
}

/// The indices of the listeners a route is limited to; a name that does not exist is an
/// error at its place.
fn route_listeners(
    check: &mut Checker<'_>,
    name: &str,
    names: &[Spanned<String>],
    listeners: &HashMap<&str, usize>,
) -> Vec<usize> {
    names
        .iter()
        .filter_map(|listener| {
            let found = listeners.get(listener.get_ref().as_str()).copied();
            if found.is_none() {
                check.error_at(
                    listener.span(),
                    format!(
                        "route \"{name}\" names listener \"{}\", which does not exist",
                        listener.get_ref()
                    ),
                );
            }
            found
        })
        .collect()
}

/// `rewrite_prefix` replaces the matched `path_prefix`, so it needs one, and must leave a
/// valid path.
fn rewrite_prefix(
    check: &mut Checker<'_>,
    name: &str,
    prefix: &str,
    matcher: &RouteMatch,
    span: Range<usize>,
) {
    if !matches!(matcher.path, PathMatch::Prefix(_)) {
        check.error_at(
            span.clone(),
            format!(
                "route \"{name}\": rewrite_prefix needs match.path_prefix, the part it replaces"
            ),
        );
    }
    if !is_path_prefix(prefix) {
        check.error_at(
            span.clone(),
            format!(
                "route \"{name}\": rewrite_prefix \"{prefix}\" is not a path: it must be empty or start with / and hold only characters a URI path may (no spaces, ? or #)"
            ),
        );
    }
}

/// Whether `prefix` can begin a request path (empty strips the matched prefix): a rewritten
/// path must stay a valid target.
fn is_path_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || prefix.starts_with('/')
            && !prefix.contains(['?', '#'])
            && prefix.parse::<http::uri::PathAndQuery>().is_ok()
}
