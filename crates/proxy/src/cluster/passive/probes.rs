//! Probing open breakers with the health check (`probe = "health_check"`).
//!
//! A breaker that lets real requests through as its probes makes each of them wait on a
//! dependency that is probably still down, and a fallback cannot answer them until they
//! fail. With `probe = "health_check"` the proxy asks instead: every open period it sends
//! the cluster's health check (to the next endpoint in turn for the cluster's breaker, to
//! the endpoint itself for an endpoint's), and a check that passes half-opens the breaker,
//! whose probes are then real requests as usual. So every request is answered at once while
//! the dependency is down, and one that comes back is noticed within one open period
//! however long it was down (a failed check does not lengthen the period: it costs no
//! request).
//!
//! One check per breaker is out at a time. The next one is due an open period after this
//! one was sent, whatever its result, so a slow check cannot make them pile up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use blastwall_policy::breaker::SharedBreaker;

use super::super::Cluster;
use super::super::checks::check_once;
use crate::endpoint::Endpoint;

impl Cluster {
    /// Sends a health check for every open breaker whose check is due (see the module
    /// doc). Called by the cluster's passive task after each tick.
    pub(crate) fn probe_open_breakers(self: &Arc<Self>, now: Instant) {
        if self.config.health_check.is_none() || self.is_retired() {
            return;
        }
        if let Some(breaker) = &self.passive.breaker
            && breaker.probe_due(now)
        {
            let endpoints = self.endpoints();
            if !endpoints.is_empty() {
                let turn = self.passive.probe_turn.fetch_add(1, Ordering::Relaxed);
                let endpoint = endpoints[turn % endpoints.len()].clone();
                self.send_breaker_probe(breaker.clone(), None, endpoint, now);
            }
        }
        if self.passive.endpoint_breakers {
            for endpoint in self.endpoints().iter().filter(|e| e.is_tripped()) {
                if let Some(breaker) = endpoint.breaker()
                    && breaker.probe_due(now)
                {
                    let key = Some(endpoint.address());
                    self.send_breaker_probe((*breaker).clone(), key, endpoint.clone(), now);
                }
            }
        }
    }

    /// Checks `endpoint` for `breaker` (the cluster's when `key` is `None`, else that
    /// endpoint's), unless a check for it is still out.
    fn send_breaker_probe(
        self: &Arc<Self>,
        breaker: SharedBreaker,
        key: Option<SocketAddr>,
        endpoint: Arc<Endpoint>,
        now: Instant,
    ) {
        let Some(check) = self.config.health_check.clone() else {
            return;
        };
        if !self.passive.probing_insert(key) {
            return;
        }
        // The next check is due an open period from now, whatever this one finds.
        breaker.probe_failed(now);
        let protocol = self.config.protocol;
        let weak = Arc::downgrade(self);
        let mut alive = self.alive();
        tokio::spawn(async move {
            let Some(result) = check_once(&endpoint, &check, protocol, &mut alive).await else {
                return;
            };
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            cluster.passive.probing_remove(key);
            match result {
                Ok(()) => {
                    breaker.probe_passed(Instant::now());
                }
                Err(reason) => tracing::debug!(
                    cluster = cluster.name(), endpoint = %endpoint.address(), %reason,
                    "breaker probe failed: it stays open"
                ),
            }
        });
    }
}
