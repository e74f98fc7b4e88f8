//! One accepted connection, from TLS handshake to close.
//!
//! The connection task owns everything about the connection: its place under
//! `max_connections` (a semaphore permit held to the end), the TLS handshake (bounded by
//! `header_read_timeout`, failing only this connection), the head [`Guarded`] I/O, hyper's
//! HTTP/1.1 or HTTP/2 server, and the timers hyper does not have: closing a connection idle
//! for `idle_timeout`, and a graceful HTTP/2 GOAWAY after `max_requests_per_connection`
//! streams or when the proxy drains.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;

use super::StopSignal;
use super::checks::{self, HeadLimits, Rejection};
use super::guard::{Guarded, Start};
use super::limits::{LimitedBody, TrackedBody};
use super::side_wake::SideWake;
use super::tracker::{Ticket, Tracker};
use crate::config::ListenerLimits;
use crate::forward::{self, Downstream, ProxyError};
use crate::pipeline;
use crate::reload::{Runtime, Snapshot};

/// What every connection of one listener shares.
pub(super) struct ListenerShared {
    pub(super) runtime: Arc<Runtime>,
    pub(super) name: String,
    /// Carries the last snapshot this listener belonged to once a reload removes it.
    pub(super) retired: StopSignal,
    pub(super) limits: ListenerLimits,
    pub(super) head_limits: HeadLimits,
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) builder: auto::Builder<TokioExecutor>,
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
        return drive(shared.clone(), stream, Start::Sniff, downstream, holds).await;
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
    let start = match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => Start::Http2,
        _ => Start::Sniff,
    };
    let downstream = Downstream { peer, tls: true };
    drive(shared.clone(), stream, start, downstream, holds).await;
}

async fn drive<S>(
    shared: Arc<ListenerShared>,
    stream: S,
    start: Start,
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
    let io = Guarded::new(
        stream,
        tracker.clone(),
        shared.head_limits,
        shared.limits.header_read_timeout,
        start,
    );
    let service = {
        let (shared, tracker) = (shared.clone(), tracker.clone());
        service_fn(move |request: Request<Incoming>| {
            // NOTE: counted here, when hyper calls the service, not when the future first
            // runs: the guard numbers refused heads by this count.
            let number = tracker.begin();
            let ticket = Arc::new(Ticket::new(tracker.clone(), number));
            let refused = tracker.take_rejection(number);
            handle(
                shared.clone(),
                tracker.clone(),
                ticket,
                refused,
                downstream,
                request,
            )
        })
    };
    let connection = shared.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let idle_timeout = shared.limits.idle_timeout;
    let mut shutting_down = false;
    // A stop that came before the first request began, waiting for it (see below).
    let mut stop_pending = false;
    // NOTE: one timer for the connection's life, re-armed only when it fires: never
    // earlier than the real idle deadline (idle since some time after it was armed, plus
    // the timeout), and requests do not touch it.
    let idle_check = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle_check);
    let changed = tracker.changed();
    tokio::pin!(changed);
    let stopping = stopped(&mut stop);
    tokio::pin!(stopping);
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
            if shutting_down || !side.take_fired() {
                return Poll::Pending;
            }
            let mut side_cx = Context::from_waker(&side_waker);
            while changed.as_mut().poll(&mut side_cx).is_ready() {
                changed.set(tracker.changed());
                if tracker.shutdown_requested() || (stop_pending && tracker.started() > 0) {
                    shutting_down = true;
                }
            }
            while !shutting_down && idle_check.as_mut().poll(&mut side_cx).is_ready() {
                let now = tokio::time::Instant::now();
                match tracker.idle_deadline(idle_timeout) {
                    Some(at) if at <= now => {
                        tracing::debug!(peer = %downstream.peer, ?idle_timeout, "closing an idle connection");
                        shutting_down = true;
                    }
                    Some(at) => idle_check.as_mut().reset(at),
                    None => idle_check.as_mut().reset(now + idle_timeout),
                }
            }
            if !shutting_down && !stop_pending && stopping.as_mut().poll(&mut side_cx).is_ready() {
                // NOTE: until its first request begins, hyper's connection is still choosing
                // HTTP/1 or HTTP/2 (the guard withholds a first head until it is whole), and a
                // graceful shutdown then would cancel it, leaving a request half sent and
                // unanswered. So once the client has sent anything, the stop waits for that
                // request, which is then served with `Connection: close`; the guard's
                // header_read_timeout bounds the wait. A connection that sent nothing closes.
                if tracker.started() > 0 || !tracker.bytes_received() || tracker.wake_on_begin() {
                    shutting_down = true;
                } else {
                    stop_pending = true;
                }
            }
            if !shutting_down {
                return Poll::Pending;
            }
            // Shutting down: hyper has to hear it, and then be polled again.
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

