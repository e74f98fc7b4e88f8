//! What a run sends, and the plan of a spec's load.
//!
//! A [`Plan`] is everything a run needs, checked and parsed before it starts: `blastwall
//! load` builds one from its flags (one kind: its method and URL), `blastwall verify` from
//! the spec's `[load]` ([`Plan::from_spec`]: the request mix, the header shares, the
//! decision headers asked for).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;

use super::connection::Protocol;
use super::request::{Kind, SharedHeader};
use super::sample::DEBUG_HEADER;
use super::schedule::Schedule;
use super::tls::TlsSettings;

/// Everything a run needs, checked and parsed before it starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The kinds of request to send, drawn by weight (a plan without any sends `GET /`).
    pub kinds: Vec<Kind>,
    /// Headers of every request, `Host` included.
    pub headers: HeaderMap,
    /// Headers each sent on a share of the requests (at most
    /// [`super::MAX_SHARED_HEADERS`]; any further are never sent).
    pub shared_headers: Vec<SharedHeader>,
    /// Whether every request asks the proxy to say what it decided (`x-blastwall-debug: 1`).
    pub debug: bool,
    /// The seed of the optional headers' draw.
    pub seed: u64,
    /// The header that tells traffic classes apart, with each class's value and weight.
    pub mix: Option<(HeaderName, Vec<(HeaderValue, f64)>)>,
    /// When requests are sent: on a timetable, or as fast as the connections answer.
    pub schedule: Schedule,
    /// Connections kept open at most.
    pub connections: usize,
    /// How long a request may take from its due time.
    pub timeout: Duration,
    /// Width of a timeline point.
    pub interval: Duration,
    /// The HTTP version of every connection (over TLS, what ALPN agrees instead).
    pub protocol: Protocol,
    /// TLS for `https://` targets.
    pub tls: Option<TlsSettings>,
}

/// Why a spec's load cannot become a plan (each is checked at spec load too; this is the
/// engine's own guard).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A request's path does not parse as a request target.
    #[error("request {index} of the load: {path:?} is not a path and query")]
    Path {
        /// Its index in `[[load.request]]`.
        index: usize,
        /// The path as written.
        path: String,
    },
    /// More request kinds than a sample can number.
    #[error("the load has {0} kinds of request; at most 65535 are told apart")]
    TooManyKinds(usize),
    /// More header shares than a sample has bits for.
    #[error("the load has {0} headers on shares; at most 32 are told apart")]
    TooManyHeaders(usize),
}

impl Plan {
    /// The request of kind `kind` (`GET /` if there is none such), of traffic class
    /// `class` of the header mix, with the shared headers whose bits `headers` sets.
    pub(super) fn request(&self, kind: usize, class: usize, headers: u32) -> Request<Full<Bytes>> {
        let mut request = match self.kinds.get(kind) {
            Some(kind) => {
                let mut request = Request::new(Full::new(kind.body.clone()));
                *request.method_mut() = kind.method.clone();
                *request.uri_mut() = kind.target.clone();
                request
            }
            None => Request::new(Full::new(Bytes::new())),
        };
        *request.headers_mut() = self.headers.clone();
        let map = request.headers_mut();
        if let Some((name, classes)) = &self.mix
            && let Some((value, _)) = classes.get(class)
        {
            map.insert(name.clone(), value.clone());
        }
        let shared = self.shared_headers.iter().take(super::MAX_SHARED_HEADERS);
        for (index, header) in shared.enumerate() {
            if headers & (1 << index) != 0 {
                map.append(header.name.clone(), header.value.clone());
            }
        }
        if self.debug {
            map.insert(DEBUG_HEADER, HeaderValue::from_static("1"));
        }
        request
    }

    /// How long a spec's request may take from its due time.
    pub const SPEC_TIMEOUT: Duration = Duration::from_secs(10);
    /// The seed of a spec's header draw: the same spec draws the same headers every run.
    pub const SPEC_SEED: u64 = 18;

