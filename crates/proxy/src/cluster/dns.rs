//! Endpoints given by DNS name: resolved at start and every `dns_refresh`, each address a
//! endpoint with the entry's settings.
//!
//! Membership changes keep state: an address that stays keeps its [`Endpoint`] (health,
//! latency, requests in flight); only new addresses start afresh (and get a health check
//! task), and removed ones stop being picked (their requests in flight finish). A failed
//! lookup keeps the last good addresses of that name and logs, because a DNS outage must
//! not take a healthy cluster down with it.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Cluster;
use crate::config::{EndpointAddress, EndpointConfig};
use crate::endpoint::Endpoint;
use crate::health::HealthStatus;

/// A lookup that takes longer than this counts as failed (the resolver's own timeouts can
/// be much longer).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What each configured entry resolves to: `Some` addresses, or `None` to keep what it had.
pub(super) type Resolution = Vec<Option<Vec<SocketAddr>>>;

/// Addresses of the entries that need no lookup; names keep what they had.
pub(super) fn static_addresses(entries: &[EndpointConfig]) -> Resolution {
    entries
        .iter()
        .map(|entry| match entry.address {
            EndpointAddress::Socket(address) => Some(vec![address]),
            EndpointAddress::Dns { .. } => None,
        })
        .collect()
}

/// The endpoint list for `resolution`, reusing every endpoint of `current` with the same
/// address and settings, and making the others with `create`.
pub(super) fn merge(
    entries: &[EndpointConfig],
    resolution: &[Option<Vec<SocketAddr>>],
    current: &[Arc<Endpoint>],
    mut create: impl FnMut(SocketAddr, &EndpointConfig) -> Arc<Endpoint>,
) -> Vec<Arc<Endpoint>> {
    let mut merged: Vec<Arc<Endpoint>> = Vec::new();
    for (entry, addresses) in entries.iter().zip(resolution) {
        let kept: Vec<SocketAddr>;
        let addresses = match addresses {
            Some(addresses) => addresses.as_slice(),
            None => {
                // The addresses this name resolved to last time, whatever its other settings
                // were: a reload that changes only a weight, zone or priority must not empty
                // the name until DNS answers again.
                kept = current
                    .iter()
                    .filter(|endpoint| endpoint.config().address == entry.address)
                    .map(|endpoint| endpoint.address())
                    .collect();
                kept.as_slice()
            }
        };
        for address in addresses {
            let same = |endpoint: &&Arc<Endpoint>| {
                endpoint.address() == *address && endpoint.config() == entry
            };
            if merged.iter().any(|endpoint| same(&endpoint)) {
                continue;
            }
            let endpoint = match current.iter().find(same) {
                Some(endpoint) => endpoint.clone(),
                None => create(*address, entry),
            };
            merged.push(endpoint);
        }
    }
    merged
}

/// Starts the refresh task of a cluster with DNS names.
pub(super) fn spawn(cluster: &Arc<Cluster>) {
    let entries = cluster.config.endpoints.clone();
    let refresh = cluster.config.dns_refresh;
    tokio::spawn(refresh_loop(
        Arc::downgrade(cluster),
        entries,
        refresh,
        cluster.alive(),
    ));
}

async fn refresh_loop(
    cluster: Weak<Cluster>,
    entries: Vec<EndpointConfig>,
    refresh: Duration,
    mut alive: watch::Receiver<()>,
) {
    let name = match cluster.upgrade() {
        Some(cluster) => cluster.name().to_owned(),
        None => return,
    };
    loop {
        let resolution = tokio::select! {
            resolution = resolve(&name, &entries) => resolution,
            _ = alive.changed() => return,
        };
        match cluster.upgrade() {
            Some(cluster) => cluster.apply_resolution(&resolution, Instant::now()),
            None => return,
        }
        tokio::select! {
            () = tokio::time::sleep(refresh) => {}
            _ = alive.changed() => return,
        }
    }
}

/// Looks every name up; a name that fails keeps its last good addresses (`None`).
async fn resolve(cluster: &str, entries: &[EndpointConfig]) -> Resolution {
    let mut resolution = Vec::with_capacity(entries.len());
    for entry in entries {
        let EndpointAddress::Dns { host, port } = &entry.address else {
            resolution.push(static_addresses(std::slice::from_ref(entry)).remove(0));
            continue;
        };
        let lookup = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), *port)),
        )
        .await;
        let found = match lookup {
            Ok(Ok(addresses)) => {
                let mut addresses: Vec<SocketAddr> = addresses.collect();
                addresses.sort_unstable();
                addresses.dedup();
                if addresses.is_empty() {
                    tracing::warn!(cluster, %host, "DNS name has no addresses; keeping the last good ones");
                    None
                } else {
                    Some(addresses)
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(cluster, %host, %error, "DNS lookup failed; keeping the last good addresses");
                None
            }
            Err(_) => {
                tracing::warn!(cluster, %host, timeout = ?LOOKUP_TIMEOUT, "DNS lookup timed out; keeping the last good addresses");
                None
            }
        };
        resolution.push(found);
    }
    resolution
}

