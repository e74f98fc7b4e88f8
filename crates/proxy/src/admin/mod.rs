//! The admin API and dashboard: JSON over HTTP on a listener of its own, so an operator can
//! see a failure as it spreads and act on it without a restart.
//!
//! It is kept apart from the traffic listeners on purpose: its own socket (loopback by
//! default), its own tiny router (see [`router::ROUTES`], which the OpenAPI document at
//! `/admin/openapi.json` describes in full), plain HTTP/1.1, and nothing on the request path
//! of proxied traffic. It reads what the proxy already keeps (the [`Runtime`]: snapshot,
//! cluster and endpoint state, counters, [`events`]) and acts through the same calls the
//! rest of the proxy uses: endpoint drain flags, breaker overrides, kill switches. A reload
//! is not done here but asked of whoever owns the [`crate::Proxy`] (the run loop), so an
//! API reload is the very same as one from SIGHUP.
//!
//! Being its own listener, it also guards itself: at most `[admin] max_connections` at once
//! (a connection past it is closed at once), a `header_read_timeout` for each request head,
//! body and keep-alive wait, and mutations only from the listener's own origin with a JSON
//! content type (see [`guard`]), so neither a flood of half-sent requests nor a web page in
//! the operator's browser can reach past it.
//!
//! Readiness (`/healthz/ready`) is true once the listeners are bound (the admin listener
//! starts after them) and every cluster has run its first round of health checks, and false
//! again from the moment the drain starts.

pub(crate) mod auth;
pub(crate) mod reply;
pub(crate) mod router;

mod actions;
mod faults;
mod guard;
mod stream;
mod views;

#[cfg(test)]
mod fault_bounds_tests;
#[cfg(test)]
mod fault_endpoint_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use self::reply::{AdminBody, error_json};
use self::router::{Call, NoRoute};
use crate::config::ConfigError;
use crate::config::admin::AdminConfig;
use crate::reload::{ReloadOutcome, Runtime};

/// Binds the admin socket of `config` (`None` when off). An address written in the file
/// must bind (a located error otherwise); the default one is skipped with a warning when
/// taken, so a second proxy on a host still starts.
pub(crate) async fn bind(
    config: &AdminConfig,
    path: &Path,
) -> Result<Option<TcpListener>, ConfigError> {
    let Some(addr) = config.listen else {
        return Ok(None);
    };
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error) if !config.listen_explicit => {
            tracing::warn!(%addr, %error, "the default admin address is taken: running without the admin API (set [admin] listen)");
            Ok(None)
        }
        Err(error) => Err(ConfigError {
            path: path.to_owned(),
            location: config.listen_location.clone(),
            message: format!("cannot bind the admin listener on {addr}: {error}"),
        }),
    }
}

/// How often expired runtime fault rules are swept out of the table.
const FAULT_SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 * 1024;

/// A reload asked for through the API; answer it with [`ReloadRequest::reply`].
#[derive(Debug)]
pub struct ReloadRequest {
    reply: oneshot::Sender<ReloadOutcome>,
}

impl ReloadRequest {
    /// Sends the outcome back to the API call that asked.
    pub fn reply(self, outcome: ReloadOutcome) {
        // The caller may have gone (its connection closed): nothing to tell then.
        let _ = self.reply.send(outcome);
    }
}

/// What handlers share.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) started: Instant,
    /// Whether the admin listener is on loopback (mutations without a token only then).
    pub(crate) loopback: bool,
    /// The admin listener's own address.
    pub(crate) local_addr: SocketAddr,
    /// Traffic listeners and where they are bound, kept current by the proxy.
    pub(crate) listeners: Mutex<Vec<(String, SocketAddr)>>,
    pub(crate) draining: AtomicBool,
    pub(crate) reloads: mpsc::Sender<ReloadRequest>,
    /// Event streams (`/admin/stream`) open at once: a quarter of the connection cap, so
    /// that streams, which never end by themselves, cannot take every connection and starve
    /// the health checks an orchestrator depends on.
    pub(crate) streams: Arc<Semaphore>,
}

/// The running admin listener; stops serving when dropped.
#[derive(Debug)]
pub(crate) struct AdminServer {
    state: Arc<AdminState>,
    reloads: mpsc::Receiver<ReloadRequest>,
    stop: watch::Sender<()>,
}

