use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use proptest::prelude::*;

use super::StaleCache;
use crate::body::{BoxError, ProxyBody};
use crate::config::fallback::StaleIfErrorConfig;
use crate::counters::FallbackStats;
use crate::fallback::Provenance;

/// A body that yields these frames, then ends; `is_end_stream` only after the last poll, as
/// a chunked body does.
pub(super) struct Frames(pub(super) VecDeque<Result<Frame<Bytes>, BoxError>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().0.pop_front())
    }
}

pub(super) fn chunks(parts: &[&str]) -> ProxyBody {
    Frames(
        parts
            .iter()
            .map(|part| Ok(Frame::data(Bytes::from(part.to_string()))))
            .collect(),
    )
    .boxed()
}

pub(super) fn limits() -> StaleIfErrorConfig {
    StaleIfErrorConfig {
        max_age: Duration::from_secs(60),
        max_entries: NonZeroUsize::new(10).unwrap(),
        max_body: 1024,
        max_bytes: 64 * 1024,
    }
}

pub(super) fn cache(config: StaleIfErrorConfig) -> Arc<StaleCache> {
    Arc::new(StaleCache::new(config, Arc::new(FallbackStats::default())))
}

pub(super) fn get(path: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    request("GET", path, headers)
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = Request::builder().method(method).uri(path);
    builder = builder.header("host", "shop.example");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

pub(super) fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: ProxyBody,
) -> Response<ProxyBody> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).unwrap()
}

/// Streams a response through the cache as the client would read it; returns what the
/// client read (or the error it saw).
pub(super) async fn pass(
    cache: &Arc<StaleCache>,
    request: &http::request::Parts,
    response: Response<ProxyBody>,
    now: Instant,
) -> Result<Bytes, BoxError> {
    let observed = cache.capture(request, Provenance::default(), response, now);
    observed
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
}

pub(super) async fn keep(
    cache: &Arc<StaleCache>,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    now: Instant,
) {
    let request = get(path, &[]);
    pass(
        cache,
        &request,
        response(200, headers, chunks(&[body])),
        now,
    )
    .await
    .unwrap();
}

pub(super) async fn served(
    cache: &StaleCache,
    request: &http::request::Parts,
    now: Instant,
) -> Option<(StatusCode, HeaderMap, Bytes)> {
    let response = cache.lookup(request, Provenance::default(), now)?;
    let (parts, body) = response.into_parts();
    Some((
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    ))
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_response_without_directives_is_served_for_the_routes_max_age_with_its_age() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/a?x=1", &[("x-kept", "1")], "hello", t0).await;
    let (status, headers, body) = served(&cache, &get("/a?x=1", &[]), t0 + secs(60))
        .await
        .expect("within max_age");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
    assert_eq!(headers["age"], "60");
    assert_eq!(headers["x-kept"], "1");
    assert!(
        served(&cache, &get("/a?x=2", &[]), t0).await.is_none(),
        "the query is in the key"
    );
    assert!(
        served(&cache, &get("/a?x=1", &[]), t0 + secs(61))
            .await
            .is_none()
    );
    assert_eq!(
        cache.stats.cache_entries.get(),
        0,
        "an entry past its window is dropped"
    );
    assert_eq!(
        (cache.stats.stale_hits.get(), cache.stats.stale_misses.get()),
        (1, 2)
    );
}