impl Cluster {
    /// Puts a DNS resolution in force: keeps the endpoints that stay, adds and checks the
    /// new ones, drops the gone ones.
    fn apply_resolution(self: &Arc<Self>, resolution: &[Option<Vec<SocketAddr>>], now: Instant) {
        let current = self.endpoints();
        let initial = if self.config.health_check.is_some() {
            HealthStatus::Unknown
        } else {
            HealthStatus::Healthy
        };
        let mut added = Vec::new();
        let merged = merge(
            &self.config.endpoints,
            resolution,
            &current,
            |address, entry| {
                let endpoint = Arc::new(Endpoint::new(
                    address,
                    entry.clone(),
                    initial,
                    self.changes.clone(),
                    now,
                ));
                added.push(endpoint.clone());
                endpoint
            },
        );
        let unchanged = merged.len() == current.len()
            && merged
                .iter()
                .zip(current.iter())
                .all(|(new, old)| Arc::ptr_eq(new, old));
        if !unchanged {
            let removed = current.len() + added.len() - merged.len();
            tracing::info!(
                cluster = self.name(),
                endpoints = merged.len(),
                added = added.len(),
                removed,
                "endpoints changed after DNS resolution"
            );
            self.endpoints.store(Arc::new(merged));
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            self.adopt_endpoints(now);
            if self.config.health_check.is_some() {
                for endpoint in added {
                    super::checks::spawn(self, endpoint);
                }
            }
        }
        self.resolved_once
            .store(true, std::sync::atomic::Ordering::Release);
        self.progress.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn entry(address: EndpointAddress) -> EndpointConfig {
        EndpointConfig {
            address,
            weight: 1,
            zone: None,
            priority: 0,
        }
    }

    fn name() -> EndpointConfig {
        entry(EndpointAddress::Dns {
            host: "api.internal".to_owned(),
            port: 80,
        })
    }

    fn address(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 80))
    }

    fn make(
        changes: &Arc<AtomicU64>,
    ) -> impl FnMut(SocketAddr, &EndpointConfig) -> Arc<Endpoint> + '_ {
        move |address, entry| {
            Arc::new(Endpoint::new(
                address,
                entry.clone(),
                HealthStatus::Healthy,
                changes.clone(),
                Instant::now(),
            ))
        }
    }

    #[test]
    fn addresses_that_stay_keep_their_endpoint_and_new_ones_are_made() {
        let changes = Arc::default();
        let entries = [name()];
        let first = merge(
            &entries,
            &[Some(vec![address(1), address(2)])],
            &[],
            make(&changes),
        );
        let second = merge(
            &entries,
            &[Some(vec![address(2), address(3)])],
            &first,
            make(&changes),
        );
        assert_eq!(second.len(), 2);
        assert!(Arc::ptr_eq(&second[0], &first[1]), "10.0.0.2 kept");
        assert_eq!(second[1].address(), address(3));
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_good_addresses() {
        let changes = Arc::default();
        let entries = [name(), entry(EndpointAddress::Socket(address(9)))];
        let first = merge(
            &entries,
            &[Some(vec![address(1)]), Some(vec![address(9)])],
            &[],
            make(&changes),
        );
        let second = merge(
            &entries,
            &[None, Some(vec![address(9)])],
            &first,
            make(&changes),
        );
        assert_eq!(second.len(), 2);
        assert!(second.iter().zip(&first).all(|(a, b)| Arc::ptr_eq(a, b)));
    }

    #[test]
    fn changed_settings_make_a_new_endpoint_at_the_same_address() {
        let changes = Arc::default();
        let mut heavier = entry(EndpointAddress::Socket(address(1)));
        let first = merge(
            std::slice::from_ref(&heavier),
            &static_addresses(std::slice::from_ref(&heavier)),
            &[],
            make(&changes),
        );
        heavier.weight = 5;
        let second = merge(
            std::slice::from_ref(&heavier),
            &static_addresses(std::slice::from_ref(&heavier)),
            &first,
            make(&changes),
        );
        assert!(!Arc::ptr_eq(&first[0], &second[0]));
        assert_eq!(second[0].weight(), 5);
    }

    #[test]
    fn a_name_whose_settings_change_keeps_its_addresses_until_dns_answers() {
        let changes = Arc::default();
        let mut entries = [name()];
        let first = merge(
            &entries,
            &[Some(vec![address(1), address(2)])],
            &[],
            make(&changes),
        );
        entries[0].weight = 3;
        let reloaded = merge(&entries, &[None], &first, make(&changes));
        let addresses: Vec<SocketAddr> =
            reloaded.iter().map(|endpoint| endpoint.address()).collect();
        assert_eq!(addresses, [address(1), address(2)]);
        assert!(
            reloaded.iter().all(|endpoint| endpoint.weight() == 3),
            "the new settings apply"
        );
    }
}
