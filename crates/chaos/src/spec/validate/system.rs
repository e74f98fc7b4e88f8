//! `[system]` and `[load]`: what is tested, and the traffic that tests it.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};
use toml::Spanned;

use super::Checker;
use crate::mock::Behaviour;
use crate::spec::file::{LoadSection, ServiceSection, SystemSection};
use crate::spec::{
    BlastwallConfig, HeaderShare, Load, RequestKind, Running, Service, System, Topology,
};

/// `[system]`: a topology or a running system, never both.
pub(super) fn system(checker: &mut Checker<'_>, section: SystemSection) -> Option<System> {
    let running = [&section.traffic, &section.admin, &section.toxiproxy]
        .into_iter()
        .flatten()
        .next()
        .map(Spanned::span);
    let topology = !section.services.is_empty() || section.blastwall.is_some();
    match (topology, running) {
        (true, Some(span)) => {
            checker.error(
                span,
                "[system] is either a topology verify starts (`service`, `blastwall`) or a running system (`traffic`, `admin`, `toxiproxy`), not both",
            );
            None
        }
        (true, None) => topology_of(checker, section).map(System::Topology),
        (false, Some(_)) => {
            running_of(checker, section).map(|running| System::Running(Box::new(running)))
        }
        (false, None) => {
            checker.errors.push(crate::spec::SpecError::whole_file(
                checker.path,
                "[system] needs a topology (`[[system.service]]` and `blastwall`) or a running system (`traffic`)",
            ));
            None
        }
    }
}

fn topology_of(checker: &mut Checker<'_>, section: SystemSection) -> Option<Topology> {
    let mut names = BTreeSet::new();
    let services: Vec<Service> = section
        .services
        .into_iter()
        .filter_map(|service| self::service(checker, service, &mut names))
        .collect();
    let Some(blastwall) = section.blastwall else {
        checker.errors.push(crate::spec::SpecError::whole_file(
            checker.path,
            "a topology needs `blastwall`: the Blastwall config in front of its services, a path, or the config itself (a multi-line string or a table)",
        ));
        return None;
    };
    let span = blastwall.span();
    let (blastwall_config, text) = match blastwall.into_inner() {
        // A path has no line break; a config has one at least (a multi-line string).
        toml::Value::String(text) if text.contains('\n') => {
            (BlastwallConfig::Inline(text.clone()), text)
        }
        toml::Value::String(path) => {
            let resolved = checker
                .path
                .parent()
                .unwrap_or_else(|| std::path::Path::new(""))
                .join(path);
            match std::fs::read_to_string(&resolved) {
                Ok(text) => (BlastwallConfig::Path(resolved), text),
                Err(error) => {
                    let message = format!("cannot read {}: {error}", resolved.display());
                    checker.error(span, message);
                    return None;
                }
            }
        }
        toml::Value::Table(table) => {
            let text = toml::to_string(&table).expect("a parsed TOML table writes back");
            (BlastwallConfig::Inline(text.clone()), text)
        }
        _ => {
            checker.error(
                span,
                "`blastwall`: a path to a config, or the config itself (a multi-line string or a table)",
            );
            return None;
        }
    };
    let config = match text.parse::<toml::Table>() {
        Ok(config) => toml::Value::Table(config),
        Err(error) => {
            let message = format!("the Blastwall config is not TOML: {}", error.message());
            checker.error(span, message);
            return None;
        }
    };
    let mut strings = Vec::new();
    strings_in(&config, &mut strings);
    for name in strings.iter().flat_map(|text| placeholders(text)) {
        if !names.contains(name) {
            let message = format!(
                "the Blastwall config names \"{{service:{name}}}\", but no [[system.service]] is named {name:?}"
            );
            checker.error(span.clone(), message);
        }
    }
    Some(Topology {
        services,
        blastwall: blastwall_config,
    })
}

/// Every string value of a config (not its comments): where placeholders may be.
fn strings_in<'a>(value: &'a toml::Value, out: &mut Vec<&'a str>) {
    match value {
        toml::Value::String(text) => out.push(text),
        toml::Value::Array(values) => values.iter().for_each(|value| strings_in(value, out)),
        toml::Value::Table(table) => table.values().for_each(|value| strings_in(value, out)),
        _ => {}
    }
}

