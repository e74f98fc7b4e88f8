//! Toxiproxy's HTTP API, route for route: the paths, methods, statuses and JSON of
//! Shopify's server (`api.go`), so its client libraries and scripts work unchanged.
//!
//! Browsers are refused (403 to a `Mozilla/` user agent), as Toxiproxy does against
//! cross-site requests: a web page must not be able to cut a developer's database.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::collection::{Collection, ProxyInput};
use super::error::ApiError;

/// The version `GET /version` reports.
pub const VERSION: &str = concat!("blastwall-", env!("CARGO_PKG_VERSION"));

/// Request bodies larger than this are refused (populate bodies are the largest).
const MAX_BODY: usize = 1024 * 1024;

/// How long a request's head, then its body, may take to arrive: Toxiproxy's read timeout,
/// so a client that stalls mid-request does not hold a connection forever.
pub const READ_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// An answer: status and JSON, or 204 without a body.
type Answer = Result<(StatusCode, Option<Value>), ApiError>;

/// Answers one API request.
pub async fn handle(proxies: Arc<Collection>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let from_browser = request
        .headers()
        .get(header::USER_AGENT)
        .is_some_and(|agent| agent.as_bytes().starts_with(b"Mozilla/"));
    if from_browser {
        return text(StatusCode::FORBIDDEN, "User agent not allowed\n");
    }
    let method = request.method().clone();
    let Some(decoded) = decoded_segments(request.uri().path()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: invalid URL escape\n",
        );
    };
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    if !is_route(&segments) {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(err) => return error(&err),
    };
    let answer = match segments.as_slice() {
        ["version"] if method == Method::GET => return version(),
        ["metrics"] if method == Method::GET => return metrics(&proxies).await,
        ["populate"] if method == Method::POST => return populate(&proxies, &body).await,
        ["reset"] if method == Method::POST => Some(
            proxies
                .reset()
                .await
                .map(|()| (StatusCode::NO_CONTENT, None)),
        ),
        ["proxies", ..] => proxy_route(&proxies, &method, &segments[1..], &body).await,
        _ => None,
    };
    match answer {
        None => text(StatusCode::METHOD_NOT_ALLOWED, ""),
        Some(Ok((status, Some(value)))) => json_response(status, &value),
        Some(Ok((status, None))) => text(status, ""),
        Some(Err(err)) => error(&err),
    }
}

/// The routes under `/proxies`; `None` when the method is not one the path takes.
async fn proxy_route(
    proxies: &Collection,
    method: &Method,
    segments: &[&str],
    body: &Bytes,
) -> Option<Answer> {
    let deleted = |result: Result<(), ApiError>| result.map(|()| (StatusCode::NO_CONTENT, None));
    Some(match (segments, method) {
        ([], &Method::GET) => Ok((StatusCode::OK, Some(proxies.index().await))),
        ([], &Method::POST) => create(proxies, body).await,
        ([name], &Method::GET) => ok(proxies.show(name).await),
        ([name], m) if is_update(m) => match json(body) {
            Ok(body) => ok(proxies.update(name, &body).await),
            Err(err) => Err(err),
        },
        ([name], &Method::DELETE) => deleted(proxies.delete(name).await),
        ([name, "toxics"], &Method::GET) => ok(proxies
            .with_proxy(name, |proxy| {
                Ok(Value::Array(
                    proxy.toxics().iter().map(|t| t.to_json()).collect(),
                ))
            })
            .await),
        ([name, "toxics"], &Method::POST) => match json(body) {
            Ok(body) => ok(proxies.add_toxic(name, &body).await),
            Err(err) => Err(err),
        },
        ([name, "toxics", toxic], &Method::GET) => ok(proxies
            .with_proxy(name, |proxy| {
                proxy
                    .toxic(toxic)
                    .map(|t| t.to_json())
                    .ok_or_else(ApiError::toxic_not_found)
            })
            .await),
        ([name, "toxics", toxic], m) if is_update(m) => match json(body) {
            Ok(body) => ok(proxies.update_toxic(name, toxic, &body).await),
            Err(err) => Err(err),
        },
        ([name, "toxics", toxic], &Method::DELETE) => deleted(
            proxies
                .with_proxy(name, |proxy| proxy.remove_toxic(toxic))
                .await,
        ),
        _ => return None,
    })
}

