//! The record of one request: what the proxy did with it, as the pipeline saw it happen.
//!
//! Why one record: the observers (the access log and the span in [`crate::telemetry`], the
//! counters) need to know why the proxy answered itself, which fallback answered, how many
//! attempts went out, to which endpoint and how fast. Each of these is known, as a value,
//! at the stage where it happens; the record carries it from there to the end of the request,
//! where the observers read it once. Nothing is learnt by reading back the headers the client
//! is sent (which say only what `decision_headers` allows, and which a kind written as text
//! would have to be parsed out of again), and no stage calls an observer on its way.
//!
//! NOTE: a plain `Copy` struct kept on the request's stack, written by plain stores: it costs
//! no allocation and no clock read (its times are the ones the pipeline and the attempts
//! read anyway).

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderValue;

use crate::error::ProxyError;

/// What happened to one request, from its arrival to its response head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// Why the proxy answered itself, when the response is the proxy's own error (not when a
    /// fallback answered in its place, nor when the upstream's answer went through).
    pub error: Option<ProxyError>,
    /// The fallback that answered, when one did.
    pub fallback: Option<FallbackKind>,
    /// Attempts sent, hedges included.
    pub attempts: u32,
    /// The endpoint of the attempt whose answer (or failure) the client got.
    pub endpoint: Option<SocketAddr>,
    /// That attempt's time to its response head.
    pub upstream: Option<Duration>,
    /// From the request's arrival to its response head.
    pub total: Duration,
    /// The fault a rule injected, when one did.
    pub fault: Option<FaultKind>,
    /// The rule that injected it.
    pub fault_rule: Option<FaultRuleId>,
}

/// Which rule injected a fault, as the access log names it (`fault_rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultRuleId {
    /// The route's `[[route.fault]]` rule of this number (from 1, in file order):
    /// `config:<route>:<n>`.
    Config(u32),
    /// The rule made at run time with this number: `f<n>`.
    Runtime(u64),
}

impl FaultRuleId {
    /// The id as the admin API shows it, for a rule of `route`.
    pub(crate) fn text(self, route: &str) -> String {
        match self {
            FaultRuleId::Config(number) => format!("config:{route}:{number}"),
            FaultRuleId::Runtime(number) => format!("f{number}"),
        }
    }
}

/// Which fault a rule injected into a request (see [`crate::fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// It was held before its attempts.
    Delay,
    /// It was answered in the upstream's place.
    Abort,
    /// Its upstream connection was reset.
    Reset,
    /// Its upstream closed the connection without answering.
    CloseBeforeHead,
    /// Its upstream's answer broke off after the head (a truncated body).
    CloseAfterHead,
    /// Its upstream's answer's body came at a throttled rate.
    Throttle,
    /// Its attempt picked an endpoint a rule took down.
    EndpointDown,
}

impl FaultKind {
    /// Its name, as the access log writes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FaultKind::Delay => "delay",
            FaultKind::Abort => "abort",
            FaultKind::Reset => "reset",
            FaultKind::CloseBeforeHead => "close_before_head",
            FaultKind::CloseAfterHead => "close_after_head",
            FaultKind::Throttle => "throttle",
            FaultKind::EndpointDown => "endpoint_down",
        }
    }
}

/// Which fallback answered a request in its cluster's place (see [`crate::fallback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FallbackKind {
    /// The stale-if-error cache: the last good answer for the URL.
    Stale,
    /// One attempt against the route's alternate cluster.
    Cluster,
    /// The route's static response.
    Static,
}

impl FallbackKind {
    /// Every kind, in the order they are tried.
    pub(crate) const ALL: [FallbackKind; 3] = [
        FallbackKind::Stale,
        FallbackKind::Cluster,
        FallbackKind::Static,
    ];

    /// Its name, as `x-blastwall-fallback`, the access log and the metrics write it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FallbackKind::Stale => "stale",
            FallbackKind::Cluster => "cluster",
            FallbackKind::Static => "static",
        }
    }

    /// Its name as the value of `x-blastwall-fallback` ([`crate::headers::FALLBACK_HEADER`]).
    pub(crate) fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fallback_kind_has_its_own_name_in_the_header() {
        let names: Vec<&str> = FallbackKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names, ["stale", "cluster", "static"]);
        for kind in FallbackKind::ALL {
            assert_eq!(kind.header_value(), kind.as_str());
        }
    }

    #[test]
    fn a_fresh_record_says_nothing_happened() {
        let record = Record::default();
        assert_eq!((record.error, record.fallback), (None, None));
        assert_eq!((record.attempts, record.endpoint), (0, None));
    }
}