impl AdminServer {
    /// Starts serving on `listener` for `runtime`, whose traffic listeners are `listeners`.
    pub(crate) fn start(
        listener: TcpListener,
        runtime: Arc<Runtime>,
        listeners: Vec<(String, SocketAddr)>,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, reloads) = mpsc::channel(4);
        let cap = runtime.snapshot().config.admin.max_connections;
        let state = Arc::new(AdminState {
            runtime,
            started: Instant::now(),
            loopback: local_addr.ip().is_loopback(),
            local_addr,
            listeners: Mutex::new(listeners),
            draining: AtomicBool::new(false),
            reloads: sender,
            streams: Arc::new(Semaphore::new(stream::cap(cap))),
        });
        let (stop, stopped) = watch::channel(());
        // Runtime fault rules are made here, so they are swept here: an expired rule stops
        // applying at once (the request path reads the clock), and leaves the table within
        // a second, with its event; the endpoints a rule takes down are marked again for
        // the health checks as rules start and expire.
        let faults = state.runtime.snapshot().faults.clone();
        let runtime = state.runtime.clone();
        tokio::spawn(crate::fault::table::sweep_every(
            faults,
            FAULT_SWEEP_PERIOD,
            stopped.clone(),
            move || runtime.faults_changed(),
        ));
        tokio::spawn(accept(listener, state.clone(), cap, stopped));
        Ok(Self {
            state,
            reloads,
            stop,
        })
    }

    /// Where it listens.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    /// After a reload: records where the traffic listeners are bound now, and warns that a
    /// new admin address or connection cap waits for a restart (the token and the header
    /// timeout apply at once: they are read from the config in force).
    pub(crate) fn reconfigure(
        &self,
        before: &AdminConfig,
        now: &AdminConfig,
        listeners: Vec<(String, SocketAddr)>,
    ) {
        if before.listen != now.listen {
            tracing::warn!(
                "[admin] listen changed: the admin listener stays on {} until a restart",
                self.state.local_addr
            );
        }
        if before.max_connections != now.max_connections {
            tracing::warn!(
                "[admin] max_connections changed: the admin listener keeps {} until a restart",
                before.max_connections
            );
        }
        *self
            .state
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = listeners;
    }

    /// Marks the proxy draining: readiness fails from now on.
    pub(crate) fn set_draining(&self) {
        self.state.draining.store(true, Ordering::Release);
    }

    /// The next reload asked for through the API.
    pub(crate) async fn reload_requested(&mut self) -> ReloadRequest {
        match self.reloads.recv().await {
            Some(request) => request,
            // NOTE: the state holds a sender for as long as this server lives.
            None => std::future::pending().await,
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.send_replace(());
    }
}

/// How often refusals over the connection cap are logged, at most: a flood is one warning
/// (with a count), not one line per connection.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts connections refused over the cap and says so at most once per interval.
#[derive(Debug, Default)]
struct Refusals {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl Refusals {
    fn refused(&mut self, cap: usize) {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL)
        {
            tracing::warn!(
                refused = self.unlogged,
                cap,
                "admin listener over its connection cap ([admin] max_connections): closing new connections at once (logged at most every {REFUSAL_LOG_INTERVAL:?})"
            );
            self.unlogged = 0;
            self.logged_at = Some(now);
        }
    }
}

async fn accept(
    listener: TcpListener,
    state: Arc<AdminState>,
    cap: usize,
    mut stopped: watch::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(cap));
    let mut refusals = Refusals::default();
    loop {
        let (stream, _) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed at once: a connection over the cap holds no descriptor past this line.
            drop(stream);
            refusals.refused(cap);
            continue;
        };
        let state = state.clone();
        let mut stopped = stopped.clone();
        let timeout = state.runtime.snapshot().config.admin.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, request, timeout).await) }
            });
            // NOTE: hyper arms the header timeout whenever it waits for a request head, the
            // first one and each next one on a keep-alive connection, so it is the idle
            // timeout as well.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stopped.changed() => {}
            }
        });
    }
}

