//! Which mutating requests a browser cannot have forged: the admin listener's own `Host`
//! and `Origin`, and a JSON content type.
//!
//! Without a token, a loopback admin listener takes mutations from anything on the host,
//! and a web page the operator has open is "on the host" too: a `<form>` or a `fetch` with
//! `mode: "no-cors"` can POST to `http://127.0.0.1:9901/...` (cross-site request forgery),
//! and a page whose name is re-pointed at 127.0.0.1 can even read the answers (DNS
//! rebinding). Both leave marks a browser cannot hide:
//!
//! - **Host** names what the browser thinks it talks to. A rebinding page sends its own
//!   name (`evil.example:9901`), so only the listener's own address, a loopback address
//!   or `localhost`, each with the listener's port, are taken. An IP literal cannot be
//!   rebound, so a listener bound to every interface (`0.0.0.0`, which needs a token anyway)
//!   takes any IP literal with its port.
//! - **Origin**, when present (browsers send it on every cross-origin POST), must be the
//!   same `http://host:port` by the same rule; `null` (sandboxed frames, files) is refused.
//! - **Content-Type** must be `application/json`: a form or a no-cors `fetch` can only send
//!   `text/plain`, `application/x-www-form-urlencoded` or `multipart/form-data` without a
//!   CORS preflight, which this listener never answers. It is required on every mutation,
//!   body or not, since a body-less form POST is just as easy to forge.
//!
//! Scripts and `curl` are unaffected beyond sending `Content-Type: application/json`:
//! they send the Host they connect to and no Origin.

use std::net::{IpAddr, SocketAddr};

use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, StatusCode};

use super::reply::ApiError;

/// Whether a mutating request with `headers` (and `authority`, the request target's, for an
/// absolute-form request) may go on, on a listener bound to `local`.
pub(crate) fn check_mutation(
    headers: &HeaderMap,
    authority: Option<&str>,
    local: SocketAddr,
) -> Result<(), ApiError> {
    let host = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .or(authority)
        .ok_or_else(|| forbidden("a mutating call needs a Host header"))?;
    if !is_own_authority(host, local) {
        return Err(forbidden(&format!(
            "Host {:?} is not this admin listener ({local}, or localhost with its port)",
            printable(host)
        )));
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|authority| is_own_authority(authority, local));
        if !own {
            return Err(forbidden(&format!(
                "Origin {:?} is not this admin listener: cross-site calls are refused",
                printable(origin)
            )));
        }
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !is_json(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a mutating call needs Content-Type: application/json (even without a body)",
        ));
    }
    Ok(())
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

/// At most 100 characters of a header as it was sent, for an error message.
fn printable(value: &str) -> &str {
    value.get(..100).unwrap_or(value)
}

/// `application/json`, in any case, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Whether `authority` (`host[:port]`) names the listener at `local`: its own port (80
/// when none is written), and a host that is `localhost`, a loopback address, the bound
/// address, or any IP literal when bound to every interface.
fn is_own_authority(authority: &str, local: SocketAddr) -> bool {
    let (host, port) = split_authority(authority);
    let port = match port {
        None => 80,
        Some(port) => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => return false,
        },
    };
    if port != local.port() {
        return false;
    }
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let Ok(ip) = host.parse::<IpAddr>() else {
        return false;
    };
    ip.is_loopback() || ip == local.ip() || local.ip().is_unspecified()
}

/// `host` and `port` of `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, tail)) => match tail.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => ("", None),
            },
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;

    const LOCAL: &str = "127.0.0.1:9901";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        headers
    }

    fn status(pairs: &[(&str, &str)], local: &str) -> Option<StatusCode> {
        let local = local.parse().expect("an address");
        check_mutation(&headers(pairs), None, local)
            .err()
            .map(|error| error.status)
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn the_listeners_own_host_with_json_is_allowed() {
        for host in [
            "127.0.0.1:9901",
            "localhost:9901",
            "LocalHost:9901",
            "[::1]:9901",
        ] {
            assert_eq!(status(&[("host", host), JSON], LOCAL), None, "{host}");
        }
        assert_eq!(
            status(
                &[
                    ("host", "127.0.0.1:9901"),
                    ("origin", "http://localhost:9901"),
                    ("content-type", "Application/JSON; charset=utf-8"),
                ],
                LOCAL
            ),
            None
        );
    }

    #[test]
    fn a_foreign_host_is_forbidden_even_with_the_right_port() {
        for host in [
            "evil.example:9901",
            "127.0.0.1:9902",
            "127.0.0.1",
            "localhost.evil.example:9901",
            "10.0.0.1:9901",
            "127.0.0.1:99o1",
        ] {
            assert_eq!(
                status(&[("host", host), JSON], LOCAL),
                Some(StatusCode::FORBIDDEN),
                "{host}"
            );
        }
        assert_eq!(status(&[JSON], LOCAL), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn a_foreign_or_null_origin_is_forbidden() {
        for origin in [
            "http://evil.example",
            "http://evil.example:9901",
            "https://127.0.0.1:9901",
            "null",
        ] {
            assert_eq!(
                status(
                    &[("host", "127.0.0.1:9901"), ("origin", origin), JSON],
                    LOCAL
                ),
                Some(StatusCode::FORBIDDEN),
                "{origin}"
            );
        }
    }

    #[test]
    fn a_mutation_without_a_json_content_type_is_unsupported() {
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            assert_eq!(
                status(
                    &[("host", "127.0.0.1:9901"), ("content-type", content_type)],
                    LOCAL
                ),
                Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
                "{content_type}"
            );
        }
        assert_eq!(
            status(&[("host", "127.0.0.1:9901")], LOCAL),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }

    #[test]
    fn a_listener_on_every_interface_takes_ip_literals_but_not_names() {
        let any = "0.0.0.0:9901";
        assert_eq!(status(&[("host", "192.0.2.7:9901"), JSON], any), None);
        assert_eq!(
            status(&[("host", "admin.evil.example:9901"), JSON], any),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(
                &[("host", "[2001:db8::1]:9901"), JSON],
                "[2001:db8::1]:9901"
            ),
            None
        );
    }
}
