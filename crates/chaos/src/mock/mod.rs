//! A simulated service that misbehaves on demand: the one fake upstream for demos and tests.
//!
//! A mock is a real HTTP/1.1 and HTTP/2 server on a real socket. It answers every request
//! with its [`Behaviour`] (latency, fixed or from a distribution, see [`Latency`]; status,
//! failures, a capacity past which it answers 503 like a saturated service; no answer at
//! all: reset or hang; an answer sent slowly or broken off: its body cut or stalled, see
//! [`body`]; behaviours of their own for some paths, and phases on a timetable, see
//! [`phases`]), and it can be told to
//! change at run time through its control API under `/_mock/` (see [`control`]), so a test
//! turns a healthy replica into a slow, failing or dead one in one call. Stopping a mock
//! drops every connection at once, as a crashed process would.

pub mod behaviour;
pub mod body;
pub mod control;
pub mod patch;
pub mod phases;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use behaviour::{Action, Behaviour, Draws, InvalidBehaviour, Mode, PathBehaviour};
/// The latency distributions, shared with the proxy's delay faults (the policy crate's).
pub use blastwall_policy::latency::{InvalidLatency, Latency, MAX_DELAY};
use body::{MockBody, Shape};
pub use patch::PatchError;
pub use phases::{AfterPhases, Phase};

/// The header every mock answer carries, naming the mock that answered.
pub const NAME_HEADER: &str = "x-mock-name";

/// How to start a mock.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Named in every answer's `x-mock-name` header, so a test knows which replica answered.
    pub name: String,
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// How to answer at first.
    pub behaviour: Behaviour,
    /// Seed for the failure and latency draws, so a run can be repeated exactly.
    pub seed: u64,
}

/// A running mock. Dropping the handle stops it.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Counters a test reads to see what reached the mock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests received, control requests excluded.
    pub requests: u64,
    /// Requests being handled now.
    pub in_flight: u64,
    /// Answers by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub answered_by_class: [u64; 5],
    /// Requests refused with 503 because the mock was over capacity.
    pub overloaded: u64,
    /// Connections reset instead of answering.
    pub resets: u64,
    /// Requests left hanging.
    pub hangs: u64,
    /// Answers whose body was broken off half-way (cut or stalled).
    pub cut_bodies: u64,
    /// The index of the phase in force, when the behaviour has phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<usize>,
}

/// The behaviour in force and when it was set, which is when its phases start.
#[derive(Debug, Clone)]
struct Installed {
    behaviour: Arc<Behaviour>,
    since: Instant,
}

impl Installed {
    fn now(behaviour: Behaviour) -> Self {
        Self {
            behaviour: Arc::new(behaviour),
            since: Instant::now(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    name: String,
    seed: u64,
    behaviour: RwLock<Installed>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    answered_by_class: [AtomicU64; 5],
    overloaded: AtomicU64,
    resets: AtomicU64,
    hangs: AtomicU64,
    cut_bodies: AtomicU64,
}

/// Starts a mock; it serves until the handle is stopped or dropped.
pub async fn start(config: MockConfig) -> Result<MockHandle, StartError> {
    config.behaviour.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        name: config.name,
        seed: config.seed,
        behaviour: RwLock::new(Installed::now(config.behaviour)),
        requests: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        answered_by_class: Default::default(),
        overloaded: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        hangs: AtomicU64::new(0),
        cut_bodies: AtomicU64::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
    Ok(MockHandle {
        addr,
        shared,
        stop,
        task,
    })
}

/// Why a mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The behaviour makes no sense.
    #[error("invalid behaviour: {0}")]
    Behaviour(#[from] InvalidBehaviour),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl MockHandle {
    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The behaviour in force.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour().as_ref().clone()
    }

    /// Replaces the behaviour; requests already waiting keep the one they started with.
    /// Its phases, if any, start now.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), InvalidBehaviour> {
        self.shared.set_behaviour(behaviour)
    }

    /// Changes only the fields of the JSON object `patch` (see [`patch`]); phases restart.
    pub fn patch_behaviour(&self, patch: &[u8]) -> Result<Behaviour, PatchError> {
        self.shared.patch_behaviour(patch)
    }

    /// What has reached the mock so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Stops accepting and drops every connection at once, like a crashed process.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Shared {
    fn installed(&self) -> Installed {
        // A poisoned lock still holds a valid behaviour: every write replaces it whole.
        self.behaviour
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn behaviour(&self) -> Arc<Behaviour> {
        self.installed().behaviour
    }

    fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), InvalidBehaviour> {
        behaviour.validate()?;
        *self
            .behaviour
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Installed::now(behaviour);
        Ok(())
    }

    /// Patches under the write lock, so two patches at once both take effect.
    fn patch_behaviour(&self, patch: &[u8]) -> Result<Behaviour, PatchError> {
        let mut installed = self
            .behaviour
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let patched = installed.behaviour.patched(patch)?;
        *installed = Installed::now(patched.clone());
        Ok(patched)
    }

    fn phase(&self) -> Option<usize> {
        let installed = self.installed();
        let behaviour = &installed.behaviour;
        phases::phase_at(
            &behaviour.phases,
            behaviour.after_phases,
            installed.since.elapsed(),
        )
    }

    fn stats(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            requests: load(&self.requests),
            in_flight: load(&self.in_flight),
            answered_by_class: self.answered_by_class.each_ref().map(load),
            overloaded: load(&self.overloaded),
            resets: load(&self.resets),
            hangs: load(&self.hangs),
            cut_bodies: load(&self.cut_bodies),
            phase: self.phase(),
        }
    }
}

async fn accept_loop(
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

type MockResponse = Response<MockBody>;

async fn answer(
    shared: Arc<Shared>,
    reset: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<MockResponse, Infallible> {
    if request.uri().path().starts_with(control::PREFIX) {
        return Ok(control::handle(&shared, request).await);
    }
    let sequence = shared.requests.fetch_add(1, Ordering::Relaxed);
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
fn draws_for(seed: u64, sequence: u64) -> Draws {
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

fn respond(
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

    fn phase(status: u16, seconds: u64) -> Phase {
        Phase {
            behaviour: Behaviour {
                status,
                ..Behaviour::default()
            },
            duration: Duration::from_secs(seconds),
        }
    }

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

    #[tokio::test(start_paused = true)]
    async fn phases_start_when_the_behaviour_is_set_and_follow_the_clock() {
        let mock = start(MockConfig {
            name: "scripted".into(),
            listen: "127.0.0.1:0".parse().expect("valid address"),
            behaviour: Behaviour::default(),
            seed: 0,
        })
        .await
        .expect("mock starts");
        assert_eq!(mock.stats().phase, None);
        tokio::time::advance(Duration::from_secs(100)).await;
        mock.set_behaviour(Behaviour {
            phases: vec![phase(200, 10), phase(503, 5)],
            after_phases: AfterPhases::Loop,
            ..Behaviour::default()
        })
        .expect("valid");
        assert_eq!(mock.stats().phase, Some(0));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(mock.stats().phase, Some(1));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(mock.stats().phase, Some(0), "it loops");
        mock.patch_behaviour(br#"{"after_phases":"hold"}"#)
            .expect("valid");
        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(mock.stats().phase, Some(1), "a patch restarts the script");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(mock.stats().phase, Some(1), "and the last phase holds");
    }
}
