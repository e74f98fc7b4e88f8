//! One accepted connection, from TLS handshake to close.
//!
//! The connection task owns everything about the connection: its place under
//! `max_connections` (a semaphore permit held to the end), the TLS handshake (bounded by
//! `header_read_timeout`, failing only this connection), and the protocol: HTTP/1.1 by the
//! listener's own server ([`h1`], which also hands back a connection that opens with the
//! HTTP/2 preface), HTTP/2 by hyper's, with the timers hyper does not have: closing a
//! connection idle for `idle_timeout`, a graceful GOAWAY after
//! `max_requests_per_connection` streams or when the proxy drains, and a stall watch: when
//! a stream waits on the client (it opens no flow-control window for an answer, or sends no
//! more of a body) for `send_timeout` (or `request_body_timeout`), however busy the
//! connection's other streams are, a GOAWAY, and the connection is closed a short grace
//! later whatever its streams still hold: hyper does not poll an answer while its window is
//! shut, so no timer of the stream's own could see it; and the flood guard
//! ([`flood`](super::flood)) for the control-frame floods hyper lets through.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use super::StopSignal;
use super::checks;
use super::flood::FloodGuard;
use super::h1::{self, Ended};
use super::limits::{LimitedBody, TrackedBody};
use super::side_wake::SideWake;
use super::tracker::{EPOCHS_PER_TIMEOUT, StallWatch, Ticket, Tracker};
use crate::body::ProxyBody;
use crate::config::ListenerLimits;
use crate::error::{self, ProxyError};
use crate::forward::Downstream;
use crate::pipeline;
use crate::reload::{Runtime, Snapshot};

/// What every connection of one listener shares.
pub(super) struct ListenerShared {
    pub(super) runtime: Arc<Runtime>,
    pub(super) name: String,
    /// Carries the last snapshot this listener belonged to once a reload removes it.
    pub(super) retired: StopSignal,
    pub(super) limits: ListenerLimits,
    pub(super) tls: Option<TlsAcceptor>,
    /// What the HTTP/1.1 server holds each connection to.
    pub(super) http1: h1::Settings,
    /// hyper's HTTP/2 server, as this listener sets it up.
    pub(super) http2: http2::Builder<TokioExecutor>,
}

/// What keeps a connection counted: its place under `max_connections` and in the drain.
pub(super) struct Holds {
    pub(super) permit: OwnedSemaphorePermit,
    pub(super) watcher: Watcher,
    pub(super) stop: StopSignal,
}

/// Serves one accepted connection to its end.
pub(super) async fn serve(
    shared: Arc<ListenerShared>,
    stream: TcpStream,
    peer: SocketAddr,
    holds: Holds,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = &shared.tls else {
        let downstream = Downstream { peer, tls: false };
        return serve_http1(&shared, stream, downstream, holds).await;
    };
    let timeout = shared.limits.header_read_timeout;
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(listener = %shared.name, %peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %shared.name, %peer, ?timeout, "TLS handshake timed out");
            return;
        }
    };
    let downstream = Downstream { peer, tls: true };
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        let stream = Prefixed::new(stream, Bytes::new());
        return serve_http2(shared.clone(), stream, downstream, holds).await;
    }
    serve_http1(&shared, stream, downstream, holds).await;
}

/// Serves HTTP/1.1, or HTTP/2 if the client opens with its preface.
async fn serve_http1<S>(
    shared: &Arc<ListenerShared>,
    stream: S,
    downstream: Downstream,
    mut holds: Holds,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared_ref: &ListenerShared = shared;
    let ended = h1::serve(
        stream,
        &shared.http1,
        stopped(&mut holds.stop),
        |parts, body| respond(shared_ref, downstream, parts, body),
    )
    .await;
    match ended {
        Ended::Closed => {}
        Ended::Http2(stream, read) => {
            let stream = Prefixed::new(stream, read);
            serve_http2(shared.clone(), stream, downstream, holds).await;
        }
    }
}

/// Routes and forwards one HTTP/1.1 request (already checked by the server).
async fn respond(
    shared: &ListenerShared,
    downstream: Downstream,
    mut parts: Parts,
    body: h1::RequestBody,
) -> Response<ProxyBody> {
    let _in_flight = shared.runtime.traffic().request();
    match route(shared, &mut parts) {
        // NOTE: pinned where it is made and awaited through the pin: awaited by value, the
        // pipeline's future (kilobytes) is copied once more first.
        Ok((snapshot, route_index)) => {
            pin!(pipeline::serve(
                downstream,
                snapshot,
                route_index,
                (parts, body)
            ))
            .await
        }
        Err((error, reason)) => error::error_response(error, reason),
    }
}