/// The service names a config's `"{service:NAME}"` placeholders refer to.
fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split("{service:")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

fn service(
    checker: &mut Checker<'_>,
    section: ServiceSection,
    names: &mut BTreeSet<String>,
) -> Option<Service> {
    let name = section.name.get_ref();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        checker.error(
            section.name.span(),
            "a service's name: letters, digits, `-` and `_`",
        );
        return None;
    }
    if !names.insert(name.clone()) {
        checker.error(
            section.name.span(),
            format!("a second service named {name:?}"),
        );
        return None;
    }
    // NOTE: a service whose behaviour is refused is still known by name, so the failures
    // that name it do not each add an error of their own.
    let behaviour = section
        .behaviour
        .and_then(|value| behaviour(checker, &value, "behaviour"))
        .unwrap_or_default();
    Some(Service {
        name: section.name.into_inner(),
        zone: section.zone,
        behaviour,
    })
}

/// A mock's behaviour written in TOML, checked as the mock's control API checks it.
pub(super) fn behaviour(
    checker: &mut Checker<'_>,
    value: &Spanned<impl serde::Serialize>,
    what: &str,
) -> Option<Behaviour> {
    let checked = serde_json::to_value(value.get_ref())
        .map_err(|error| error.to_string())
        .and_then(|json| serde_json::from_value::<Behaviour>(json).map_err(|e| e.to_string()))
        .and_then(|behaviour| {
            behaviour
                .validate()
                .map(|()| behaviour)
                .map_err(|error| error.to_string())
        });
    match checked {
        Ok(behaviour) => Some(behaviour),
        Err(error) => {
            checker.error(
                value.span(),
                format!("{what}: not a mock behaviour: {error}"),
            );
            None
        }
    }
}

fn running_of(checker: &mut Checker<'_>, section: SystemSection) -> Option<Running> {
    let Some(traffic) = section.traffic else {
        checker.errors.push(crate::spec::SpecError::whole_file(
            checker.path,
            "a running system needs `traffic`: the URL its load goes to",
        ));
        return None;
    };
    let traffic = url(checker, &traffic, "traffic");
    let admin = section.admin.map(|admin| url(checker, &admin, "admin"));
    let toxiproxy = section
        .toxiproxy
        .map(|url_| url(checker, &url_, "toxiproxy"));
    Some(Running {
        traffic: traffic?,
        admin: admin.map_or(Some(None), |admin| admin.map(Some))?,
        toxiproxy: toxiproxy.map_or(Some(None), |toxiproxy| toxiproxy.map(Some))?,
    })
}

/// A running system's URL. Plain HTTP only: verify's load and calls speak no TLS yet, and a
/// URL it would quietly reach another way (an `https://` sent as plain HTTP to port 80) is
/// refused here rather than misused.
fn url(checker: &mut Checker<'_>, value: &Spanned<String>, what: &str) -> Option<Uri> {
    let parsed = value.get_ref().parse::<Uri>().ok();
    if parsed.as_ref().and_then(Uri::scheme_str) == Some("https") {
        let message = format!(
            "`{what}`: verify reaches a running system over plain HTTP (https:// is not built yet): an http:// URL"
        );
        checker.error(value.span(), message);
        return None;
    }
    let uri = parsed.filter(|uri| uri.scheme_str() == Some("http") && uri.authority().is_some());
    if uri.is_none() {
        let message =
            format!("`{what}`: an http:// URL with a host, like \"http://127.0.0.1:8080\"");
        checker.error(value.span(), message);
    }
    uri
}

/// The fastest load a spec may ask for: past it one load generator cannot keep its
/// timetable (and its backlog of requests due grows without bound).
const MAX_RATE: u32 = 100_000;
/// The most requests of one experiment: each is kept (a few dozen bytes) to be judged.
const MAX_REQUESTS: u64 = 10_000_000;
/// The longest load of one experiment.
const MAX_LOAD: Duration = Duration::from_secs(24 * 3600);
/// The most header shares: a sample says which it carries in a `u32`
/// (`crate::load::MAX_SHARED_HEADERS`).
const MAX_HEADER_SHARES: usize = crate::load::MAX_SHARED_HEADERS;

