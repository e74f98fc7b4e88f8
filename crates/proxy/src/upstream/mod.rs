//! The connection pool to a cluster's endpoints, and what a failed send means.
//!
//! The rest of the proxy sees one call, [`UpstreamClient::send`], and one error,
//! [`UpstreamError`], already classified into the protocol-free [`FailureKind`] the retry
//! policy reasons about. The classification is made here, where the error is born, because
//! only here is it known whether a request provably never reached the endpoint (a refused
//! connection, a request hyper handed back unsent, an HTTP/2 `REFUSED_STREAM`): the one
//! case in which even a POST may be retried.
//!
//! Connections are kept per endpoint by [`pool`]: for HTTP/1.1 a list of [`h1`]
//! connections (spoken here, in the request's own task) each carrying one request at a
//! time, for HTTP/2 one multiplexed hyper `client::conn` connection per endpoint, replaced
//! when it closes. A kept connection can turn out closed just as it is reused (the
//! endpoint timed it out); when not a byte of the request was written, it is sent once more
//! on a new connection. A request that may have been sent is never re-sent here: that is
//! the retry policy's call.
//!
//! [`FailureKind`]: blastwall_policy::retry::FailureKind

mod error;
mod h1;
mod http2_body;
mod pool;
#[cfg(test)]
mod stall_tests;
#[cfg(test)]
mod tests;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{TrySendError, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub(crate) use self::error::{BodyStalled, UpstreamError, body_failure};
#[doc(hidden)]
pub use self::h1::replay::replay;
pub use self::h1::{Framing, take_head};
pub(crate) use self::http2_body::Http2Body;
pub(crate) use self::pool::AuthorityHasher;
use self::pool::{Http1, Http2, Http2Checkout, Pool};
use crate::body::{BoxError, ProxyBody};
pub use crate::codec::{Decoded, Decoder};
use crate::config::{ClusterConfig, UpstreamProtocol};
use crate::headers::AddedHeaders;

/// How long a kept connection may go unused before it is closed: long enough to carry
/// traffic over lulls, shorter than the idle timeouts most servers use (nginx 75 s
/// upstream keep-alive aside, which closes first and is handled as a closed connection).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The pooled keep-alive client to one cluster's endpoints.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    connect_timeout: Duration,
    /// Longest wait for the next piece of a response body.
    body_read_timeout: Duration,
    http2: bool,
    idle_timeout: Duration,
    pool: Pool,
    /// Whether the task that closes idle connections runs (started by the first send, so
    /// that a client can be built outside a runtime).
    reaper: AtomicBool,
}

/// A response body from an endpoint.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// From an HTTP/1.1 connection of this module's own.
    Http1(h1::Body),
    /// From hyper's HTTP/2 client.
    Http2(Http2Body),
    /// An endpoint's body altered on its way, or one made in an endpoint's place, by a
    /// fault rule (`crate::fault`): judged as the endpoint's own, its errors the endpoint's.
    // NOTE: boxed, so the other variants (every request's) stay as they are; only a
    // faulted attempt allocates it.
    Altered(ProxyBody),
}

