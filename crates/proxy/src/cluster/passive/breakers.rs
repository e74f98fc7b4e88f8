//! The breakers: the cluster's (one permit per request) and one per endpoint (one permit per
//! attempt), built from the validated config, with listeners that log every transition,
//! count it, and take a tripped endpoint out of routing.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use blastwall_policy::breaker::{
    CircuitBreaker, Outcome, SharedBreaker, State, Transition, ValidBreakerConfig,
};

use crate::counters::ClusterStats;
use crate::endpoint::Endpoint;
use crate::outcome::AttemptOutcome;

/// What an attempt's outcome means to a breaker. Overload (a busy 503, a 429),
/// cancellation and what the client caused say nothing about the dependency: they neither
/// trip nor heal it (see `AttemptOutcome`); a broken 503 is a failure.
pub(super) fn breaker_outcome(outcome: AttemptOutcome) -> Outcome {
    match outcome {
        AttemptOutcome::Success => Outcome::Success,
        AttemptOutcome::Overloaded { .. } => Outcome::Ignored,
        _ if outcome.says_nothing() => Outcome::Ignored,
        _ => Outcome::Failure,
    }
}

/// The cluster's breaker, logging and counting its transitions.
pub(super) fn cluster_breaker(
    config: &ValidBreakerConfig,
    cluster: &str,
    stats: &Arc<ClusterStats>,
) -> SharedBreaker {
    let breaker = CircuitBreaker::from_valid(config);
    let cluster = cluster.to_owned();
    let stats = stats.clone();
    SharedBreaker::with_listener(breaker, move |transition| {
        log_transition(&cluster, None, transition);
        stats
            .events
            .push(crate::events::breaker_event(&cluster, None, transition));
        match transition.to {
            State::Open => stats.breaker_opened.increment(),
            State::Closed if transition.from == State::HalfOpen => stats.breaker_closed.increment(),
            _ => {}
        }
    })
}

/// Gives `endpoint` a fresh breaker (replacing any it had: its open state is forgotten).
pub(super) fn install_endpoint_breaker(
    endpoint: &Arc<Endpoint>,
    config: &ValidBreakerConfig,
    cluster: &str,
    stats: &Arc<ClusterStats>,
) {
    let breaker = CircuitBreaker::from_valid(config);
    // NOTE: a replaced breaker may still see outcomes of attempts it admitted; the epoch
    // keeps its transitions from touching the endpoint's routing flag.
    let epoch = endpoint.breaker_epoch.fetch_add(1, Ordering::AcqRel) + 1;
    let weak: Weak<Endpoint> = Arc::downgrade(endpoint);
    let cluster = cluster.to_owned();
    let stats = stats.clone();
    let shared = SharedBreaker::with_listener(breaker, move |transition| {
        let Some(endpoint) = weak.upgrade() else {
            return;
        };
        if endpoint.breaker_epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        log_transition(&cluster, Some(&endpoint), transition);
        stats.events.push(crate::events::breaker_event(
            &cluster,
            Some(endpoint.address()),
            transition,
        ));
        match transition.to {
            State::Open => stats.endpoint_breaker_opened.increment(),
            State::Closed if transition.from == State::HalfOpen => {
                stats.endpoint_breaker_closed.increment();
            }
            _ => {}
        }
        endpoint.set_tripped(matches!(transition.to, State::Open | State::ForcedOpen));
    });
    endpoint.set_tripped(false);
    endpoint.set_breaker(Some(Arc::new(shared)));
}

/// Takes `endpoint`'s breaker away (the cluster no longer configures one).
pub(super) fn remove_endpoint_breaker(endpoint: &Endpoint) {
    endpoint.breaker_epoch.fetch_add(1, Ordering::AcqRel);
    endpoint.set_breaker(None);
    endpoint.set_tripped(false);
}

fn log_transition(cluster: &str, endpoint: Option<&Endpoint>, transition: &Transition) {
    let endpoint = endpoint.map(|endpoint| endpoint.address().to_string());
    let endpoint = endpoint.as_deref().unwrap_or("-");
    let (from, to, reason) = (transition.from, transition.to, transition.reason);
    match transition.to {
        State::Open | State::ForcedOpen => tracing::warn!(
            cluster, endpoint, %from, %to, %reason,
            open_for = ?transition.open_until.map_or(Duration::ZERO, |until| until.saturating_duration_since(transition.at)),
            "circuit breaker opened"
        ),
        State::Closed | State::ForcedClosed => {
            tracing::info!(cluster, endpoint, %from, %to, %reason, "circuit breaker closed");
        }
        State::HalfOpen => {
            tracing::info!(cluster, endpoint, %from, %to, %reason, "circuit breaker half-open: probing");
        }
    }
}
