//! The mock's control API, under `/_mock/` on the mock's own port.
//!
//! | call | does |
//! |---|---|
//! | `GET /_mock/behaviour` | the behaviour in force, as JSON |
//! | `PUT /_mock/behaviour` | replaces it; missing fields take their defaults; a bad one is refused with 400 and the old one stays |
//! | `PATCH /_mock/behaviour` | changes only the fields given (see [`super::patch`]); a bad one is named in a 400 and the old behaviour stays |
//! | `GET /_mock/stats` | counters of what reached the mock, and the index of the phase in force (`phase`) when there are phases |
//! | any `/_mock/echo` | a JSON description of the request as received |
//!
//! Only a caller that talks to the mock directly may use it: a call that came through a
//! proxy (it carries `Forwarded`, `X-Forwarded-For` or `Via`, which Blastwall's proxy and
//! most others add) is refused with 403, echo aside. Otherwise any client of a proxy with
//! a catch-all route in front of a mock (as `blastwall demo` builds) could make it fail
//! every other client's requests with one `PATCH /_mock/behaviour`.

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use super::server::{MockResponse, respond};
use super::{Behaviour, Shared};

/// The path prefix of the control API.
pub const PREFIX: &str = "/_mock/";

/// A behaviour document larger than this is refused rather than read.
const MAX_BEHAVIOUR_BYTES: usize = 64 * 1024;

/// What the mock received, as `/_mock/echo` and `echo` mode report it.
#[derive(Debug, Serialize)]
pub struct Echo<'a> {
    /// The mock that answered.
    pub name: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The request target as received.
    pub uri: String,
    /// The HTTP version.
    pub version: String,
    /// Every header, in order, values as lossy UTF-8.
    pub headers: Vec<(String, String)>,
    /// The size of the request body.
    pub body_bytes: usize,
}

impl<'a> Echo<'a> {
    /// Describes a request.
    pub fn of(name: &'a str, parts: &'a Parts, body_bytes: usize) -> Self {
        Self {
            name,
            method: parts.method.as_str(),
            uri: parts.uri.to_string(),
            version: format!("{:?}", parts.version),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body_bytes,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

pub(super) async fn handle(shared: &Shared, request: Request<Incoming>) -> MockResponse {
    let path = &request.uri().path()[PREFIX.len()..];
    if path != "echo" && came_through_a_proxy(request.headers()) {
        return error(
            shared,
            StatusCode::FORBIDDEN,
            format!(
                "{PREFIX}{path} came through a proxy (it carries Forwarded, X-Forwarded-For \
                 or Via): the control API answers only callers that reach the mock directly"
            ),
        );
    }
    match (request.method(), path) {
        (&Method::GET, "behaviour") => json(shared, StatusCode::OK, shared.behaviour().as_ref()),
        (&Method::PUT, "behaviour") => put_behaviour(shared, request).await,
        (&Method::PATCH, "behaviour") => patch_behaviour(shared, request).await,
        (&Method::GET, "stats") => json(shared, StatusCode::OK, &shared.stats()),
        (_, "echo") => {
            let (parts, body) = request.into_parts();
            let body_bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            json(
                shared,
                StatusCode::OK,
                &Echo::of(&shared.name, &parts, body_bytes),
            )
        }
        (_, "behaviour" | "stats") => error(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here".into(),
        ),
        _ => error(
            shared,
            StatusCode::NOT_FOUND,
            format!("no control call {PREFIX}{path}"),
        ),
    }
}

/// Whether a proxy forwarded the request: it names a hop before this one.
fn came_through_a_proxy(headers: &http::HeaderMap) -> bool {
    [
        http::header::FORWARDED,
        http::header::VIA,
        http::HeaderName::from_static("x-forwarded-for"),
    ]
    .iter()
    .any(|name| headers.contains_key(name))
}

/// The body of a behaviour call, or the answer that refuses it.
async fn read_behaviour(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Bytes, MockResponse> {
    match Limited::new(request.into_body(), MAX_BEHAVIOUR_BYTES)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(err) => Err(error(
            shared,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read behaviour: {err}"),
        )),
    }
}

async fn patch_behaviour(shared: &Shared, request: Request<Incoming>) -> MockResponse {
    let body = match read_behaviour(shared, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    match shared.patch_behaviour(&body) {
        Ok(behaviour) => json(shared, StatusCode::OK, &behaviour),
        Err(err) => error(shared, StatusCode::BAD_REQUEST, err.to_string()),
    }
}

async fn put_behaviour(shared: &Shared, request: Request<Incoming>) -> MockResponse {
    let body = match read_behaviour(shared, request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let behaviour: Behaviour = match serde_json::from_slice(&body) {
        Ok(behaviour) => behaviour,
        Err(err) => {
            return error(
                shared,
                StatusCode::BAD_REQUEST,
                format!("invalid behaviour JSON: {err}"),
            );
        }
    };
    match shared.set_behaviour(behaviour) {
        Ok(()) => json(shared, StatusCode::OK, shared.behaviour().as_ref()),
        Err(err) => error(
            shared,
            StatusCode::BAD_REQUEST,
            format!("invalid behaviour: {err}"),
        ),
    }
}

fn error(shared: &Shared, status: StatusCode, error: String) -> MockResponse {
    json(shared, status, &ErrorBody { error })
}

pub(super) fn json(shared: &Shared, status: StatusCode, value: &impl Serialize) -> MockResponse {
    let body = serde_json::to_vec(value)
        .unwrap_or_else(|err| format!("{{\"error\":\"cannot encode: {err}\"}}").into_bytes());
    respond(shared, status, "application/json", Bytes::from(body))
}
