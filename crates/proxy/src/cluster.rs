//! A cluster's endpoints and their live state.
//!
//! The state that many requests share (health, requests in flight, latency estimate) lives on
//! each [`Endpoint`] in atomics or short locks, so choosing an endpoint takes no lock that
//! another request holds for long. A cluster keeps its [`Endpoint`]s across config reloads
//! when its endpoints did not change, so health and statistics survive a reload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use blastwall_policy::ewma::{PeakEwmaConfig, SharedPeakEwma};
use http::request::Parts;
use http::uri::Authority;

use crate::balance::Balancer;
use crate::config::{ClusterConfig, EndpointAddress, EndpointConfig};
use crate::forward::UpstreamClient;

/// A cluster: its config, its endpoints, how it chooses among them, and its connection pool.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    balancer: Balancer,
    client: UpstreamClient,
}

/// One endpoint and what is known of it now.
#[derive(Debug)]
pub struct Endpoint {
    address: SocketAddr,
    authority: Authority,
    config: EndpointConfig,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
    latency: SharedPeakEwma,
}

impl Cluster {
    /// A cluster with every endpoint healthy until checked otherwise. Endpoints given by DNS
    /// name join once resolved.
    pub fn new(config: ClusterConfig, now: Instant) -> Self {
        let endpoints = config
            .endpoints
            .iter()
            .filter_map(|endpoint| match endpoint.address {
                EndpointAddress::Socket(address) => {
                    Some(Arc::new(Endpoint::new(address, endpoint.clone(), now)))
                }
                EndpointAddress::Dns { .. } => None,
            })
            .collect();
        Self {
            balancer: Balancer::new(&config.balance),
            client: UpstreamClient::new(&config),
            endpoints: ArcSwap::from_pointee(endpoints),
            config,
        }
    }

    /// The cluster's config.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The endpoints now.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// The pooled client to this cluster's endpoints.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// Chooses an endpoint for a request; `None` when no endpoint can take it.
    pub fn pick(&self, request: &Parts) -> Option<EndpointGuard> {
        let endpoints = self.endpoints.load();
        let healthy: Vec<&Arc<Endpoint>> = endpoints
            .iter()
            .filter(|endpoint| endpoint.is_healthy())
            .collect();
        let chosen = self.balancer.pick(&healthy, request)?;
        Some(EndpointGuard::new(healthy[chosen].clone()))
    }
}

impl Endpoint {
    /// A new endpoint, healthy until checked otherwise.
    pub fn new(address: SocketAddr, config: EndpointConfig, now: Instant) -> Self {
        let authority = Authority::try_from(address.to_string().as_str())
            .expect("a socket address is always a valid authority");
        Self {
            address,
            authority,
            config,
            healthy: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            latency: SharedPeakEwma::new(&PeakEwmaConfig::default(), now)
                .expect("the default peak-EWMA config is valid"),
        }
    }

    /// Where it is.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its address as a URI authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Its configured weight, zone and priority.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Whether it may take traffic.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Marks it healthy or not.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
    }

    /// Requests it is serving now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Its latency estimate.
    pub fn latency(&self) -> &SharedPeakEwma {
        &self.latency
    }
}

/// A request's hold on an endpoint: counts it in flight until dropped.
#[derive(Debug)]
pub struct EndpointGuard {
    endpoint: Arc<Endpoint>,
}

impl EndpointGuard {
    fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self { endpoint }
    }

    /// The endpoint held.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