impl UpstreamBody {
    /// Whether the whole body is in hand already (read with the head, or empty): it can no
    /// longer fail.
    pub(crate) fn is_complete(&self) -> bool {
        match self {
            UpstreamBody::Http1(body) => body.is_in_hand(),
            UpstreamBody::Http2(body) => body.is_end_stream(),
            UpstreamBody::Altered(body) => body.is_end_stream(),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            // A stall goes up as itself, so that whoever records the outcome can tell it.
            UpstreamBody::Http1(body) => {
                Pin::new(body).poll_frame(cx).map_err(|error| match error {
                    h1::Error::BodyStalled(stalled) => BoxError::from(stalled),
                    error => BoxError::from(error),
                })
            }
            UpstreamBody::Http2(body) => {
                // The HTTP/1.1 client's decoder filters the trailers it reads; hyper's
                // HTTP/2 client does not.
                let mut frame = ready!(Pin::new(body).poll_frame(cx));
                if let Some(Ok(frame)) = &mut frame
                    && let Some(trailers) = frame.trailers_mut()
                {
                    crate::codec::keep_allowed_trailers(trailers);
                }
                Poll::Ready(frame)
            }
            UpstreamBody::Altered(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Http1(body) => body.is_end_stream(),
            UpstreamBody::Http2(body) => body.is_end_stream(),
            UpstreamBody::Altered(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Http1(body) => body.size_hint(),
            UpstreamBody::Http2(body) => body.size_hint(),
            UpstreamBody::Altered(body) => body.size_hint(),
        }
    }
}

/// An HTTP/2 send that did not get a response.
enum Attempt {
    /// hyper handed the request back without writing any of it.
    NotSent(Box<Request<ProxyBody>>, hyper::Error),
    /// The request may have been sent.
    Failed(hyper::Error),
}

impl UpstreamClient {
    /// A client with the cluster's connect timeout, pool size and protocol.
    pub(crate) fn new(config: &ClusterConfig) -> Self {
        Self::with_idle_timeout(config, IDLE_TIMEOUT)
    }

    fn with_idle_timeout(config: &ClusterConfig, idle_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                connect_timeout: config.connect_timeout,
                body_read_timeout: config.body_read_timeout,
                http2: config.protocol == UpstreamProtocol::Http2,
                idle_timeout,
                pool: Pool::new(config.max_idle_per_endpoint),
                reaper: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `request` (its URI names the endpoint) on a pooled connection and returns the
    /// response head, or a [`FailureKind::Timeout`] error if it has not come by `expires`;
    /// the body streams as the caller reads it.
    ///
    /// [`FailureKind::Timeout`]: blastwall_policy::retry::FailureKind::Timeout
    pub(crate) async fn send(
        &self,
        mut request: Request<ProxyBody>,
        added: AddedHeaders,
        expires: Instant,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let Some(authority) = request.uri().authority().cloned() else {
            return Err(UpstreamError::no_endpoint());
        };
        self.start_reaper();
        if self.shared.http2 {
            added.append_to(request.headers_mut());
            tokio::time::timeout_at(expires, self.send_http2(&authority, request))
                .await
                .unwrap_or_else(|_| Err(UpstreamError::timed_out()))
        } else {
            self.send_http1(&authority, request, &added, expires).await
        }
    }

    async fn send_http1(
        &self,
        authority: &Authority,
        mut request: Request<ProxyBody>,
        added: &AddedHeaders,
        expires: Instant,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        for_http1(&mut request, authority);
        let pool = &self.shared.pool;
        // NOTE: connecting and resending are boxed, here and for HTTP/2: they are rare,
        // and inline they would make every request's future larger, and it is moved
        // (copied) several times on its way into hyper's connection task.
        let (connection, reused) = match pool.checkout_http1(authority.as_str()) {
            Some(connection) => (connection, true),
            None => (
                Box::pin(self.connect_http1(authority, expires)).await?,
                false,
            ),
        };
        match self
            .try_http1(authority, connection, request, added, expires)
            .await
        {
            Ok(response) => Ok(response),
            // ## A kept connection closed under us, the request unsent => once more, fresh
            Err(h1::Failure::NotSent(Some(request), error)) if reused => {
                Box::pin(self.resend_http1(authority, *request, added, error, expires)).await
            }
            Err(failure) => Err(UpstreamError::from_http1(failure)),
        }
    }

    async fn resend_http1(
        &self,
        authority: &Authority,
        request: Request<ProxyBody>,
        added: &AddedHeaders,
        error: h1::Error,
        expires: Instant,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        tracing::debug!(%authority, %error, "kept connection closed before the request was sent; sending on a new one");
        let connection = self.connect_http1(authority, expires).await?;
        self.try_http1(authority, connection, request, added, expires)
            .await
            .map_err(UpstreamError::from_http1)
    }

    async fn try_http1(
        &self,
        authority: &Authority,
        connection: Http1,
        request: Request<ProxyBody>,
        added: &AddedHeaders,
        expires: Instant,
    ) -> Result<Response<UpstreamBody>, h1::Failure> {
        let home = || h1::Home {
            shared: self.shared.clone(),
            authority: authority.clone(),
        };
        let (response, idle) = h1::send(connection, request, added, expires, home).await?;
        if let Some(connection) = idle {
            self.shared
                .pool
                .give_back_http1(authority.as_str(), connection);
        }
        Ok(response.map(UpstreamBody::Http1))
    }

    async fn send_http2(
        &self,
        authority: &Authority,
        request: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let (sender, id, reused) = self.http2_connection(authority).await?;
        match self.try_http2(authority, sender, id, request).await {
            Ok(response) => Ok(self.http2_body(response)),
            // ## The shared connection closed under us, the request unsent => once more
            Err(Attempt::NotSent(request, error)) if reused => {
                Box::pin(self.resend_http2(authority, *request, error)).await
            }
            Err(attempt) => Err(attempt.into_error()),
        }
    }

    fn http2_body(&self, response: Response<Incoming>) -> Response<UpstreamBody> {
        let timeout = self.shared.body_read_timeout;
        response.map(|body| UpstreamBody::Http2(Http2Body::new(body, timeout)))
    }

    async fn resend_http2(
        &self,
        authority: &Authority,
        request: Request<ProxyBody>,
        error: hyper::Error,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        tracing::debug!(%authority, %error, "HTTP/2 connection closed before the request was sent; sending on a new one");
        let (sender, id, _) = self.http2_connection(authority).await?;
        self.try_http2(authority, sender, id, request)
            .await
            .map(|response| self.http2_body(response))
            .map_err(Attempt::into_error)
    }

    async fn try_http2(
        &self,
        authority: &Authority,
        mut sender: Http2,
        id: u64,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, Attempt> {
        let result = sender.try_send_request(request).await;
        result.map_err(|error| {
            let attempt = Attempt::from(error);
            let ends = match &attempt {
                Attempt::NotSent(..) => true,
                Attempt::Failed(error) => error::ends_http2_connection(error),
            };
            if ends || sender.is_closed() {
                self.shared.pool.evict_http2(authority.as_str(), id);
            }
            attempt
        })
    }

    /// The endpoint's shared HTTP/2 connection (and whether it was already open), made
    /// now if there is none; while one request connects, the others wait for it.
    async fn http2_connection(
        &self,
        authority: &Authority,
    ) -> Result<(Http2, u64, bool), UpstreamError> {
        let mut waited = false;
        loop {
            match self.shared.pool.checkout_http2(authority.as_str(), waited) {
                Http2Checkout::Ready(sender, id) => return Ok((sender, id, true)),
                Http2Checkout::Wait(mut done) => {
                    // Err only says the connecting request is done, which is the news.
                    let _ = done.changed().await;
                    waited = true;
                }
                Http2Checkout::Connect(connecting) => {
                    let sender = Box::pin(self.connect_http2(authority)).await?;
                    let id = connecting.install(&sender);
                    return Ok((sender, id, false));
                }
            }
        }
    }

    /// A new connection, unless `expires` (the attempt's) comes before it is made.
    async fn connect_http1(
        &self,
        authority: &Authority,
        expires: Instant,
    ) -> Result<Http1, UpstreamError> {
        let stream = tokio::time::timeout_at(expires, self.connect(authority))
            .await
            .unwrap_or_else(|_| Err(UpstreamError::timed_out()))?;
        Ok(h1::Connection::new(stream))
    }

    async fn connect_http2(&self, authority: &Authority) -> Result<Http2, UpstreamError> {
        let io = TokioIo::new(self.connect(authority).await?);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(UpstreamError::handshake)?;
        let authority = authority.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%authority, %error, "upstream HTTP/2 connection failed");
            }
        });
        Ok(sender)
    }

