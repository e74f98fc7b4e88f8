use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::Request;
use http::request::Parts;
use proptest::prelude::*;

use super::ratelimit::RouteRateLimit;
use super::*;
use crate::config::Config;
use crate::config::admission::{RateLimitConfig, RateLimitKey};
use crate::counters::AdmissionStats;

fn route(sections: &str, proxy: &str) -> RouteConfig {
    let text = format!(
        r#"
[proxy]
{proxy}

[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[route]]
name = "api"
cluster = "api"
{sections}

[cluster.api]
endpoints = [{{ address = "127.0.0.1:9001" }}]
"#
    );
    let config = Config::parse(&text, Path::new("blastwall.toml")).expect("a valid config");
    config.routes[0].clone()
}

fn request(headers: &[(&str, &str)]) -> Parts {
    let mut builder = Request::builder().uri("/");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("a request").into_parts().0
}

fn from(ip: [u8; 4]) -> Downstream {
    Downstream {
        peer: SocketAddr::from((ip, 40000)),
        tls: false,
    }
}

// ## Rate limits

fn rate(rate: u32, burst: u32, key: RateLimitKey, max_keys: usize) -> RouteRateLimit {
    let limit = blastwall_policy::ratelimit::RateLimitConfig {
        rate,
        period: Duration::from_secs(1),
        burst,
    }
    .validated()
    .expect("the test rate limit is valid");
    RouteRateLimit::new(RateLimitConfig {
        rate,
        per: Duration::from_secs(1),
        burst,
        key,
        max_keys,
        limit,
    })
}

#[test]
fn a_client_over_its_rate_is_told_when_to_come_back_and_others_are_not_affected() {
    let limit = rate(10, 2, RateLimitKey::ClientIp, 100);
    let stats = AdmissionStats::default();
    let headers = http::HeaderMap::new();
    let now = Instant::now();
    let a = IpAddr::from([10, 0, 0, 1]);
    let b = IpAddr::from([10, 0, 0, 2]);
    assert!(limit.check(&headers, a, now, &stats).is_ok());
    assert!(limit.check(&headers, a, now, &stats).is_ok());
    let limited = limit.check(&headers, a, now, &stats).unwrap_err();
    assert_eq!(limited.retry_after, Duration::from_millis(100));
    assert!(limit.check(&headers, b, now, &stats).is_ok());
    let later = now + Duration::from_millis(100);
    assert!(limit.check(&headers, a, later, &stats).is_ok());
}

#[test]
fn a_header_key_limits_each_value_and_falls_back_to_the_client_address() {
    let name = http::HeaderName::from_static("x-api-key");
    let limit = rate(1, 1, RateLimitKey::Header(name), 100);
    let stats = AdmissionStats::default();
    let now = Instant::now();
    let client = IpAddr::from([10, 0, 0, 1]);
    let with = |key: &str| request(&[("x-api-key", key)]).headers;
    assert!(limit.check(&with("one"), client, now, &stats).is_ok());
    assert!(limit.check(&with("one"), client, now, &stats).is_err());
    assert!(limit.check(&with("two"), client, now, &stats).is_ok());
    let none = http::HeaderMap::new();
    assert!(limit.check(&none, client, now, &stats).is_ok());
    assert!(limit.check(&none, client, now, &stats).is_err());
}

#[test]
fn idle_keys_are_forgotten_when_the_map_is_full_and_new_keys_overflow_until_then() {
    let limit = rate(1, 1, RateLimitKey::ClientIp, 2);
    let stats = AdmissionStats::default();
    let headers = http::HeaderMap::new();
    let now = Instant::now();
    for last in 1..=2 {
        assert!(
            limit
                .check(&headers, IpAddr::from([10, 0, 0, last]), now, &stats)
                .is_ok()
        );
    }
    // Map full of active keys: new keys share the overflow limiter.
    assert!(
        limit
            .check(&headers, IpAddr::from([10, 0, 0, 3]), now, &stats)
            .is_ok()
    );
    assert!(
        limit
            .check(&headers, IpAddr::from([10, 0, 0, 4]), now, &stats)
            .is_err()
    );
    assert_eq!(limit.tracked(), 2);
    // A second on, the first keys have their burst back: swept, room for new ones.
    let later = now + Duration::from_secs(1);
    assert!(
        limit
            .check(&headers, IpAddr::from([10, 0, 0, 4]), later, &stats)
            .is_ok()
    );
    assert_eq!(limit.tracked(), 1);
}

// ## Route admission

