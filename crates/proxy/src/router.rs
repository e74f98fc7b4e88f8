//! Matching a request to its route.
//!
//! Routes are tried in the order the config lists them and the first whose every condition
//! holds wins, as an operator reading the file expects. Each listener gets its own list at
//! load (routes limited to other listeners are left out of it), and every condition is
//! already typed, so matching does no parsing and no allocation. Paths are matched as
//! [`path::normalize`] left them when the request arrived, and read as [`path_match`] says
//! (segment parameters left out, case as the route asks), so that another spelling of a
//! path cannot miss the route that guards it.

use std::cell::OnceCell;

use http::request::Parts;
use http::{HeaderMap, Method, Uri, header};

use crate::config::{Config, HostMatch, RouteConfig};

pub(crate) mod path;
pub(crate) mod path_match;

use path_match::RoutedPath;

/// Routes by listener, in match order.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    /// Route indices into [`Config::routes`] for each listener, in match order.
    by_listener: Vec<Vec<usize>>,
}

impl Router {
    /// Builds the per-listener route lists of a config.
    pub(crate) fn new(config: &Config) -> Self {
        let by_listener = (0..config.listeners.len())
            .map(|listener| {
                config
                    .routes
                    .iter()
                    .enumerate()
                    .filter(|(_, route)| {
                        route
                            .listeners
                            .as_ref()
                            .is_none_or(|only| only.contains(&listener))
                    })
                    .map(|(index, _)| index)
                    .collect()
            })
            .collect();
        Self { by_listener }
    }

    /// The index of the first route of `listener` that takes this request.
    pub(crate) fn route(&self, config: &Config, listener: usize, request: &Parts) -> Option<usize> {
        // The host is found (a header lookup and a scan) only once a route asks for it.
        let host = OnceCell::new();
        let path = RoutedPath::new(request.uri.path());
        self.by_listener
            .get(listener)?
            .iter()
            .copied()
            .find(|&index| matches(&config.routes[index], &host, path, request))
    }
}

impl Config {
    /// Whether answers can say what the proxy decided (`x-blastwall-attempts`,
    /// `x-blastwall-fallback`): always, or when a request asks with `x-blastwall-debug` (as
    /// `blastwall verify`'s do); not under `decision_headers = "never"`.
    pub fn tells_decisions(&self) -> bool {
        !matches!(
            self.proxy.decision_headers,
            crate::config::DecisionHeaders::Never
        )
    }

    /// The name of the route the first listener would give a request with this method and
    /// URI (a path, or an absolute URI whose authority stands for the `Host`), or `None` when
    /// no route takes it or its path is refused as malformed. The path is normalized and
    /// matched exactly as a request arriving on that listener is, by the same router, so a
    /// caller naming the route of a kind of request (what `blastwall verify` judges per route)
    /// cannot disagree with the proxy. A route that matches on headers gets none here.
    pub fn route_of(&self, method: &Method, uri: &Uri) -> Option<&str> {
        let listener = self.listeners.first()?;
        let mut uri = uri.clone();
        path::normalize(&mut uri, listener.limits.escaped_slashes).ok()?;
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method.clone();
        parts.uri = uri;
        let index = Router::new(self).route(self, 0, &parts)?;
        Some(self.routes[index].name.as_str())
    }
}

fn matches<'a>(
    route: &RouteConfig,
    host: &OnceCell<Option<&'a str>>,
    path: RoutedPath<'_>,
    request: &'a Parts,
) -> bool {
    let matcher = &route.matcher;
    if let Some(wanted) = &matcher.host {
        let host = host.get_or_init(|| request_host(&request.uri, &request.headers));
        let Some(host) = host else { return false };
        let host_matches = match wanted {
            HostMatch::Exact(exact) => host.eq_ignore_ascii_case(exact),
            HostMatch::Subdomain(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
            }
        };
        if !host_matches {
            return false;
        }
    }
    if !path.matches(&matcher.path, matcher.case_sensitive) {
        return false;
    }
    if let Some(methods) = &matcher.methods
        && !methods.contains(&request.method)
    {
        return false;
    }
    matcher.headers.iter().all(|(name, value)| {
        request
            .headers
            .get_all(name)
            .iter()
            .any(|present| present == value)
    })
}

