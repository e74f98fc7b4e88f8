//! Which handler serves a request: one table of method, path template and handler.
//!
//! The table is the whole API: the router matches against it, a `405` lists the methods a
//! path has, and a test checks that the OpenAPI document describes every row.

use http::Method;

/// What a request asks for, with the names taken from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// `GET /healthz/live`.
    Live,
    /// `GET /healthz/ready`.
    Ready,
    /// `GET /admin/status`.
    Status,
    /// `GET /admin/config`.
    Config,
    /// `GET /admin/clusters`.
    Clusters,
    /// `GET /admin/routes`.
    Routes,
    /// `GET /admin/events`.
    Events,
    /// `GET /admin/stream`.
    Stream,
    /// `GET /admin/openapi.json`.
    OpenApi,
    /// `GET /dashboard`.
    Dashboard,
    /// `GET /metrics`.
    Metrics,
    /// `POST .../endpoints/{address}/drain`.
    Drain {
        /// The cluster's name.
        cluster: String,
        /// The endpoint's address.
        address: String,
    },
    /// `POST .../endpoints/{address}/undrain`.
    Undrain {
        /// The cluster's name.
        cluster: String,
        /// The endpoint's address.
        address: String,
    },
    /// `POST /admin/clusters/{cluster}/breaker`.
    ClusterBreaker {
        /// The cluster's name.
        cluster: String,
    },
    /// `POST .../endpoints/{address}/breaker`.
    EndpointBreaker {
        /// The cluster's name.
        cluster: String,
        /// The endpoint's address.
        address: String,
    },
    /// `POST /admin/routes/{route}/kill_switch`.
    KillSwitch {
        /// The route's name.
        route: String,
    },
    /// `POST /admin/reload`.
    Reload,
    /// `PUT /admin/log-level`.
    LogLevel,
    /// `GET /admin/faults`.
    Faults,
    /// `POST /admin/faults`.
    FaultCreate,
    /// `DELETE /admin/faults`: the kill switch.
    FaultsClear,
    /// `POST /admin/faults/resume`.
    FaultsResume,
    /// `GET /admin/faults/{id}`.
    Fault {
        /// The rule's id.
        id: String,
    },
    /// `DELETE /admin/faults/{id}`.
    FaultDelete {
        /// The rule's id.
        id: String,
    },
}

type Build = fn(&[String]) -> Call;

/// Every route the admin listener serves: method, path template (OpenAPI syntax), handler.
pub(crate) const ROUTES: &[(Method, &str, Build)] = &[
    (Method::GET, "/healthz/live", |_| Call::Live),
    (Method::GET, "/healthz/ready", |_| Call::Ready),
    (Method::GET, "/admin/status", |_| Call::Status),
    (Method::GET, "/admin/config", |_| Call::Config),
    (Method::GET, "/admin/clusters", |_| Call::Clusters),
    (Method::GET, "/admin/routes", |_| Call::Routes),
    (Method::GET, "/admin/events", |_| Call::Events),
    (Method::GET, "/admin/stream", |_| Call::Stream),
    (Method::GET, "/admin/openapi.json", |_| Call::OpenApi),
    (Method::GET, "/dashboard", |_| Call::Dashboard),
    (Method::GET, "/metrics", |_| Call::Metrics),
    (
        Method::POST,
        "/admin/clusters/{cluster}/endpoints/{address}/drain",
        |names| Call::Drain {
            cluster: names[0].clone(),
            address: names[1].clone(),
        },
    ),
    (
        Method::POST,
        "/admin/clusters/{cluster}/endpoints/{address}/undrain",
        |names| Call::Undrain {
            cluster: names[0].clone(),
            address: names[1].clone(),
        },
    ),
    (Method::POST, "/admin/clusters/{cluster}/breaker", |names| {
        Call::ClusterBreaker {
            cluster: names[0].clone(),
        }
    }),
    (
        Method::POST,
        "/admin/clusters/{cluster}/endpoints/{address}/breaker",
        |names| Call::EndpointBreaker {
            cluster: names[0].clone(),
            address: names[1].clone(),
        },
    ),
    (Method::POST, "/admin/routes/{route}/kill_switch", |names| {
        Call::KillSwitch {
            route: names[0].clone(),
        }
    }),
    (Method::POST, "/admin/reload", |_| Call::Reload),
    (Method::PUT, "/admin/log-level", |_| Call::LogLevel),
    (Method::GET, "/admin/faults", |_| Call::Faults),
    (Method::POST, "/admin/faults", |_| Call::FaultCreate),
    (Method::DELETE, "/admin/faults", |_| Call::FaultsClear),
    (Method::POST, "/admin/faults/resume", |_| Call::FaultsResume),
    (Method::GET, "/admin/faults/{id}", |names| Call::Fault {
        id: names[0].clone(),
    }),
    (Method::DELETE, "/admin/faults/{id}", |names| {
        Call::FaultDelete {
            id: names[0].clone(),
        }
    }),
];

