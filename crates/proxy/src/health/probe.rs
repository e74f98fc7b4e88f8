//! One health check against one endpoint: an HTTP GET whose status must be expected, or a
//! TCP connection that must open, within the check's timeout.
//!
//! It takes the endpoint's address and authority, not the endpoint: the endpoint keeps its
//! health through [`state`](super::state), so taking it here would tie the two modules into
//! a cycle.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::uri::Authority;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::config::{HealthCheck, HealthCheckConfig, UpstreamProtocol};

/// Why a check failed, for the log line when an endpoint changes status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeFailure {
    /// No result within the check's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection did not open.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP check failed: {0}")]
    Http(#[from] hyper::Error),
    /// The check request could not be built (a path or host the config let through).
    #[error("cannot build the check request: {0}")]
    Request(#[from] http::Error),
    /// The endpoint answered with a status that is not expected.
    #[error("unexpected status {0}")]
    Status(StatusCode),
    /// A fault rule takes the endpoint down: the check was refused without connecting.
    #[error("taken down by a fault rule (refused without connecting)")]
    FaultDown,
}

/// Checks the endpoint at `address` once; `authority` is that address as a URI authority
/// (the Host of an HTTP check that names none).
pub(crate) async fn probe(
    check: &HealthCheckConfig,
    protocol: UpstreamProtocol,
    address: SocketAddr,
    authority: &Authority,
) -> Result<(), ProbeFailure> {
    tokio::time::timeout(check.timeout, attempt(check, protocol, address, authority))
        .await
        .map_err(|_| ProbeFailure::Timeout(check.timeout))?
}

async fn attempt(
    check: &HealthCheckConfig,
    protocol: UpstreamProtocol,
    address: SocketAddr,
    authority: &Authority,
) -> Result<(), ProbeFailure> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(ProbeFailure::Connect)?;
    let HealthCheck::Http {
        path,
        host,
        expected_statuses,
    } = &check.kind
    else {
        return Ok(());
    };
    let _ = stream.set_nodelay(true);
    let host = match host {
        Some(host) => HeaderValue::from_str(host).map_err(http::Error::from)?,
        None => HeaderValue::from_str(authority.as_str()).map_err(http::Error::from)?,
    };
    let status = match protocol {
        UpstreamProtocol::Http1 => {
            let request = Request::get(path.as_str())
                .header(HOST, host)
                .header(USER_AGENT, "blastwall-health-check")
                .body(Empty::<Bytes>::new())?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                response = sender.send_request(request) => response?.status(),
                result = &mut connection => return Err(closed(result)),
            }
        }
        UpstreamProtocol::Http2 => {
            // HTTP/2 carries the authority in the request target, not in Host.
            let uri = format!("http://{authority}{path}");
            let request = Request::get(uri)
                .header(USER_AGENT, "blastwall-health-check")
                .body(Empty::<Bytes>::new())?;
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await?;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                response = sender.send_request(request) => response?.status(),
                result = &mut connection => return Err(closed(result)),
            }
        }
    };
    let code = status.as_u16();
    if expected_statuses
        .iter()
        .any(|(low, high)| (*low..=*high).contains(&code))
    {
        Ok(())
    } else {
        Err(ProbeFailure::Status(status))
    }
}

/// The connection ended before the response: its error, or a reset if it closed cleanly.
fn closed(result: Result<(), hyper::Error>) -> ProbeFailure {
    match result {
        Err(error) => ProbeFailure::Http(error),
        Ok(()) => {
            ProbeFailure::Connect(std::io::Error::from(std::io::ErrorKind::ConnectionAborted))
        }
    }
}
