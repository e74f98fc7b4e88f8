use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::Request;
use http::request::Parts;
use proptest::prelude::*;

use super::limiter::{LimitPermit, Limiter};
use super::queue::{Decision, ShedReason, View, cap, decide};
use super::ratelimit::RouteRateLimit;
use super::*;
use crate::config::Config;
use crate::config::admission::{ConcurrencyConfig, LimitConfig, RateLimitConfig, RateLimitKey};
use crate::counters::AdmissionStats;

fn fixed(limit: u32, queue: usize, queue_timeout: Duration) -> Arc<Limiter> {
    Arc::new(Limiter::new(
        ConcurrencyConfig {
            limit: LimitConfig::Fixed(limit.try_into().expect("positive")),
            queue,
            queue_timeout,
        },
        Arc::default(),
    ))
}

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

/// Polls a future once, without waiting.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

type Acquiring = Pin<Box<dyn Future<Output = Result<LimitPermit, ShedReason>>>>;

fn acquiring(limiter: &Arc<Limiter>, priority: Priority) -> Acquiring {
    let limiter = limiter.clone();
    Box::pin(async move { limiter.acquire(priority, Instant::now()).await })
}

// ## Shares and order

#[test]
fn priority_shares_of_a_limit_round_up_and_critical_gets_it_all() {
    assert_eq!(
        Priority::ALL.map(|priority| cap(10, priority)),
        [5, 8, 9, 10]
    );
    assert_eq!(Priority::ALL.map(|priority| cap(1, priority)), [1, 1, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_without_a_queue_sheds_at_once_when_full() {
    let limiter = fixed(2, 0, Duration::ZERO);
    let _a = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let _b = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let shed = limiter.acquire(Priority::Critical, Instant::now()).await;
    assert_eq!(shed.unwrap_err(), ShedReason::QueueFull);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_low_priority_leaves_room_for_high() {
    let limiter = fixed(10, 0, Duration::ZERO);
    let mut held = Vec::new();
    while let Ok(permit) = limiter.acquire(Priority::Low, Instant::now()).await {
        held.push(permit);
    }
    assert_eq!(held.len(), 5, "low may hold half the limit");
    for _ in 0..4 {
        held.push(
            limiter
                .acquire(Priority::High, Instant::now())
                .await
                .unwrap(),
        );
    }
    assert!(
        limiter
            .acquire(Priority::High, Instant::now())
            .await
            .is_err()
    );
    held.push(
        limiter
            .acquire(Priority::Critical, Instant::now())
            .await
            .unwrap(),
    );
    assert_eq!(limiter.in_flight(), 10);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_highest_priority_first_then_oldest() {
    let limiter = fixed(1, 10, Duration::from_secs(1));
    let first = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let mut low = acquiring(&limiter, Priority::Low);
    let mut high_1 = acquiring(&limiter, Priority::High);
    let mut high_2 = acquiring(&limiter, Priority::High);
    for waiter in [&mut low, &mut high_1, &mut high_2] {
        assert!(poll_once(waiter).await.is_pending());
    }
    assert_eq!(limiter.queued(), 3);
    drop(first);
    let granted = poll_once(&mut high_1).await;
    assert!(
        matches!(granted, Poll::Ready(Ok(_))),
        "the oldest high waiter goes first"
    );
    assert!(poll_once(&mut high_2).await.is_pending());
    assert!(poll_once(&mut low).await.is_pending());
    drop(granted);
    assert!(matches!(poll_once(&mut high_2).await, Poll::Ready(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_sheds_its_newest_low_waiter_for_a_high_request() {
    let limiter = fixed(1, 2, Duration::from_secs(1));
    let _running = limiter
        .acquire(Priority::Critical, Instant::now())
        .await
        .unwrap();
    let mut low_old = acquiring(&limiter, Priority::Low);
    let mut low_new = acquiring(&limiter, Priority::Low);
    assert!(poll_once(&mut low_old).await.is_pending());
    assert!(poll_once(&mut low_new).await.is_pending());
    let mut low_late = acquiring(&limiter, Priority::Low);
    assert!(matches!(
        poll_once(&mut low_late).await,
        Poll::Ready(Err(ShedReason::QueueFull))
    ));
    let mut high = acquiring(&limiter, Priority::High);
    assert!(
        poll_once(&mut high).await.is_pending(),
        "queued in low's place"
    );
    assert!(matches!(
        poll_once(&mut low_new).await,
        Poll::Ready(Err(ShedReason::Displaced))
    ));
    assert!(poll_once(&mut low_old).await.is_pending());
    assert_eq!(limiter.queued(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_shed_when_the_queue_timeout_passes() {
    let limiter = fixed(1, 4, Duration::from_millis(100));
    let _running = limiter
        .acquire(Priority::Normal, Instant::now())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let shed = limiter.acquire(Priority::Normal, Instant::now()).await;
    assert_eq!(shed.unwrap_err(), ShedReason::Timeout);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(limiter.queued(), 0, "the timed-out waiter left the queue");
}

#[tokio::test(start_paused = true)]
async fn a_request_the_queue_cannot_serve_in_time_is_shed_at_once() {
    let limiter = fixed(1, 10, Duration::from_millis(100));
    let start = Instant::now();
    let mut slow = limiter.acquire(Priority::Normal, start).await.unwrap();
    slow.observe(AttemptOutcome::Success, start + Duration::from_secs(1));
    drop(slow);
    let _running = limiter
        .acquire(Priority::Normal, Instant::now())
        .await
        .unwrap();
    let before = tokio::time::Instant::now();
    let shed = limiter.acquire(Priority::Normal, Instant::now()).await;
    assert_eq!(shed.unwrap_err(), ShedReason::Hopeless);
    assert_eq!(before.elapsed(), Duration::ZERO, "no time spent queueing");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_gives_up_loses_no_slot() {
    let limiter = fixed(1, 4, Duration::from_secs(1));
    let running = limiter
        .acquire(Priority::Normal, Instant::now())
        .await
        .unwrap();
    let mut gone = acquiring(&limiter, Priority::Normal);
    let mut next = acquiring(&limiter, Priority::Normal);
    assert!(poll_once(&mut gone).await.is_pending());
    assert!(poll_once(&mut next).await.is_pending());
    drop(running); // granted to `gone`, which never looks again
    drop(gone);
    let granted = poll_once(&mut next).await;
    assert!(matches!(granted, Poll::Ready(Ok(_))));
    assert_eq!(limiter.in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_aimd_limit_falls_when_the_upstream_says_it_is_overloaded() {
    let limiter = Arc::new(Limiter::new(
        ConcurrencyConfig {
            limit: LimitConfig::Aimd(crate::config::admission::AdaptiveBounds {
                min: 2,
                max: 100,
                initial: 40,
            }),
            queue: 0,
            queue_timeout: Duration::ZERO,
        },
        Arc::default(),
    ));
    let now = Instant::now();
    for _ in 0..10 {
        let mut permit = limiter.acquire(Priority::Critical, now).await.unwrap();
        permit.observe(
            AttemptOutcome::Overloaded { retry_after: None },
            now + Duration::from_millis(5),
        );
    }
    assert!(limiter.limit() < 20, "limit now {}", limiter.limit());
    let low_limit = limiter.limit();
    let mut permit = limiter.acquire(Priority::Critical, now).await.unwrap();
    permit.observe(AttemptOutcome::Reset, now + Duration::from_millis(5));
    drop(permit);
    assert_eq!(
        limiter.limit(),
        low_limit,
        "a broken connection is not overload"
    );
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

fn priority() -> impl Strategy<Value = Priority> {
    prop::sample::select(Priority::ALL.to_vec())
}

fn view() -> impl Strategy<Value = View> {
    (
        0u32..20,
        1u32..20,
        prop::array::uniform4(0usize..4),
        0usize..12,
        prop::option::of(1u64..300),
    )
        .prop_map(|(in_flight, limit, queued, max_queue, hold)| View {
            in_flight,
            limit,
            queued,
            max_queue: max_queue.max(queued.iter().sum()),
            queue_timeout: Duration::from_millis(100),
            hold: hold.map(Duration::from_millis),
        })
}

#[derive(Debug, Clone)]
enum Op {
    Arrive(Priority),
    Finish(usize),
    GiveUp(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => priority().prop_map(Op::Arrive),
        2 => any::<usize>().prop_map(Op::Finish),
        1 => any::<usize>().prop_map(Op::GiveUp),
    ]
}

proptest! {
    #[test]
    fn a_higher_priority_is_never_shed_where_a_lower_one_is_admitted(
        view in view(), lower in priority(), higher in priority(),
    ) {
        prop_assume!(lower < higher);
        let admitted = |decision| !matches!(decision, Decision::Shed(_));
        if admitted(decide(&view, lower)) {
            prop_assert!(admitted(decide(&view, higher)), "{:?}", decide(&view, higher));
        }
    }

    #[test]
    fn slots_never_exceed_the_limit_nor_a_priority_its_share(
        limit in 1u32..8, queue in 0usize..6, ops in prop::collection::vec(op(), 1..80),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let limiter = fixed(limit, queue, Duration::from_secs(60));
            let mut running: Vec<(Priority, LimitPermit)> = Vec::new();
            let mut waiting: Vec<(Priority, Acquiring)> = Vec::new();
            for op in ops {
                match op {
                    Op::Arrive(priority) => waiting.push((priority, acquiring(&limiter, priority))),
                    Op::Finish(index) if !running.is_empty() => {
                        running.swap_remove(index % running.len());
                    }
                    Op::GiveUp(index) if !waiting.is_empty() => {
                        drop(waiting.swap_remove(index % waiting.len()));
                    }
                    _ => {}
                }
                let mut still = Vec::new();
                for (priority, mut future) in waiting {
                    match poll_once(&mut future).await {
                        Poll::Ready(Ok(permit)) => running.push((priority, permit)),
                        Poll::Ready(Err(_)) => {}
                        Poll::Pending => still.push((priority, future)),
                    }
                }
                waiting = still;
                prop_assert!(limiter.in_flight() <= limit);
                prop_assert_eq!(limiter.in_flight() as usize, running.len());
                prop_assert!(limiter.queued() <= queue);
                for share in Priority::ALL {
                    let at_or_below = running.iter().filter(|(p, _)| *p <= share).count();
                    prop_assert!(at_or_below as u32 <= cap(limit, share));
                }
            }
            Ok(())
        })?;
    }

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
