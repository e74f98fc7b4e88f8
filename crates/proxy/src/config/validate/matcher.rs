//! A route's `match`: host, path (exact, prefix or regex), methods and headers, into the
//! matcher the router runs.

use http::Method;
use regex::RegexBuilder;
use toml::Spanned;

use super::Checker;
use super::headers::header_pair;
use crate::config::file::MatchSection;
use crate::config::{HostMatch, PathMatch, RouteMatch};

/// Methods a route may name: HTTP's own and WebDAV's. A typo would otherwise be a valid
/// extension method that silently never matches.
const KNOWN_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
];

/// What a route matches: host, one kind of path, methods and headers.
pub(super) fn route_match(check: &mut Checker<'_>, section: MatchSection) -> RouteMatch {
    let host = section.host.map(|host| {
        let lower = host.get_ref().trim().to_ascii_lowercase();
        match lower.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() => HostMatch::Subdomain(format!(".{suffix}")),
            _ => HostMatch::Exact(lower),
        }
    });
    let given: Vec<&Spanned<String>> = [&section.path, &section.path_prefix, &section.path_regex]
        .into_iter()
        .flatten()
        .collect();
    if let Some(second) = given.get(1) {
        check.error_at(
            second.span(),
            "give only one of path, path_prefix and path_regex",
        );
    }
    for path in [&section.path, &section.path_prefix].into_iter().flatten() {
        if !path.get_ref().starts_with('/') {
            check.error_at(
                path.span(),
                format!("paths start with /, got \"{}\"", path.get_ref()),
            );
        } else if path.get_ref().contains(';') {
            check.error_at(
                path.span(),
                format!(
                    "\"{}\" would never match: routes match paths with each segment's parameters (from ; to the next /) left out, as servlet containers read them",
                    path.get_ref()
                ),
            );
        }
    }
    let path = if let Some(path) = section.path {
        PathMatch::Exact(path.into_inner())
    } else if let Some(prefix) = section.path_prefix {
        PathMatch::Prefix(prefix.into_inner())
    } else if let Some(pattern) = section.path_regex {
        let anchored = format!("^(?:{})$", pattern.get_ref());
        let built = RegexBuilder::new(&anchored)
            .case_insensitive(section.case_sensitive == Some(false))
            .build();
        match built {
            Ok(regex) => PathMatch::Regex(regex),
            Err(error) => {
                check.error_at(pattern.span(), format!("invalid path_regex: {error}"));
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };
    let methods = section.methods.map(|methods| {
        methods
            .iter()
            .filter_map(|method| {
                let upper = method.get_ref().to_ascii_uppercase();
                match Method::from_bytes(upper.as_bytes()) {
                    Ok(parsed) if KNOWN_METHODS.contains(&upper.as_str()) => Some(parsed),
                    _ => {
                        check.error_at(
                            method.span(),
                            format!(
                                "unknown method \"{}\": expected one of {}",
                                method.get_ref(),
                                KNOWN_METHODS.join(", ")
                            ),
                        );
                        None
                    }
                }
            })
            .collect()
    });
    let headers = section
        .headers
        .iter()
        .filter_map(|(name, value)| header_pair(check, name, value))
        .collect();
    RouteMatch {
        host,
        path,
        case_sensitive: section.case_sensitive.unwrap_or(true),
        methods,
        headers,
    }
}
