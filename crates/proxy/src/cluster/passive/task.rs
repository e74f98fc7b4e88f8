//! The cluster's passive-check clock: ticks [`Cluster::tick`] so breakers half-open and
//! ejections end while no request arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::Cluster;

/// The longest and shortest time between ticks.
const MAX_PERIOD: Duration = Duration::from_secs(1);
const MIN_PERIOD: Duration = Duration::from_millis(5);

/// Starts ticking `cluster` (if it has anything to tick); the task holds a weak reference
/// and ends when the cluster is retired or dropped.
pub(in crate::cluster) fn spawn(cluster: &Arc<Cluster>) {
    let capacity = cluster.admission().follows_capacity();
    if !cluster.passive.needs_ticks() && !capacity {
        return;
    }
    let period = period(cluster);
    let mut alive = cluster.alive();
    let weak = Arc::downgrade(cluster);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = alive.changed() => return,
            }
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            let now = Instant::now();
            cluster.tick(now);
            cluster.probe_open_breakers(now);
            if capacity {
                cluster.grow_capacities(now);
            }
        }
    });
}

/// A tenth of the shortest period the settings name (open duration, ejection time,
/// interval, the shortest stall threshold), so a state ends at most ~10% late; within
/// [`MIN_PERIOD`, `MAX_PERIOD`].
fn period(cluster: &Cluster) -> Duration {
    let passive = &cluster.config().passive;
    let breakers = [&passive.circuit_breaker, &passive.endpoint_circuit_breaker]
        .into_iter()
        .flatten()
        .map(|breaker| breaker.open_duration);
    let outliers = passive
        .outlier_detection
        .iter()
        .flat_map(|outlier| [outlier.base_ejection_time, outlier.interval]);
    let stall = passive.stall.iter().map(|stall| stall.after.shortest());
    breakers
        .chain(outliers)
        .chain(stall)
        .min()
        .map_or(MAX_PERIOD, |shortest| shortest / 10)
        .clamp(MIN_PERIOD, MAX_PERIOD)
}
