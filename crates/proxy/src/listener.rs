//! Accepting connections and serving HTTP on them.
//!
//! Each listener accepts on its own socket and serves HTTP/1.1 and HTTP/2 (prior knowledge)
//! on every connection with hyper. A request is routed and forwarded by [`handle`]; a
//! problem on one connection never touches another.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{ConfigError, ListenerConfig};
use crate::forward::{self, Downstream, ProxyBody, ProxyError};
use crate::reload::{Runtime, Snapshot};

/// A listener whose socket is bound, ready to serve. Clones share the socket.
#[derive(Debug, Clone)]
pub struct BoundListener {
    config: ListenerConfig,
    // NOTE: shared so a reload can hand the socket to a reconfigured listener without ever
    // closing it; the socket closes when the last holder drops it.
    socket: Arc<TcpListener>,
}

/// Tells a serving listener to stop accepting: the value sent is the snapshot its remaining
/// requests use if the new config no longer has this listener.
pub type StopSignal = watch::Receiver<Option<Arc<Snapshot>>>;

impl BoundListener {
    /// Binds a listener's socket; a failure (port in use, no permission) points at the
    /// `listen` line of the config.
    pub async fn bind(
        config: ListenerConfig,
        config_path: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        match TcpListener::bind(config.listen).await {
            Ok(socket) => Ok(Self {
                config,
                socket: Arc::new(socket),
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
    pub fn reconfigure(
        &self,
        config: ListenerConfig,
        _config_path: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            config,
            socket: self.socket.clone(),
        })
    }

    /// The address actually bound (the port is chosen by the system when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.config.listen)
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The listener's config.
    pub fn config(&self) -> &ListenerConfig {
        &self.config
    }

    /// Serves until `stop` carries a snapshot (or its sender is dropped), then stops
    /// accepting, asks every connection to close once its requests are answered
    /// (`Connection: close` on HTTP/1.1, GOAWAY on HTTP/2) and returns when they have.
    /// Dropping the future closes every connection at once.
    pub async fn serve(self, runtime: Arc<Runtime>, mut stop: StopSignal) {
        let Self { config, socket } = self;
        let builder = connection_builder(&config);
        let name: Arc<str> = Arc::from(config.name.as_str());
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        loop {
            let (stream, peer) = tokio::select! {
                changed = stop.changed() => match changed {
                    Ok(()) if stop.borrow().is_none() => continue,
                    _ => break,
                },
                Some(_) = connections.join_next() => continue,
                accepted = socket.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Running out of file descriptors is the usual cause: back off briefly
                        // rather than spin, and keep the listener.
                        tracing::warn!(listener = %config.name, %error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let downstream = Downstream { peer, tls: false };
            let (runtime, name, retired) = (runtime.clone(), name.clone(), stop.clone());
            let counted = runtime.clone();
            let service = service_fn(move |request| {
                handle(
                    runtime.clone(),
                    name.clone(),
                    retired.clone(),
                    downstream,
                    request,
                )
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            connections.spawn(async move {
                let _open = counted.traffic().connection();
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
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

fn connection_builder(config: &ListenerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.header_read_timeout)
        .max_headers(config.limits.max_headers)
        .max_buf_size(config.limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Routes one request and forwards it.
async fn handle(
    runtime: Arc<Runtime>,
    listener: Arc<str>,
    retired: StopSignal,
    downstream: Downstream,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let _in_flight = runtime.traffic().request();
    let resolved = runtime.snapshot_for(&listener, || retired.borrow().clone());
    let Some((snapshot, listener)) = resolved else {
        return Ok(forward::error_response(
            ProxyError::NoRoute,
            "this listener was removed from the config",
        ));
    };
    let (parts, body) = request.into_parts();
    let Some(route_index) = snapshot.router.route(&snapshot.config, listener, &parts) else {
        return Ok(forward::error_response(
            ProxyError::NoRoute,
            "no route matches this request",
        ));
    };
    let route = &snapshot.config.routes[route_index];
    let cluster = &snapshot.clusters[route.cluster];
    Ok(forward::forward(downstream, route, cluster, Request::from_parts(parts, body)).await)
}
