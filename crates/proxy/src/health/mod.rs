//! Active health checks: what one check does ([`probe`]), what a run of results concludes
//! ([`state`]: consecutive thresholds before a known status flips), and the event of a
//! change.
//!
//! When to check is the cluster's to decide (`cluster::checks`): the schedule needs the
//! cluster, and this module stands below it and below the endpoint, which keeps its health
//! in a [`HealthState`]. So nothing here names either of them.
//!
//! Checks use a fresh connection each time rather than the request pool: a check must prove
//! that the endpoint accepts connections now, not that an old keep-alive connection survives.

mod probe;
pub(crate) mod state;

use std::net::SocketAddr;

pub(crate) use self::probe::{ProbeFailure, probe};
pub(crate) use self::state::{HealthState, HealthStatus, Thresholds, Transition};
use crate::events::{Event, EventKind};

/// The event of a health status change of `endpoint` in `cluster`, with the failed
/// check's reason.
pub(crate) fn event<E: std::fmt::Display>(
    cluster: &str,
    endpoint: SocketAddr,
    transition: Transition,
    result: &Result<(), E>,
) -> Event {
    let detail = match result {
        Ok(()) => format!("health {} → {}", transition.from, transition.to),
        Err(reason) => format!("health {} → {}: {reason}", transition.from, transition.to),
    };
    let mut event =
        Event::now(EventKind::HealthChanged, detail).in_cluster(cluster, Some(endpoint));
    event.failure = !transition.to.is_healthy();
    event
}
