//! Accepting connections and serving HTTP on them: the first stage a request passes.
//!
//! Each listener accepts on its own socket and serves HTTP/1.1 and HTTP/2 on every
//! connection — HTTP/2 by prior knowledge (h2c) on plaintext, by ALPN under TLS ([`tls`]).
//! It protects the proxy from its clients before a request is routed:
//!
//! - `max_connections`: a permit is taken *before* accepting, so connections past the limit
//!   wait in the kernel backlog rather than being accepted and starved;
//! - the request head ([`h1`], [`checks`]): size, header count and the RFC 9112 framing
//!   rules that defeat request smuggling, with a deadline (`header_read_timeout`) against
//!   slow clients; Host must be single and agree with the target;
//! - the request body ([`limits`]): `max_request_body`, at once from `Content-Length` or
//!   mid-stream for chunked and HTTP/2 bodies;
//! - the connection ([`h1`] for HTTP/1.1, [`connection`] for HTTP/2): `idle_timeout`,
//!   `max_requests_per_connection`, `http2_max_concurrent_streams`, and a graceful drain on
//!   shutdown;
//! - what waits on the client ([`pace`]; on HTTP/2 per stream, [`stream_pace`] and the
//!   connection's stall watch): a request body that stops or trickles
//!   (`request_body_timeout`, `min_data_rate`), an answer the client does not read
//!   (`send_timeout`), so that no client holds a connection, its permit, an upstream
//!   connection or a concurrency slot forever;
//! - HTTP/2 floods ([`flood`]): rapid reset, CONTINUATION, HPACK bombs and the like, bounded
//!   by hyper at the values set there; floods of control frames (PING, SETTINGS, …) and of
//!   cancelled requests bounded by a guard under hyper. An abusive connection gets a GOAWAY
//!   and is closed.
//!
//! Every refusal is a response the proxy makes itself (`x-blastwall-error` and one line of
//! reason) and touches only the connection it belongs to.

pub(crate) mod checks;
mod connection;
mod flood;
pub(crate) mod h1;
mod limits;
pub(crate) mod pace;
mod side_wake;
mod stream_pace;
pub(crate) mod tls;
mod tracker;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, ListenerConfig};
use crate::reload::{Runtime, Snapshot};
use checks::HeadLimits;
use connection::{Holds, ListenerShared};

/// A listener whose socket is bound, ready to serve. Clones share the socket.
#[derive(Clone)]
pub(crate) struct BoundListener {
    config: ListenerConfig,
    // NOTE: shared so a reload can hand the socket to a reconfigured listener without ever
    // closing it; the socket closes when the last holder drops it.
    socket: Arc<TcpListener>,
    tls: Option<TlsAcceptor>,
}

/// Tells a serving listener to stop accepting: the value sent is the snapshot its remaining
/// requests use if the new config no longer has this listener.
pub(crate) type StopSignal = watch::Receiver<Option<Arc<Snapshot>>>;

