//! Choosing an endpoint among those that may take a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::request::Parts;

use crate::cluster::Endpoint;
use crate::config::BalanceConfig;

/// A balancing algorithm and its state.
#[derive(Debug)]
pub struct Balancer {
    next: AtomicUsize,
}

impl Balancer {
    /// The balancer a cluster's config asks for.
    pub fn new(_config: &BalanceConfig) -> Self {
        Self {
            next: AtomicUsize::new(0),
        }
    }

    /// The index in `candidates` of the endpoint to use, or `None` when there is none.
    pub fn pick(&self, candidates: &[&Arc<Endpoint>], _request: &Parts) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        Some(self.next.fetch_add(1, Ordering::Relaxed) % candidates.len())
    }
}
