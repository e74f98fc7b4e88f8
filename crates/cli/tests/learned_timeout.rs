//! `per_try_timeout = "auto"`: the per-try timeout learned from the route's attempts. A
//! replica that turns slow costs a retried request about the learned timeout, not the
//! cluster's `request_timeout`.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use support::{Mock, Proxy, endpoint, get, route_config};

#[tokio::test]
async fn a_replica_gone_slow_costs_the_learned_timeout_not_the_request_timeout() {
    let (a, b, c) = (
        Mock::start("a", &[]),
        Mock::start("b", &[]),
        Mock::start("c", &[]),
    );
    let endpoints: Vec<String> = [&a, &b, &c].iter().map(|mock| endpoint(mock, "")).collect();
    let config = route_config(
        "per_try_timeout = \"auto\"\n[route.retry]\nattempts = 2\n",
        "request_timeout = \"20s\"\n",
        &endpoints,
    );
    let proxy = Proxy::start(&config);
    // Enough answers for the timeout to be learned (100 attempts).
    for _ in 0..120 {
        assert_eq!(get(&proxy.url("/work")).await.0, StatusCode::OK);
    }
    b.set_behaviour(r#"{"latency":"15s"}"#).await;
    // Round robin: a third of these reach the slow replica, time out and are retried.
    for _ in 0..9 {
        let started = Instant::now();
        let (status, _, _) = get(&proxy.url("/work")).await;
        assert_eq!(status, StatusCode::OK);
        // Far under the 15 s it would have waited with the request timeout.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
