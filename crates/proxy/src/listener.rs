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

use crate::config::{ConfigError, ListenerConfig};
use crate::forward::{self, Downstream, ProxyBody, ProxyError};
use crate::reload::Runtime;

/// A listener whose socket is bound, ready to serve.
#[derive(Debug)]
pub struct BoundListener {
    index: usize,
    config: ListenerConfig,
    socket: TcpListener,
}

impl BoundListener {
    /// Binds a listener's socket; a failure (port in use, no permission) points at the
    /// `listen` line of the config.
    pub async fn bind(
        index: usize,
        config: ListenerConfig,
        config_path: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        match TcpListener::bind(config.listen).await {
            Ok(socket) => Ok(Self {
                index,
                config,
                socket,
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

    /// The address actually bound (the port is chosen by the system when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.config.listen)
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Serves until `stop` turns true, then stops accepting and hands its connections to
    /// `graceful` so the caller can wait for them to finish.
    pub async fn serve(
        self,
        runtime: Arc<Runtime>,
        graceful: Arc<GracefulShutdown>,
        mut stop: watch::Receiver<bool>,
    ) {
        let builder = connection_builder(&self.config);
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.changed() => return,
                accepted = self.socket.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Running out of file descriptors is the usual cause: back off briefly
                        // rather than spin, and keep the listener.
                        tracing::warn!(listener = %self.config.name, %error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let downstream = Downstream { peer, tls: false };
            let (runtime, index) = (runtime.clone(), self.index);
            let service =
                service_fn(move |request| handle(runtime.clone(), index, downstream, request));
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
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
    listener: usize,
    downstream: Downstream,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let snapshot = runtime.snapshot();
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
