//! From the file as written to the typed config, collecting every error with its place.
//!
//! [`validate`] is the order of the checks; each section's checks are in the file named
//! after it. The order matters in one way only: a section that others refer to by name
//! (listeners, clusters) is checked first, so that a route can be given their indices and
//! the values it resolves from them (a cluster's `request_timeout`). Checking goes on past
//! an error, so that one run reports all of them; they are sorted into file order at the
//! end. Each policy setting is checked by the policy crate's own `validated()` and kept
//! checked; these files say its refusals in the file's words, at the right key.

mod admin;
mod admission;
mod attempts;
mod breaker;
mod clusters;
mod delay;
mod fallback;
mod fault;
mod fault_action;
mod headers;
mod health;
mod listeners;
mod matcher;
mod outlier;
mod passive;
mod proxy;
mod routes;
mod telemetry;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

pub(crate) use self::fault::runtime_rule as runtime_fault_rule;
use super::file::ConfigFile;
use super::values::{ByteSizeValue, DurationValue};
use super::{Config, ConfigError, ConfigErrors, Location, RouteConfig, Source};

/// Collects errors, each tied to a span of the config text.
struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error_at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: self.path.to_owned(),
            location: Some(Location::of_span(self.text, span)),
            message: message.into(),
        });
    }

    fn error(&mut self, message: impl Into<String>) {
        self.errors
            .push(ConfigError::whole_file(self.path, message));
    }

    fn location(&self, span: Range<usize>) -> Location {
        Location::of_span(self.text, span)
    }
}

/// The typed config, or every error found, in file order.
pub(super) fn validate(
    mut file: ConfigFile,
    text: &str,
    path: &Path,
) -> Result<Config, ConfigErrors> {
    let mut check = Checker {
        text,
        path,
        errors: Vec::new(),
    };
    let proxy = proxy::proxy(&mut check, &mut file.proxy);
    let trust = admission::trust(
        &mut check,
        file.proxy.priority_header,
        file.proxy.trusted_clients,
    );
    let admin = admin::admin(&mut check, file.admin);
    let telemetry = telemetry::telemetry(&mut check, file.access_log, file.tracing);
    let listeners = listeners::listeners(&mut check, file.listeners);
    let (clusters, cluster_index) = clusters::clusters(&mut check, file.clusters);
    let listener_index: HashMap<&str, usize> = listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| (listener.name.as_str(), index))
        .collect();
    let routes: Vec<RouteConfig> = file
        .routes
        .into_iter()
        .enumerate()
        .filter_map(|(index, route)| {
            routes::route(
                &mut check,
                index,
                route,
                (&cluster_index, &clusters),
                &listener_index,
                &trust,
            )
        })
        .collect();
    if listeners.is_empty() && check.errors.is_empty() {
        check.error("no listener: add at least one [[listener]] with a name and a listen address");
    }
    if routes.is_empty() && check.errors.is_empty() {
        check.error(
            "no route: add at least one [[route]] naming a cluster, or no request can be served",
        );
    }
    if !check.errors.is_empty() {
        // In file order, as an operator reads them; errors about the whole file come last.
        check.errors.sort_by_key(|error| {
            error
                .location
                .as_ref()
                .map_or((usize::MAX, 0), |at| (at.line, at.column))
        });
        return Err(ConfigErrors(check.errors));
    }
    Ok(Config {
        proxy,
        listeners,
        routes,
        clusters,
        admin,
        telemetry,
        source: Source {
            path: path.to_owned(),
            hash: fnv1a_hex(text.as_bytes()),
            text: text.into(),
        },
    })
}

/// The value given, or the default; a value that did not parse is reported at its place.
fn duration_or(
    check: &mut Checker<'_>,
    value: Option<Spanned<DurationValue>>,
    default: Duration,
) -> Duration {
    let Some(value) = value else { return default };
    match &value.get_ref().0 {
        Ok(duration) => *duration,
        Err(message) => {
            check.error_at(value.span(), message.clone());
            default
        }
    }
}

/// Like [`duration_or`], for sizes.
fn size_or(check: &mut Checker<'_>, value: Option<Spanned<ByteSizeValue>>, default: u64) -> u64 {
    let Some(value) = value else { return default };
    match &value.get_ref().0 {
        Ok(size) => *size,
        Err(message) => {
            check.error_at(value.span(), message.clone());
            default
        }
    }
}

/// A file the config names, resolved against the config file's folder; one that is not
/// there is an error at its place.
fn resolve_file(check: &mut Checker<'_>, file: &Spanned<String>, what: &str) -> std::path::PathBuf {
    let path = Path::new(file.get_ref());
    let resolved = if path.is_relative() {
        check.path.parent().unwrap_or(Path::new(".")).join(path)
    } else {
        path.to_owned()
    };
    if !resolved.is_file() {
        check.error_at(
            file.span(),
            format!("cannot find the {what} file \"{}\"", resolved.display()),
        );
    }
    resolved
}

/// FNV-1a: a stable, dependency-free fingerprint of the config text (not a security hash).
pub(super) fn fnv1a_hex(text: &[u8]) -> String {
    let hash = text.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}
