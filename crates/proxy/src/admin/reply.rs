//! Admin responses: JSON bodies, JSON errors with the right status, and the body type.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde::Serialize;

/// The body of every admin response (whole, or the event stream).
pub(crate) type AdminBody = UnsyncBoxBody<Bytes, Infallible>;

/// A response with `content_type` and a whole body.
pub(crate) fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<AdminBody> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `value` as JSON.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<AdminBody> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, "application/json", body),
        Err(error) => error_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot write the answer as JSON: {error}"),
        ),
    }
}

/// `{"error": message}` with `status`.
pub(crate) fn error_json(status: StatusCode, message: &str) -> Response<AdminBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    with_type(status, "application/json", body)
}

/// An error on its way to becoming a JSON error response (small, unlike a response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The status to answer with.
    pub status: StatusCode,
    /// What went wrong, for the operator.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// As a `{"error": ...}` response.
    pub(crate) fn into_response(self) -> Response<AdminBody> {
        error_json(self.status, &self.message)
    }
}