/// The host a request is for, without its port or the root's trailing dot (`shop.example.`
/// is the same name as `shop.example`, and must not slip past a route that matches it): the
/// URI's authority (HTTP/2 `:authority`, or an absolute-form HTTP/1.1 target), else the
/// `Host` header.
pub(crate) fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let authority = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => headers.get(header::HOST)?.to_str().ok()?,
    };
    let without_userinfo = authority.rsplit('@').next().unwrap_or(authority);
    let host = strip_port(without_userinfo);
    Some(host.strip_suffix('.').unwrap_or(host))
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        // An IPv6 literal keeps its brackets; only a port after `]` is removed.
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use http::Request;

    use super::*;

    fn config(routes: &str) -> Config {
        let text = format!(
            "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\n[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:2\"\n{routes}\n[cluster.c]\nendpoints = [{{ address = \"127.0.0.1:9\" }}]\n"
        );
        Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|errors| panic!("{errors}"))
    }

    fn route_of(config: &Config, listener: usize, request: Request<()>) -> Option<String> {
        let (parts, ()) = request.into_parts();
        Router::new(config)
            .route(config, listener, &parts)
            .map(|index| config.routes[index].name.clone())
    }

    fn get(uri: &str, host: &str) -> Request<()> {
        Request::get(uri).header("host", host).body(()).unwrap()
    }

    #[test]
    fn the_first_matching_route_in_file_order_wins() {
        let config = config(
            "[[route]]\nname = \"api\"\ncluster = \"c\"\nmatch = { path_prefix = \"/api\" }\n[[route]]\nname = \"all\"\ncluster = \"c\"\n",
        );
        assert_eq!(
            route_of(&config, 0, get("/api/x", "h")).as_deref(),
            Some("api")
        );
        assert_eq!(
            route_of(&config, 0, get("/other", "h")).as_deref(),
            Some("all")
        );
    }

    #[test]
    fn hosts_match_exactly_or_by_subdomain_ignoring_case_and_port() {
        let config = config(
            "[[route]]\nname = \"exact\"\ncluster = \"c\"\nmatch = { host = \"shop.example\" }\n[[route]]\nname = \"sub\"\ncluster = \"c\"\nmatch = { host = \"*.example\" }\n",
        );
        assert_eq!(
            route_of(&config, 0, get("/", "SHOP.example:8080")).as_deref(),
            Some("exact")
        );
        assert_eq!(
            route_of(&config, 0, get("/", "api.example")).as_deref(),
            Some("sub")
        );
        for fully_qualified in ["shop.example.", "SHOP.EXAMPLE.:8080"] {
            assert_eq!(
                route_of(&config, 0, get("/", fully_qualified)).as_deref(),
                Some("exact"),
                "{fully_qualified}"
            );
        }
        assert_eq!(
            route_of(&config, 0, get("/", "api.example.")).as_deref(),
            Some("sub")
        );
        assert_eq!(
            route_of(&config, 0, get("/", "example")),
            None,
            "the bare domain is not a subdomain"
        );
        assert_eq!(route_of(&config, 0, get("/", "badexample")), None);
        let absolute = Request::get("http://api.example/x").body(()).unwrap();
        assert_eq!(route_of(&config, 0, absolute).as_deref(), Some("sub"));
    }

    #[test]
    fn paths_match_exactly_by_prefix_or_by_whole_regex() {
        let config = config(
            "[[route]]\nname = \"exact\"\ncluster = \"c\"\nmatch = { path = \"/health\" }\n[[route]]\nname = \"re\"\ncluster = \"c\"\nmatch = { path_regex = \"/v[0-9]+/.*\" }\n",
        );
        assert_eq!(
            route_of(&config, 0, get("/health", "h")).as_deref(),
            Some("exact")
        );
        assert_eq!(route_of(&config, 0, get("/health/x", "h")), None);
        assert_eq!(
            route_of(&config, 0, get("/v2/users", "h")).as_deref(),
            Some("re")
        );
        assert_eq!(
            route_of(&config, 0, get("/x/v2/users", "h")),
            None,
            "the regex is anchored"
        );
    }

    #[test]
    fn segment_parameters_do_not_hide_a_path_from_its_route() {
        let config = config(
            "[[route]]\nname = \"m\"\ncluster = \"c\"\nmatch = { path_prefix = \"/m/\" }\n[[route]]\nname = \"exact\"\ncluster = \"c\"\nmatch = { path = \"/health\" }\n[[route]]\nname = \"re\"\ncluster = \"c\"\nmatch = { path_regex = \"/v[0-9]+/users\" }\n[[route]]\nname = \"rest\"\ncluster = \"c\"\n",
        );
        for (path, route) in [
            ("/m;p=1/x", "m"),
            ("/m;jsessionid=a;b=c/x", "m"),
            ("/;x/m/x", "m"),
            ("/m/x;p", "m"),
            ("/health;x", "exact"),
            ("/health;x/", "rest"),
            ("/v2;a/users", "re"),
            ("/v2/users;b=/", "rest"),
            ("/m;p", "rest"),
            ("/mx;p/", "rest"),
        ] {
            assert_eq!(
                route_of(&config, 0, get(path, "h")).as_deref(),
                Some(route),
                "{path}"
            );
        }
    }

    #[test]
    fn a_route_that_ignores_case_matches_its_path_in_any_case() {
        let config = config(
            "[[route]]\nname = \"m\"\ncluster = \"c\"\nmatch = { path_prefix = \"/m/\", case_sensitive = false }\n[[route]]\nname = \"exact\"\ncluster = \"c\"\nmatch = { path = \"/Health\", case_sensitive = false }\n[[route]]\nname = \"re\"\ncluster = \"c\"\nmatch = { path_regex = \"/v[0-9]+/users\", case_sensitive = false }\n[[route]]\nname = \"strict\"\ncluster = \"c\"\nmatch = { path_prefix = \"/s/\" }\n[[route]]\nname = \"rest\"\ncluster = \"c\"\n",
        );
        for (path, route) in [
            ("/M/x", "m"),
            ("/m/X", "m"),
            ("/M;p=1/x", "m"),
            ("/HEALTH", "exact"),
            ("/health", "exact"),
            ("/V2/Users", "re"),
            ("/s/x", "strict"),
            ("/S/x", "rest"),
        ] {
            assert_eq!(
                route_of(&config, 0, get(path, "h")).as_deref(),
                Some(route),
                "{path}"
            );
        }
    }

    #[test]
    fn methods_and_headers_must_all_hold() {
        let config = config(
            "[[route]]\nname = \"canary\"\ncluster = \"c\"\nmatch = { methods = [\"POST\"], headers = { \"x-canary\" = \"1\" } }\n",
        );
        let post = |canary: &str| {
            Request::post("/")
                .header("x-canary", canary)
                .body(())
                .unwrap()
        };
        assert_eq!(route_of(&config, 0, post("1")).as_deref(), Some("canary"));
        assert_eq!(route_of(&config, 0, post("2")), None);
        assert_eq!(route_of(&config, 0, get("/", "h")), None);
    }

    #[test]
    fn routes_limited_to_a_listener_are_only_seen_there() {
        let config = config("[[route]]\nname = \"b-only\"\ncluster = \"c\"\nlisteners = [\"b\"]\n");
        assert_eq!(route_of(&config, 0, get("/", "h")), None);
        assert_eq!(
            route_of(&config, 1, get("/", "h")).as_deref(),
            Some("b-only")
        );
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("example.com:80"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
    }

    #[test]
    fn route_of_names_the_route_the_first_listener_gives_a_method_and_uri() {
        let config = config(concat!(
            "[[route]]\nname = \"pay\"\ncluster = \"c\"\nmatch = { path_prefix = \"/pay/\", methods = [\"POST\"] }\n",
            "[[route]]\nname = \"shop\"\ncluster = \"c\"\nmatch = { host = \"shop.example\" }\n",
            "[[route]]\nname = \"only-b\"\ncluster = \"c\"\nlisteners = [\"b\"]\n",
        ));
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert_eq!(
            config.route_of(&Method::POST, &uri("/pay/card")),
            Some("pay")
        );
        assert_eq!(
            config.route_of(&Method::POST, &uri("/x/../pay/card?id=1")),
            Some("pay"),
            "the path is normalized first, as on arrival"
        );
        assert_eq!(config.route_of(&Method::GET, &uri("/pay/card")), None);
        assert_eq!(
            config.route_of(&Method::GET, &uri("http://shop.example:8080/")),
            Some("shop")
        );
        assert_eq!(config.route_of(&Method::GET, &uri("/%zz")), None);
    }
}