#[tokio::test]
async fn stale_if_error_counts_from_when_the_response_became_stale() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(
        &cache,
        "/a",
        &[("cache-control", "max-age=10, stale-if-error=300")],
        "x",
        t0,
    )
    .await;
    assert!(
        served(&cache, &get("/a", &[]), t0 + secs(310))
            .await
            .is_some()
    );
    assert!(
        served(&cache, &get("/a", &[]), t0 + secs(311))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn the_upstreams_age_counts_and_expires_gives_freshness() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(
        &cache,
        "/aged",
        &[("age", "50"), ("cache-control", "max-age=0")],
        "x",
        t0,
    )
    .await;
    let (_, headers, _) = served(&cache, &get("/aged", &[]), t0 + secs(10))
        .await
        .unwrap();
    assert_eq!(headers["age"], "60");
    assert!(
        served(&cache, &get("/aged", &[]), t0 + secs(11))
            .await
            .is_none()
    );
    keep(
        &cache,
        "/expires",
        &[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 08:51:37 GMT"),
        ],
        "x",
        t0,
    )
    .await;
    // Fresh for 120s, then the route's 60s.
    assert!(
        served(&cache, &get("/expires", &[]), t0 + secs(180))
            .await
            .is_some()
    );
    assert!(
        served(&cache, &get("/expires", &[]), t0 + secs(181))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn s_maxage_forbids_serving_stale_unless_the_response_allows_it_on_error() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/s", &[("cache-control", "s-maxage=5")], "x", t0).await;
    assert!(
        served(&cache, &get("/s", &[]), t0 + secs(5))
            .await
            .is_some()
    );
    assert!(
        served(&cache, &get("/s", &[]), t0 + secs(6))
            .await
            .is_none()
    );
    keep(
        &cache,
        "/s",
        &[("cache-control", "s-maxage=5, stale-if-error=10")],
        "x",
        t0,
    )
    .await;
    assert!(
        served(&cache, &get("/s", &[]), t0 + secs(15))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn responses_that_must_not_be_kept_are_not() {
    let cache = cache(limits());
    let t0 = Instant::now();
    for directive in [
        "no-store",
        "private",
        "no-cache",
        "must-revalidate",
        "proxy-revalidate",
    ] {
        keep(&cache, "/d", &[("cache-control", directive)], "x", t0).await;
        assert!(
            served(&cache, &get("/d", &[]), t0).await.is_none(),
            "{directive}"
        );
    }
    keep(&cache, "/d", &[("set-cookie", "a=b")], "x", t0).await;
    keep(&cache, "/d", &[("vary", "*")], "x", t0).await;
    for (method, status, request_headers) in [
        ("POST", 200, &[][..]),
        ("GET", 500, &[][..]),
        ("GET", 206, &[][..]),
        ("GET", 200, &[("cache-control", "no-store")][..]),
        ("GET", 200, &[("authorization", "Bearer t")][..]),
    ] {
        let request = request(method, "/d", request_headers);
        pass(&cache, &request, response(status, &[], chunks(&["x"])), t0)
            .await
            .unwrap();
    }
    assert_eq!(cache.stats.stale_stored.get(), 0);
    let authorized = get("/p", &[("authorization", "Bearer t")]);
    let public = response(200, &[("cache-control", "public")], chunks(&["x"]));
    pass(&cache, &authorized, public, t0).await.unwrap();
    assert!(
        served(&cache, &authorized, t0).await.is_some(),
        "public allows it"
    );
}

#[tokio::test]
async fn an_answer_to_a_request_with_a_cookie_is_kept_only_when_it_says_public() {
    let cache = cache(limits());
    let t0 = Instant::now();
    let alice = get("/me", &[("cookie", "session=alice")]);
    for directives in [&[][..], &[("cache-control", "max-age=60")][..]] {
        let answer = response(200, directives, chunks(&["alice's page"]));
        pass(&cache, &alice, answer, t0).await.unwrap();
        assert!(
            served(&cache, &get("/me", &[]), t0).await.is_none(),
            "{directives:?}"
        );
        assert!(served(&cache, &alice, t0).await.is_none(), "{directives:?}");
    }
    assert_eq!(cache.stats.stale_stored.get(), 0);
    let public = response(200, &[("cache-control", "public")], chunks(&["anyone's"]));
    pass(&cache, &alice, public, t0).await.unwrap();
    assert!(
        served(&cache, &get("/me", &[]), t0).await.is_some(),
        "public allows it"
    );
}

#[tokio::test]
async fn the_scheme_and_a_trusted_clients_forwarding_headers_are_in_the_key() {
    let cache = cache(limits());
    let t0 = Instant::now();
    let plain = Provenance::default();
    let tls = Provenance { tls: true, ..plain };
    let forwarded = Provenance {
        forwarded: true,
        ..plain
    };
    let lookup = |request: &http::request::Parts, provenance| {
        cache.lookup(request, provenance, t0).is_some()
    };
    let page = get("/page", &[]);
    cache
        .capture(&page, tls, response(200, &[], full_body("secure")), t0)
        .into_body()
        .collect()
        .await
        .unwrap();
    assert!(lookup(&page, tls));
    assert!(!lookup(&page, plain), "kept for https, not for http");

    let evil = get("/page", &[("x-forwarded-host", "evil.example")]);
    cache
        .capture(&evil, forwarded, response(200, &[], full_body("evil")), t0)
        .into_body()
        .collect()
        .await
        .unwrap();
    assert!(lookup(&evil, forwarded));
    assert!(!lookup(&page, plain), "not for requests without the header");
    let other = get("/page", &[("x-forwarded-host", "shop.example")]);
    assert!(!lookup(&other, forwarded), "nor for another forwarded host");
    let prefixed = get(
        "/page",
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-prefix", "/a"),
        ],
    );
    assert!(
        !lookup(&prefixed, forwarded),
        "every forwarding header counts"
    );
}

fn full_body(text: &'static str) -> ProxyBody {
    crate::body::full(text)
}

#[tokio::test]
async fn a_vary_response_is_served_only_to_requests_with_the_same_values() {
    let cache = cache(limits());
    let t0 = Instant::now();
    let gzip = get("/v", &[("accept-encoding", "gzip")]);
    let answer = response(200, &[("vary", "Accept-Encoding")], chunks(&["z"]));
    pass(&cache, &gzip, answer, t0).await.unwrap();
    assert!(served(&cache, &gzip, t0).await.is_some());
    assert!(served(&cache, &get("/v", &[]), t0).await.is_none());
    assert!(
        served(&cache, &get("/v", &[("accept-encoding", "br")]), t0)
            .await
            .is_none()
    );
    let head = request("HEAD", "/v", &[("accept-encoding", "gzip")]);
    assert!(
        served(&cache, &head, t0).await.is_none(),
        "the method is in the key"
    );
}

#[tokio::test]
async fn a_response_that_varies_on_a_header_the_proxy_writes_per_client_is_not_kept() {
    // The endpoint saw the proxy's X-Forwarded-For (the peer appended), not the client's:
    // keyed on the client's own (none), the answer for one address would go to every other.
    let cache = cache(limits());
    let t0 = Instant::now();
    for name in ["X-Forwarded-For", "forwarded", "Via", "x-request-id"] {
        let path = format!("/per-client/{name}");
        let request = get(&path, &[]);
        let answer = response(200, &[("vary", name)], chunks(&["for 10.0.0.1"]));
        pass(&cache, &request, answer, t0).await.unwrap();
        assert!(
            served(&cache, &request, t0).await.is_none(),
            "Vary: {name} was kept"
        );
    }
    let request = get("/per-client/mixed", &[]);
    let answer = response(
        200,
        &[("vary", "accept-encoding"), ("vary", "x-forwarded-for")],
        chunks(&["x"]),
    );
    pass(&cache, &request, answer, t0).await.unwrap();
    assert!(served(&cache, &request, t0).await.is_none());
}

#[tokio::test]
async fn the_least_recently_used_goes_when_entries_or_bytes_are_at_their_cap() {
    let config = StaleIfErrorConfig {
        max_entries: NonZeroUsize::new(2).unwrap(),
        ..limits()
    };
    let cache = cache(config);
    let t0 = Instant::now();
    keep(&cache, "/1", &[], "a", t0).await;
    keep(&cache, "/2", &[], "b", t0).await;
    assert!(served(&cache, &get("/1", &[]), t0).await.is_some());
    keep(&cache, "/3", &[], "c", t0).await;
    assert!(
        served(&cache, &get("/2", &[]), t0).await.is_none(),
        "least recently used"
    );
    assert!(served(&cache, &get("/1", &[]), t0).await.is_some());
    assert_eq!(cache.stats.stale_evicted.get(), 1);
    let entry_bytes = cache.stats.cache_bytes.get() / 2;
    cache.reconfigure(StaleIfErrorConfig {
        max_bytes: entry_bytes + 10,
        max_body: 10,
        ..config
    });
    assert_eq!(cache.stats.cache_entries.get(), 1);
    assert!(cache.stats.cache_bytes.get() <= entry_bytes + 10);
}

#[tokio::test]
async fn a_body_over_max_body_streams_through_whole_and_is_not_kept() {
    let cache = cache(StaleIfErrorConfig {
        max_body: 8,
        ..limits()
    });
    let t0 = Instant::now();
    let request = get("/big", &[]);
    let read = pass(
        &cache,
        &request,
        response(200, &[], chunks(&["12345", "67890", "!"])),
        t0,
    )
    .await
    .unwrap();
    assert_eq!(&read[..], b"1234567890!");
    let declared = response(200, &[("content-length", "9")], chunks(&["123456789"]));
    pass(&cache, &request, declared, t0).await.unwrap();
    assert!(served(&cache, &request, t0).await.is_none());
    assert_eq!(cache.stats.stale_too_large.get(), 2);
    assert_eq!(
        cache.capturing.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_body_that_fails_mid_stream_or_has_trailers_is_not_kept() {
    let cache = cache(limits());
    let t0 = Instant::now();
    let request = get("/broken", &[]);
    let failing = Frames(VecDeque::from([
        Ok(Frame::data(Bytes::from_static(b"half"))),
        Err(BoxError::from("connection reset")),
    ]));
    let read = pass(&cache, &request, response(200, &[], failing.boxed()), t0).await;
    assert!(read.is_err(), "the client sees the error");
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let with_trailers = Frames(VecDeque::from([
        Ok(Frame::data(Bytes::from_static(b"data"))),
        Ok(Frame::trailers(trailers)),
    ]));
    pass(
        &cache,
        &request,
        response(200, &[], with_trailers.boxed()),
        t0,
    )
    .await
    .unwrap();
    assert!(served(&cache, &request, t0).await.is_none());
    assert_eq!(cache.stats.stale_stored.get(), 0);
    assert_eq!(
        cache.capturing.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_body_the_client_abandons_is_not_kept() {
    let cache = cache(limits());
    let t0 = Instant::now();
    let request = get("/left", &[]);
    let mut observed = cache
        .capture(
            &request,
            Provenance::default(),
            response(200, &[], chunks(&["a", "b"])),
            t0,
        )
        .into_body();
    let _first = observed.frame().await;
    drop(observed);
    assert!(served(&cache, &request, t0).await.is_none());
    assert_eq!(
        cache.capturing.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_complete_body_is_kept_even_if_never_polled_to_its_end() {
    let cache = cache(limits());
    let t0 = Instant::now();
    let request = get("/full", &[]);
    let full = crate::body::full("whole");
    let mut observed = cache
        .capture(
            &request,
            Provenance::default(),
            response(200, &[], full),
            t0,
        )
        .into_body();
    let frame = observed.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "whole");
    assert!(observed.is_end_stream());
    let (_, _, body) = served(&cache, &request, t0).await.unwrap();
    assert_eq!(&body[..], b"whole");
}

proptest! {
    /// Whatever responses stream through (sizes, limits changing by reload), the cache never
    /// holds more entries or bytes than its limits, and copies in flight return their budget.
    #[test]
    fn the_cache_never_passes_its_entry_or_byte_caps(
        steps in proptest::collection::vec((0u8..12, 0usize..300, 1usize..5, any::<bool>()), 1..60),
        max_entries in 1usize..6,
        max_bytes in 200u64..3000,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let config = StaleIfErrorConfig {
            max_age: Duration::from_secs(60),
            max_entries: NonZeroUsize::new(max_entries).unwrap(),
            max_body: 200.min(max_bytes),
            max_bytes,
        };
        let cache = cache(config);
        let t0 = Instant::now();
        runtime.block_on(async {
            for (index, (key, size, pieces, shrink)) in steps.into_iter().enumerate() {
                if shrink && index % 7 == 0 {
                    cache.reconfigure(StaleIfErrorConfig {
                        max_entries: NonZeroUsize::new((max_entries / 2).max(1)).unwrap(),
                        ..config
                    });
                }
                let body = "x".repeat(size);
                let parts: Vec<&str> = body
                    .as_bytes()
                    .chunks(size.div_ceil(pieces).max(1))
                    .map(|chunk| std::str::from_utf8(chunk).unwrap())
                    .collect();
                let request = get(&format!("/{key}"), &[]);
                let read = pass(&cache, &request, response(200, &[], chunks(&parts)), t0)
                    .await
                    .unwrap();
                assert_eq!(read.len(), size);
                let state = cache.lock();
                assert!(state.store.len() <= state.config.max_entries.get());
                assert!(state.store.bytes() <= state.config.max_bytes);
                assert_eq!(cache.stats.cache_bytes.get(), state.store.bytes());
                drop(state);
                assert_eq!(cache.capturing.load(std::sync::atomic::Ordering::Relaxed), 0);
            }
        });
    }
}
