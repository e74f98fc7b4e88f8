//! One TCP proxy: it listens, accepts, connects each client to the upstream and pipes
//! both ways through the chain of toxics of each stream.
//!
//! Stopping a proxy (disable, delete, a new address) ends its accept task and, with it,
//! every connection it opened, and waits until the listening socket is closed so the
//! same address can be bound again at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::error::ApiError;
use super::pipe::{Chain, End, Link, pipe};
use super::stats::ProxyStats;
use super::toxic::{Stream, Toxic};

/// A proxy as the API knows it, running or not.
#[derive(Debug)]
pub struct Proxy {
    /// Its unique name.
    pub name: String,
    /// Where it listens: once started, the address really bound.
    pub listen: String,
    /// Where each connection goes (`host:port`).
    pub upstream: String,
    toxics: Vec<Toxic>,
    upstream_chain: watch::Sender<Chain>,
    downstream_chain: watch::Sender<Chain>,
    running: Option<JoinHandle<()>>,
    stats: Arc<ProxyStats>,
}

impl Proxy {
    /// A stopped proxy without toxics.
    pub fn new(name: String, listen: String, upstream: String) -> Self {
        Self {
            name,
            listen,
            upstream,
            toxics: Vec::new(),
            upstream_chain: watch::channel(Chain::default()).0,
            downstream_chain: watch::channel(Chain::default()).0,
            running: None,
            stats: Arc::default(),
        }
    }

    /// Whether it accepts connections.
    pub fn enabled(&self) -> bool {
        self.running.is_some()
    }

    /// Binds its address and starts accepting; a proxy already started is left alone.
    pub async fn start(&mut self) -> Result<(), ApiError> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.listen.as_str())
            .await
            .map_err(|err| ApiError::listen_failed(&self.listen, &err))?;
        if let Ok(addr) = listener.local_addr() {
            self.listen = addr.to_string();
        }
        tracing::info!(name = %self.name, listen = %self.listen, upstream = %self.upstream, "proxy started");
        self.running = Some(tokio::spawn(accept_loop(
            listener,
            self.upstream.clone(),
            Chains {
                upstream: self.upstream_chain.subscribe(),
                downstream: self.downstream_chain.subscribe(),
            },
            Arc::clone(&self.stats),
        )));
        Ok(())
    }

    /// Stops accepting and closes every connection; returns once the listener is closed.
    pub async fn stop(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
            let _ = task.await;
            tracing::info!(name = %self.name, "proxy stopped");
        }
    }

    /// The toxics, upstream ones first, as Toxiproxy lists them.
    pub fn toxics(&self) -> Vec<&Toxic> {
        let of = |stream| self.toxics.iter().filter(move |t| t.stream == stream);
        of(Stream::Upstream).chain(of(Stream::Downstream)).collect()
    }

    /// The toxic with this name.
    pub fn toxic(&self, name: &str) -> Option<&Toxic> {
        self.toxics.iter().find(|t| t.name == name)
    }

    /// What it counted so far.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// Adds a toxic; its name must be new on this proxy. Its `first_connections` count
    /// from the next connection accepted.
    pub fn add_toxic(&mut self, mut toxic: Toxic) -> Result<&Toxic, ApiError> {
        if self.toxic(&toxic.name).is_some() {
            return Err(ApiError::toxic_exists());
        }
        toxic.from_connection = self.stats.accepted_total();
        self.toxics.push(toxic);
        self.publish();
        self.toxics.last().ok_or_else(ApiError::toxic_not_found)
    }

    /// Replaces the toxic of the same name.
    pub fn replace_toxic(&mut self, toxic: Toxic) -> Result<&Toxic, ApiError> {
        let index = self
            .toxics
            .iter()
            .position(|t| t.name == toxic.name)
            .ok_or_else(ApiError::toxic_not_found)?;
        self.toxics[index] = toxic;
        self.publish();
        Ok(&self.toxics[index])
    }

    /// Removes a toxic by name.
    pub fn remove_toxic(&mut self, name: &str) -> Result<(), ApiError> {
        let before = self.toxics.len();
        self.toxics.retain(|t| t.name != name);
        if self.toxics.len() == before {
            return Err(ApiError::toxic_not_found());
        }
        self.publish();
        Ok(())
    }

    /// Removes every toxic.
    pub fn clear_toxics(&mut self) {
        self.toxics.clear();
        self.publish();
    }

    /// Sends each stream's chain to the open connections.
    fn publish(&self) {
        let chain = |stream| {
            Arc::new(
                self.toxics
                    .iter()
                    .filter(|t| t.stream == stream)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        };
        self.upstream_chain.send_replace(chain(Stream::Upstream));
        self.downstream_chain
            .send_replace(chain(Stream::Downstream));
    }

    /// The JSON Toxiproxy answers for a proxy, its toxics included.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled(),
            "toxics": self.toxics().iter().map(|t| t.to_json()).collect::<Vec<_>>(),
        })
    }
}

/// The chains of toxics of both streams, as the connections watch them.
#[derive(Debug, Clone)]
struct Chains {
    upstream: watch::Receiver<Chain>,
    downstream: watch::Receiver<Chain>,
}

/// Accepts until aborted; aborting drops the set of connections, which closes them all.
async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    chains: Chains,
    stats: Arc<ProxyStats>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let ordinal = stats.accept();
                    let (up, down) = Link::pair(ordinal, Arc::clone(&stats));
                    connections.spawn(connection(client, upstream.clone(), chains.clone(), up, down));
                }
                // Out of file descriptors and the like: this client is lost, not the proxy.
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One client: connected to the upstream (or closed if it cannot be), piped both ways.
async fn connection(mut client: TcpStream, upstream: String, chains: Chains, up: Link, down: Link) {
    let stats = Arc::clone(&up.stats);
    let _open = stats.open();
    let mut server = match TcpStream::connect(upstream.as_str()).await {
        Ok(server) => server,
        Err(err) => {
            tracing::warn!(%err, %upstream, "cannot connect to the upstream");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pipe(client_read, server_write, chains.upstream, rng(), up);
        let down = pipe(server_read, client_write, chains.downstream, rng(), down);
        tokio::pin!(up, down);
        let first = tokio::select! {
            end = &mut up => (end, true),
            end = &mut down => (end, false),
        };
        match first {
            (End::Eof, true) => down.await,
            (End::Eof, false) => up.await,
            (end, _) => end,
        }
    };
    if end == End::Reset {
        // Closing with a zero linger sends RST instead of FIN, as Toxiproxy's reset_peer.
        for stream in [&client, &server] {
            let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

/// A fresh random source for one direction of one connection.
fn rng() -> SmallRng {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    SmallRng::seed_from_u64(nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed))
}