/// Serves HTTP/2 with hyper's server.
async fn serve_http2<S>(
    shared: Arc<ListenerShared>,
    stream: S,
    downstream: Downstream,
    holds: Holds,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Holds {
        permit,
        watcher,
        mut stop,
    } = holds;
    let tracker = Arc::new(Tracker::new());
    let service = {
        let (shared, tracker) = (shared.clone(), tracker.clone());
        service_fn(move |request: Request<Incoming>| {
            let number = tracker.begin();
            let ticket = Arc::new(Ticket::new(tracker.clone(), number));
            handle(shared.clone(), tracker.clone(), ticket, downstream, request)
        })
    };
    // The flood guard reads every frame head the client sends, before hyper does.
    let stream = TokioIo::new(FloodGuard::new(stream));
    let connection = shared.http2.serve_connection(stream, service);
    tokio::pin!(connection);
    let idle_timeout = shared.limits.idle_timeout;
    let mut shutting_down = false;
    // NOTE: one timer for the connection's life, re-armed only when it fires: never
    // earlier than the real idle deadline (idle since some time after it was armed, plus
    // the timeout), and requests do not touch it.
    let idle_check = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle_check);
    let changed = tracker.changed();
    tokio::pin!(changed);
    let stopping = stopped(&mut stop);
    tokio::pin!(stopping);
    let mut stalls = StreamStalls::new(&shared.limits);
    let stall_check = tokio::time::sleep(stalls.tick);
    tokio::pin!(stall_check);
    // Set once a stall was seen: the GOAWAY went out, the connection ends when it fires.
    let mut killing = false;
    let mut stopped_polled = false;
    let mut goaway_sent = false;
    // NOTE: the signals besides the connection are polled with their own waker, and only
    // after it fired (see `side_wake`): the connection task wakes several times per request,
    // and these signals almost never have anything to say.
    let side = Arc::new(SideWake::new());
    let side_waker = Waker::from(side.clone());
    let mut task_waker = None;
    let result = std::future::poll_fn(|cx| {
        side.register(&mut task_waker, cx.waker());
        loop {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if !side.take_fired() {
                return Poll::Pending;
            }
            let mut side_cx = Context::from_waker(&side_waker);
            while !killing && stall_check.as_mut().poll(&mut side_cx).is_ready() {
                let now = Instant::now();
                if stalls.look(&tracker, now, &downstream) {
                    killing = true;
                    shutting_down = true;
                }
                // Ticking on, or the end of the grace the GOAWAY gets.
                stall_check.as_mut().reset(now + stalls.tick);
            }
            if killing && stall_check.as_mut().poll(&mut side_cx).is_ready() {
                // The grace is over: whatever the streams hold is dropped with them.
                return Poll::Ready(Ok(()));
            }
            while !shutting_down && changed.as_mut().poll(&mut side_cx).is_ready() {
                changed.set(tracker.changed());
                shutting_down |= tracker.shutdown_requested();
            }
            while !shutting_down && idle_check.as_mut().poll(&mut side_cx).is_ready() {
                shutting_down =
                    idle_when_fired(idle_check.as_mut(), &tracker, idle_timeout, &downstream);
            }
            if !stopped_polled && stopping.as_mut().poll(&mut side_cx).is_ready() {
                stopped_polled = true;
                shutting_down = true;
            }
            if !shutting_down || goaway_sent {
                return Poll::Pending;
            }
            // Shutting down: hyper has to hear it (a GOAWAY), and then be polled again.
            goaway_sent = true;
            connection.as_mut().graceful_shutdown();
        }
    })
    .await;
    if let Err(error) = result {
        tracing::debug!(peer = %downstream.peer, %error, "connection ended with an error");
    }
    drop(permit);
    drop(watcher);
}

/// The stall watch of an HTTP/2 connection's streams (see the module doc).
struct StreamStalls {
    sends: StallWatch,
    bodies: StallWatch,
    /// How often it looks: every eighth of the shorter stall timeout (3.75 s by default),
    /// so a stall is seen within two eighths of its timeout.
    // NOTE: on one more timer for the connection's life.
    tick: Duration,
}

impl StreamStalls {
    fn new(limits: &ListenerLimits) -> Self {
        let now = Instant::now();
        Self {
            sends: StallWatch::new(now, limits.send_timeout),
            bodies: StallWatch::new(now, limits.request_body_timeout),
            tick: limits.send_timeout.min(limits.request_body_timeout) / EPOCHS_PER_TIMEOUT,
        }
    }

    /// Looks at the connection's streams at `now`: whether one of them stalled.
    fn look(&mut self, tracker: &Tracker, now: Instant, downstream: &Downstream) -> bool {
        let stalled_send = self.sends.tick(&tracker.sends, now);
        let stalled_body = self.bodies.tick(&tracker.bodies, now);
        if stalled_send || stalled_body {
            tracing::debug!(
                peer = %downstream.peer,
                stalled_send,
                stalled_body,
                "closing a connection whose client stalls its streams"
            );
        }
        stalled_send || stalled_body
    }
}