/// `GET /version`, with Toxiproxy's content type and trailing newline.
fn version() -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::OK, &format!("{{\"version\": \"{VERSION}\"}}\n"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}

/// `GET /metrics` (Blastwall's; Toxiproxy serves one only with `-proxy-metrics`).
async fn metrics(proxies: &Collection) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::OK, &proxies.metrics().await);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(super::metrics::CONTENT_TYPE),
    );
    response
}

/// The path's segments, percent-decoded as Go decodes the path gorilla/mux routes on (so
/// `/proxies/sp%20ace` names the proxy `sp ace`). Split before decoding, so a `%2F` stays
/// inside its segment, where it matches nothing (no name holds a `/`). `None` for a
/// malformed escape, which Go's server refuses with a 400. A segment that is not UTF-8
/// once decoded becomes `/`, which no route and no name matches (names are JSON text).
fn decoded_segments(path: &str) -> Option<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|segment| {
            let bytes = percent_decoded(segment.as_bytes())?;
            Some(String::from_utf8(bytes).unwrap_or_else(|_| "/".to_owned()))
        })
        .collect()
}

/// `%XX` escapes turned into their bytes; `None` when a `%` is not followed by two hex
/// digits.
fn percent_decoded(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'%' {
            out.push(byte);
            rest = tail;
            continue;
        }
        let (high, low) = match tail.get(..2)? {
            [high, low] => (hex_digit(*high)?, hex_digit(*low)?),
            _ => return None,
        };
        out.push(high << 4 | low);
        rest = &tail[2..];
    }
    Some(out)
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Toxiproxy takes updates by POST (deprecated there) and PATCH.
fn is_update(method: &Method) -> bool {
    method == Method::POST || method == Method::PATCH
}

/// Whether a path is one of the API's, whatever the method.
fn is_route(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["version" | "reset" | "proxies" | "populate" | "metrics"]
            | ["proxies", _]
            | ["proxies", _, "toxics"]
            | ["proxies", _, "toxics", _]
    )
}

fn ok(result: Result<Value, ApiError>) -> Answer {
    result.map(|value| (StatusCode::OK, Some(value)))
}

async fn create(proxies: &Collection, body: &Bytes) -> Answer {
    let body = json(body)?;
    let input = ProxyInput::parse(&body, ProxyInput::new_defaults(), None)?;
    let created = proxies.create(input).await?;
    Ok((StatusCode::CREATED, Some(created)))
}

/// `POST /populate`: 201 with `{"proxies": [...]}`; on an error, its status with the
/// error's fields and the proxies done before it, as Toxiproxy answers.
async fn populate(proxies: &Collection, body: &Bytes) -> Response<Full<Bytes>> {
    let inputs = json(body).and_then(|body| ProxyInput::parse_all(&body));
    let (done, failed) = match inputs {
        Ok(inputs) => proxies.populate(inputs).await,
        Err(err) => (Vec::new(), Some(err)),
    };
    match failed {
        None => json_response(StatusCode::CREATED, &serde_json::json!({"proxies": done})),
        Some(err) => {
            let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
            let proxies = if done.is_empty() {
                Value::Null
            } else {
                Value::Array(done)
            };
            json_response(
                status,
                &serde_json::json!({"error": err.message, "status": err.status, "proxies": proxies}),
            )
        }
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let body = Limited::new(request.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(READ_WITHIN, body).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) => Err(ApiError::bad_body(format!(
            "cannot read the body (at most {MAX_BODY} bytes): {err}"
        ))),
        Err(_) => Err(ApiError::bad_body(format!(
            "the body did not arrive within {}s",
            READ_WITHIN.as_secs()
        ))),
    }
}

fn json(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_body("EOF".to_owned()));
    }
    serde_json::from_slice(body).map_err(|err| ApiError::bad_body(err.to_string()))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = text(status, &value.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(err: &ApiError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_value(err).unwrap_or(Value::Null);
    json_response(status, &body)
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}