/// Answers one admin request.
pub(crate) async fn handle(
    state: &AdminState,
    request: Request<Incoming>,
    body_timeout: Duration,
) -> Response<AdminBody> {
    let (parts, body) = request.into_parts();
    let call = match router::route(&parts.method, parts.uri.path()) {
        Ok(call) => call,
        Err(NoRoute::NotFound) => {
            return error_json(
                StatusCode::NOT_FOUND,
                &format!("no such path: {}", parts.uri.path()),
            );
        }
        Err(NoRoute::MethodNotAllowed(allowed)) => {
            let allow: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
            let mut response = error_json(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "{} is not allowed here; use {}",
                    parts.method,
                    allow.join(", ")
                ),
            );
            if let Ok(value) = http::HeaderValue::from_str(&allow.join(", ")) {
                response.headers_mut().insert(http::header::ALLOW, value);
            }
            return response;
        }
    };
    if !is_read(&call) {
        if let Err(error) = guard::check_mutation(
            &parts.headers,
            parts.uri.authority().map(http::uri::Authority::as_str),
            state.local_addr,
        ) {
            return error.into_response();
        }
        let snapshot = state.runtime.snapshot();
        if let Err(error) = auth::authorize(
            &parts.headers,
            snapshot.config.admin.token.as_ref(),
            state.loopback,
        ) {
            let status = match error {
                auth::AuthError::Missing => StatusCode::UNAUTHORIZED,
                auth::AuthError::Wrong | auth::AuthError::NoToken => StatusCode::FORBIDDEN,
            };
            let mut response = error_json(status, &error.to_string());
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"blastwall-admin\""),
            );
            return response;
        }
    }
    let reading = http_body_util::Limited::new(body, MAX_BODY).collect();
    let body = match tokio::time::timeout(body_timeout, reading).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) => {
            return error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("cannot read the request body (at most {MAX_BODY} bytes): {error}"),
            );
        }
        Err(_) => {
            return error_json(
                StatusCode::REQUEST_TIMEOUT,
                &format!("the request body did not arrive within {body_timeout:?}"),
            );
        }
    };
    dispatch(state, call, body).await
}

fn is_read(call: &Call) -> bool {
    matches!(
        call,
        Call::Live
            | Call::Ready
            | Call::Status
            | Call::Config
            | Call::Clusters
            | Call::Routes
            | Call::Events
            | Call::Stream
            | Call::OpenApi
            | Call::Dashboard
            | Call::Metrics
            | Call::Faults
            | Call::Fault { .. }
    )
}

async fn dispatch(state: &AdminState, call: Call, body: Bytes) -> Response<AdminBody> {
    match call {
        Call::Live => reply::json(StatusCode::OK, &serde_json::json!({ "live": true })),
        Call::Ready => views::ready(state),
        Call::Status => views::status(state),
        Call::Config => views::config(state),
        Call::Clusters => reply::json(StatusCode::OK, &views::clusters(&state.runtime)),
        Call::Routes => reply::json(StatusCode::OK, &views::routes(&state.runtime)),
        Call::Events => reply::json(StatusCode::OK, &views::events(&state.runtime)),
        Call::Stream => match state.streams.clone().try_acquire_owned() {
            Ok(permit) => stream::response(state.runtime.clone(), permit),
            Err(_) => {
                let mut response = error_json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many event streams open: at most a quarter of [admin] max_connections",
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("5"),
                );
                response
            }
        },
        Call::OpenApi => reply::with_type(StatusCode::OK, "application/json", OPENAPI),
        Call::Dashboard => reply::with_type(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD),
        Call::Metrics => reply::with_type(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            crate::metrics::render(&state.runtime),
        ),
        Call::Drain { cluster, address } => actions::drain(state, &cluster, &address, true),
        Call::Undrain { cluster, address } => actions::drain(state, &cluster, &address, false),
        Call::ClusterBreaker { cluster } => actions::breaker(state, &cluster, None, &body),
        Call::EndpointBreaker { cluster, address } => {
            actions::breaker(state, &cluster, Some(&address), &body)
        }
        Call::KillSwitch { route } => actions::kill_switch(state, &route, &body),
        Call::Reload => actions::reload(state).await,
        Call::LogLevel => actions::log_level(&body),
        Call::Faults => faults::list(state),
        Call::Fault { id } => faults::get(state, &id),
        Call::FaultCreate => faults::create(state, &body),
        Call::FaultDelete { id } => faults::delete(state, &id),
        Call::FaultsClear => faults::clear(state),
        Call::FaultsResume => faults::resume(state),
    }
}

/// The OpenAPI 3 document of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// The dashboard page: one file, no external assets.
pub(crate) const DASHBOARD: &str = include_str!("dashboard.html");