/// Why no handler serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// No such path.
    NotFound,
    /// The path exists with these methods only.
    MethodNotAllowed(Vec<Method>),
}

/// The call for `method` and `path` (without its query).
pub(crate) fn route(method: &Method, path: &str) -> Result<Call, NoRoute> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let mut allowed = Vec::new();
    for (route_method, template, build) in ROUTES {
        let Some(names) = matches(template, &segments) else {
            continue;
        };
        // HEAD is served as GET (hyper sends no body for it).
        if route_method == method || (method == Method::HEAD && route_method == Method::GET) {
            return Ok(build(&names));
        }
        allowed.push(route_method.clone());
    }
    if allowed.is_empty() {
        Err(NoRoute::NotFound)
    } else {
        Err(NoRoute::MethodNotAllowed(allowed))
    }
}

/// The names captured by `template`'s `{placeholders}` if `segments` fit it.
fn matches(template: &str, segments: &[String]) -> Option<Vec<String>> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut names = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') && part.ends_with('}') {
            if segment.is_empty() {
                return None;
            }
            names.push(segment.clone());
        } else if part != segment {
            return None;
        }
    }
    Some(names)
}

/// `%XX` escapes decoded (an IPv6 endpoint is `%5B::1%5D:80`); a bad escape stays as written.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = segment.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_paths_route_to_their_handler() {
        assert_eq!(route(&Method::GET, "/admin/status"), Ok(Call::Status));
        assert_eq!(route(&Method::HEAD, "/healthz/live"), Ok(Call::Live));
        assert_eq!(route(&Method::POST, "/admin/reload"), Ok(Call::Reload));
    }

    #[test]
    fn placeholders_capture_decoded_names() {
        assert_eq!(
            route(
                &Method::POST,
                "/admin/clusters/api/endpoints/%5B::1%5D:8080/drain"
            ),
            Ok(Call::Drain {
                cluster: "api".into(),
                address: "[::1]:8080".into()
            })
        );
        assert_eq!(
            route(&Method::POST, "/admin/clusters/api/breaker"),
            Ok(Call::ClusterBreaker {
                cluster: "api".into()
            })
        );
    }

    #[test]
    fn fault_paths_route_by_method_and_resume_is_not_taken_for_an_id() {
        assert_eq!(route(&Method::GET, "/admin/faults"), Ok(Call::Faults));
        assert_eq!(route(&Method::POST, "/admin/faults"), Ok(Call::FaultCreate));
        assert_eq!(
            route(&Method::DELETE, "/admin/faults"),
            Ok(Call::FaultsClear)
        );
        assert_eq!(
            route(&Method::POST, "/admin/faults/resume"),
            Ok(Call::FaultsResume)
        );
        assert_eq!(
            route(&Method::DELETE, "/admin/faults/f3"),
            Ok(Call::FaultDelete { id: "f3".into() })
        );
        assert_eq!(
            route(&Method::GET, "/admin/faults/config:shop:1"),
            Ok(Call::Fault {
                id: "config:shop:1".into()
            })
        );
    }

    #[test]
    fn an_unknown_path_is_not_found_and_a_wrong_method_lists_the_right_ones() {
        assert_eq!(route(&Method::GET, "/admin/nope"), Err(NoRoute::NotFound));
        assert_eq!(
            route(&Method::GET, "/admin/clusters/api/breaker"),
            Err(NoRoute::MethodNotAllowed(vec![Method::POST]))
        );
        assert_eq!(
            route(&Method::DELETE, "/admin/status"),
            Err(NoRoute::MethodNotAllowed(vec![Method::GET]))
        );
        assert_eq!(
            route(&Method::POST, "/admin/clusters//breaker"),
            Err(NoRoute::NotFound)
        );
    }
}