    /// A TCP connection to the endpoint, without Nagle's delay, within the connect timeout.
    async fn connect(&self, authority: &Authority) -> Result<TcpStream, UpstreamError> {
        let timeout = self.shared.connect_timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| UpstreamError::connect_timed_out(timeout))?
            .map_err(UpstreamError::connect_io)?;
        stream
            .set_nodelay(true)
            .map_err(UpstreamError::connect_io)?;
        Ok(stream)
    }

    fn start_reaper(&self) {
        let reaper = &self.shared.reaper;
        if reaper.load(Ordering::Relaxed) || reaper.swap(true, Ordering::AcqRel) {
            return;
        }
        let every = self.shared.idle_timeout / pool::EPOCHS_PER_IDLE_TIMEOUT;
        tokio::spawn(reap(Arc::downgrade(&self.shared), every));
    }
}

/// Closes idle connections every `every` until the client is gone.
async fn reap(shared: Weak<Shared>, every: Duration) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.pool.reap();
    }
}

/// What an HTTP/1.1 connection to an endpoint expects: a `Host` header (the endpoint, if
/// the request has none) and the target in origin form (`/path?query`), or authority form
/// for `CONNECT`; an HTTP/2 connection takes the absolute URI for its pseudo-headers.
fn for_http1(request: &mut Request<ProxyBody>, authority: &Authority) {
    if !request.headers().contains_key(HOST)
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(HOST, host);
    }
    let target = if request.method() == Method::CONNECT {
        Uri::from(authority.clone())
    } else {
        match request.uri().path_and_query() {
            Some(path) if path.as_str() != "/" => Uri::from(path.clone()),
            _ => Uri::default(),
        }
    };
    *request.uri_mut() = target;
}

impl From<TrySendError<Request<ProxyBody>>> for Attempt {
    fn from(mut error: TrySendError<Request<ProxyBody>>) -> Self {
        match error.take_message() {
            Some(request) => Attempt::NotSent(Box::new(request), error.into_error()),
            None => Attempt::Failed(error.into_error()),
        }
    }
}

impl Attempt {
    fn into_error(self) -> UpstreamError {
        match self {
            Attempt::NotSent(_, error) => UpstreamError::not_sent(error),
            Attempt::Failed(error) => UpstreamError::sent(error),
        }
    }
}