    /// The open-loop plan of a spec's load against `addr` (HTTP/1.1, no TLS: set
    /// [`Plan::protocol`] and [`Plan::tls`] after for a running system over HTTPS), with
    /// `Host: host`, asking the proxy for its decision headers, over
    /// [`connections_for`] its rate, each request timed out [`Plan::SPEC_TIMEOUT`] after
    /// its due time, and a timeline by second.
    pub fn from_spec(
        load: &crate::spec::Load,
        addr: SocketAddr,
        host: HeaderValue,
    ) -> Result<Self, PlanError> {
        if load.requests.len() > usize::from(u16::MAX) {
            return Err(PlanError::TooManyKinds(load.requests.len()));
        }
        if load.headers.len() > super::MAX_SHARED_HEADERS {
            return Err(PlanError::TooManyHeaders(load.headers.len()));
        }
        let kinds = load
            .requests
            .iter()
            .enumerate()
            .map(|(index, request)| {
                let target = request.path.parse::<Uri>().map_err(|_| PlanError::Path {
                    index,
                    path: request.path.clone(),
                })?;
                Ok(Kind {
                    method: request.method.clone(),
                    target,
                    body: Bytes::new(),
                    weight: f64::from(request.weight.get()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shared_headers = load
            .headers
            .iter()
            .map(|header| SharedHeader {
                name: header.name.clone(),
                value: header.value.clone(),
                share: header.share,
            })
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, host);
        let rate = f64::from(load.rate.get());
        Ok(Self {
            addr,
            kinds,
            headers,
            shared_headers,
            debug: true,
            seed: Self::SPEC_SEED,
            mix: None,
            schedule: Schedule::Open(super::Timetable::new(rate, None, Some(load.duration))),
            connections: connections_for(rate),
            timeout: Self::SPEC_TIMEOUT,
            interval: Duration::from_secs(1),
            protocol: Protocol::Http1,
            tls: None,
        })
    }
}

/// Connections for an open-loop `rate`: enough for every request of two seconds in flight
/// at once (answers up to 2 s slow never queue behind each other), at least 4, at most 256.
pub fn connections_for(rate: f64) -> usize {
    let wanted = (rate * 2.0).ceil();
    if wanted.is_nan() || wanted < 4.0 {
        4
    } else if wanted > 256.0 {
        256
    } else {
        wanted as usize
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use http::Method;

    use super::*;
    use crate::spec::{HeaderShare, Load, RequestKind};

    fn load() -> Load {
        Load {
            rate: NonZeroU32::new(200).expect("above 0"),
            duration: Duration::from_secs(60),
            requests: vec![
                RequestKind {
                    method: Method::POST,
                    path: "/checkout?fast=1".into(),
                    weight: NonZeroU32::new(3).expect("above 0"),
                    route: None,
                },
                RequestKind {
                    method: Method::GET,
                    path: "/".into(),
                    weight: NonZeroU32::new(1).expect("above 0"),
                    route: None,
                },
            ],
            headers: vec![HeaderShare {
                name: HeaderName::from_static("x-blastwall-priority"),
                value: HeaderValue::from_static("high"),
                share: 0.2,
            }],
        }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }

    #[test]
    fn a_specs_load_becomes_an_open_loop_plan_with_its_mix_and_decision_headers() {
        let plan = Plan::from_spec(&load(), addr(), HeaderValue::from_static("shop"))
            .expect("a valid load");
        assert_eq!(plan.kinds.len(), 2);
        assert_eq!(plan.kinds[0].method, Method::POST);
        assert_eq!(plan.kinds[0].target, "/checkout?fast=1");
        assert_eq!(plan.kinds[0].weight, 3.0);
        assert_eq!(plan.shared_headers.len(), 1);
        assert_eq!(plan.shared_headers[0].share, 0.2);
        assert!(plan.debug);
        assert_eq!(plan.headers[http::header::HOST], "shop");
        let Schedule::Open(timetable) = plan.schedule else {
            panic!("a spec's load is open loop");
        };
        assert_eq!(timetable.total(), 12_000);
        assert_eq!(plan.connections, 256);
        assert_eq!(plan.timeout, Plan::SPEC_TIMEOUT);
    }

    #[test]
    fn connections_cover_two_seconds_of_the_rate_between_4_and_256() {
        assert_eq!(connections_for(1.0), 4);
        assert_eq!(connections_for(50.0), 100);
        assert_eq!(connections_for(100.5), 201);
        assert_eq!(connections_for(5000.0), 256);
        assert_eq!(connections_for(f64::NAN), 4);
    }

    #[test]
    fn a_path_that_is_no_request_target_is_refused_by_its_index() {
        let mut load = load();
        load.requests[1].path = "/a b".into();
        let error = Plan::from_spec(&load, addr(), HeaderValue::from_static("shop"))
            .expect_err("an invalid path");
        assert_eq!(
            error,
            PlanError::Path {
                index: 1,
                path: "/a b".into()
            }
        );
    }

    #[test]
    fn more_than_32_header_shares_are_refused() {
        let mut load = load();
        load.headers = vec![load.headers[0].clone(); 33];
        let error = Plan::from_spec(&load, addr(), HeaderValue::from_static("shop"))
            .expect_err("too many headers");
        assert_eq!(error, PlanError::TooManyHeaders(33));
    }
}