#[tokio::test(start_paused = true)]
async fn the_priority_header_is_honoured_only_from_trusted_clients() {
    let config = route(
        "priority = \"low\"",
        "trusted_clients = [\"10.0.0.0/8\"]\npriority_header = \"x-prio\"",
    );
    let admission = RouteAdmission::new(&config, None);
    let parts = request(&[("x-prio", "Critical")]);
    assert_eq!(
        admission.priority(&parts, from([10, 1, 2, 3])),
        Priority::Critical
    );
    assert_eq!(
        admission.priority(&parts, from([192, 168, 0, 1])),
        Priority::Low
    );
    assert_eq!(
        admission.priority(&request(&[("x-prio", "urgent")]), from([10, 1, 2, 3])),
        Priority::Low,
        "an unknown value is ignored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_request_is_refused_with_429_and_retry_after() {
    let config = route("rate_limit = { rate = 1, per = \"10s\" }", "");
    let admission = RouteAdmission::new(&config, None);
    let now = Instant::now();
    let parts = request(&[]);
    assert!(
        admission
            .admit_at(&parts, from([1, 2, 3, 4]), now)
            .await
            .is_ok()
    );
    let refusal = admission
        .admit_at(&parts, from([1, 2, 3, 4]), now)
        .await
        .unwrap_err();
    assert_eq!(refusal.error, ProxyError::RateLimited);
    assert_eq!(refusal.retry_after, Some(Duration::from_secs(10)));
    let response = refusal.into_response();
    assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "10");
    assert_eq!(admission.stats().rate_limited.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_shed_request_gets_503_shed_with_retry_after() {
    let config = route("concurrency = { limit = 1 }", "");
    let admission = RouteAdmission::new(&config, None);
    let parts = request(&[]);
    let _held = admission.admit(&parts, from([1, 2, 3, 4])).await.unwrap();
    let response = admission
        .admit(&parts, from([1, 2, 3, 4]))
        .await
        .unwrap_err()
        .into_response();
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-blastwall-error"], "shed");
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert_eq!(admission.stats().shed.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_the_state_of_unchanged_sections_only() {
    let old = RouteAdmission::new(&route("concurrency = { limit = 1 }", ""), None);
    let parts = request(&[]);
    let _held = old.admit(&parts, from([1, 2, 3, 4])).await.unwrap();
    let same = RouteAdmission::new(
        &route("concurrency = { limit = 1 }\npriority = \"high\"", ""),
        Some(&old),
    );
    assert!(
        same.admit(&parts, from([1, 2, 3, 4])).await.is_err(),
        "the slot is still held"
    );
    let changed = RouteAdmission::new(&route("concurrency = { limit = 2 }", ""), Some(&same));
    assert!(changed.admit(&parts, from([1, 2, 3, 4])).await.is_ok());
    assert_eq!(changed.stats().shed.get(), 1, "counters survive");
}

#[tokio::test(start_paused = true)]
async fn a_slot_is_held_until_the_response_body_ends() {
    use http_body_util::BodyExt;

    let admission = RouteAdmission::new(&route("concurrency = { limit = 1 }", ""), None);
    let parts = request(&[]);
    let permit = admission.admit(&parts, from([1, 2, 3, 4])).await.unwrap();
    let response = hold_until_body_end(http::Response::new(OneChunk(true).boxed()), permit);
    assert_eq!(admission.concurrency(), Some((1, 1, 0)));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"x");
    assert_eq!(admission.concurrency(), Some((1, 0, 0)));
}

/// A streaming body: one chunk, then the end (not known to be over until polled).
struct OneChunk(bool);

impl hyper::body::Body for OneChunk {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let chunk = std::mem::replace(&mut this.0, false);
        Poll::Ready(chunk.then(|| Ok(hyper::body::Frame::data(bytes::Bytes::from_static(b"x")))))
    }
}

// ## Properties

proptest! {
    #[test]
    fn the_key_map_never_exceeds_its_cap(
        max_keys in 1usize..16,
        arrivals in prop::collection::vec((0u8..64, 0u64..3000), 1..200),
    ) {
        let limit = rate(5, 2, RateLimitKey::ClientIp, max_keys);
        let stats = AdmissionStats::default();
        let headers = http::HeaderMap::new();
        let mut now = Instant::now();
        for (client, advance) in arrivals {
            now += Duration::from_millis(advance);
            let _ = limit.check(&headers, IpAddr::from([10, 0, 0, client]), now, &stats);
            prop_assert!(limit.tracked() <= max_keys);
        }
    }
}
