//! The connection pool to a cluster's endpoints, and what a failed send means.
//!
//! The rest of the proxy sees one call, [`UpstreamClient::send`], and one error,
//! [`UpstreamError`], already classified into the protocol-free [`FailureKind`] the retry
//! policy reasons about. The classification is made here, where the error is born, because
//! only here is it known whether a request provably never reached the endpoint (a refused
//! connection, an HTTP/2 `REFUSED_STREAM`): the one case in which even a POST may be retried.

use blastwall_policy::retry::FailureKind;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{ClusterConfig, UpstreamProtocol};
use crate::forward::ProxyBody;

/// The pooled keep-alive client to one cluster's endpoints.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    client: Client<HttpConnector, ProxyBody>,
}

impl UpstreamClient {
    /// A client with the cluster's connect timeout, pool size and protocol.
    pub fn new(config: &ClusterConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.max_idle_per_endpoint)
            .http2_only(config.protocol == UpstreamProtocol::Http2)
            .build(connector);
        Self { client }
    }

    /// Sends `request` (its URI names the endpoint) on a pooled connection and returns the
    /// response head; the body streams as the caller reads it.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.client
            .request(request)
            .await
            .map_err(UpstreamError::from_client)
    }
}

/// A send that failed, with what it means for a retry.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct UpstreamError {
    kind: FailureKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl UpstreamError {
    /// How the send failed: [`FailureKind::ConnectFailed`] or [`FailureKind::Refused`] when
    /// the endpoint cannot have processed the request, [`FailureKind::Reset`] when it may
    /// have.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    fn from_client(error: hyper_util::client::legacy::Error) -> Self {
        let kind = if error.is_connect() {
            FailureKind::ConnectFailed
        } else if refused_stream(&error) {
            FailureKind::Refused
        } else {
            FailureKind::Reset
        };
        Self {
            kind,
            source: Box::new(error),
        }
    }
}

/// Whether an HTTP/2 endpoint refused the stream (`REFUSED_STREAM`, or a `GOAWAY` that
/// excluded it): RFC 9113 §8.7 guarantees such a request was not processed.
fn refused_stream(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = cause.source();
    }
    false
}