impl std::fmt::Debug for BoundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundListener")
            .field("config", &self.config)
            .field("socket", &self.socket)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl BoundListener {
    /// Binds a listener's socket; a failure points at the `listen` line (port in use, no
    /// permission). Its TLS identity was built when the config loaded.
    pub(crate) async fn bind(
        config: ListenerConfig,
        config_path: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        let tls = config.tls.as_ref().map(tls::acceptor);
        match TcpListener::bind(config.listen).await {
            Ok(socket) => Ok(Self {
                config,
                socket: Arc::new(socket),
                tls,
            }),
            Err(error) => Err(ConfigError {
                path: config_path.to_owned(),
                location: Some(config.listen_location.clone()),
                message: format!(
                    "listener \"{}\" cannot listen on {}: {error}",
                    config.name, config.listen
                ),
            }),
        }
    }

    /// The same socket with new settings (TLS, limits), for a reload that changed them but
    /// not the address: connections waiting to be accepted are not refused.
    pub(crate) fn reconfigure(&self, config: ListenerConfig) -> Self {
        Self {
            tls: config.tls.as_ref().map(tls::acceptor),
            config,
            socket: self.socket.clone(),
        }
    }

    /// The address actually bound (the port is chosen by the system when 0 was asked for).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.config.listen)
    }

    /// The listener's name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// The listener's config.
    pub(crate) fn config(&self) -> &ListenerConfig {
        &self.config
    }

    /// Serves until `stop` carries a snapshot (or its sender is dropped), then stops
    /// accepting, asks every connection to close once its requests are answered
    /// (`Connection: close` on HTTP/1.1, GOAWAY on HTTP/2) and returns when they have.
    /// Dropping the future closes every connection at once.
    pub(crate) async fn serve(self, runtime: Arc<Runtime>, mut stop: StopSignal) {
        let Self {
            config,
            socket,
            tls,
        } = self;
        let limits = config.limits.clone();
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let shared = Arc::new(ListenerShared {
            runtime,
            name: config.name.clone(),
            retired: stop.clone(),
            http1: h1::Settings {
                head_limits: HeadLimits {
                    max_header_bytes: limits.max_header_bytes,
                    max_headers: limits.max_headers,
                    max_request_body: limits.max_request_body,
                },
                header_read_timeout: limits.header_read_timeout,
                idle_timeout: limits.idle_timeout,
                max_requests: limits.max_requests_per_connection,
                body_pace: pace::PaceRule {
                    timeout: limits.request_body_timeout,
                    min_rate: limits.min_data_rate,
                },
                send_pace: pace::PaceRule {
                    timeout: limits.send_timeout,
                    min_rate: limits.min_data_rate,
                },
            },
            http2: http2_builder(&config),
            limits,
            tls,
        });
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        loop {
            // NOTE: the permit comes before accept, so past max_connections new connections
            // wait in the backlog; it is held for the connection's whole life.
            // Biased: once told to stop, accept nothing more even if a connection is waiting.
            let permit = tokio::select! {
                biased;
                () = connection::stopped(&mut stop) => break,
                Some(_) = connections.join_next() => continue,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            // NOTE: finished connections are reaped while waiting for the next one too. A
            // finished task's memory (its whole future, ~14 KiB a connection) is freed only
            // when the set hands it back; reaped only before a permit, the tasks of a burst
            // of 200 connections that closed stayed until a new one came, which a proxy
            // serving long-lived connections may wait for forever (the soak's +2.8 MiB,
            // bench/README.md). Reaping costs a wakeup per closed connection, nothing per
            // request.
            let accepted = loop {
                tokio::select! {
                    biased;
                    () = connection::stopped(&mut stop) => break None,
                    Some(_) = connections.join_next() => {}
                    accepted = socket.accept() => break Some(accepted),
                }
            };
            let (stream, peer) = match accepted {
                None => break,
                Some(Ok(accepted)) => accepted,
                Some(Err(error)) => {
                    // Running out of file descriptors is the usual cause: back off briefly
                    // rather than spin, and keep the listener.
                    tracing::warn!(listener = %config.name, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let holds = Holds {
                permit,
                watcher: graceful.watcher(),
                stop: stop.clone(),
            };
            let shared = shared.clone();
            connections.spawn(async move {
                let _open = shared.runtime.traffic().connection();
                connection::serve(shared.clone(), stream, peer, holds).await;
            });
        }
        // Closing the socket now (unless a reconfigured listener took it over) makes new
        // connections fail at once instead of waiting in the backlog.
        drop(socket);
        tokio::join!(graceful.shutdown(), async {
            while connections.join_next().await.is_some() {}
        });
    }
}

/// hyper's HTTP/2 settings for one listener: the flood limits, then the listener's own. Its
/// header list limit sits at twice the listener's head size: the checks refuse first with a
/// proper answer, and hyper bounds memory for what they do not see.
fn http2_builder(config: &ListenerConfig) -> http2::Builder<TokioExecutor> {
    let limits = &config.limits;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    flood::settings(&mut builder);
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        )
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
    builder
}
