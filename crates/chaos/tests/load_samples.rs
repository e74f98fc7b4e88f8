//! A sampled load run against a hyper server on loopback that answers as a Blastwall proxy
//! with `decision_headers = "on_request"` would: each request's sample carries its kind,
//! its optional headers and who answered, read from the decision headers the run asked for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use blastwall_chaos::load::{
    self, FallbackKind, Kind, Outcome, Plan, Protocol, SampleLog, Schedule, SharedHeader, Source,
    Timetable,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Requests the server saw carrying `x-blastwall-priority: high`.
type Flagged = Arc<AtomicU64>;

/// Answers by path, with decision headers only when the request asks for them:
/// `/` from the upstream (2 attempts), `/fallback` from a static fallback, `/shed` shed.
fn answer(request: &Request<Incoming>, flagged: &Flagged) -> Response<Full<Bytes>> {
    if request.headers().get("x-blastwall-priority") == Some(&HeaderValue::from_static("high")) {
        flagged.fetch_add(1, Ordering::Relaxed);
    }
    let debug = request.headers().get("x-blastwall-debug") == Some(&HeaderValue::from_static("1"));
    let (status, decision): (u16, &[(&str, &str)]) = match request.uri().path() {
        "/fallback" => (200, &[("x-blastwall-fallback", "static")]),
        "/shed" => (503, &[("x-blastwall-error", "shed")]),
        _ => (200, &[("x-blastwall-attempts", "2")]),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
    if debug {
        for (name, value) in decision {
            response.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    response
}

async fn serve(flagged: Flagged) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let flagged = flagged.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = answer(&request, &flagged);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn plan(addr: SocketAddr, debug: bool) -> Plan {
    let kind = |target: &'static str| Kind::new(Method::GET, Uri::from_static(target));
    Plan {
        addr,
        kinds: vec![kind("/"), kind("/fallback"), kind("/shed")],
        headers: HeaderMap::new(),
        shared_headers: vec![SharedHeader {
            name: HeaderName::from_static("x-blastwall-priority"),
            value: HeaderValue::from_static("high"),
            share: 0.3,
        }],
        debug,
        seed: 11,
        mix: None,
        schedule: Schedule::Open(Timetable::new(2000.0, Some(300), None)),
        connections: 8,
        timeout: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        protocol: Protocol::Http1,
        tls: None,
    }
}

#[tokio::test]
async fn samples_carry_each_requests_kind_headers_and_who_answered() {
    let flagged = Flagged::default();
    let addr = serve(flagged.clone()).await;
    let (summary, samples) = load::run_sampled(
        plan(addr, true),
        || {},
        SampleLog::new(),
        std::future::pending(),
    )
    .await;
    assert_eq!(samples.len(), 300);
    assert_eq!(summary.total.requests, 300);
    for sample in &samples {
        let expected = match sample.kind {
            0 => (Outcome::Status(200), Source::Upstream, 2),
            1 => (
                Outcome::Status(200),
                Source::Fallback(FallbackKind::Static),
                0,
            ),
            2 => (Outcome::Status(503), Source::Refused, 0),
            other => panic!("no kind {other}"),
        };
        assert_eq!((sample.outcome, sample.source, sample.attempts), expected);
    }
    for kind in 0..3 {
        let count = samples.iter().filter(|sample| sample.kind == kind).count();
        assert_eq!(count, 100, "kind {kind}");
    }
    // Exactly the requests whose bit is set carried the header.
    let with_header = samples
        .iter()
        .filter(|sample| sample.headers & 1 == 1)
        .count() as u64;
    assert_eq!(with_header, flagged.load(Ordering::Relaxed));
    assert!(
        (60..=120).contains(&with_header),
        "{with_header} of 300 at 30%"
    );
}

#[tokio::test]
async fn without_debug_the_proxy_says_nothing_and_every_answer_looks_upstream() {
    let addr = serve(Flagged::default()).await;
    let (_, samples) = load::run_sampled(
        plan(addr, false),
        || {},
        SampleLog::new(),
        std::future::pending(),
    )
    .await;
    assert_eq!(samples.len(), 300);
    assert!(
        samples
            .iter()
            .all(|sample| sample.source == Source::Upstream)
    );
}
