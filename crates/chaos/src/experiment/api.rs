//! The few HTTP calls an experiment makes to the system under test: the Blastwall admin API
//! (fault rules, events) and a Toxiproxy API (toxics), each bounded in time, JSON both ways.
//!
//! Errors are sentences for the report ("POST /admin/faults: 400 …: the proxy's words"), as
//! a person reading why an experiment could not run needs the other side's reason. A
//! [`CallError`] also keeps the answer's status apart from its words, so a caller that takes
//! a 404 as "gone already" asks the status, never the sentence (whose URL, port or quoted
//! answer may hold "404" too).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read (the events log is the largest, a few hundred KiB at most).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Why a call failed: a sentence for the report and, when there was an answer, its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The answer's status; `None` when there was no answer (refused, timed out, cut off).
    pub status: Option<StatusCode>,
    message: String,
}

impl CallError {
    fn unanswered(message: String) -> Self {
        Self {
            status: None,
            message,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

impl From<CallError> for String {
    fn from(error: CallError) -> Self {
        error.message
    }
}

/// One HTTP API: its base URL and, for the admin API, its bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    base: Uri,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// The API at `base` (`http://host:port`), sending `token` as a bearer token if given.
    pub fn new(base: Uri, token: Option<String>) -> Self {
        Self {
            base,
            token,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Calls `method path` with `body` as JSON; the answer's JSON (null when empty) when
    /// its status is 2xx, else an error naming the call, the status and the answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let what = format!("{method} {path}");
        let uri = format!("{}{}", self.base.to_string().trim_end_matches('/'), path);
        // NOTE: Blastwall's admin API takes a mutating call only with a JSON content type,
        // body or not (a browser's form cannot forge one).
        let mutates = method != Method::GET;
        let mut request = Request::builder().method(method).uri(&uri);
        if body.is_some() || mutates {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
        let request = request
            .body(Full::new(body))
            .map_err(|error| CallError::unanswered(format!("{what}: {error}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| error.to_string())?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|error| error.to_string())?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                CallError::unanswered(format!(
                    "{what} at {uri}: no answer within {CALL_TIMEOUT:?}"
                ))
            })?
            .map_err(|error| CallError::unanswered(format!("{what} at {uri}: {error}")))?;
        if !status.is_success() {
            return Err(CallError {
                status: Some(status),
                message: format!("{what}: {status}: {}", reason(&bytes)),
            });
        }
        if bytes.is_empty() || status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|error| CallError {
            status: Some(status),
            message: format!("{what}: the answer is not JSON: {error}"),
        })
    }
}

/// What an error answer says: its JSON `error` (Blastwall's, Toxiproxy's), else its text;
/// one line, its control characters shown as `�` (a terminal prints the report's errors, and
/// an answer's escape sequences must not drive it), at most 500 bytes.
fn reason(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let said = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|value| {
            value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let mut said = crate::report::one_line(&said.unwrap_or_else(|| text.trim().to_owned()));
    if said.len() > 500 {
        let cut = (0..=500)
            .rev()
            .find(|at| said.is_char_boundary(*at))
            .unwrap_or(0);
        said.truncate(cut);
        said.push('…');
    }
    said
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn an_error_answer_is_told_by_its_json_error_else_its_text() {
        assert_eq!(reason(br#"{"error":"no route \"x\""}"#), "no route \"x\"");
        assert_eq!(reason(b" plain words \n"), "plain words");
        let long = "é".repeat(400);
        assert!(reason(long.as_bytes()).ends_with('…'));
    }

    #[test]
    fn an_error_answer_cannot_drive_the_terminal_it_is_printed_on() {
        let said = reason(br#"{"error":"\u001b]0;pwned\u0007\u001b[2Jgone\r\nnext"}"#);
        assert_eq!(said, "\u{FFFD}]0;pwned\u{FFFD}\u{FFFD}[2Jgone  next");
        assert_eq!(reason(b"a\x1b[31mred\x00"), "a\u{FFFD}[31mred\u{FFFD}");
    }
}