/// `[load]`.
pub(super) fn load(checker: &mut Checker<'_>, section: LoadSection) -> Option<Load> {
    let rate = NonZeroU32::new(*section.rate.get_ref()).filter(|rate| rate.get() <= MAX_RATE);
    if rate.is_none() {
        checker.error(
            section.rate.span(),
            format!("`rate`: from 1 to {MAX_RATE} requests per second"),
        );
    }
    let duration = checker.duration(&section.duration, "`duration`");
    let fits = |duration: &Duration| !duration.is_zero() && *duration <= MAX_LOAD;
    if duration.is_some_and(|duration| !fits(&duration)) {
        checker.error(
            section.duration.span(),
            format!(
                "`duration`: more than 0 and at most {}",
                humantime::format_duration(MAX_LOAD)
            ),
        );
    }
    let duration = duration.filter(fits);
    if let (Some(rate), Some(duration)) = (rate, duration)
        && f64::from(rate.get()) * duration.as_secs_f64() > MAX_REQUESTS as f64
    {
        let message = format!(
            "`rate` × `duration`: at most {MAX_REQUESTS} requests an experiment (each is kept to be judged)"
        );
        checker.error(section.duration.span(), message);
    }
    let mut requests = Vec::new();
    for request in section.requests {
        let method = match &request.method {
            None => Some(Method::GET),
            Some(method) => {
                let parsed = Method::from_bytes(method.get_ref().as_bytes()).ok();
                if parsed.is_none() {
                    checker.error(method.span(), "`method`: an HTTP method like \"GET\"");
                }
                parsed
            }
        };
        if !request.path.get_ref().starts_with('/')
            || request
                .path
                .get_ref()
                .parse::<http::uri::PathAndQuery>()
                .is_err()
        {
            checker.error(
                request.path.span(),
                "`path`: a path and query starting with \"/\"",
            );
        }
        let weight = request
            .weight
            .as_ref()
            .map_or(NonZeroU32::new(1), |weight| {
                let parsed = NonZeroU32::new(*weight.get_ref());
                if parsed.is_none() {
                    checker.error(weight.span(), "`weight`: at least 1");
                }
                parsed
            });
        if let (Some(method), Some(weight)) = (method, weight) {
            let path = request.path.into_inner();
            requests.push(RequestKind {
                method,
                path,
                weight,
                route: request.route.map(Spanned::into_inner),
            });
        }
    }
    if requests.is_empty() {
        requests.push(RequestKind {
            method: Method::GET,
            path: "/".to_owned(),
            weight: NonZeroU32::MIN,
            route: None,
        });
    }
    let headers = header_mix(checker, section.headers);
    Some(Load {
        rate: rate?,
        duration: duration?,
        requests,
        headers,
    })
}

fn header_mix(
    checker: &mut Checker<'_>,
    sections: Vec<crate::spec::file::HeaderSection>,
) -> Vec<HeaderShare> {
    let mut headers = Vec::new();
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for header in sections {
        let name = HeaderName::from_bytes(header.name.get_ref().as_bytes()).ok();
        if name.is_none() {
            checker.error(header.name.span(), "`name`: a header name");
        }
        let value = HeaderValue::from_str(header.value.get_ref()).ok();
        if value.is_none() {
            checker.error(
                header.value.span(),
                "`value`: visible ASCII, spaces and tabs",
            );
        }
        let share = checker.share(&header.share, "`share`");
        let (Some(name), Some(value), Some(share)) = (name, value, share) else {
            continue;
        };
        let total = totals.entry(name.as_str().to_owned()).or_default();
        *total += share;
        if *total > 1.0 + 1e-9 {
            let message = format!(
                "the shares of {name} add up to more than 100%: one request carries one value"
            );
            checker.error(header.share.span(), message);
        }
        if headers.len() == MAX_HEADER_SHARES {
            let message = format!(
                "at most {MAX_HEADER_SHARES} [[load.header]]: each request says which it carries in {MAX_HEADER_SHARES} bits"
            );
            checker.error(header.name.span(), message);
            continue;
        }
        headers.push(HeaderShare { name, value, share });
    }
    headers
}