/// When the idle check fired: whether the connection has been idle for `idle_timeout`; if
/// not, the check is moved to the earliest instant it could be.
fn idle_when_fired(
    check: Pin<&mut Sleep>,
    tracker: &Tracker,
    idle_timeout: Duration,
    downstream: &Downstream,
) -> bool {
    let now = Instant::now();
    match tracker.idle_deadline(idle_timeout) {
        Some(at) if at <= now => {
            tracing::debug!(peer = %downstream.peer, ?idle_timeout, "closing an idle connection");
            true
        }
        Some(at) => {
            check.reset(at);
            false
        }
        None => {
            check.reset(now + idle_timeout);
            false
        }
    }
}

/// Resolves when the listener is told to stop: a snapshot is sent, or the sender is gone.
pub(super) async fn stopped(stop: &mut StopSignal) {
    let _ = stop.wait_for(Option::is_some).await;
}

/// Checks, routes and forwards one HTTP/2 request, and answers what the limits say.
async fn handle(
    shared: Arc<ListenerShared>,
    tracker: Arc<Tracker>,
    ticket: Arc<Ticket>,
    downstream: Downstream,
    request: Request<Incoming>,
) -> Result<Response<TrackedBody>, Infallible> {
    let _in_flight = shared.runtime.traffic().request();
    let last = shared
        .limits
        .max_requests_per_connection
        .is_some_and(|max| ticket.number >= u64::from(max.get()));
    let (mut parts, body) = request.into_parts();
    let response = match checks::check_parts(&parts, &shared.http1.head_limits) {
        Err(rejection) => {
            tracing::debug!(listener = %shared.name, peer = %downstream.peer, error = rejection.error.as_str(), reason = %rejection.reason, "request refused");
            error::error_response(rejection.error, &rejection.reason)
        }
        Ok(()) => {
            let limits = &shared.limits;
            let body = LimitedBody::new(
                body,
                limits.max_request_body,
                limits.min_data_rate,
                ticket.clone(),
            );
            let response = match route(&shared, &mut parts) {
                Ok((snapshot, route_index)) => {
                    // NOTE: pinned where it is made and awaited through the pin, as above.
                    pin!(pipeline::serve(
                        downstream,
                        snapshot,
                        route_index,
                        (parts, body)
                    ))
                    .await
                }
                Err((error, reason)) => error::error_response(error, reason),
            };
            if ticket.body_overflowed() {
                error::error_response(
                    ProxyError::RequestBodyTooLarge,
                    &format!(
                        "request body over the limit of {} bytes",
                        shared.limits.max_request_body
                    ),
                )
            } else if ticket.body_stalled() {
                error::error_response(
                    ProxyError::BodyReadTimeout,
                    "the request body came slower than the minimum data rate",
                )
            } else {
                response
            }
        }
    };
    if last {
        tracker.request_shutdown();
    }
    let (parts, body) = response.into_parts();
    // NOTE: not boxed again: hyper takes the wrapper as it is, one allocation less.
    let body = TrackedBody::new(body, shared.limits.min_data_rate, ticket);
    Ok(Response::from_parts(parts, body))
}

/// The snapshot and route for a request, or why it has none. The request's path is
/// normalized first ([`crate::router::path`]): routes match it, and the endpoint gets it;
/// a path with a malformed escape is refused.
// NOTE: a plain function, not one more `async` level around the pipeline: each level's
// future is copied whole when it is created, and this one would hold the pipeline's.
fn route(
    shared: &ListenerShared,
    parts: &mut http::request::Parts,
) -> Result<(Arc<Snapshot>, usize), (ProxyError, &'static str)> {
    crate::router::path::normalize(&mut parts.uri, shared.limits.escaped_slashes)
        .map_err(|malformed| (ProxyError::BadRequest, malformed.0))?;
    let resolved = shared
        .runtime
        .snapshot_for(&shared.name, || shared.retired.borrow().clone());
    let (snapshot, listener) = resolved.ok_or((
        ProxyError::NoRoute,
        "this listener was removed from the config",
    ))?;
    let route_index = (snapshot.router)
        .route(&snapshot.config, listener, parts)
        .ok_or((ProxyError::NoRoute, "no route matches this request"))?;
    Ok((snapshot, route_index))
}

/// A stream whose first bytes were already read (while looking for the HTTP/2 preface):
/// they are read again first.
// NOTE: hyper-util has the same (`Rewind`), but keeps it private.
#[derive(Debug)]
struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(inner: S, prefix: Bytes) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
