//! The mock as a server: accepting connections, and answering each request as the
//! behaviour in force decides (see [`super::behaviour`]): after its delay, with its status,
//! its body whole or shaped, or not at all (a reset, a hang). Requests under `/_mock/` go to
//! the control API instead.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::body::{MockBody, Shape};
use super::{Action, Behaviour, Draws, NAME_HEADER, Shared, control};

/// Accepts connections until `stopped` changes; each is served by a task of its own.
pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    // NOTE: dropping the set aborts every connection task, which is how a stop drops
    // connections at once.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
                Err(error) => tracing::warn!(%error, "mock accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket outlives hyper's, so a reset can set SO_LINGER to zero
    // and be the last to close it: the peer then sees RST, not FIN.
    let socket_for_reset: Option<OwnedFd> = stream.as_fd().try_clone_to_owned().ok();
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = reset.clone();
        service_fn(move |request| answer(shared.clone(), reset.clone(), request))
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = reset.notified() => {
            if let Some(socket) = &socket_for_reset {
                let _ = socket2::SockRef::from(socket).set_linger(Some(std::time::Duration::ZERO));
            }
        }
    }
}

/// What the mock answers, control API included.
pub(super) type MockResponse = Response<MockBody>;

async fn answer(
    shared: Arc<Shared>,
    reset: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<MockResponse, Infallible> {
    if request.uri().path().starts_with(control::PREFIX) {
        return Ok(control::handle(&shared, request).await);
    }
    let sequence = shared.requests.fetch_add(1, Ordering::Relaxed);
    if shared
        .recent
        .is_duplicate(request.method(), request.uri().path(), request.headers())
    {
        shared.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    let in_flight = InFlight::enter(&shared.in_flight);
    let installed = shared.installed();
    let behaviour = installed
        .behaviour
        .resolve(installed.since.elapsed(), request.uri().path());
    let action = behaviour.decide(in_flight.count, draws_for(shared.seed, sequence));
    let response = match action {
        Action::Reset => {
            shared.resets.fetch_add(1, Ordering::Relaxed);
            reset.notify_one();
            std::future::pending().await
        }
        Action::Hang => {
            shared.hangs.fetch_add(1, Ordering::Relaxed);
            std::future::pending().await
        }
        Action::Overloaded => {
            shared.overloaded.fetch_add(1, Ordering::Relaxed);
            let mut response = text(
                &shared,
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded\n".into(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
        Action::Respond {
            delay,
            status,
            body: shape,
        } => serve(&shared, behaviour, request, delay, status, shape).await,
    };
    let class = usize::from(response.status().as_u16() / 100).saturating_sub(1);
    if let Some(counter) = shared.answered_by_class.get(class) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    Ok(response)
}

/// The random numbers of the `sequence`-th request of a mock seeded with `seed`: the same
/// on every run, so a seeded mock repeats its failures and delays exactly.
pub(super) fn draws_for(seed: u64, sequence: u64) -> Draws {
    let mut rng = SmallRng::seed_from_u64(seed ^ sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    Draws {
        failure: rng.random(),
        latency: [rng.random(), rng.random()],
    }
}

/// Answers as `behaviour` says, after `delay`, with its body sent as `shape` says.
async fn serve(
    shared: &Shared,
    behaviour: &Behaviour,
    request: Request<Incoming>,
    delay: Duration,
    status: u16,
    shape: Shape,
) -> MockResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (parts, body) = request.into_parts();
    // Reading the whole body lets keep-alive go on and lets echo report its size.
    let body_bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = if behaviour.echo {
        let echo = control::Echo::of(&shared.name, &parts, body_bytes);
        control::json(shared, status, &echo)
    } else if let Some(size) = behaviour.body_size {
        text(shared, status, Bytes::from(vec![b'x'; size]))
    } else {
        text(shared, status, Bytes::from(behaviour.body.clone()))
    };
    if shape.cut.is_some() {
        shared.cut_bodies.fetch_add(1, Ordering::Relaxed);
    }
    if shape == Shape::default() {
        response
    } else {
        shaped(response, shape)
    }
}

fn text(shared: &Shared, status: StatusCode, body: Bytes) -> MockResponse {
    respond(shared, status, "text/plain", body)
}

/// An answer of `content_type` with the mock's name in its header.
pub(super) fn respond(
    shared: &Shared,
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> MockResponse {
    let mut response = Response::new(MockBody::whole(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if let Ok(name) = header::HeaderValue::from_str(&shared.name) {
        headers.insert(NAME_HEADER, name);
    }
    response
}

/// `response` with its body sent as `shape` says; its `Content-Length` promises the whole
/// body, however much of it is sent.
fn shaped(response: MockResponse, shape: Shape) -> MockResponse {
    let (mut parts, body) = response.into_parts();
    let whole = body.into_pending();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, whole.len().into());
    Response::from_parts(parts, MockBody::shaped(whole, shape))
}

/// Counts a request in flight for as long as it lives, however its future ends.
struct InFlight<'a> {
    counter: &'a AtomicU64,
    count: u64,
}

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
        Self { counter, count }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::Latency;

    #[test]
    fn a_seeded_mock_draws_the_same_delays_on_every_run() {
        let latency = Latency::LogNormal {
            p50: Duration::from_millis(20),
            p99: Duration::from_millis(400),
        };
        let delays = |seed| -> Vec<Duration> {
            (0..50)
                .map(|sequence| latency.sample(draws_for(seed, sequence).latency))
                .collect()
        };
        assert_eq!(delays(7), delays(7));
        assert_ne!(delays(7), delays(8));
    }
}