/// Resolves when the listener is told to stop: a snapshot is sent, or the sender is gone.
pub(super) async fn stopped(stop: &mut StopSignal) {
    let _ = stop.wait_for(Option::is_some).await;
}

/// Checks, routes and forwards one request, and answers what the limits say.
async fn handle(
    shared: Arc<ListenerShared>,
    tracker: Arc<Tracker>,
    ticket: Arc<Ticket>,
    refused: Option<Rejection>,
    downstream: Downstream,
    request: Request<Incoming>,
) -> Result<Response<TrackedBody>, Infallible> {
    let _in_flight = shared.runtime.traffic().request();
    let http2 = request.version() == Version::HTTP_2;
    let last = shared
        .limits
        .max_requests_per_connection
        .is_some_and(|max| ticket.number >= u64::from(max.get()));
    let (parts, body) = request.into_parts();
    let checked = match refused {
        Some(rejection) => Err(rejection),
        None => checks::check_parts(&parts, &shared.head_limits),
    };
    let mut close = last;
    let response = match checked {
        Err(rejection) => {
            tracing::debug!(listener = %shared.name, peer = %downstream.peer, error = rejection.error.as_str(), reason = %rejection.reason, "request refused");
            // The body was not read, so the connection cannot carry another request.
            close = true;
            forward::error_response(rejection.error, &rejection.reason)
        }
        Ok(()) => {
            let body = LimitedBody::new(body, shared.limits.max_request_body, ticket.clone());
            let response = match route(&shared, &parts) {
                Ok((snapshot, route_index)) => {
                    // NOTE: pinned where it is made and awaited through the pin: awaited by
                    // value, the pipeline's future (kilobytes) is copied once more first.
                    std::pin::pin!(pipeline::serve(
                        downstream,
                        snapshot,
                        route_index,
                        (parts, body)
                    ))
                    .await
                }
                Err(no_route) => forward::error_response(ProxyError::NoRoute, no_route),
            };
            if ticket.body_overflowed() {
                close = true;
                forward::error_response(
                    ProxyError::RequestBodyTooLarge,
                    &format!(
                        "request body over the limit of {} bytes",
                        shared.limits.max_request_body
                    ),
                )
            } else {
                response
            }
        }
    };
    let (mut parts, body) = response.into_parts();
    if close {
        if http2 {
            if last {
                tracker.request_shutdown();
            }
        } else {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    // NOTE: not boxed again: hyper takes the wrapper as it is, one allocation less.
    let body = TrackedBody::new(body, ticket);
    Ok(Response::from_parts(parts, body))
}

/// The snapshot and route for a request, or why it has none.
// NOTE: a plain function, not one more `async` level around the pipeline: each level's
// future is copied whole when it is created, and this one would hold the pipeline's.
fn route(
    shared: &ListenerShared,
    parts: &http::request::Parts,
) -> Result<(Arc<Snapshot>, usize), &'static str> {
    let resolved = shared
        .runtime
        .snapshot_for(&shared.name, || shared.retired.borrow().clone());
    let (snapshot, listener) = resolved.ok_or("this listener was removed from the config")?;
    let route_index = (snapshot.router)
        .route(&snapshot.config, listener, parts)
        .ok_or("no route matches this request")?;
    Ok((snapshot, route_index))
}
