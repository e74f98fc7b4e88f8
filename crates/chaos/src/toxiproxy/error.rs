//! The errors of Toxiproxy's API, with its messages and statuses word for word (client
//! libraries match on them), answered as `{"error": "...", "status": N}`.

use serde::Serialize;

/// An API error: the message and the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} ({status})")]
pub struct ApiError {
    /// Toxiproxy's message, sometimes with a detail after `": "`.
    #[serde(rename = "error")]
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

impl ApiError {
    fn new(message: impl Into<String>, status: u16) -> Self {
        Self {
            message: message.into(),
            status,
        }
    }

    /// 400: the body is not what the endpoint takes.
    pub fn bad_body(detail: String) -> Self {
        Self::new(format!("bad request body: {detail}"), 400)
    }

    /// 400: a required field is absent or empty.
    pub fn missing_field(field: &str) -> Self {
        Self::new(format!("missing required field: {field}"), 400)
    }

    /// 400: a proxy or toxic name with a `/`, which no API path could address again
    /// (Toxiproxy takes it, then answers 404 to every path that names it).
    pub fn slash_in_name(what: &str, name: &str) -> Self {
        Self::bad_body(format!(
            "{what} name {name:?} cannot contain '/': no API path could name it again"
        ))
    }

    /// 404: no proxy by that name.
    pub fn proxy_not_found() -> Self {
        Self::new("proxy not found", 404)
    }

    /// 409: a proxy by that name exists.
    pub fn proxy_exists() -> Self {
        Self::new("proxy already exists", 409)
    }

    /// 400: the stream is neither upstream nor downstream.
    pub fn invalid_stream() -> Self {
        Self::new(
            "stream was invalid, can be either upstream or downstream",
            400,
        )
    }

    /// 400: a toxic type Toxiproxy does not have.
    pub fn invalid_toxic_type() -> Self {
        Self::new("invalid toxic type", 400)
    }

    /// 409: a toxic by that name exists on this proxy.
    pub fn toxic_exists() -> Self {
        Self::new("toxic already exists", 409)
    }

    /// 404: no toxic by that name on this proxy.
    pub fn toxic_not_found() -> Self {
        Self::new("toxic not found", 404)
    }

    /// 500: the proxy cannot listen where it was told (Toxiproxy answers the system's
    /// error with 500 too).
    pub fn listen_failed(listen: &str, err: &std::io::Error) -> Self {
        Self::new(format!("listen tcp {listen}: {err}"), 500)
    }
}
